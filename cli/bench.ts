/**
 * `pg-rdma bench`: pgbench for a connection path. It runs pgbench-style transactions from `-c`
 * clients (connections in this one process) for `-T` seconds or `-t` transactions each, over the
 * transport `--with-rsocket` picks, and prints what pgbench prints (tps, average latency) plus
 * p50/p99 latency, the transport and why it was chosen, and for `--copy` the COPY throughput.
 *
 * - `-i` creates `pg_rdma_bench` (pgbench_accounts' columns: aid, bid, abalance, filler), with
 *   100 000 rows per `-s` scale unit, then exits.
 * - Without `-i`, the workload runs on `pg_rdma_bench`, or on an existing pgbench schema
 *   (`pgbench_accounts`, made by `pgbench -i`) when ours is absent.
 * - Workloads: `-S` is pgbench's select-only (`SELECT abalance ... WHERE aid = :aid`); the
 *   default is pgbench's tpcb-like on a pgbench schema, and on `pg_rdma_bench` its account part
 *   (BEGIN; UPDATE; SELECT; END), there being no tellers or branches; `--copy SIZE` is one
 *   `COPY (SELECT ...) TO STDOUT` of SIZE bytes per transaction, made by the server from
 *   constants so the server's CPU goes to the wire, not to the rows.
 * - `-M simple|extended|prepared` as pgbench: simple sends each statement as one Query message
 *   with the values inlined; extended uses Parse/Bind/Execute; prepared keeps named statements.
 * - `--json` prints one JSON object (stable keys) instead of the text report.
 *
 * `-j N` is pgbench's threads: with `-j 1` (default) the clients share this process's one
 * JavaScript thread, which is what a program using the library does; on a loaded machine that
 * thread, not the wire, can be the limit (the report says so when the process was busy more than
 * 90% of the run). With `-j N` the `-c` clients are dealt to N worker threads of the same runtime
 * (`node:worker_threads`, in Deno, Bun and Node alike) as pgbench deals them (`-j` above `-c` is
 * lowered to `-c`; 5 clients on 2 threads: 3 and 2), each connects its clients, all start
 * together, and the report adds up every thread's transactions and latencies, as pgbench does.
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import { type Client, connect, PostgresError } from "../pg/mod.ts";
import { EXIT, UsageError } from "./_args.ts";
import type { CommandContext } from "./_commands.ts";
import { clientOptionsFor, resolveFor } from "./_connect.ts";

const usage = (m: string) => new UsageError(m, { command: "bench" });

/** The table `-i` creates (pgbench_accounts' columns, so the same statements run on either). */
export const BENCH_TABLE = "pg_rdma_bench";
/** Rows per scale unit, as pgbench's accounts. */
const ROWS_PER_SCALE = 100_000;

