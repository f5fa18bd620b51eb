// The exporter: one snapshot (REPEATABLE READ READ ONLY, SERIALIZABLE DEFERRABLE, or the
// caller's), ACCESS SHARE locks on every dumped table before the catalog is read, data read with
// COPY ... TO STDOUT by a pool of workers sharing the snapshot (pg_export_snapshot + SET
// TRANSACTION SNAPSHOT, as pg_dump -j does), largest tables first.
import { cpus } from "node:os";
import { mkdir, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import type { Client, ConnectOptions } from "../pg/mod.ts";
import { type ConnTarget, copyTable, DumpError, open, startCopy, type StartedCopy, type TableProgress, type TableSummary } from "./_copy.ts";
import { binaryCopyable, type Catalog, readCatalog, type SelectOptions, type TableData, type TocEntry } from "./_catalog.ts";
import { commentSafe, qualify, quoteLiteral } from "./_quote.ts";
import { checkCompression, type Compression, FileSink, Sink } from "./_sink.ts";
import { fsyncAll, fsyncPath } from "../replication/_fsync.ts";
import { COMPRESSION_EXTENSIONS } from "../compress/mod.ts";
import { type Job, ProcessPool } from "./_pool.ts";

export { DumpError, type TableProgress, type TableSummary };

/** The end-of-dump summary. */
export interface DumpSummary {
  tables: TableSummary[];
  rows: number;
  bytes: number;
  ms: number;
  /** The snapshot the data was read in (exported, or the one given). */
  snapshot: string | undefined;
  /** Objects not dumped because their kind is not covered, and other notes. */
  warnings: string[];
}

/** Options of {@link dump}. */
export interface DumpOptions extends SelectOptions, ConnectOptions {
  /** `plain` (SQL for psql, the default) or `directory` (toc.json + one data file per table). */
  format?: "plain" | "directory";
  /** Plain: the output file (written as `<file>.partial`, renamed on success; a device or FIFO such as `/dev/null` is written in place). Directory: the directory (must not exist or be empty). */
  file?: string;
  /** Plain only, instead of `file`: a Node Writable (e.g. process.stdout), not ended by the dump. */
  output?: Writable;
  /** Parallel data workers (directory format only; pg_dump's -j). Default 1. */
  jobs?: number;
  /**
   * Run the parallel jobs (directory format, jobs > 1) in worker processes of this runtime
   * (dump/_worker.ts), each with its own connection and event loop, as pg_dump -j runs
   * processes; instead of as connections of this thread. Default false (see the README's
   * benchmark: the client is not where the time goes). Ignored with a `socketFactory`, a password
   * callback or `lookupPassword` (functions cannot cross to another process; the transport can:
   * `with_rsocket` in the connection string and the environment are inherited).
   */
  processes?: boolean;
  /**
   * Stops the dump: every worker is stopped, every connection closed, no file is left that
   * looks complete (plain: the `.partial` file is removed; directory: no toc.json), and the
   * promise rejects with `signal.reason` (an `AbortError` DOMException unless the caller gave
   * another reason).
   */
  signal?: AbortSignal;
  /** Use this exported snapshot (pg_dump's --snapshot), e.g. one a replication slot exported. */
  snapshot?: string;
  /** SERIALIZABLE, READ ONLY, DEFERRABLE instead of REPEATABLE READ (pg_dump's --serializable-deferrable). */
  serializableDeferrable?: boolean;
  /** Give up if a table lock is not granted in this many milliseconds (pg_dump's --lock-wait-timeout). Default: wait. */
  lockTimeout?: number;
  /** Only the data (pg_dump's -a). */
  dataOnly?: boolean;
  /** Only the schema (pg_dump's -s). */
  schemaOnly?: boolean;
  /**
   * Directory format: fsync every data file, toc.json and the directory before the dump
   * resolves, as pg_dump -Fd does (default true; false is pg_dump's `--no-sync`). An
   * uncompressed data file is flushed in the background every 64 MiB while it is written, and
   * in-process jobs fsync each data file as soon as its table is written, while the others are
   * being dumped. A plain file is not fsynced, as pg_dump does not fsync one either.
   */
  sync?: boolean;
  /**
   * One job: keep the event loop polling for 0.2 ms after each read of table data instead of
   * sleeping until the server's next send wakes it (the README's client section, "Busy-polling
   * between bulk reads"). It costs CPU of this process (about 2 s more per 2 GB dumped) and
   * spares the server the wake-ups: on a virtual machine the backend pays for each. Default true
   * with one job on a machine with more than one CPU; always off with jobs > 1 (the backends
   * need the CPUs). `pg-rdma dump --no-busy-poll` turns it off.
   */
  busyPoll?: boolean;
  /** Compression of the output: gzip (level 0-9), lz4 (0-1) or zstd (1-22); see compress/. */
  compression?: Compression;
  compressionLevel?: number;
  /**
   * Directory format: how the data files hold the rows, per table. `"binary"`: binary COPY for
   * every table whose column types allow it (each has binary send and receive functions, no
   * array or composite of a type of the database's own, no OID alias such as regclass; see
   * `binaryCopyable`), text COPY for the others. `"auto"` (the default): binary for those of
   * them whose rows average {@link BINARY_MIN_ROW} bytes or more on disk (relpages × block
   * size, plus the TOAST table's size, / reltuples), where the server saves formatting the
   * values as text (about a third of its CPU on the benchmark's wide rows); text for narrow
   * rows, where binary's length words make the stream longer than the text and the dump
   * slower. `"text"`: text COPY for every table, as pg_dump -Fd writes (for a data-only restore
   * into tables whose column types differ, or to read the files). toc.json records each file's
   * format, and restore() reads both; the values come back exactly in either.
   */
  dataFormat?: "auto" | "text" | "binary";
  /** Called per table: at its start, about every MiB, and when done (`done: true`). A returned promise is awaited. */
  onProgress?: (p: TableProgress) => void | Promise<void>;
  /** Called once per warning (an object kind not covered, ...), as it is found. */
  onWarning?: (message: string) => void;
}


/**
 * Row width on disk (bytes, pg_class's estimate) from which `dataFormat: "auto"` copies a table
 * in binary. Measured on the benchmark's database (4 jobs): its wide tables (about 410 bytes a
 * row: text, numeric, timestamptz, jsonb) dumped faster in binary, the server's CPU down from
 * 5.5 to 4.5 s; its narrow ones (about 60 bytes: two ints and a short text) slower, 1.55
 * against 1.42 s.
 */
export const BINARY_MIN_ROW = 128;

/** How long (ms) a one-job dump's connection keeps polling after each read before it may sleep. */
const BUSY_POLL_MS = 0.2;

/** The SET commands at the top of a plain dump and at the start of a restore. */
export const PREAMBLE = [
  "SET statement_timeout = 0;",
  "SET lock_timeout = 0;",
  "SET idle_in_transaction_session_timeout = 0;",
  "SET client_encoding = 'UTF8';",
  "SET standard_conforming_strings = on;",
  "SELECT pg_catalog.set_config('search_path', '', false);",
  "SET check_function_bodies = false;",
  "SET xmloption = content;",
  "SET client_min_messages = warning;",
  "SET row_security = off;",
] as const;

function validate(o: DumpOptions): { jobs: number; format: "plain" | "directory"; compression: Compression } {
  const format = o.format ?? "plain";
  if (format !== "plain" && format !== "directory") throw new RangeError(`unknown dump format ${JSON.stringify(format)}: use "plain" or "directory"`);
  const jobs = o.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 256) throw new RangeError(`jobs must be an integer from 1 to 256, not ${jobs}`);
  if (jobs > 1 && format !== "directory") throw new RangeError("parallel dump (jobs > 1) needs the directory format, as in pg_dump");
  if (o.dataOnly && o.schemaOnly) throw new RangeError("dataOnly and schemaOnly cannot be used together");
  if (format === "directory" && !o.file) throw new TypeError("the directory format needs `file` (the output directory)");
  if (format === "plain" && o.file && o.output) throw new TypeError("give either `file` or `output`, not both");
  if (format === "plain" && !o.file && !o.output) throw new TypeError("a plain dump needs `file` or `output`");
  if (o.lockTimeout !== undefined && (!Number.isInteger(o.lockTimeout) || o.lockTimeout < 0)) throw new RangeError(`lockTimeout must be a non-negative integer (ms), not ${o.lockTimeout}`);
  if (o.snapshot !== undefined && (typeof o.snapshot !== "string" || !/^[0-9A-Fa-f-]+$/.test(o.snapshot))) throw new RangeError(`not a snapshot name: ${JSON.stringify(o.snapshot)}`);
  if (o.snapshot !== undefined && o.serializableDeferrable) throw new RangeError("snapshot and serializableDeferrable cannot be used together, as in pg_dump");
  if (o.busyPoll !== undefined && typeof o.busyPoll !== "boolean") throw new TypeError(`busyPoll must be true or false, not ${JSON.stringify(o.busyPoll)}`);
  if (o.dataFormat !== undefined && o.dataFormat !== "auto" && o.dataFormat !== "text" && o.dataFormat !== "binary") {
    throw new RangeError(`unknown dataFormat ${JSON.stringify(o.dataFormat)}: use "auto", "text" or "binary"`);
  }
  if (o.dataFormat === "binary" && format !== "directory") throw new RangeError("dataFormat binary needs the directory format (a plain dump is SQL for psql)");
  checkSignal(o.signal);
  return { jobs, format, compression: checkCompression(o.compression, o.compressionLevel) };
}

