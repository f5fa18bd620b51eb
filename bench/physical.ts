/**
 * Physical replication benchmark, ratios against PostgreSQL's own tools measured in the same run
 * on an own PostgreSQL 15 cluster (pg_receivewal 15 refuses newer servers):
 *
 * 1. WAL receive: `BENCH_WAL_MB` MiB of WAL (default 512) written beforehand and held by two
 *    slots created in one statement; {@link WalReceiver} and `pg_receivewal -S slot -E end`
 *    each stream it from the same start into an empty directory. Both fsync each segment.
 * 2. Base backup: a pgbench database of scale `BENCH_BB_SCALE` (default 140, about 2 GiB);
 *    {@link baseBackup} (plain, WAL streamed, fast checkpoint) against
 *    `pg_basebackup -Fp -X stream -c fast`. Both fsync what they write.
 *
 * Each measurement runs `BENCH_ROUNDS` times (default 2), alternating who goes first, best kept.
 * `BENCH_NOSYNC=1` adds a second row per measurement with fsync off on both sides
 * (`sync: false` against `pg_receivewal --no-sync` / `pg_basebackup --no-sync`), so a slow
 * shared disk can be told apart from the client; `BENCH_NOSYNC=only` measures only that row.
 * `BENCH_ONLY=wal` or `backup` runs one of the two measurements (to keep a run short). Each
 * result line gives the best and the median of the rounds; base backup lines also give the CPU
 * time per MiB of each side (this process; pg_basebackup with its WAL streaming child). Where there are two CPUs or more, this
 * process and the peer's tools run on CPU 0 and the server on CPU 1 (`BENCH_PIN`: bench/_pin.ts).
 * `BENCH_DIR` is where both sides write (default the temporary directory; `/dev/shm` leaves the
 * disk out).
 *
 * Loading the 2 GiB cluster takes minutes of CPU; to measure on a quiet machine, start a server
 * once (`BENCH_PREPARE=1`: starts the cluster, prints `BENCH_SERVER=socketDir:port` and keeps it
 * until stdin closes), load it (`pgbench -i -s 140`, or let the first run do it: a run loads
 * pgbench only when the scale differs) and point each measuring run at it with `BENCH_SERVER`.
 *
 * Run: `npx deno run -A bench/physical.ts`, `npx bun bench/physical.ts`,
 * `node dist/bench/physical.js` (after `npm run build`).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { psql, startCluster, unavailable } from "../tests/_fixture/cluster.ts";
import { runtime } from "../tests/_fixture/runtime.ts";
import { formatLsn, parseLsn } from "../replication/_pgoutput.ts";
import { WalReceiver } from "../replication/wal_receiver.ts";
import { baseBackup } from "../replication/base_backup.ts";
import { applyPin, describePin, onClientCpu, parentPid, pinFromEnv } from "./_pin.ts";

const BIN = "/usr/lib/postgresql/15/bin";
const WAL_MB = Number(process.env.BENCH_WAL_MB ?? 512);
const SCALE = Number(process.env.BENCH_BB_SCALE ?? 140);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
// fsync settings measured: on both sides (default), then also off on both sides (1), or only off.
const SYNCS = process.env.BENCH_NOSYNC === "only" ? [false] : process.env.BENCH_NOSYNC === "1" ? [true, false] : [true];
const ONLY = process.env.BENCH_ONLY;
// Where both sides write (default: the system's temporary directory). BENCH_DIR=/dev/shm takes the
// VM's disk out of the comparison: the page-cache copy stays, writeback and its noise go.
const OUT_DIR = process.env.BENCH_DIR ?? tmpdir();
// Pinned (bench/_pin.ts): this process, pg_receivewal and pg_basebackup on one CPU, the server on
// the other, the same for both sides; BENCH_PIN=none lets the scheduler place.
const PIN = pinFromEnv();
if (ONLY !== undefined && ONLY !== "wal" && ONLY !== "backup") throw new RangeError(`BENCH_ONLY must be "wal" or "backup", got ${JSON.stringify(ONLY)}`);

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Ratios (ours ÷ theirs, as rates) of medians taken by slot: ours going first (odd rounds) against
 * theirs going first (even rounds), and the same for going second. Whoever goes first in a round
 * is up to 2× faster on this VM, and the two sides take turns, so slot against slot is the fair
 * pairing; it needs 2 rounds or more.
 */
