// WalReceiver with lz4 and zstd against PostgreSQL 15: completed segments decompress (with our
// decoder and with Debian's lz4/zstd tools) to the server's own segment files, and a receiver
// restarted next to compressed segments and a .partial resumes where pg_receivewal would.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, createDatabase, psql, unavailable } from "./_fixture/cluster.ts";
import { runtime } from "./_fixture/runtime.ts";
import { parseLsn } from "../replication/_pgoutput.ts";
import { findStreamingStart, WalReceiver, type WalReceiverOptions } from "../replication/wal_receiver.ts";
import { parseSegmentFileName } from "../replication/_wal_segment.ts";
import { decompress } from "../compress/mod.ts";

const home = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const tag = `${runtime}_${process.pid}`;
const SEGMENT = /^[0-9A-F]{24}$/;
const SEG_SIZE = 16 * 1024 * 1024;
const segno = (name: string) => parseSegmentFileName(name, SEG_SIZE)!.segno;

/**
 * Writes about `mb` MiB of WAL and returns an end position: with `switchWal`, the end of the
 * segment just switched out (a segment boundary, whatever other tests write to the shared
 * cluster meanwhile), else the current position (inside a segment).
 */
async function load(c: ClusterInfo, db: string, mb: number, switchWal: boolean): Promise<bigint> {
  await psql(c, `CREATE TABLE IF NOT EXISTS w (a int, b text); INSERT INTO w SELECT g, md5(g::text) || repeat('x', 150) FROM generate_series(1, ${mb * 3500}) g`, { database: db });
  const out = await psql(c, switchWal ? "SELECT pg_switch_wal()" : "SELECT pg_current_wal_lsn()", { database: db });
  const lsn = parseLsn(out.trim().split("\n").pop()!);
  const seg = BigInt(SEG_SIZE);
  return switchWal ? (lsn + seg - 1n) / seg * seg : lsn;
}

/**
 * Runs a receiver until `work` has written WAL and the end position is reached; gives the start
 * position and the end position.
 */
async function receive(o: WalReceiverOptions, work: () => Promise<bigint>): Promise<{ from: bigint; end: bigint }> {
  let started!: (lsn: bigint) => void;
  const isStarted = new Promise<bigint>((r) => (started = r));
  let from = -1n;
  const rx = new WalReceiver({ ...o, onStart: (p) => started(from = p.lsn) });
  const run = rx.run();
  await Promise.race([isStarted, run]);
  const end = await work();
  rx.stopAt(end);
  await run;
  return { from, end };
}

for (const method of ["lz4", "zstd"] as const) {
  const ext = method === "lz4" ? ".lz4" : ".zst";
  const noTool = spawnSync(method, ["--version"]).status === 0 ? undefined : `the ${method} command is not installed`;

  test(`WalReceiver PG15: ${method} segments decompress to the server's segment files, and a restart resumes next to them`, { skip: unavailable(15) }, async () => {
    const c = await cluster(15);
    const db = await createDatabase(c, `wal${method}`);
    const slot = `wal${method}_${tag}`;
    const dir = mkdtempSync(join(tmpdir(), `pg-rdma-wal${method}-`));
    const options: WalReceiverOptions = {
      connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: dir,
      // The slot holds the server's copies in pg_wal for the comparison, across both runs.
      slot, createSlot: true, compression: method === "zstd" ? { method, level: 1 } : method,
    };
    try {
      // First run: stops inside a segment, which stays .partial beside the compressed ones.
      await receive(options, async () => {
        await load(c, db, 3, true);
        return await load(c, db, 1, false);
      });
      const first = readdirSync(dir);
      const partial = first.filter((f) => f.endsWith(".partial"));
      assert.equal(partial.length, 1, `one .partial after stopping mid-segment: ${first}`);
      assert.ok(first.some((f) => f.endsWith(ext)), `compressed segments: ${first}`);
      assert.ok(!first.some((f) => SEGMENT.test(f)), "no uncompressed complete segment is left");
      const resume = findStreamingStart(dir, SEG_SIZE)!;
      assert.equal(resume.lsn, segno(partial[0]) * BigInt(SEG_SIZE), "resumes at the start of the .partial segment");

      // Second run, same directory: starts there, and completes the segment it re-fetches.
      const { from, end } = await receive(options, () => load(c, db, 3, true));
      assert.equal(from, resume.lsn, "the restarted receiver starts at the .partial segment's start");
      const files = readdirSync(dir).sort();
      const segs = files.filter((f) => f.endsWith(ext)).map((f) => f.slice(0, 24));
      assert.ok(segs.includes(partial[0].slice(0, 24)), `the re-fetched segment was completed: ${files}`);
      // Every segment before the end (a segment boundary) is complete. Other test files write WAL
      // to the shared cluster meanwhile, so the last message received may run past the end into
      // the next segment, which is then written as .partial, as pg_receivewal --endpos does.
      const left = files.filter((f) => f.endsWith(".partial"));
      assert.ok(left.every((f) => segno(f) * BigInt(SEG_SIZE) >= end), `no .partial before the end position: ${files}`);
      // Contiguous: no segment missing between the first and the last.
      const nums = segs.map(segno);
      for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1] + 1n, `gap after ${segs[i - 1]}`);
      assert.ok(segs.length >= 2, `segments: ${segs}`);
      for (const s of segs) {
        const server = readFileSync(join(c.dataDir, "pg_wal", s));
        const packed = readFileSync(join(dir, s + ext));
        assert.ok(packed.length < server.length / 2, `${s}${ext} is compressed (${packed.length} bytes)`);
        assert.ok(Buffer.from(await decompress(packed, method)).equals(server), `${s}${ext} decompresses to the server's segment`);
        if (!noTool) {
          const r = spawnSync(method, ["-d", "-c", "-q", join(dir, s + ext)], { maxBuffer: 64 << 20 });
          assert.equal(r.status, 0, String(r.stderr));
          assert.ok(r.stdout.equals(server), `${method} -d of ${s}${ext} gives the server's segment`);
        }
      }
    } finally {
      await psql(c, `SELECT pg_drop_replication_slot('${slot}') FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`);
      await psql(c, `DROP DATABASE IF EXISTS ${db}`);
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("WalReceiver checks its compression option and level with clear errors", () => {
  const o = { connection: "host=/nonexistent", directory: join(tmpdir(), "unused") };
  assert.throws(() => new WalReceiver({ ...o, compression: { method: "zstd", level: 30 } }), { name: "RangeError", message: /zstd compression level must be an integer 1-22, got 30/ });
  assert.throws(() => new WalReceiver({ ...o, compression: { method: "lz4", level: 9 } }), { name: "RangeError", message: /LZ4 HC/ });
  assert.throws(() => new WalReceiver({ ...o, compression: { method: "gzip", level: 0 } }), { name: "RangeError", message: /gzip compression level must be an integer 1-9/ });
  assert.throws(() => new WalReceiver({ ...o, compression: "brotli" as "gzip" }), { name: "TypeError", message: /compression must be/ });
  assert.doesNotThrow(() => new WalReceiver({ ...o, compression: "zstd" }));
  assert.doesNotThrow(() => new WalReceiver({ ...o, compression: { method: "lz4", level: 0 } }));
});