/** Checks a `signal` option: an AbortSignal or nothing. */
export function checkSignal(signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
}

/** Starts the dump transaction on the leader. */
async function beginSnapshot(c: Client, o: DumpOptions): Promise<void> {
  if (o.serializableDeferrable) await c.simpleQuery("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE");
  else await c.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  if (o.snapshot) {
    try {
      await c.simpleQuery(`SET TRANSACTION SNAPSHOT ${quoteLiteral(o.snapshot)}`);
    } catch (e) {
      throw new DumpError(`cannot use snapshot ${o.snapshot}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** The leader's session: snapshot, locks, catalog. */
async function prepare(c: Client, o: DumpOptions, warn: (m: string) => void, afterBegin: () => Promise<void>): Promise<Catalog> {
  await beginSnapshot(c, o);
  await afterBegin();
  await c.simpleQuery(`SET lock_timeout = ${o.lockTimeout ?? 0}`);
  const cat = await readCatalog(c, o, async (schema, name) => {
    const t = qualify(schema, name);
    try {
      await c.simpleQuery(`LOCK TABLE ${t} IN ACCESS SHARE MODE`);
    } catch (e) {
      throw new DumpError(`cannot lock table ${t}: ${(e as Error).message}`, { cause: e, object: t });
    }
  });
  await c.simpleQuery("SET lock_timeout = 0");
  for (const w of cat.warnings) warn(w);
  return cat;
}

function header(e: { kind: string; schema: string; name: string }, owner = "-"): string {
  return `--\n-- Name: ${commentSafe(e.name)}; Type: ${e.kind}; Schema: ${commentSafe(e.schema || "-")}; Owner: ${owner}\n--\n\n`;
}

/**
 * Dumps a database like pg_dump: plain SQL for psql (`format: "plain"`, to `file` or `output`)
 * or a directory (`format: "directory"`: toc.json and one data file per table, written by
 * `jobs` parallel workers) for {@link restore}. All data comes from one snapshot. Rejects with
 * {@link DumpError} naming the table when a table cannot be locked or read; a plain file is
 * then not left behind (it is written as `<file>.partial` and renamed only on success), and a
 * directory has no toc.json.
 *
 * @example
 * ```ts
 * const summary = await dump("host=/run/postgresql dbname=app", { file: "app.sql" });
 * await dump("dbname=app", { format: "directory", file: "app.dir", jobs: 4, compression: "gzip" });
 * ```
 */
export async function dump(conninfo: ConnTarget, options: DumpOptions = {}): Promise<DumpSummary> {
  const { jobs, format, compression } = validate(options);
  const signal = options.signal;
  signal?.throwIfAborted();
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  const started = performance.now();
  const conns: Client[] = [];
  let pool: ProcessPool | undefined;
  // Abort: kill the worker processes and close every connection; whatever was waiting on them
  // fails, and the failure paths below remove what was half-written.
  const onAbort = () => {
    pool?.kill();
    for (const c of conns) c.close().catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const connect = async () => {
    const c = await open(conninfo, options);
    conns.push(c);
    if (signal?.aborted) onAbort();
    return c;
  };
  try {
    const leader = await connect();
    // One job: the backend is the limit and this process waits for it, so the leader busy-polls
    // between reads instead of sleeping and being woken by each send (pg/_receive.ts, keepHot).
    // Not with jobs > 1, where the backends need the CPUs.
    // On a single CPU the spinning would take it from the backend itself.
    if (jobs === 1 && (options.busyPoll ?? cpus().length > 1)) leader._busyPoll(BUSY_POLL_MS);
    const workers: Client[] = [];
    let snapshot = options.snapshot;
    const processes = format === "directory" && jobs > 1 && options.processes === true && !options.socketFactory &&
      typeof options.password !== "function" && !options.lookupPassword && crossesProcesses(conninfo);
    let joining: Promise<unknown> | undefined;
    // Workers (processes or connections) start as soon as the snapshot exists, so their
    // start-up overlaps the catalog read.
    const cat = await prepare(leader, options, warn, async () => {
      if (format !== "directory" || jobs === 1) return;
      const shared = String((await leader.simpleQuery<string[]>("SELECT pg_catalog.pg_export_snapshot()", { rowMode: "array" }))[0].rows[0][0]);
      snapshot = shared;
      if (!processes) {
        joining = Promise.all(Array.from({ length: jobs }, async () => {
          const w = await connect();
          workers.push(w);
          await w.simpleQuery(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(shared)}`);
        }));
        joining.catch(() => {}); // awaited below; a failure before that must not go unhandled
      } else {
        pool = new ProcessPool(jobs, conninfo, snapshot, {
          env: options.env,
          homeDir: options.homeDir,
          password: options.password as string | undefined,
          onProgress: options.onProgress,
          compressionLevel: options.compressionLevel,
          sync: options.sync !== false,
        });
      }
    });
    // Reported by the server at startup (ParameterStatus); asked for only if it was not.
    const server = leader.parameters.get("server_version") ??
      String((await leader.simpleQuery<string[]>("SHOW server_version", { rowMode: "array" }))[0].rows[0][0]);
    const tables = options.schemaOnly ? [] : cat.data;
    if (format === "directory" && options.dataFormat !== "text") {
      const all = options.dataFormat === "binary";
      const wide = all ? tables : tables.filter((t) => t.estimatedRows > 0 && t.estimatedBytes / t.estimatedRows >= BINARY_MIN_ROW);
      const binary = await binaryCopyable(leader, wide, server);
      for (const t of tables) t.binary = binary.has(t.oid);
    }
    if (format === "plain") {
      const summaries = await writePlain(leader, cat, tables, options, compression, server);
      return summarize(summaries, snapshot, warnings, started);
    }
    // Workers as connections of this thread, sharing the leader's snapshot (one table: the leader alone).
    await joining;
    if (tables.length <= 1) workers.length = 0;
    const p = pool;
    const run: TableRunner | undefined = p && tables.length > 1
      ? (order, results, dir, ext) => p.run(order, results, (j) => join(dir, `${j.i + 1}${ext}`), compression)
      : undefined;
    const summaries = await writeDirectory(leader, workers, cat, tables, options, compression, server, snapshot, run);
    return summarize(summaries, snapshot, warnings, started);
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await Promise.all([pool?.stop(), ...conns.map((c) => c.close().catch(() => {}))]);
  }
}