function bySlot(tsOurs: number[], tsTheirs: number[], sizeOurs: number, sizeTheirs: number): string {
  if (tsOurs.length < 2) return "";
  const pick = (ts: number[], odd: boolean) => median(ts.filter((_, i) => (i % 2 === 1) === odd));
  const r = (ourFirst: boolean) => (sizeOurs / pick(tsOurs, ourFirst)) / (sizeTheirs / pick(tsTheirs, !ourFirst));
  return `; by slot (medians): going first ${r(true).toFixed(2)}x, going second ${r(false).toFixed(2)}x`;
}

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

/**
 * CPU seconds (user + system) of this process and of its waited-for children, from
 * /proc/self/stat (clock ticks of 1/100 s, Linux's USER_HZ); [0, 0] where there is no procfs.
 */
function cpuTimes(): [self: number, children: number] {
  try {
    const f = readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ");
    return [(Number(f[11]) + Number(f[12])) / 100, (Number(f[13]) + Number(f[14])) / 100];
  } catch {
    return [0, 0];
  }
}

/** Seconds taken by `fn`, and CPU seconds spent meanwhile by this process and by its children. */
async function time(fn: () => Promise<unknown>): Promise<[seconds: number, cpuSelf: number, cpuChildren: number]> {
  // Write back what the previous run left dirty (with --no-sync: gigabytes), so that the one
  // going second does not pay for the first one's writes.
  await run("sync", []);
  const c0 = cpuTimes();
  const t0 = performance.now();
  await fn();
  const t = (performance.now() - t0) / 1000;
  const c1 = cpuTimes();
  return [t, c1[0] - c0[0], c1[1] - c0[1]];
}

/**
 * Times `fn` writing into a new directory under {@link OUT_DIR}, measures what it wrote (MiB), and
 * removes the directory before the other side runs: both then write into memory freed alike. (With
 * the first side's copy kept until the end of the round, the second was up to 2× slower on this
 * VM, on tmpfs too: fresh pages cost more than pages just freed.)
 */
