// Restores a directory dump: pre-data on one connection, table data in parallel with COPY FROM
// STDIN, sequence values, then indexes and constraints in parallel, then the rest in order.
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { decompressionTransform } from "../compress/mod.ts";
import { type Client, connect, type ConnectOptions, type ConnInfo } from "../pg/mod.ts";
import type { TocEntry } from "./_catalog.ts";
import { qualify } from "./_quote.ts";
import { checkSignal, type DirectoryToc, DumpError, type TableProgress } from "./dump.ts";

/** Options of {@link restore}. */
export interface RestoreOptions extends ConnectOptions {
  /** Parallel connections for data and index builds (pg_restore's -j). Default 1. */
  jobs?: number;
  /** Only the data / only the schema of the dump. */
  dataOnly?: boolean;
  schemaOnly?: boolean;
  /** Called per table: at its start and when done (rows are counted by the server). */
  onProgress?: (p: TableProgress) => void | Promise<void>;
  /**
   * Stops the restore: every connection is closed (the server rolls back the COPY in progress)
   * and the promise rejects with `signal.reason`. What was restored before stays.
   */
  signal?: AbortSignal;
}

/** What a restore did. */
export interface RestoreSummary {
  tables: number;
  rows: number;
  entries: number;
  ms: number;
}

type ConnTarget = string | Record<string, string | undefined> | ConnInfo | undefined;

/** Reads and checks a directory dump's toc.json. */
export async function readToc(dir: string): Promise<DirectoryToc> {
  let text: string;
  try {
    text = await readFile(join(dir, "toc.json"), "utf8");
  } catch (e) {
    throw new DumpError(`${dir} is not a finished pg-rdma dump directory: no toc.json`, { cause: e });
  }
  let toc: DirectoryToc;
  try {
    toc = JSON.parse(text);
  } catch (e) {
    throw new DumpError(`${join(dir, "toc.json")} is not valid JSON`, { cause: e });
  }
  if (toc?.format !== "pg-rdma-dump" || (toc.version !== 1 && toc.version !== 2)) {
    throw new DumpError(`${join(dir, "toc.json")} is not a pg-rdma dump table of contents (version 1 or 2)`);
  }
  for (const d of toc.data ?? []) {
    if (d.format !== undefined && d.format !== "binary") throw new DumpError(`${join(dir, "toc.json")}: table data ${d.schema}.${d.table} has an unknown format ${JSON.stringify(d.format)}`);
  }
  return toc;
}

async function run(c: Client, e: TocEntry): Promise<void> {
  try {
    await c.simpleQuery(e.sql);
  } catch (err) {
    throw new DumpError(`restoring ${e.kind} ${e.schema ? `${e.schema}.` : ""}${e.name} failed: ${(err as Error).message}`, { cause: err, object: e.name });
  }
}