/** Whether a connection target can be handed to another process (as JSON). */
function crossesProcesses(conninfo: ConnTarget): boolean {
  if (conninfo === undefined || typeof conninfo === "string") return true;
  return Object.values(conninfo).every((v) => v === undefined || typeof v === "string");
}

function summarize(tables: TableSummary[], snapshot: string | undefined, warnings: string[], started: number): DumpSummary {
  return {
    tables,
    rows: tables.reduce((a, t) => a + t.rows, 0),
    bytes: tables.reduce((a, t) => a + t.bytes, 0),
    ms: performance.now() - started,
    snapshot,
    warnings,
  };
}

async function writePlain(c: Client, cat: Catalog, tables: TableData[], o: DumpOptions, compression: Compression, server: string): Promise<TableSummary[]> {
  let fileSink: FileSink | undefined;
  let sink: Sink;
  if (o.file) sink = fileSink = await FileSink.open(o.file, compression, o.compressionLevel);
  else {
    if (compression !== "none") throw new RangeError("compression of a plain dump needs `file`");
    sink = new Sink(o.output!);
  }
  const w = async (s: string) => {
    const p = sink.text(s);
    if (p) await p;
  };
  const out: TableSummary[] = [];
  try {
    await w(`--\n-- PostgreSQL database dump (pg-rdma)\n--\n\n-- Dumped from database version ${server}\n\n${PREAMBLE.join("\n")}\n\n`);
    const entries = (list: TocEntry[]) => list.reduce((p, e) => p.then(() => w(header(e) + e.sql + "\n")), Promise.resolve());
    if (!o.dataOnly) await entries(cat.preData);
    // Each table's COPY is sent before the previous one is read (startCopy): no round trip
    // between tables.
    let next = tables.length > 0 ? startCopy(c, tables[0]) : undefined;
    for (let i = 0; i < tables.length; i++) {
      const t = tables[i];
      const started = next;
      next = i + 1 < tables.length ? startCopy(c, tables[i + 1]) : undefined;
      const target = qualify(t.schema, t.name);
      await w(header({ kind: "TABLE DATA", schema: t.schema, name: t.name }) + `COPY ${target} ${t.columns} FROM stdin;\n`);
      out.push(await copyTable(c, t, sink, o, started));
      await w("\\.\n\n");
    }
    if (!o.schemaOnly) await entries(cat.sequenceValues);
    if (!o.dataOnly) await entries(cat.postData);
    await w("--\n-- PostgreSQL database dump complete\n--\n\n");
    await c.simpleQuery("COMMIT");
    if (fileSink) await fileSink.commit();
    else await sink.flush();
  } catch (e) {
    await fileSink?.abort();
    throw e;
  }
  return out;
}

