/**
 * Physical replication benchmark, ratios against PostgreSQL's own tools measured in the same run
 * on an own PostgreSQL 15 cluster (pg_receivewal 15 refuses newer servers):
 *
 * 1. WAL receive: `BENCH_WAL_MB` MiB of WAL (default 512) written beforehand and held by two
 *    slots created in one statement; {@link WalReceiver} and `pg_receivewal -S slot -E end`
 *    each stream it from the same start into an empty directory. Both fsync each segment.
 * 2. Base backup: a pgbench database of scale `BENCH_BB_SCALE` (default 70, about 1 GiB);
 *    {@link baseBackup} (plain, WAL streamed, fast checkpoint) against
 *    `pg_basebackup -Fp -X stream -c fast`. Both fsync what they write.
 *
 * Each measurement runs `BENCH_ROUNDS` times (default 2), alternating who goes first, best kept.
 *
 * Run: `npx deno run -A bench/physical.ts`, `npx bun bench/physical.ts`,
 * `node dist/bench/physical.js` (after `npm run build`).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { psql, startCluster, unavailable } from "../tests/_fixture/cluster.ts";
import { runtime } from "../tests/_fixture/runtime.ts";
import { formatLsn, parseLsn } from "../replication/_pgoutput.ts";
import { WalReceiver } from "../replication/wal_receiver.ts";
import { baseBackup } from "../replication/base_backup.ts";

const BIN = "/usr/lib/postgresql/15/bin";
const WAL_MB = Number(process.env.BENCH_WAL_MB ?? 512);
const SCALE = Number(process.env.BENCH_BB_SCALE ?? 70);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (e, out, err) => (e ? reject(new Error(`${cmd}: ${err || e.message}`)) : resolve(String(out)))));
}

function du(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  return readdirSync(path).reduce((n, f) => n + du(join(path, f)), 0);
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

if (unavailable(15)) {
  console.log(`skipped: ${unavailable(15)}`);
} else {
  const c = await startCluster(15);
  const conn = `host=${c.socketDir} port=${c.port} user=postgres`;
  const pgArgs = ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres"];
  try {
    // 1. WAL receive
    await psql(c, "CREATE TABLE w (b text)");
    const rows: [string, number, number][] = [];
    let bestOurs = Infinity;
    let bestTheirs = Infinity;
    for (let round = 0; round < ROUNDS; round++) {
      await psql(c, "SELECT pg_switch_wal()");
      await psql(c, `SELECT pg_create_physical_replication_slot('bench_ours', true), pg_create_physical_replication_slot('bench_theirs', true)`);
      const start = parseLsn((await psql(c, "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'bench_ours'")).trim());
      // Rows of 1888 bytes: under the TOAST threshold, so stored (and logged) uncompressed.
      for (let done = 0; done < WAL_MB; done += 64) {
        await psql(c, `INSERT INTO w SELECT repeat(md5(g::text), 59) FROM generate_series(1, ${64 * 480}) g`);
      }
      const end = parseLsn((await psql(c, "SELECT pg_switch_wal(); SELECT pg_current_wal_lsn()")).trim().split("\n").pop()!);
      const mb = Number(end - start) / (1 << 20);
      const ours = mkdtempSync(join(tmpdir(), "bench-wal-ours-"));
      const theirs = mkdtempSync(join(tmpdir(), "bench-wal-theirs-"));
      const a = () => time(() => new WalReceiver({ connection: conn, connectOptions: { env: {} }, directory: ours, slot: "bench_ours", endpos: end, reconnect: false }).run());
      const b = () => time(() => run(join(BIN, "pg_receivewal"), [...pgArgs, "-D", theirs, "-S", "bench_theirs", "-E", formatLsn(end), "--no-loop", "-n"]));
      // Alternate who goes first: the second one may find the first one's writeback still going.
      const [tOurs, tTheirs] = round % 2 ? [await a(), await b()] : [...[await b(), await a()].reverse()];
      bestOurs = Math.min(bestOurs, tOurs);
      bestTheirs = Math.min(bestTheirs, tTheirs);
      rows.push([`round ${round + 1}`, mb / tOurs, mb / tTheirs]);
      rmSync(ours, { recursive: true, force: true });
      rmSync(theirs, { recursive: true, force: true });
      await psql(c, "SELECT pg_drop_replication_slot('bench_ours'), pg_drop_replication_slot('bench_theirs'); TRUNCATE w; CHECKPOINT");
      console.log(`WAL receive ${mb.toFixed(0)} MiB, round ${round + 1}: ours ${(mb / tOurs).toFixed(0)} MB/s, pg_receivewal ${(mb / tTheirs).toFixed(0)} MB/s`);
    }
    console.log(`WAL receive (${runtime}): ours/pg_receivewal = ${(bestTheirs / bestOurs).toFixed(2)}x`);

    // 2. Base backup
    await run(join(BIN, "pgbench"), [...pgArgs, "-i", "-q", "-s", String(SCALE), "postgres"]);
    let size = 0;
    let bOurs = Infinity;
    let bTheirs = Infinity;
    for (let round = 0; round < ROUNDS; round++) {
      const a = join(mkdtempSync(join(tmpdir(), "bench-bb-ours-")), "d");
      const b = join(mkdtempSync(join(tmpdir(), "bench-bb-theirs-")), "d");
      const ours = () => time(() => baseBackup({ connection: conn, connectOptions: { env: {} }, directory: a, checkpoint: "fast" }));
      const theirs = () => time(() => run(join(BIN, "pg_basebackup"), [...pgArgs, "-D", b, "-Fp", "-X", "stream", "-c", "fast"]));
      const [tA, tB] = round % 2 ? [await ours(), await theirs()] : [...[await theirs(), await ours()].reverse()];
      size = du(a) / (1 << 20);
      const sizeB = du(b) / (1 << 20);
      bOurs = Math.min(bOurs, tA);
      bTheirs = Math.min(bTheirs, tB);
      console.log(`base backup ${size.toFixed(0)} MiB (theirs ${sizeB.toFixed(0)} MiB), round ${round + 1}: ours ${(size / tA).toFixed(0)} MB/s, pg_basebackup ${(sizeB / tB).toFixed(0)} MB/s`);
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
    console.log(`base backup (${runtime}, ${size.toFixed(0)} MiB): ours/pg_basebackup = ${(bTheirs / bOurs).toFixed(2)}x`);
  } finally {
    await c.stop();
  }
}
