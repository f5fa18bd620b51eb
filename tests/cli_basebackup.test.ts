// pg-rdma basebackup as users run it (a child process of the same runtime) against the
// fixture's PostgreSQL 15 and 18: a plain backup that pg_verifybackup accepts (15), tar
// output, -R over the rsocket transport (kernel provider) writing with_rsocket=true, and
// usage errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);
const VERIFY = "/usr/lib/postgresql/15/bin/pg_verifybackup";

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, NO_COLOR: "1", ...env }, timeout: 120_000 }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
  });
}

const basebackup = (c: ClusterInfo, args: string[]) =>
  run(exe, [...baseArgs, "basebackup", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", ...args]);

for (const v of VERSIONS) {
  test(`basebackup -Fp -X stream -c fast -P writes a complete data directory with a manifest on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-bb-"));
    const target = join(dir, "data");
    try {
      const r = await basebackup(c, ["-D", target, "-c", "fast", "-P", "-l", "cli test"]);
      assert.equal(r.code, 0, r.err);
      // The size depends on what else the shared cluster holds by now: any unit.
      assert.match(r.err, /^basebackup: [\d.]+ (B|KiB|MiB|GiB|TiB) in [\d.]+ s/m, "-P prints a summary on a pipe");
      assert.equal(readFileSync(join(target, "PG_VERSION"), "utf8").trim(), String(v));
      assert.match(readFileSync(join(target, "backup_label"), "utf8"), /LABEL: cli test/);
      assert.ok(existsSync(join(target, "backup_manifest")));
      if (v === 15 && existsSync(VERIFY)) {
        const ok = await run(VERIFY, [target]);
        assert.equal(ok.code, 0, ok.err + ok.out);
        assert.match(ok.out, /backup successfully verified/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`basebackup -Ft writes base.tar and pg_wal.tar; -R over --with-rsocket writes with_rsocket=true on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-bb-"));
    try {
      const tar = await basebackup(c, ["-D", join(dir, "tar"), "-Ft", "-c", "fast", "--no-manifest"]);
      assert.equal(tar.code, 0, tar.err);
      assert.ok(existsSync(join(dir, "tar", "base.tar")));
      assert.ok(existsSync(join(dir, "tar", "pg_wal.tar")));
      assert.ok(!existsSync(join(dir, "tar", "backup_manifest")));

      const target = join(dir, "rs");
      const rs = await run(exe, [...baseArgs, "basebackup", "--with-rsocket", "-h", c.host, "-p", String(c.port), "-U", ROLES.replication.user, "-D", target, "-c", "fast", "-R", "--verbose"], {
        PG_RDMA_PROVIDER: "kernel",
        PGPASSWORD: ROLES.replication.password,
      });
      assert.equal(rs.code, 0, rs.err);
      assert.match(rs.err, /transport: rsockets requested/);
      const auto = readFileSync(join(target, "postgresql.auto.conf"), "utf8");
      assert.match(auto, /primary_conninfo = '.*with_rsocket=true/);
      assert.ok(existsSync(join(target, "standby.signal")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("basebackup refuses a bad rate, a bad mapping and a slot-less --create-slot (exit 2); a failed backup removes its directory", async () => {
  for (const [args, message] of [
    [["-D", "/tmp/x", "-r", "10"], /transfer rate "10" is out of range/],
    [["-D", "/tmp/x", "-T", "relative=/abs"], /must be absolute paths/],
    [["-D", "/tmp/x", "-C"], /--create-slot needs a slot/],
  ] as const) {
    const r = await run(exe, [...baseArgs, "basebackup", ...args]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, message);
  }
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-bb-"));
  try {
    const target = join(dir, "never");
    const r = await run(exe, [...baseArgs, "basebackup", "-h", "127.0.0.1", "-p", "1", "-D", target, "-w"]);
    assert.equal(r.code, 1);
    assert.match(r.err, /Connection refused/);
    assert.ok(!existsSync(target));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
