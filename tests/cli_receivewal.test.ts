// pg-rdma receivewal as users run it (a child process of the same runtime) against the
// fixture's PostgreSQL 15 and 18: a physical slot created and dropped, segments streamed up to
// -E and byte-identical to the server's, and a clean stop on SIGINT leaving a .partial segment
// that the next run resumes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, psql, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  code: number;
  out: string;
  err: string;
}

function conn(c: ClusterInfo): string[] {
  return ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres"];
}

function receivewal(c: ClusterInfo | undefined, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(exe, [...baseArgs, "receivewal", ...(c ? conn(c) : []), ...args], { env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
  });
}

for (const v of VERSIONS) {
  test(`receivewal streams complete segments up to -E, identical to the server's, through a slot it created on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const slot = `rw_${v}_${process.pid}`;
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-wal-"));
    try {
      const created = await receivewal(c, ["-S", slot, "--create-slot"]);
      assert.equal(created.code, 0, created.err);
      assert.equal((await psql(c, `SELECT slot_type, restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim(), "physical|t");
      const first = (await psql(c, `SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim();
      await psql(c, "CREATE TABLE IF NOT EXISTS rw_fill (x text); INSERT INTO rw_fill SELECT repeat('w', 100) FROM generate_series(1, 1000)");
      await psql(c, "SELECT pg_switch_wal()");
      const end = (await psql(c, "SELECT pg_current_wal_lsn()")).trim();
      const r = await receivewal(c, ["-S", slot, "-D", dir, "-E", end, "--verbose"]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /starting log streaming at /);
      const files = readdirSync(dir).sort();
      assert.ok(files.includes(first), `${first} in ${files.join(", ")}`);
      const ours = readFileSync(join(dir, first));
      const theirs = readFileSync(join(c.dataDir, "pg_wal", first));
      assert.equal(ours.length, 16 << 20);
      assert.ok(ours.equals(theirs), `${first} differs from the server's`);
      // The slot was told what was flushed.
      assert.equal((await psql(c, `SELECT restart_lsn > '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim(), "t");
      const dropped = await receivewal(c, ["-S", slot, "--drop-slot"]);
      assert.equal(dropped.code, 0, dropped.err);
      assert.equal((await psql(c, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim(), "0");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`receivewal stops on SIGINT (exit 130) leaving a .partial segment, and the next run resumes from it on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-wal-"));
    try {
      const child = spawn(exe, [...baseArgs, "receivewal", ...conn(c), "-D", dir, "--verbose"], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (d) => (err += String(d)));
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      const deadline = Date.now() + 20_000;
      // A segment file opens with the first WAL that arrives: make some (the server may sit at
      // a segment boundary after another test's pg_switch_wal).
      await psql(c, "CREATE TABLE IF NOT EXISTS rw_fill (x text)");
      while (Date.now() < deadline && !readdirSync(dir).some((f) => f.endsWith(".partial"))) {
        await psql(c, "INSERT INTO rw_fill VALUES ('tick')");
        await sleep(200);
      }
      const partial = readdirSync(dir).find((f) => f.endsWith(".partial"));
      assert.ok(partial, `no .partial segment in ${dir}: ${err}`);
      process.kill(child.pid!, "SIGINT");
      assert.equal(await exited, 130, err);
      assert.ok(existsSync(join(dir, partial)));
      assert.equal(readFileSync(join(dir, partial)).length, 16 << 20, "a .partial segment is full size, as pg_receivewal's");
      // Resume: finish that segment.
      await psql(c, "SELECT pg_switch_wal()");
      const end = (await psql(c, "SELECT pg_current_wal_lsn()")).trim();
      const r = await receivewal(c, ["-D", dir, "-E", end, "--verbose"]);
      assert.equal(r.code, 0, r.err);
      const name = partial.slice(0, -".partial".length);
      assert.match(r.err, new RegExp(`starting log streaming at [0-9A-F]+/[0-9A-F]+ \\(timeline \\d+\\)`));
      assert.ok(existsSync(join(dir, name)), `${name} completed after resuming`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("receivewal refuses an LZ4 HC level and a bad -E with usage errors (exit 2)", async () => {
  const z = await receivewal(undefined, ["-D", "/tmp/x", "-Z", "lz4:9"]);
  assert.equal(z.code, 2);
  assert.match(z.err, /lz4 compression level must be an integer 0-1, got 9/);
  const e = await receivewal(undefined, ["-D", "/tmp/x", "-E", "zz"]);
  assert.equal(e.code, 2);
  assert.match(e.err, /could not parse end position "zz"/);
});
