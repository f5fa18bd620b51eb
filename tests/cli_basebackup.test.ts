// pg-rdma basebackup as users run it (a child process of the same runtime) against the
// fixture's PostgreSQL 15 and 18: a plain backup that pg_verifybackup accepts (15), tar
// output, -R over the rsocket transport (kernel provider) writing with_rsocket=true, and
// usage errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, psql, ROLES, startCluster, unavailable, VERSIONS } from "./_fixture/cluster.ts";
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

test("basebackup refuses a bad rate, a bad mapping, a slot-less --create-slot, stdout without -Ft or with -X stream, --waldir misuse, compression of plain output, server-side compression and bad levels (exit 2); a failed backup removes its directory", async () => {
  for (const [args, message] of [
    [["-D", "/tmp/x", "-r", "10"], /transfer rate "10" is out of range/],
    [["-D", "/tmp/x", "-T", "relative=/abs"], /must be absolute paths/],
    [["-D", "/tmp/x", "-C"], /--create-slot needs a slot/],
    [["-D", "-"], /needs tar format/],
    [["-D", "-", "-Ft"], /cannot stream write-ahead logs in tar mode to stdout/],
    [["-D", "/tmp/x", "-Ft", "--waldir", "/tmp/w"], /WAL directory location can only be specified in plain mode/],
    [["-D", "/tmp/x", "--waldir", "w"], /WAL directory location must be an absolute path/],
    [["-D", "/tmp/x", "-z"], /only tar mode backups can be compressed/],
    [["-D", "/tmp/x", "-Ft", "-Z", "server-zstd"], /server-side compression is not supported/],
    [["-D", "/tmp/x", "-Ft", "-Z", "lz4:9"], /lz4 compression level must be an integer 0-1, got 9/],
    [["-D", "/tmp/x", "-Ft", "-Z", "zstd:level=30"], /zstd compression level must be an integer 1-22, got 30/],
    [["-D", "/tmp/x", "-Ft", "-Z", "brotli"], /unrecognized compression algorithm: "brotli"/],
    [["-D", "/tmp/x", "-Ft", "-Z", "gzip:12"], /between 1 and 9/],
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

// Backups of a small cluster of this test's own: the shared clusters fill up with other tests'
// databases during a run, which made these backups slower the later they ran.
for (const v of VERSIONS) {
  test(`basebackup -D - -Ft -X fetch -z (and -Z lz4) writes one compressed tar with WAL and manifest to stdout; -Z gzip:1, -Z client-zstd:level=5 and --waldir on disk; -P -v knows the total, on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await startCluster(v);
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-bb-"));
    try {
      const args = [...baseArgs, "basebackup", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres"];
      const tarPath = join(dir, "stdout.tar");
      // stdout is a file here: the bytes written are exactly what a pipe would get.
      const code = await new Promise<number>((resolve, reject) => {
        const fd = openSync(tarPath, "w");
        const child = spawn(exe, [...args, "-D", "-", "-Ft", "-X", "fetch", "-z", "-c", "fast", "-R"], { stdio: ["ignore", fd, "pipe"] });
        let err = "";
        child.stderr!.on("data", (d) => (err += d));
        child.on("error", reject);
        child.on("close", (code) => {
          closeSync(fd);
          if (code !== 0) reject(new Error(`exit ${code}: ${err}`));
          else resolve(code);
        });
      });
      assert.equal(code, 0);
      const x = join(dir, "x");
      mkdirSync(x);
      await runOk("tar", ["-xzf", tarPath, "-C", x]);
      assert.equal(readFileSync(join(x, "PG_VERSION"), "utf8").trim(), String(v));
      assert.ok(readdirSync(join(x, "pg_wal")).some((f) => /^[0-9A-F]{24}$/.test(f)), "WAL fetched into the tar");
      assert.ok(existsSync(join(x, "backup_manifest")), "the manifest is a member of the tar on stdout");
      assert.ok(existsSync(join(x, "standby.signal")));
      assert.match(readFileSync(join(x, "postgresql.auto.conf"), "utf8"), /^primary_conninfo = /m);
      if (v === 15 && existsSync(VERIFY)) {
        const ok = await run(VERIFY, [x]);
        assert.equal(ok.code, 0, ok.err + ok.out);
      }

      const gz = join(dir, "gz");
      const z = await run(exe, [...args, "-D", gz, "-Ft", "-Z", "gzip:1", "-c", "fast", "-P", "-v"]);
      assert.equal(z.code, 0, z.err);
      assert.deepEqual(readdirSync(gz).sort(), ["backup_manifest", "base.tar.gz", "pg_wal.tar.gz"]);
      const xz = join(dir, "xz");
      mkdirSync(xz);
      await runOk("tar", ["-xzf", join(gz, "base.tar.gz"), "-C", xz]);
      assert.equal(readFileSync(join(xz, "PG_VERSION"), "utf8").trim(), String(v));
      const estimate = /the server estimates the backup at (\d+) kB/.exec(z.err);
      assert.ok(estimate && Number(estimate[1]) > 1000, `-P -v reports the total: ${z.err}`);

      // zstd on disk and lz4 on stdout: Debian's zstd and lz4 read them back to tars that extract.
      const zs = join(dir, "zs");
      const zr = await run(exe, [...args, "-D", zs, "-Ft", "-X", "fetch", "-Z", "client-zstd:level=5", "-c", "fast"]);
      assert.equal(zr.code, 0, zr.err);
      assert.deepEqual(readdirSync(zs).sort(), ["backup_manifest", "base.tar.zst"]);
      await runOk("zstd", ["-d", "-q", join(zs, "base.tar.zst"), "-o", join(dir, "zs.tar")]);
      const lz4Path = join(dir, "stdout.tar.lz4");
      const lz = await new Promise<number | null>((resolve, reject) => {
        const fd = openSync(lz4Path, "w");
        const child = spawn(exe, [...args, "-D", "-", "-Ft", "-X", "fetch", "-Z", "lz4", "-c", "fast"], { stdio: ["ignore", fd, "ignore"] });
        child.on("error", reject);
        child.on("close", (code) => (closeSync(fd), resolve(code)));
      });
      assert.equal(lz, 0);
      await runOk("lz4", ["-d", "-q", lz4Path, join(dir, "lz.tar")]);
      for (const [name, tarFile] of [["xs", "zs.tar"], ["xl", "lz.tar"]]) {
        const into = join(dir, name);
        mkdirSync(into);
        await runOk("tar", ["-xf", join(dir, tarFile), "-C", into]);
        assert.equal(readFileSync(join(into, "PG_VERSION"), "utf8").trim(), String(v));
        assert.ok(readdirSync(join(into, "pg_wal")).some((f) => /^[0-9A-F]{24}$/.test(f)), "WAL fetched into the tar");
      }
      if (v === 15 && existsSync(VERIFY)) {
        writeFileSync(join(dir, "xs", "backup_manifest"), readFileSync(join(zs, "backup_manifest")));
        for (const x of ["xs", "xl"]) {
          const ok = await run(VERIFY, [join(dir, x)]);
          assert.equal(ok.code, 0, ok.err + ok.out);
        }
      }

      const plain = join(dir, "plain");
      const waldir = join(dir, "wal elsewhere");
      const w = await run(exe, [...args, "-D", plain, "--waldir", waldir, "-c", "fast"]);
      assert.equal(w.code, 0, w.err);
      assert.ok(lstatSync(join(plain, "pg_wal")).isSymbolicLink());
      assert.equal(readlinkSync(join(plain, "pg_wal")), waldir);
      assert.ok(readdirSync(waldir).some((f) => /^[0-9A-F]{24}$/.test(f)), "streamed WAL in --waldir");
      if (v === 15 && existsSync(VERIFY)) {
        const ok = await run(VERIFY, [plain]);
        assert.equal(ok.code, 0, ok.err + ok.out);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await c.stop();
    }
  });
}

test("basebackup: SIGINT stops a running backup, exits 130 and removes the directory it created", { skip: unavailable(15) }, async () => {
  const c = await startCluster(15);
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-bb-"));
  try {
    const target = join(dir, "data");
    const waldir = join(dir, "wal");
    // 32 kB/s: the backup runs for minutes unless interrupted.
    const child = spawn(exe, [...baseArgs, "basebackup", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-D", target, "--waldir", waldir, "-r", "32", "-c", "fast"], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const deadline = Date.now() + 60_000;
    while (!(existsSync(target) && readdirSync(target).length > 2)) {
      if (Date.now() > deadline) throw new Error(`the backup did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    process.kill(child.pid!, "SIGINT");
    assert.equal(await exited, 130, err);
    assert.ok(!existsSync(target), "the data directory it created is gone");
    assert.ok(!existsSync(waldir), "the WAL directory it created is gone");
    assert.match(err, /removed data directory/);
    // The server ended the backup: no walsender is left.
    assert.equal((await psqlCount(c, "SELECT count(*) FROM pg_stat_replication")), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await c.stop();
  }
});

async function runOk(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.err}`);
}

async function psqlCount(c: ClusterInfo, sql: string): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const n = Number((await psql(c, sql)).trim());
    if (n === 0 || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 200));
  }
}