/** What the command line asks for, checked. */
export interface BenchOptions {
  initialize: boolean;
  scale: number;
  clients: number;
  /** Threads (`-j`), at most `clients`. */
  jobs: number;
  /** Seconds, or undefined when counting transactions. */
  time: number | undefined;
  /** Transactions per client (when no `-T`). */
  transactions: number;
  workload: "select-only" | "tpcb-like" | "copy";
  /** Bytes per COPY for `--copy`. */
  copySize: number;
  protocol: "simple" | "extended" | "prepared";
  /** Seconds between progress lines, 0 for none. */
  progress: number;
  json: boolean;
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/**
 * A size as PostgreSQL's memory settings write it: a number and an optional unit, `kB`, `MB`,
 * `GB` (powers of 1024, as in postgresql.conf; `KiB`/`MiB`/`GiB` and `k`/`M`/`G` too). Throws a
 * RangeError naming the text when it is not one.
 *
 * @example
 * ```ts
 * parseSize("8MB"); // 8388608
 * ```
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new RangeError(`invalid size "${text}" (expected e.g. 8MB, 512kB, 1GB)`);
  const n = Math.round(Number(m[1]) * unit);
  if (!(n >= 1) || !Number.isSafeInteger(n)) throw new RangeError(`invalid size "${text}": must be at least 1 byte`);
  return n;
}

function count(values: Readonly<Record<string, unknown>>, name: string, fallback: number, min: number, integer = true): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const text = String(raw).trim();
  const n = Number(text);
  if (text === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
    throw usage(`invalid value "${String(raw)}" for option --${name} (expected ${integer ? "an integer" : "a number"} >= ${min})`);
  }
  return n;
}

/**
 * Checks `pg-rdma bench`'s options and gives them typed; throws {@linkcode UsageError} (exit
 * status 2) naming what is wrong.
 *
 * @example
 * ```ts
 * parseBenchOptions({ "select-only": true, time: "2", client: "2" }).workload; // "select-only"
 * ```
 */
export function parseBenchOptions(values: Readonly<Record<string, unknown>>): BenchOptions {
  const v = values;
  if (v.time !== undefined && v.transactions !== undefined) {
    throw usage("specify either a number of transactions (-t) or a duration (-T), not both");
  }
  if (v["select-only"] && v.copy !== undefined) throw usage("specify either -S or --copy, not both");
  const initialize = v.initialize === true;
  if (initialize) {
    for (const o of ["select-only", "copy", "time", "transactions", "client", "protocol", "progress"]) {
      if (v[o] !== undefined) throw usage(`--${o} cannot be used with -i (initialization only)`);
    }
  } else if (v.scale !== undefined) {
    throw usage("the scale (-s) is set at initialization (-i); the run uses the table's size");
  }
  let copySize = 0;
  if (v.copy !== undefined) {
    try {
      copySize = parseSize(String(v.copy));
    } catch (e) {
      throw usage(`--copy: ${(e as Error).message}`);
    }
  }
  if (initialize && v.jobs !== undefined) throw usage("--jobs cannot be used with -i (initialization only)");
  const protocol = (v.protocol ?? "simple") as BenchOptions["protocol"];
  if (!["simple", "extended", "prepared"].includes(protocol)) {
    throw usage(`invalid query mode "${String(v.protocol)}" (expected simple, extended or prepared)`);
  }
  const clients = count(v, "client", 1, 1);
  return {
    initialize,
    scale: count(v, "scale", 1, 1),
    clients,
    // pgbench: "Don't need more threads than there are clients."
    jobs: Math.min(count(v, "jobs", 1, 1), clients),
    time: v.time === undefined ? undefined : count(v, "time", 0, 0.001, false),
    transactions: count(v, "transactions", 10, 1),
    workload: v.copy !== undefined ? "copy" : v["select-only"] ? "select-only" : "tpcb-like",
    copySize,
    protocol,
    progress: count(v, "progress", 0, 0, false),
    json: v.json === true,
  };
}

/** p-th percentile (0-100) of sorted values, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Latencies (ms) of one client, in a growing Float64Array: no boxing, one copy per doubling. */
class Samples {
  values = new Float64Array(1024);
  length = 0;
  push(ms: number): void {
    if (this.length === this.values.length) {
      const next = new Float64Array(this.values.length * 2);
      next.set(this.values);
      this.values = next;
    }
    this.values[this.length++] = ms;
  }
}

/** Where the workload runs: our table or a pgbench schema, and its number of accounts. */
export interface Target {
  accounts: string;
  pgbench: boolean;
  rows: number;
}

/** One transaction of the chosen workload on one client; resolves to the bytes it received (COPY). */
type Transaction = (client: Client) => Promise<number>;

/** What the clients of one thread did: plain data, so a worker thread can post it as is. */
export interface ClientsOutcome {
  /** Latency of every transaction (ms), in no particular order. */
  samples: Float64Array;
  bytes: number;
  failed: number;
  /** The first failure, as text (and SQLSTATE) so it crosses threads. */
  error?: { message: string; code?: string };
}

/**
 * Runs the workload on `clients` until `-t` transactions each, the deadline, or `signal`;
 * counts each finished transaction in `counter[0]` (shared by every thread, for progress lines).
 */
export async function runClients(
  clients: Client[],
  o: BenchOptions,
  target: Target | undefined,
  signal: AbortSignal,
  counter: Int32Array,
): Promise<ClientsOutcome> {
  const tx = transactionFor(o, target);
  const deadline = o.time === undefined ? Infinity : performance.now() + o.time * 1000;
  const samples = clients.map(() => new Samples());
  let bytes = 0;
  let failed = 0;
  let error: ClientsOutcome["error"];
  const loop = async (c: Client, s: Samples) => {
    for (let i = 0; o.time !== undefined || i < o.transactions; i++) {
      if (signal.aborted || performance.now() >= deadline) return;
      const t0 = performance.now();
      let n: number;
      try {
        n = await tx(c);
      } catch (e) {
        // As pgbench: a client whose transaction fails stops ("client N aborted").
        failed++;
        error ??= { message: (e as Error).message, ...(e instanceof PostgresError ? { code: e.code } : {}) };
        return;
      }
      s.push(performance.now() - t0);
      bytes += n; // not `bytes += await ...`, which would add to a stale value
      Atomics.add(counter, 0, 1);
    }
  };
  await Promise.all(clients.map((c, i) => loop(c, samples[i])));
  let total = 0;
  for (const s of samples) total += s.length;
  const all = new Float64Array(total);
  let at = 0;
  for (const s of samples) {
    all.set(s.values.subarray(0, s.length), at);
    at += s.length;
  }
  return { samples: all, bytes, failed, ...(error ? { error } : {}) };
}

const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

function transactionFor(o: BenchOptions, t: Target | undefined): Transaction {
  const run = (sql: string, params: unknown[]) =>
    o.protocol === "simple"
      ? (c: Client) => c.simpleQuery(params.reduce<string>((s, p, i) => s.replaceAll(`$${i + 1}`, String(p)), sql))
      : (c: Client) => c.query(sql, params, { prepare: o.protocol === "prepared" });
  if (o.workload === "copy") {
    // Rows of 1023 'x' and a newline; the string is made once (OFFSET 0 keeps it a subquery).
    const rows = Math.max(1, Math.ceil(o.copySize / 1024));
    const sql = `COPY (SELECT s.r FROM (SELECT repeat('x', 1023) AS r OFFSET 0) s CROSS JOIN generate_series(1, ${rows})) TO STDOUT`;
    return async (c) => {
      let n = 0;
      for await (const chunk of c.copyTo(sql)) n += chunk.byteLength;
      return n;
    };
  }
  const { accounts, rows } = t!;
  if (o.workload === "select-only") {
    const sql = `SELECT abalance FROM ${accounts} WHERE aid = $1`;
    return async (c) => {
      await run(sql, [randInt(1, rows)])(c);
      return 0;
    };
  }
  if (t!.pgbench) {
    // pgbench's built-in tpcb-like script.
    const scale = Math.max(1, Math.round(rows / ROWS_PER_SCALE));
    return async (c) => {
      const aid = randInt(1, rows);
      const bid = randInt(1, scale);
      const tid = randInt(1, 10 * scale);
      const delta = randInt(-5000, 5000);
      await c.simpleQuery("BEGIN");
      await run("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", [delta, aid])(c);
      await run("SELECT abalance FROM pgbench_accounts WHERE aid = $1", [aid])(c);
      await run("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", [delta, tid])(c);
      await run("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2", [delta, bid])(c);
      await run(
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
        [tid, bid, aid, delta],
      )(c);
      await c.simpleQuery("END");
      return 0;
    };
  }
  return async (c) => {
    const aid = randInt(1, rows);
    const delta = randInt(-5000, 5000);
    await c.simpleQuery("BEGIN");
    await run(`UPDATE ${accounts} SET abalance = abalance + $1 WHERE aid = $2`, [delta, aid])(c);
    await run(`SELECT abalance FROM ${accounts} WHERE aid = $1`, [aid])(c);
    await c.simpleQuery("END");
    return 0;
  };
}

/** The result of a run, as `--json` prints it. */
export interface BenchReport {
  transport: { transport: string; provider?: string; reason: string };
  workload: BenchOptions["workload"];
  table: string | null;
  protocol: BenchOptions["protocol"];
  clients: number;
  /** Threads (`-j`). */
  jobs: number;
  duration_s: number;
  transactions: number;
  failed: number;
  tps: number;
  latency_ms: { avg: number; p50: number; p99: number; max: number };
  connection_ms: number;
  bytes?: number;
  mb_per_s?: number;
}

async function findTarget(c: Client): Promise<Target | undefined> {
  const [r] = await c.simpleQuery(
    `SELECT to_regclass('${BENCH_TABLE}') IS NOT NULL AS ours, to_regclass('pgbench_accounts') IS NOT NULL AS pgbench`,
  );
  const row = r.rows[0] as { ours: boolean; pgbench: boolean };
  const accounts = row.ours ? BENCH_TABLE : row.pgbench ? "pgbench_accounts" : undefined;
  if (!accounts) return undefined;
  // max(aid) reads the primary key's last entry: instant at any scale, unlike count(*).
  const [m] = await c.simpleQuery(`SELECT coalesce(max(aid), 0)::int8 AS n FROM ${accounts}`);
  return { accounts, pgbench: accounts !== BENCH_TABLE, rows: Number((m.rows[0] as { n: string | number }).n) };
}

async function initialize(c: Client, scale: number, ctx: CommandContext): Promise<void> {
  const rows = scale * ROWS_PER_SCALE;
  const t0 = performance.now();
  await c.simpleQuery(
    `DROP TABLE IF EXISTS ${BENCH_TABLE};
     CREATE TABLE ${BENCH_TABLE} (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84))
       WITH (fillfactor = 100);
     INSERT INTO ${BENCH_TABLE} (aid, bid, abalance, filler)
       SELECT g, (g - 1) / ${ROWS_PER_SCALE} + 1, 0, '' FROM generate_series(1, ${rows}) g`,
  );
  await c.simpleQuery(`VACUUM ANALYZE ${BENCH_TABLE}`);
  ctx.info(`created ${BENCH_TABLE} with ${rows} rows (scale ${scale}) in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
}

const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : "n/a");

/** The text report, in pgbench's words where pgbench has them. */
export function formatReport(r: BenchReport, o: Pick<BenchOptions, "time" | "transactions">): string {
  const type = r.workload === "copy"
    ? `COPY TO STDOUT of ${r.bytes !== undefined && r.transactions ? Math.round(r.bytes / r.transactions) : "?"} bytes`
    : `<builtin: ${r.workload === "select-only" ? "select only" : "TPC-B (sort of)"}>`;
  const lines = [
    `transport: ${r.transport.transport}${r.transport.provider ? ` (${r.transport.provider} provider)` : ""}: ${r.transport.reason}`,
    `transaction type: ${type}`,
    ...(r.table ? [`table: ${r.table}`] : []),
    `query mode: ${r.protocol}`,
    `number of clients: ${r.clients}`,
    `number of threads: ${r.jobs}`,
    o.time !== undefined ? `duration: ${o.time} s` : `number of transactions per client: ${o.transactions}`,
    `number of transactions actually processed: ${r.transactions}` +
    (o.time === undefined ? `/${o.transactions * r.clients}` : ""),
    `number of failed transactions: ${r.failed} (${f3((100 * r.failed) / Math.max(1, r.transactions + r.failed))}%)`,
    `latency average = ${f3(r.latency_ms.avg)} ms`,
    `latency p50 = ${f3(r.latency_ms.p50)} ms`,
    `latency p99 = ${f3(r.latency_ms.p99)} ms`,
    `initial connection time = ${f3(r.connection_ms)} ms`,
    `tps = ${r.tps.toFixed(6)} (without initial connection time)`,
  ];
  if (r.bytes !== undefined) {
    lines.push(`bytes received = ${r.bytes} (${f3(r.bytes / 2 ** 20)} MB)`, `throughput = ${f3(r.mb_per_s ?? NaN)} MB/s`);
  }
  return lines.join("\n") + "\n";
}

/** Runs `pg-rdma bench`; resolves to the exit status. */
export async function benchCommand(ctx: CommandContext): Promise<number> {
  const o = parseBenchOptions(ctx.args.values);
  const info = resolveFor(ctx);
  // The password and prompt rules of the other commands; the transport is connect()'s choice,
  // so client.transport says which one ran and why.
  const { socketFactory: _choice, ...base } = await clientOptionsFor(info, ctx);
  const open = () => connect(info, base);

  if (o.initialize) {
    const c = await open();
    try {
      await initialize(c, o.scale, ctx);
    } finally {
      await c.close();
    }
    return EXIT.ok;
  }

  const counter = new Int32Array(new SharedArrayBuffer(4));
  const started = { at: 0 };
  let lastTick = 0;
  let lastDone = 0;
  const ticker = o.progress > 0
    ? setInterval(() => {
      if (!started.at) return;
      const now = performance.now();
      const done = Atomics.load(counter, 0);
      ctx.stderr.write(
        `progress: ${((now - started.at) / 1000).toFixed(1)} s, ${(((done - lastDone) * 1000) / (now - (lastTick || started.at))).toFixed(1)} tps\n`,
      );
      lastTick = now;
      lastDone = done;
    }, o.progress * 1000)
    : undefined;
  try {
    const run = o.jobs > 1 ? await inThreads(ctx, o, info, base, counter, started) : await inProcess(ctx, o, open, counter, started);
    return report(ctx, o, run);
  } finally {
    if (ticker) clearInterval(ticker);
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void, reject!: (e: Error) => void;
  const promise = new Promise<T>((a, b) => ((resolve = a), (reject = b)));
  return { promise, resolve, reject };
}

/** What a run gave, from one thread or several. */
interface Run {
  outcomes: ClientsOutcome[];
  elapsed: number;
  /** Sum over clients of the time each took to connect (ms). */
  connectMs: number;
  choice: Client["transport"];
  target: Target | undefined;
  /** CPU time of this process during the run (µs, every thread). */
  cpu: number;
}

async function targetOf(o: BenchOptions, c: Client): Promise<Target | undefined> {
  const target = o.workload === "copy" ? undefined : await findTarget(c);
  if (o.workload !== "copy" && (!target || target.rows === 0)) {
    throw new Error(
      target ? `table ${target.accounts} is empty: run "pg-rdma bench -i" first` : `neither ${BENCH_TABLE} nor pgbench_accounts exists: run "pg-rdma bench -i" first`,
    );
  }
  return target;
}

/** `-j 1`: every client on this thread. */
async function inProcess(ctx: CommandContext, o: BenchOptions, open: () => Promise<Client>, counter: Int32Array, started: { at: number }): Promise<Run> {
  // Connect every client first (pgbench's "initial connection time"), then start together.
  const clients: Client[] = [];
  let connectMs = 0;
  try {
    for (let i = 0; i < o.clients; i++) {
      const t0 = performance.now();
      clients.push(await open());
      connectMs += performance.now() - t0;
    }
    const target = await targetOf(o, clients[0]);
    const choice = clients[0].transport;
    ctx.debug(`transport: ${choice.transport}: ${choice.reason}`);
    const cpu0 = process.cpuUsage();
    started.at = performance.now();
    const outcome = await runClients(clients, o, target, ctx.signal, counter);
    const elapsed = (performance.now() - started.at) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { outcomes: [outcome], elapsed, connectMs, choice, target, cpu: cpu.user + cpu.system };
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

/** What the main thread sends a bench worker (`cli/_bench_worker.ts`) to start with. */
export interface WorkerSetup {
  connection: Record<string, string>;
  env: Record<string, string>;
  password: string | undefined;
  options: BenchOptions;
  target: Target | undefined;
  clients: number;
  counter: Int32Array;
}

/** Messages of a bench worker: connected, finished, or failed before running. */
export type WorkerMessage =
  | { type: "ready"; connectMs: number }
  | { type: "done"; outcome: ClientsOutcome }
  | { type: "error"; message: string };

/** `-j N`: clients dealt to N worker threads as pgbench deals them to its threads. */
async function inThreads(
  ctx: CommandContext,
  o: BenchOptions,
  info: ReturnType<typeof resolveFor>,
  base: Parameters<typeof connect>[1] & object,
  counter: Int32Array,
  started: { at: number },
): Promise<Run> {
  // One connection of our own finds the table and the transport, and settles the password
  // (prompting here, on the main thread, if it must): the workers get the answer.
  let password = typeof base.password === "string" ? base.password : undefined;
  const ask = base.password;
  const probe = await connect(info, {
    ...base,
    ...(typeof ask === "function" ? { password: async () => (password = await ask()) } : {}),
  });
  let target: Target | undefined;
  let choice: Client["transport"];
  try {
    target = await targetOf(o, probe);
    choice = probe.transport;
  } finally {
    await probe.close();
  }
  ctx.debug(`transport: ${choice.transport}: ${choice.reason}`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.env)) if (typeof v === "string") env[k] = v;
  const url = new URL(`./_bench_worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);
  const workers: Worker[] = [];
  const exited: Promise<void>[] = [];
  try {
    const ready: Promise<number>[] = [];
    const done: Promise<ClientsOutcome>[] = [];
    let dealt = 0;
    for (let i = 0; i < o.jobs; i++) {
      // pgbench: nstate = (nclients - dealt + nthreads - i - 1) / (nthreads - i)
      const n = Math.floor((o.clients - dealt + o.jobs - i - 1) / (o.jobs - i));
      dealt += n;
      const setup: WorkerSetup = { connection: { ...ctx.connection }, env, password, options: o, target, clients: n, counter };
      const w = new Worker(url, { workerData: setup });
      workers.push(w);
      const r = deferred<number>();
      const d = deferred<ClientsOutcome>();
      d.promise.catch(() => {}); // a worker failing before "ready" is reported through `ready`
      ready.push(r.promise);
      done.push(d.promise);
      const fail = (e: Error) => (r.reject(e), d.reject(e));
      w.on("message", (m: WorkerMessage) => {
        if (m.type === "ready") r.resolve(m.connectMs);
        else if (m.type === "done") d.resolve(m.outcome);
        else fail(new Error(m.message));
      });
      w.on("error", fail);
      exited.push(new Promise((resolve) =>
        w.once("exit", (code) => {
          fail(new Error(`bench thread ${i + 1} exited (status ${code}) before reporting`));
          resolve();
        })
      ));
    }
    const connectMs = (await Promise.all(ready)).reduce((a, b) => a + b, 0);
    const stop = () => workers.forEach((w) => w.postMessage("stop"));
    ctx.signal.addEventListener("abort", stop, { once: true });
    const cpu0 = process.cpuUsage();
    started.at = performance.now();
    for (const w of workers) w.postMessage("go");
    try {
      const outcomes = await Promise.all(done);
      const elapsed = (performance.now() - started.at) / 1000;
      const cpu = process.cpuUsage(cpu0);
      return { outcomes, elapsed, connectMs, choice, target, cpu: cpu.user + cpu.system };
    } finally {
      ctx.signal.removeEventListener("abort", stop);
    }
  } finally {
    // Workers close their clients and end by themselves after "done"; anything else is stopped.
    const timer = setTimeout(() => workers.forEach((w) => void w.terminate()), 5000);
    for (const w of workers) w.postMessage("stop");
    await Promise.all(exited);
    clearTimeout(timer);
  }
}

/** Adds up the threads' outcomes and prints the report; resolves to the exit status. */
function report(ctx: CommandContext, o: BenchOptions, run: Run): number {
  const { outcomes, elapsed, choice, target } = run;
  let done = 0;
  let bytes = 0;
  let failed = 0;
  let error: ClientsOutcome["error"];
  for (const r of outcomes) {
    done += r.samples.length;
    bytes += r.bytes;
    failed += r.failed;
    error ??= r.error;
  }
  const all = new Float64Array(done);
  let at = 0;
  for (const r of outcomes) {
    all.set(r.samples, at);
    at += r.samples.length;
  }
  all.sort();
  let sum = 0;
  for (const x of all) sum += x;
  const result: BenchReport = {
    transport: { transport: choice.transport, ...(choice.provider ? { provider: choice.provider } : {}), reason: choice.reason },
    workload: o.workload,
    table: target?.accounts ?? null,
    protocol: o.protocol,
    clients: o.clients,
    jobs: o.jobs,
    duration_s: elapsed,
    transactions: done,
    failed,
    tps: done / elapsed,
    latency_ms: { avg: done ? sum / done : NaN, p50: percentile(all, 50), p99: percentile(all, 99), max: done ? all[done - 1] : NaN },
    connection_ms: run.connectMs / o.clients,
    ...(o.workload === "copy" ? { bytes, mb_per_s: bytes / 2 ** 20 / elapsed } : {}),
  };
  if (o.json) ctx.stdout.write(JSON.stringify(result) + "\n");
  else if (!ctx.quiet) ctx.stdout.write(formatReport(result, o));
  // Per thread: with -j N the process may use N cores.
  const busy = run.cpu / 1000 / (elapsed * 1000) / o.jobs;
  if (busy > 0.9) ctx.info(`this process was busy ${Math.round(busy * 100)}% of the run: its ${o.jobs > 1 ? "threads" : "one thread"} may be the limit`);
  if (error) {
    const where = error.code ? ` (SQLSTATE ${error.code})` : "";
    ctx.stderr.write(`pg-rdma: bench: ${failed} client(s) aborted; first error: ${error.message}${where}\n`);
    return EXIT.failure;
  }
  return EXIT.ok;
}