/** The table of contents of a directory dump (toc.json): pg-rdma's own, not pg_dump's. */
export interface DirectoryToc {
  format: "pg-rdma-dump";
  /** 2 when a data file is in binary COPY (a reader of version 1 would take it for text); 1 otherwise. */
  version: 1 | 2;
  server: string;
  snapshot: string | undefined;
  compression: Compression;
  preamble: readonly string[];
  preData: TocEntry[];
  data: { schema: string; table: string; columns: string; file: string; rows: number; bytes: number; format?: "binary" }[];
  sequenceValues: TocEntry[];
  postData: TocEntry[];
  dataOnly: boolean;
  schemaOnly: boolean;
}

async function writeDirectory(
  leader: Client,
  workers: Client[],
  cat: Catalog,
  tables: TableData[],
  o: DumpOptions,
  compression: Compression,
  server: string,
  snapshot: string | undefined,
  run?: TableRunner,
): Promise<TableSummary[]> {
  const dir = o.file!;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if ((await readdir(dir)).length) throw new DumpError(`directory ${dir} exists and is not empty`);
  const ext = `.dat${COMPRESSION_EXTENSIONS[compression]}`;
  // Largest first over the pool, so one big table does not start last and finish alone.
  const order = tables.map((t, i) => ({ t, i })).sort((a, b) => b.t.estimatedBytes - a.t.estimatedBytes || b.t.estimatedRows - a.t.estimatedRows || a.i - b.i);
  const results: TableSummary[] = new Array(tables.length);
  // With `sync`, every data file is flushed in the background while it is written (FileSink's
  // flushAhead), and the in-process jobs fsync each one on the thread pool as soon as its table
  // is written, while the other tables are still being dumped (pg_dump leaves it all to the end,
  // and the disk idle until then). Each settles to its error, if any.
  const sync = o.sync !== false;
  const early = new Map<number, Promise<unknown>>();
  const written = (i: number, path: string) => void early.set(i, fsyncAll([path]).then(() => undefined, (e) => e));
  if (run) await run(order, results, dir, ext);
  else await inProcess(leader, workers, order, results, dir, ext, compression, o, sync ? written : undefined);
  await leader.simpleQuery("COMMIT");
  const toc: DirectoryToc = {
    format: "pg-rdma-dump",
    version: tables.some((t) => t.binary) ? 2 : 1,
    server,
    snapshot,
    compression,
    preamble: PREAMBLE,
    preData: o.dataOnly ? [] : cat.preData,
    data: tables.map((t, i) => ({
      schema: t.schema,
      table: t.name,
      columns: t.columns,
      file: `${i + 1}${ext}`,
      rows: results[i].rows,
      bytes: results[i].bytes,
      ...(t.binary ? { format: "binary" as const } : {}),
    })),
    sequenceValues: o.schemaOnly ? [] : cat.sequenceValues,
    postData: o.dataOnly ? [] : cat.postData,
    dataOnly: !!o.dataOnly,
    schemaOnly: !!o.schemaOnly,
  };
  // toc.json last: a directory without it is not a finished dump. With `sync`, the data is on
  // disk before toc.json is, and toc.json (its rename included: the directory) before we return.
  if (sync) {
    for (const e of await Promise.all(early.values())) if (e) throw e;
    await fsyncAll(toc.data.filter((_, i) => !early.has(i)).map((d) => join(dir, d.file)));
  }
  await writeFile(join(dir, "toc.json.partial"), JSON.stringify(toc, null, 1));
  if (sync) fsyncPath(join(dir, "toc.json.partial"));
  await rename(join(dir, "toc.json.partial"), join(dir, "toc.json"));
  if (sync) fsyncPath(dir);
  return results;
}

