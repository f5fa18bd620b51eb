/**
 * Dump benchmark, ratios against peers measured in the same run, on a PostgreSQL 15 test cluster
 * (the fixture's, Debian binaries) over its unix socket:
 *
 * - a database of a few wide and many narrow tables (size printed; `DUMP_BENCH_MB`, default 1000),
 *   built once and cached as a data directory (`DUMP_BENCH_CACHE`, default
 *   `$TMPDIR/pg-rdma-dumpbench-cache-<MB>mb`; `DUMP_BENCH_PREPARE=1` only builds it); each run
 *   starts its own server on a fresh copy;
 * - ours `dump()` plain, jobs 1, against `pg_dump --data-only -f` (Debian 15);
 * - ours directory format with 4 jobs against `pg_dump -Fd -j 4 -Z 0` (no compression on
 *   either side; pg_dump -Fd would gzip by default; both fsync every file and the directory, as
 *   each does by default): the jobs as connections of this process (the default), and in worker
 *   processes (`processes: true`); ours with its default data files (binary COPY for the wide
 *   tables, text for the narrow ones), and with text in every file as pg_dump's (`jobstext`);
 * - one wide table: ours (`dump -t`, plain, to a file, and to `/dev/null` as the peer writes)
 *   against `psql -c "COPY t TO STDOUT" > /dev/null`, the ceiling of a single COPY.
 *
 * `DUMP_BENCH_ROUNDS` (default 2) rounds per case, ours first in even rounds and the peer first
 * in odd ones (on this VM whichever writes first in a round runs up to 1.5-2× faster: use an even
 * number); best and median are printed, and the median and range of each round's ratio (ours ÷
 * the peer's run beside it: the host's speed drifts over minutes, both sides alike), with the CPU
 * seconds of our process and of the peer's processes, and the server's: the CPU of the backends
 * that served each run (the postmaster's reaped children), since a one-job dump is bound by its
 * backend (a trace of the scheduler shows the backend on its CPU for all but 0.03-0.06 s of a
 * 6.7 s dump, with ours or with pg_dump: it never waits for either client). Before them,
 * `DUMP_BENCH_WARMUP` (default 1) untimed rounds per case run both sides once: the first dumps
 * after the database is copied in pay up to twice the system time.
 * `DUMP_BENCH_CASES` picks cases (default `plain,jobs,jobstext,procs,wide,widenull`; `narrow` and `wides`
 * split the plain case into the 200 narrow tables and the 4 wide ones).
 *
 * The one-connection cases also print each side's COPY time as the server saw it: with
 * `log_min_duration_statement = 0`, the server log gives every table's COPY duration (from the
 * statement's start until its last row is sent; the backend's work and its waits on the
 * socket), whoever reads it. Summed over the tables, each table's best round: a dump takes
 * minutes of a shared VM's time, on which one table's COPY now and then runs 1.5× slower for
 * reasons of the host's (seen with every client alike), and a whole-dump best or median keeps
 * such a slowdown where a per-table best drops it.
 *
 * Pinning (bench/_pin.ts, `BENCH_PIN`, default `0:1`) where it is fair to both sides: the cases
 * with one connection (plain, one table) run this process and the peer's tool on one CPU, the
 * server on the other; unpinned, where the kernel placed the client beside its backend decided
 * a run more than the code (±10% between runs). The 4-job cases run unpinned: one CPU for four
 * backends, or for pg_dump's four worker processes, would not be the comparison asked for.
  *
 * Run: `npx deno run -A bench/dump.ts`, `npx bun bench/dump.ts`, `node dist/bench/dump.js`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump } from "../dump/mod.ts";
import { applyPin, describePin, onClientCpu, parentPid, pinFromEnv, releasePin, serverCpu as serverCpuOf } from "./_pin.ts";
import { type ClusterInfo, type OwnedCluster, type OwnedServer, psql, psqlPath, serverBaseDir, startCluster, startServer, unavailable } from "../tests/_fixture/cluster.ts";

const why = unavailable(15);
if (why) {
  console.error(`bench/dump: ${why}`);
  process.exit(1);
}
const MB = Number(process.env.DUMP_BENCH_MB ?? 1000);
const bin = "/usr/lib/postgresql/15/bin";
const work = mkdtempSync(join(tmpdir(), "pg-rdma-dumpbench-"));
const opts = { env: {}, homeDir: work };

// The database is built once per size and kept as a copy of a stopped cluster's data directory
// (building 2 GiB takes minutes; copying it, seconds): each run starts a server of its own on a
// fresh copy, so the dumps never touch the template.
const cacheDir = process.env.DUMP_BENCH_CACHE ?? join(tmpdir(), `pg-rdma-dumpbench-cache-${MB}mb`);
const DB = "dumpbench";
let server: OwnedCluster | OwnedServer;
if (existsSync(join(cacheDir, "ready"))) {
  const base = serverBaseDir(15);
  console.log(`bench/dump: copying the cached ${MB} MB database from ${cacheDir}...`);
  cp(["-a", join(cacheDir, "data"), join(base, "data")]);
  // A quiet disk during the timed runs: write the copy back now.
  cp([], "sync");
  // The template's SSL files belonged to the cluster that made it.
  server = await startServer(15, base, { ssl: "off" });
} else {
  server = await startCluster(15);
  await psql(server, `CREATE DATABASE ${DB}`);
  await build(server);
  await psql(server, "CHECKPOINT");
  // Nothing writes after the checkpoint: a file copy of the running cluster starts as if shut down.
  rmSync(cacheDir, { recursive: true, force: true });
  mkdirSync(cacheDir, { recursive: true });
  cp(["-a", server.dataDir, join(cacheDir, "data")]);
  rmSync(join(cacheDir, "data", "postmaster.pid"), { force: true });
  writeFileSync(join(cacheDir, "ready"), `${MB} MB\n`);
  console.log(`bench/dump: cached the database in ${cacheDir}`);
}
if (process.env.DUMP_BENCH_PREPARE) {
  await server.stop();
  process.exit(0);
}
const c = server;
const db = DB;
const conninfo = `host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`;
const PIN = pinFromEnv();
// Every statement's duration in the server log (see the module doc and copyTimes()).
for (const set of ["log_min_duration_statement = 0", "log_line_prefix = '%m [%p] '"]) await psql(c, `ALTER SYSTEM SET ${set}`);
await psql(c, "SELECT pg_reload_conf()");
const serverLog = join(c.baseDir, "server.log");
const postmaster = parentPid(Number((await psql(c, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")).trim()));
/** Pins the two sides (the one-connection cases), or lets every process run on any CPU again. */
function place(pinned: boolean): void {
  if (!PIN) return;
  if (pinned) applyPin(PIN, postmaster);
  else releasePin(postmaster);
}