async function inFreshDir(name: string, fn: (dir: string) => Promise<unknown>): Promise<[seconds: number, mib: number, cpuSelf: number, cpuChildren: number]> {
  const dir = mkdtempSync(join(OUT_DIR, `bench-${name}-`));
  try {
    const [t, cs, cc] = await time(() => fn(dir));
    return [t, du(dir) / (1 << 20), cs, cc];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The server to measure: given by `BENCH_SERVER=socketDir:port`, else an own cluster. */
async function server(): Promise<{ socketDir: string; port: number; stop(): Promise<void> }> {
  const given = process.env.BENCH_SERVER;
  if (given) {
    const i = given.lastIndexOf(":");
    return { socketDir: given.slice(0, i), port: Number(given.slice(i + 1)), stop: async () => {} };
  }
  return await startCluster(15);
}

/** Loads pgbench at {@link SCALE} unless the database already holds it. */
async function preparePgbench(c: { socketDir: string; port: number }, pgArgs: string[]): Promise<void> {
  const have = (await psql(c, "SELECT count(*) FROM pg_class WHERE relname = 'pgbench_branches'")).trim() === "1"
    ? Number((await psql(c, "SELECT count(*) FROM pgbench_branches")).trim())
    : 0;
  if (have !== SCALE) await run(join(BIN, "pgbench"), [...pgArgs, "-i", "-q", "-s", String(SCALE), "postgres"]);
  await psql(c, "CHECKPOINT");
}

if (unavailable(15)) {
  console.log(`skipped: ${unavailable(15)}`);
} else if (process.env.BENCH_PREPARE === "1") {
  const c = await startCluster(15);
  console.log(`BENCH_SERVER=${c.socketDir}:${c.port}`);
  process.stdin.resume();
  await new Promise((r) => process.stdin.once("end", r));
  await c.stop();
} else {
  const c = await server();
  const conn = `host=${c.socketDir} port=${c.port} user=postgres`;
  const pgArgs = ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres"];
  // The measured tools, on the client's CPU when pinned.
  const tool = (name: string, args: string[]) => run(...onClientCpu(PIN, join(BIN, name), args));
  try {
    // The checkpointer's parent is the postmaster (also of a server given by BENCH_SERVER, which
    // stays pinned after the run).
    if (PIN) applyPin(PIN, parentPid(Number((await psql(c, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")).trim())));
    console.log(describePin(PIN, "this process, pg_receivewal and pg_basebackup"));
    // 1. WAL receive
    if (ONLY !== "backup") await psql(c, "DROP TABLE IF EXISTS w; CREATE TABLE w (b text)");
    for (const sync of ONLY === "backup" ? [] : SYNCS) {
      const tsOurs: number[] = [];
      const tsTheirs: number[] = [];
      let mb = 0;
      const label = sync ? "fsync on both sides" : "no fsync on either side (--no-sync)";
      for (let round = 0; round < ROUNDS; round++) {
        await psql(c, "SELECT pg_switch_wal()");
        await psql(c, `SELECT pg_create_physical_replication_slot('bench_ours', true), pg_create_physical_replication_slot('bench_theirs', true)`);
        const start = parseLsn((await psql(c, "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'bench_ours'")).trim());
        // Rows of 1888 bytes: under the TOAST threshold, so stored (and logged) uncompressed.
        for (let done = 0; done < WAL_MB; done += 64) {
          await psql(c, `INSERT INTO w SELECT repeat(md5(g::text), 59) FROM generate_series(1, ${64 * 480}) g`);
        }
        const end = parseLsn((await psql(c, "SELECT pg_switch_wal(); SELECT pg_current_wal_lsn()")).trim().split("\n").pop()!);
        mb = Number(end - start) / (1 << 20);
        const a = () => inFreshDir("wal-ours", (dir) => new WalReceiver({ connection: conn, connectOptions: { env: {} }, directory: dir, slot: "bench_ours", endpos: end, reconnect: false, sync }).run());
        const b = () => inFreshDir("wal-theirs", (dir) => tool("pg_receivewal", [...pgArgs, "-D", dir, "-S", "bench_theirs", "-E", formatLsn(end), "--no-loop", "-n", ...(sync ? [] : ["--no-sync"])]));
        // Alternate who goes first: the second one may find the first one's writeback still going.
        const [[tOurs], [tTheirs]] = round % 2 ? [await a(), await b()] : [...[await b(), await a()].reverse()];
        tsOurs.push(tOurs);
        tsTheirs.push(tTheirs);
        await psql(c, "SELECT pg_drop_replication_slot('bench_ours'), pg_drop_replication_slot('bench_theirs'); TRUNCATE w; CHECKPOINT");
        console.log(`WAL receive ${mb.toFixed(0)} MiB, ${label}, round ${round + 1}: ours ${(mb / tOurs).toFixed(0)} MB/s, pg_receivewal ${(mb / tTheirs).toFixed(0)} MB/s`);
      }
      const [bestOurs, bestTheirs] = [Math.min(...tsOurs), Math.min(...tsTheirs)];
      const [medOurs, medTheirs] = [median(tsOurs), median(tsTheirs)];
      console.log(`RESULT WAL receive (${runtime}, ${mb.toFixed(0)} MiB, ${label}, ${ROUNDS} rounds): best ours ${(mb / bestOurs).toFixed(0)} MB/s, pg_receivewal ${(mb / bestTheirs).toFixed(0)} MB/s, ours/pg_receivewal = ${(bestTheirs / bestOurs).toFixed(2)}x; median ours ${(mb / medOurs).toFixed(0)} MB/s, pg_receivewal ${(mb / medTheirs).toFixed(0)} MB/s = ${(medTheirs / medOurs).toFixed(2)}x${bySlot(tsOurs, tsTheirs, mb, mb)}`);
    }
    if (ONLY !== "backup") await psql(c, "DROP TABLE w; CHECKPOINT");

    // 2. Base backup
    if (ONLY !== "wal") {
      await preparePgbench(c, pgArgs);
      // One unmeasured backup first: it brings the cluster's files back into the page cache
      // (other jobs may have evicted them) and has the VM back the memory the copies will use.
      // Without it the first round's writer (pg_basebackup) ran at a quarter of its speed, at
      // 3-4x its CPU per MiB, even after the files were read once into /dev/null.
      await inFreshDir("bb-warmup", (dir) => tool("pg_basebackup", [...pgArgs, "-D", join(dir, "d"), "-Fp", "-X", "none", "-c", "fast", "--no-sync"]));
    }
    for (const sync of ONLY === "wal" ? [] : SYNCS) {
      let size = 0;
      let sizeB = 0;
      const tsOurs: number[] = [];
      const tsTheirs: number[] = [];
      const cpuOurs: number[] = [];
      const cpuTheirs: number[] = [];
      const label = sync ? "fsync on both sides" : "no fsync on either side (--no-sync)";
      for (let round = 0; round < ROUNDS; round++) {
        const ours = () => inFreshDir("bb-ours", (dir) => baseBackup({ connection: conn, connectOptions: { env: {} }, directory: join(dir, "d"), checkpoint: "fast", sync }));
        const theirs = () => inFreshDir("bb-theirs", (dir) => tool("pg_basebackup", [...pgArgs, "-D", join(dir, "d"), "-Fp", "-X", "stream", "-c", "fast", ...(sync ? [] : ["--no-sync"])]));
        const [[tA, mibA, cpuA], [tB, mibB, , cpuB]] = round % 2 ? [await ours(), await theirs()] : [...[await theirs(), await ours()].reverse()];
        size = mibA;
        sizeB = mibB;
        tsOurs.push(tA);
        tsTheirs.push(tB);
        cpuOurs.push((cpuA * 1000) / mibA);
        cpuTheirs.push((cpuB * 1000) / mibB);
        // CPU: ours is this process (the receiver included), theirs pg_basebackup and its WAL streaming child.
        console.log(`base backup ${size.toFixed(0)} MiB (theirs ${sizeB.toFixed(0)} MiB), ${label}, round ${round + 1}: ours ${(size / tA).toFixed(0)} MB/s, pg_basebackup ${(sizeB / tB).toFixed(0)} MB/s; CPU ours ${cpuOurs.at(-1)!.toFixed(2)} ms/MiB, pg_basebackup ${cpuTheirs.at(-1)!.toFixed(2)} ms/MiB`);
      }
      const rate = (mib: number, ts: number[], pick: (xs: number[]) => number) => mib / pick(ts);
      const best = (xs: number[]) => Math.min(...xs);
      const [bo, bt, mo, mt] = [rate(size, tsOurs, best), rate(sizeB, tsTheirs, best), rate(size, tsOurs, median), rate(sizeB, tsTheirs, median)];
      console.log(`RESULT base backup (${runtime}, ${size.toFixed(0)} MiB, ${label}, ${ROUNDS} rounds): best ours ${bo.toFixed(0)} MB/s, pg_basebackup ${bt.toFixed(0)} MB/s, ours/pg_basebackup = ${(bo / bt).toFixed(2)}x; median ours ${mo.toFixed(0)} MB/s, pg_basebackup ${mt.toFixed(0)} MB/s = ${(mo / mt).toFixed(2)}x${bySlot(tsOurs, tsTheirs, size, sizeB)}; CPU median ours ${median(cpuOurs).toFixed(2)} ms/MiB, pg_basebackup ${median(cpuTheirs).toFixed(2)} ms/MiB`);
    }
  } finally {
    await c.stop();
  }
}