/** Dumps the tables of `order` into `dir`, filling `results[i]`; throws the first failure. */
type TableRunner = (order: Job[], results: TableSummary[], dir: string, ext: string) => Promise<void>;

/** Data workers as connections of this thread (the leader alone when there are none). */
async function inProcess(
  leader: Client,
  workers: Client[],
  order: Job[],
  results: TableSummary[],
  dir: string,
  ext: string,
  compression: Compression,
  o: DumpOptions,
  written?: (i: number, path: string) => void,
): Promise<void> {
  const pool = workers.length ? workers : [leader];
  let next = 0;
  let failed: unknown;
  const open: FileSink[] = [];
  // The leader alone (jobs=1): each table's COPY is sent before the one before is read, as in a
  // plain dump. With workers, a worker takes a table only when it is free (a table sent ahead
  // would wait behind the worker's current one while another worker idles).
  let ahead: StartedCopy | undefined;
  await Promise.all(pool.map(async (c) => {
    while (next < order.length && failed === undefined) {
      const { t, i } = order[next++];
      const started = c === leader ? ahead ?? startCopy(c, t) : undefined;
      ahead = c === leader && next < order.length ? startCopy(c, order[next].t) : undefined;
      try {
        // In the try: a file that cannot be opened fails the dump like any table does (the
        // other workers stopped, every file opened removed).
        const sink = await FileSink.open(join(dir, `${i + 1}${ext}`), compression, o.compressionLevel, written !== undefined);
        open.push(sink);
        if (c !== leader) {
          // NOWAIT: if someone queued a conflicting lock behind the leader's, waiting here
          // would deadlock against the leader (pg_dump does the same).
          try {
            await c.simpleQuery(`LOCK TABLE ${qualify(t.schema, t.name)} IN ACCESS SHARE MODE NOWAIT`);
          } catch (e) {
            throw new DumpError(`could not obtain a lock on table ${qualify(t.schema, t.name)}: another session waits for a conflicting lock (${(e as Error).message})`, {
              cause: e,
              object: qualify(t.schema, t.name),
            });
          }
        }
        results[i] = await copyTable(c, t, sink, o, started);
        await sink.commit();
        written?.(i, sink.path);
      } catch (e) {
        if (failed === undefined) {
          failed = e;
          // The dump has failed: stop the other workers' COPYs now rather than at their end.
          for (const w of workers) if (w !== c) w.close().catch(() => {});
        }
      }
    }
  }));
  if (failed !== undefined) {
    await Promise.all(open.map((s) => s.abort()));
    throw failed;
  }
}
