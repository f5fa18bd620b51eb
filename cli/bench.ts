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
 * `-j` takes only 1: the clients share this process's one JavaScript thread, which is what a program using
 * the library does; on a loaded machine that thread, not the wire, can be the limit (the report
 * says so when the process was busy more than 90% of the run).
 *
 * @module
 */
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
  if (v.jobs !== undefined && String(v.jobs).trim() !== "1") {
    throw usage(`invalid number of threads "${String(v.jobs)}": only -j 1 (clients share this process's thread)`);
  }
  const protocol = (v.protocol ?? "simple") as BenchOptions["protocol"];
  if (!["simple", "extended", "prepared"].includes(protocol)) {
    throw usage(`invalid query mode "${String(v.protocol)}" (expected simple, extended or prepared)`);
  }
  return {
    initialize,
    scale: count(v, "scale", 1, 1),
    clients: count(v, "client", 1, 1),
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
interface Target {
  accounts: string;
  pgbench: boolean;
  rows: number;
}

/** One transaction of the chosen workload on one client; resolves to the bytes it received (COPY). */
type Transaction = (client: Client) => Promise<number>;

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

  // Connect every client first (pgbench's "initial connection time"), then start together.
  const clients: Client[] = [];
  let connectMs = 0;
  try {
    for (let i = 0; i < o.clients; i++) {
      const t0 = performance.now();
      clients.push(await open());
      connectMs += performance.now() - t0;
    }
    const target = o.workload === "copy" ? undefined : await findTarget(clients[0]);
    if (o.workload !== "copy" && (!target || target.rows === 0)) {
      throw new Error(
        target ? `table ${target.accounts} is empty: run "pg-rdma bench -i" first` : `neither ${BENCH_TABLE} nor pgbench_accounts exists: run "pg-rdma bench -i" first`,
      );
    }
    const choice = clients[0].transport;
    ctx.debug(`transport: ${choice.transport}: ${choice.reason}`);
    const tx = transactionFor(o, target);
    const samples = clients.map(() => new Samples());
    let bytes = 0;
    let failed = 0;
    let firstError: Error | undefined;
    let done = 0;

    const start = performance.now();
    const deadline = o.time === undefined ? Infinity : start + o.time * 1000;
    let lastTick = start;
    let lastDone = 0;
    const ticker = o.progress > 0
      ? setInterval(() => {
        const now = performance.now();
        const n = done - lastDone;
        ctx.stderr.write(
          `progress: ${((now - start) / 1000).toFixed(1)} s, ${((n * 1000) / (now - lastTick)).toFixed(1)} tps\n`,
        );
        lastTick = now;
        lastDone = done;
      }, o.progress * 1000)
      : undefined;
    const cpu0 = process.cpuUsage();
    const loop = async (c: Client, s: Samples) => {
      for (let i = 0; o.time !== undefined || i < o.transactions; i++) {
        if (ctx.signal.aborted || performance.now() >= deadline) return;
        const t0 = performance.now();
        let n: number;
        try {
          n = await tx(c);
        } catch (e) {
          // As pgbench: a client whose transaction fails stops ("client N aborted").
          failed++;
          firstError ??= e as Error;
          return;
        }
        s.push(performance.now() - t0);
        bytes += n; // not `bytes += await ...`, which would add to a stale value
        done++;
      }
    };
    await Promise.all(clients.map((c, i) => loop(c, samples[i])));
    const elapsed = (performance.now() - start) / 1000;
    if (ticker) clearInterval(ticker);
    const cpu = process.cpuUsage(cpu0);

    const all = new Float64Array(done);
    let at = 0;
    for (const s of samples) {
      all.set(s.values.subarray(0, s.length), at);
      at += s.length;
    }
    all.sort();
    let sum = 0;
    for (const x of all) sum += x;
    const report: BenchReport = {
      transport: { transport: choice.transport, ...(choice.provider ? { provider: choice.provider } : {}), reason: choice.reason },
      workload: o.workload,
      table: target?.accounts ?? null,
      protocol: o.protocol,
      clients: o.clients,
      duration_s: elapsed,
      transactions: done,
      failed,
      tps: done / elapsed,
      latency_ms: { avg: done ? sum / done : NaN, p50: percentile(all, 50), p99: percentile(all, 99), max: done ? all[done - 1] : NaN },
      connection_ms: connectMs / o.clients,
      ...(o.workload === "copy" ? { bytes, mb_per_s: bytes / 2 ** 20 / elapsed } : {}),
    };
    if (o.json) ctx.stdout.write(JSON.stringify(report) + "\n");
    else if (!ctx.quiet) ctx.stdout.write(formatReport(report, o));
    const busy = (cpu.user + cpu.system) / 1000 / (elapsed * 1000);
    if (busy > 0.9) ctx.info(`this process was busy ${Math.round(busy * 100)}% of the run: its one thread may be the limit`);
    if (firstError) {
      const where = firstError instanceof PostgresError ? ` (SQLSTATE ${firstError.code})` : "";
      ctx.stderr.write(`pg-rdma: bench: ${failed} client(s) aborted; first error: ${firstError.message}${where}\n`);
      return EXIT.failure;
    }
    return EXIT.ok;
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}
