// What the leader and every data worker (in-process or on a worker thread) share: the session
// settings of a dump connection and the COPY of one table into a sink.
import { type Client, connect, type ConnectOptions, type ConnInfo, type CopyOut, PostgresError } from "../pg/mod.ts";
import type { TableData } from "./_catalog.ts";
import { qualify } from "./_quote.ts";
import type { Sink } from "./_sink.ts";

/** Errors of a dump or restore; `object` names the table (or entry) it happened on. */
export class DumpError extends Error {
  /** The table or object being worked on, e.g. `"public"."orders"`, when there was one. */
  readonly object: string | undefined;
  constructor(message: string, options: { cause?: unknown; object?: string } = {}) {
    super(message, { cause: options.cause });
    this.name = "DumpError";
    this.object = options.object;
  }
}

/** Progress of one table, for a progress display. */
export interface TableProgress {
  schema: string;
  table: string;
  /** Rows and bytes (of COPY data, text or binary) written so far. */
  rows: number;
  bytes: number;
  /** From pg_class: reltuples (-1 when never analysed) and relpages × block size, plus the TOAST table's size. */
  estimatedRows: number;
  estimatedBytes: number;
  /** True on the last call for this table. */
  done: boolean;
}

/** What one table contributed. */
export interface TableSummary {
  schema: string;
  table: string;
  rows: number;
  bytes: number;
  ms: number;
}

export type ConnTarget = string | Record<string, string | undefined> | ConnInfo | undefined;

/** Settings of every dump session (pg_dump's setup_connection). */
export const SESSION = `SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; SET synchronize_seqscans = off;
SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; SET row_security = off; SET quote_all_identifiers = on;
SELECT pg_catalog.set_config('search_path', '', false);
SELECT pg_catalog.set_config('transaction_timeout', '0', false) FROM pg_catalog.pg_settings WHERE name = 'transaction_timeout'`;

/** Connects and applies the dump session settings. */
export async function open(conninfo: ConnTarget, options: ConnectOptions): Promise<Client> {
  const c = await connect(conninfo, { env: options.env, homeDir: options.homeDir, password: options.password, socketFactory: options.socketFactory });
  try {
    await c.simpleQuery(SESSION);
  } catch (e) {
    await c.close();
    throw e;
  }
  return c;
}


/** A table's COPY sent and not yet read: see {@link startCopy}. */
export interface StartedCopy {
  copy: CopyOut;
  chunks: AsyncIterable<Uint8Array>;
}

/**
 * Sends the COPY of one table; {@link copyTable} reads it. A dump of tables one after another
 * sends the next table's COPY before it reads the current one, so the server starts it the
 * moment the current one ends instead of after a round trip through the client (pg_dump waits
 * for each). Its rows then wait in the client, bounded by the COPY's high-water mark (the socket
 * is paused past it). If a table fails, the transaction is aborted and the COPY queued behind it
 * fails too, unread: the error reported is the first table's.
 */
export function startCopy(c: Client, t: TableData): StartedCopy {
  // Chunks join many rows (one CopyData message each), counted by the client as it frames
  // them. They live in reused memory: the sink copies or writes each before the next is read.
  const copy = c.copyTo(`COPY ${qualify(t.schema, t.name)} ${t.columns} TO STDOUT${t.binary ? " (FORMAT binary)" : ""}`, { coalesce: true });
  return { copy, chunks: copy.reusing() };
}

/** COPY one table to a sink (sent now, or by {@link startCopy} before), reporting progress; errors name the table. */
export async function copyTable(
  c: Client,
  t: TableData,
  sink: Sink,
  o: { onProgress?: (p: TableProgress) => void | Promise<void> },
  started?: StartedCopy,
): Promise<TableSummary> {
  const target = qualify(t.schema, t.name);
  const start = performance.now();
  let rows = 0;
  let bytes = 0;
  let nextReport = 1 << 20;
  const report = (done: boolean) =>
    o.onProgress?.({ schema: t.schema, table: t.name, rows, bytes, estimatedRows: t.estimatedRows, estimatedBytes: t.estimatedBytes, done });
  try {
    await report(false);
    const { copy, chunks } = started ?? startCopy(c, t);
    for await (const chunk of chunks) {
      // One CopyData per row (in binary, the header rides with the first and the trailer comes alone).
      rows = copy.rows;
      bytes += chunk.length;
      const p = sink.write(chunk);
      if (p) await p;
      if (bytes >= nextReport) {
        nextReport = bytes + (1 << 20);
        const q = report(false);
        if (q) await q;
      }
    }
    rows = copy.result?.rowCount ?? rows;
    await report(true);
  } catch (e) {
    if (e instanceof DumpError) throw e;
    const why = e instanceof PostgresError ? e.message : (e as Error).message;
    throw new DumpError(`dumping the data of table ${target} failed: ${why}`, { cause: e, object: target });
  }
  return { schema: t.schema, table: t.name, rows, bytes, ms: performance.now() - start };
}