/** Runs tasks over a pool of clients; the first failure stops handing out new tasks. */
async function pooled<T>(pool: Client[], items: T[], fn: (c: Client, item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  await Promise.all(pool.map(async (c) => {
    while (next < items.length && failed === undefined) {
      const item = items[next++];
      try {
        await fn(c, item);
      } catch (e) {
        failed ??= e;
      }
    }
  }));
  if (failed !== undefined) throw failed;
}

/**
 * Restores a directory written by `dump({ format: "directory" })` into the database `conninfo`
 * names (normally empty): pre-data, then the table data over `jobs` connections with COPY FROM
 * STDIN, sequence values, indexes and constraints over `jobs` connections, then the rest
 * (foreign keys, triggers, materialized view refreshes, privileges) in dump order. Rejects with
 * {@link DumpError} naming the object that failed.
 *
 * @example
 * ```ts
 * await restore("app.dir", "dbname=app_copy", { jobs: 4 });
 * ```
 */
export async function restore(dir: string, conninfo: ConnTarget, options: RestoreOptions = {}): Promise<RestoreSummary> {
  if (typeof dir !== "string" || !dir) throw new TypeError("restore() needs the dump directory");
  const jobs = options.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 256) throw new RangeError(`jobs must be an integer from 1 to 256, not ${jobs}`);
  if (options.dataOnly && options.schemaOnly) throw new RangeError("dataOnly and schemaOnly cannot be used together");
  checkSignal(options.signal);
  const signal = options.signal;
  signal?.throwIfAborted();
  const toc = await readToc(dir);
  const started = performance.now();
  const pool: Client[] = [];
  const session = toc.preamble.join("\n");
  const copying = new Map<Client, Readable>();
  // Abort: a COPY in progress gets its source destroyed (the client sends CopyFail, the server
  // rolls the table's COPY back); every other connection is closed, failing what it was doing.
  const onAbort = () => {
    for (const c of pool) {
      const src = copying.get(c);
      if (src) src.destroy(signal!.reason instanceof Error ? signal!.reason : new Error(String(signal!.reason)));
      else c.close().catch(() => {});
    }
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const open = async () => {
    const c = await connect(conninfo, { env: options.env, homeDir: options.homeDir, password: options.password, socketFactory: options.socketFactory });
    pool.push(c);
    if (signal?.aborted) onAbort();
    await c.simpleQuery(session);
    return c;
  };
  let rows = 0;
  let entries = 0;
  try {
    const leader = await open();
    if (!options.dataOnly) {
      for (const e of toc.preData) await run(leader, e);
      entries += toc.preData.length;
    }
    const more = Math.min(jobs, Math.max(toc.data.length, 1)) - 1;
    for (let i = 0; i < more; i++) await open();
    if (!options.schemaOnly) {
      const data = [...toc.data].sort((a, b) => b.bytes - a.bytes);
      await pooled(pool, data, async (c, d) => {
        const target = qualify(d.schema, d.table);
        const progress = (done: boolean, n: number) =>
          options.onProgress?.({ schema: d.schema, table: d.table, rows: n, bytes: done ? d.bytes : 0, estimatedRows: d.rows, estimatedBytes: d.bytes, done });
        await progress(false, 0);
        let src: Readable = createReadStream(join(dir, d.file), { highWaterMark: 256 * 1024 });
        if (d.file.endsWith(".gz")) src = src.pipe(createGunzip());
        else if (d.file.endsWith(".lz4") || d.file.endsWith(".zst")) src = src.pipe(await decompressionTransform(d.file.endsWith(".lz4") ? "lz4" : "zstd"));
        copying.set(c, src);
        if (signal?.aborted) src.destroy(new Error("aborted"));
        try {
          const r = await c.copyFrom(`COPY ${target} ${d.columns} FROM STDIN${d.format === "binary" ? " (FORMAT binary)" : ""}`, src);
          rows += r.rowCount ?? 0;
          await progress(true, r.rowCount ?? 0);
        } catch (e) {
          src.destroy();
          // The server's context names the line and column of the file. A binary file read into
          // a column of another type (a data-only restore into a table that differs) fails with
          // a malformed value: say what to do.
          const { code, where } = e as { code?: unknown; where?: unknown };
          const at = typeof where === "string" && where ? ` (${where})` : "";
          const hint = d.format === "binary" && (code === "22P03" || code === "42804" || code === "08P01")
            ? "; the data file is binary COPY, which loads only into the column types it was dumped from (if the table's differ, dump with dataFormat \"text\", --data-format text)"
            : "";
          throw new DumpError(`restoring the data of table ${target} failed: ${(e as Error).message}${at}${hint}`, { cause: e, object: target });
        } finally {
          copying.delete(c);
        }
      });
      for (const e of toc.sequenceValues) await run(leader, e);
    }
    if (!options.dataOnly) {
      const parallel = toc.postData.filter((e) => e.kind === "INDEX" || e.kind === "CONSTRAINT");
      await pooled(pool, parallel, run);
      for (const e of toc.postData) if (!parallel.includes(e)) await run(leader, e);
      entries += toc.postData.length;
    }
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await Promise.all(pool.map((c) => c.close().catch(() => {})));
  }
  return { tables: options.schemaOnly ? 0 : toc.data.length, rows, entries, ms: performance.now() - started };
}