function cp(args: string[], cmd = "cp"): void {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

async function build(c: Pick<ClusterInfo, "socketDir" | "port">): Promise<void> {
  // 4 wide tables take 80% of the size, 200 narrow ones the rest.
  const WIDE = 4;
  const NARROW = 200;
  const wideRows = Math.round((MB * 0.8 * 1e6) / WIDE / 420);
  const narrowRows = Math.round((MB * 0.2 * 1e6) / NARROW / 40);
  let setup = "";
  for (let i = 0; i < WIDE; i++) {
    setup += `CREATE TABLE wide_${i} (id bigint, a text, b text, c numeric, d timestamptz, e jsonb);
    INSERT INTO wide_${i} SELECT g, repeat(md5(g::text), 4), repeat(md5((g + 1)::text), 4), g * 1.5, '2024-01-01'::timestamptz + g * interval '1 s',
      jsonb_build_object('k', g, 'v', md5(g::text)) FROM generate_series(1, ${wideRows}) g;\n`;
  }
  setup += `DO $$ BEGIN FOR i IN 1..${NARROW} LOOP
  EXECUTE format('CREATE TABLE narrow_%s (id int, v int, s text)', i);
  EXECUTE format('INSERT INTO narrow_%s SELECT g, g %% 97, left(md5(g::text), 20) FROM generate_series(1, ${narrowRows}) g', i);
END LOOP; END $$;`;
  console.log(`bench/dump: creating ~${MB} MB (${WIDE} wide tables × ${wideRows} rows, ${NARROW} narrow × ${narrowRows})...`);
  await psql(c, setup, { database: DB });
  await psql(c, "VACUUM ANALYZE", { database: DB });
}
const size = Number(await psql(c, "SELECT pg_database_size(current_database())", { database: db }));
console.log(`database size ${(size / 1e6).toFixed(0)} MB; runtime ${typeof Deno !== "undefined" ? "deno" : typeof Bun !== "undefined" ? "bun" : `node ${process.version}`}`);

declare const Deno: unknown;
declare const Bun: unknown;

/** Wall and CPU time of one run: ours (this process) or the peer (its processes). */
interface Run {
  ms: number;
  cpu: number;
  /** Of which in the kernel (system time). */
  sys: number;
  /** CPU seconds of the server's backends that served the run (see {@link serverCpu}). */
  server: number;
  /** Each table's COPY duration in ms, from the server log (see {@link copyTimes}). */
  copies: Map<string, number>;
}

/** The server log's size now: where the next run's lines start. */
const logMark = () => statSync(serverLog).size;

/**
 * The COPY ... TO STDOUT durations the server logged since `from`, by table (schema and quotes
 * dropped: `COPY "public"."wide_0" (...)`, pg_dump's `COPY public.wide_0 (...)` and psql's
 * `COPY wide_0` name the same table).
 */
function copyTimes(from: number): Map<string, number> {
  const fd = openSync(serverLog, "r");
  let text: string;
  try {
    const b = Buffer.alloc(statSync(serverLog).size - from);
    readSync(fd, b, 0, b.length, from);
    text = b.toString("utf8");
  } finally {
    closeSync(fd);
  }
  const out = new Map<string, number>();
  for (const m of text.matchAll(/duration: ([\d.]+) ms {2}statement: COPY (\S+)/g)) {
    out.set(m[2].replaceAll('"', "").replace(/^public\./, ""), Number(m[1]));
  }
  return out;
}

/** Per table, the best of these runs' COPY durations, summed (ms). */
function bestCopies(runs: Run[]): number {
  const best = new Map<string, number>();
  for (const r of runs) for (const [t, ms] of r.copies) best.set(t, Math.min(best.get(t) ?? Infinity, ms));
  let sum = 0;
  for (const ms of best.values()) sum += ms;
  return sum;
}

// The server's CPU so far (bench/_pin.ts): a one-job dump is bound by its backend, so a gap in
// wall time with equal server CPU is time the backend waited (on a full socket, or for the next
// query).
const serverCpu = () => serverCpuOf(postmaster);

/** Runs a peer command through sh, whose `times` reports the CPU its children used. */
async function timePeer(cmd: string, pinned: boolean): Promise<Run> {
  const s0 = await serverCpu();
  const mark = logMark();
  const t = performance.now();
  const [run, args] = onClientCpu(pinned ? PIN : undefined, "sh", ["-c", `${cmd} && times`]);
  const r = spawnSync(run, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  // `times`: the shell's user and system time, then its children's ("0m1.234s 0m0.567s").
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  const secs = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { ms, cpu: secs.reduce((a, b) => a + b, 0), sys: secs[1] ?? 0, server: (await serverCpu()) - s0, copies: copyTimes(mark) };
}

async function timeOurs(fn: () => Promise<unknown>): Promise<Run> {
  const s0 = await serverCpu();
  const mark = logMark();
  const t = performance.now();
  const u = process.cpuUsage();
  await fn();
  const d = process.cpuUsage(u);
  const ms = performance.now() - t;
  return { ms, cpu: (d.user + d.system) / 1e6, sys: d.system / 1e6, server: (await serverCpu()) - s0, copies: copyTimes(mark) };
}

const ROUNDS = Number(process.env.DUMP_BENCH_ROUNDS ?? 2);
const WARMUP = Number(process.env.DUMP_BENCH_WARMUP ?? 1);
const CASES = new Set((process.env.DUMP_BENCH_CASES ?? "plain,jobs,jobstext,procs,wide,widenull").split(","));
const pg = `-h ${c.socketDir} -p ${c.port} -U postgres`;
const out = (name: string) => join(work, name);
// Old outputs are removed before each run: replacing a large file costs its unlink in the kernel.
const fresh = (name: string) => rmSync(out(name), { recursive: true, force: true });

interface Case {
  name: string;
  /** One connection on each side: pinned (see the module doc). */
  pinned: boolean;
  ours: () => Promise<unknown>;
  peer: string;
  clean: () => void;
}
const cases: Case[] = [];
if (CASES.has("plain")) {
  cases.push({
    name: "plain, 1 job (pg_dump --data-only -f)",
    pinned: true,
    ours: () => dump(conninfo, { ...opts, file: out("ours.sql"), dataOnly: true }),
    peer: `${bin}/pg_dump ${pg} --data-only -f ${out("pgdump.sql")} ${db}`,
    clean: () => (fresh("ours.sql"), fresh("pgdump.sql")),
  });
}
// The plain case split in two (not in the default set): the 200 narrow tables (short rows: the
// per-row and per-table costs) and the 4 wide ones (bytes), each against pg_dump with -t.
for (const [key, pattern] of [["narrow", "narrow_*"], ["wides", "wide_*"]] as const) {
  if (!CASES.has(key)) continue;
  cases.push({
    name: `plain, 1 job, tables ${pattern} (pg_dump --data-only -t '${pattern}' -f)`,
    pinned: true,
    ours: () => dump(conninfo, { ...opts, file: out("ours.sql"), dataOnly: true, tables: [pattern] }),
    peer: `${bin}/pg_dump ${pg} --data-only -t '${pattern}' -f ${out("pgdump.sql")} ${db}`,
    clean: () => (fresh("ours.sql"), fresh("pgdump.sql")),
  });
}
const peer4 = `${bin}/pg_dump ${pg} --data-only -Fd -j 4 -Z 0 -f ${out("pgdump.dir")} ${db}`;
// Ours by default (dataFormat "auto") writes the wide tables' files in binary COPY and the narrow
// ones' in text; `jobstext` gives ours pg_dump's text COPY in every file, like for like.
for (const [key, processes, dataFormat] of [["jobs", false, "auto"], ["jobstext", false, "text"], ["procs", true, "auto"]] as const) {
  if (!CASES.has(key)) continue;
  cases.push({
    name: `directory, 4 jobs${processes ? " in worker processes" : ""}, data files ${dataFormat === "auto" ? "binary for wide rows (default)" : "text"} (pg_dump -Fd -j 4 -Z 0)`,
    pinned: false,
    ours: () => dump(conninfo, { ...opts, format: "directory", file: out("ours.dir"), jobs: 4, dataOnly: true, processes, dataFormat }),
    peer: peer4,
    clean: () => (fresh("ours.dir"), fresh("pgdump.dir")),
  });
}
if (CASES.has("wide")) {
  cases.push({
    name: "one wide table (psql COPY > /dev/null)",
    pinned: true,
    ours: () => dump(conninfo, { ...opts, file: out("one.sql"), dataOnly: true, tables: ["wide_0"] }),
    peer: `${psqlPath()} -X ${pg} -d ${db} -c 'COPY wide_0 TO STDOUT' > /dev/null`,
    clean: () => fresh("one.sql"),
  });
}
if (CASES.has("widenull")) {
  // Like for like with the ceiling: both outputs go to /dev/null (written in place, no .partial).
  cases.push({
    name: "one wide table to /dev/null (psql COPY > /dev/null)",
    pinned: true,
    ours: () => dump(conninfo, { ...opts, file: "/dev/null", dataOnly: true, tables: ["wide_0"] }),
    peer: `${psqlPath()} -X ${pg} -d ${db} -c 'COPY wide_0 TO STDOUT' > /dev/null`,
    clean: () => {},
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f2 = (ms: number) => (ms / 1000).toFixed(2);
const cpu = (runs: Run[]) => `${median(runs.map((r) => r.cpu)).toFixed(2)} (${median(runs.map((r) => r.sys)).toFixed(2)})`;
const srv = (runs: Run[]) => median(runs.map((r) => r.server)).toFixed(2);
/**
 * Ours ÷ the peer's run of the same round, per round: median and range. This host's speed
 * drifts by 10-30% over minutes (both sides alike), so two runs side by side compare better
 * than medians taken over the whole case.
 */
const paired = (ours: Run[], peer: Run[], f: (r: Run) => number) => {
  const rs = ours.map((r, i) => f(r) / f(peer[i]));
  return `${median(rs).toFixed(2)} (${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)})`;
};
/** The COPY column: one-connection cases only (4 jobs' COPYs overlap, and their sum is no time). */
const copies = (k: Case, ours: Run[], peer: Run[]) => {
  if (!k.pinned) return "–";
  const [o, p] = [bestCopies(ours), bestCopies(peer)];
  const [no, np] = [ours[0].copies.size, peer[0].copies.size];
  if (no !== np) return `tables differ: ${no} / ${np}`;
  return `${f2(o)} / ${f2(p)} (${(o / p).toFixed(2)})`;
};
console.log(`\n${ROUNDS} rounds per case, ours first in even rounds, the peer first in odd ones, after ${WARMUP} untimed; one-connection cases ${describePin(PIN, "this process and the peer's tool")}, 4-job cases not pinned\n`);
console.log(
  "| case (peer) | ours s, best / median | peer s, best / median | ratio of bests | ratio of medians | ratio per round, median (range) | CPU s ours / peer, medians (of which system) | server CPU s ours / peer, medians | server CPU ratio per round, median (range) | COPY s (server log), per-table bests summed, ours / peer (ratio) |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const k of cases) {
  place(k.pinned);
  // Untimed, both sides once: the first dumps after the database was copied in paid up to
  // twice the system time of later ones (5-6 s against 2.3 s for ours, 3.6-4.2 s against
  // 3.0-3.5 s for pg_dump), whoever ran them; round 0 would charge that to ours alone.
  for (let i = 0; i < WARMUP; i++) {
    k.clean();
    await k.ours();
    k.clean();
    await timePeer(k.peer, k.pinned);
  }
  const ours: Run[] = [];
  const peer: Run[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    k.clean();
    if (i % 2) peer.push(await timePeer(k.peer, k.pinned));
    else ours.push(await timeOurs(k.ours));
    k.clean();
    if (i % 2) ours.push(await timeOurs(k.ours));
    else peer.push(await timePeer(k.peer, k.pinned));
  }
  k.clean();
  // Every round, for the spread behind best and median (stderr: the table stays one block).
  const copySum = (r: Run) => [...r.copies.values()].reduce((a, b) => a + b, 0);
  const each = (runs: Run[]) => runs.map((r) => `${f2(r.ms)} (${(r.cpu - r.sys).toFixed(2)}+${r.sys.toFixed(2)}, server ${r.server.toFixed(2)}, COPY ${f2(copySum(r))})`).join(", ");
  console.error(`${k.name}: s (CPU user+system s, server CPU s, COPY s in the server log) per round, ours ${each(ours)}; peer ${each(peer)}`);
  const o = ours.map((r) => r.ms);
  const p = peer.map((r) => r.ms);
  console.log(`| ${k.name} | ${f2(Math.min(...o))} / ${f2(median(o))} | ${f2(Math.min(...p))} / ${f2(median(p))} | ${(Math.min(...o) / Math.min(...p)).toFixed(2)} | ${
    (median(o) / median(p)).toFixed(2)
  } | ${paired(ours, peer, (r) => r.ms)} | ${cpu(ours)} / ${cpu(peer)} | ${srv(ours)} / ${srv(peer)} | ${paired(ours, peer, (r) => r.server)} | ${copies(k, ours, peer)} |`);
}
rmSync(work, { recursive: true, force: true });
await server.stop();
process.exit(0);
