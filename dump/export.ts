// Stream formats for pipelines: one table (or query) as CSV, COPY text, binary COPY, NDJSON or
// MessagePack, as an async iterator of byte chunks, optionally compressed (gzip, lz4, zstd).
import { Packr } from "msgpackr";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import type { Client } from "../pg/mod.ts";
import { qualify, quoteIdent } from "./_quote.ts";
import { checkCompression, type Compression } from "./_sink.ts";
import { compressStream } from "../compress/mod.ts";

/** Stream formats of {@link exportTable}. */
export const EXPORT_FORMATS = ["text", "csv", "binary", "ndjson", "msgpack"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Options of {@link exportTable}. */
export interface ExportOptions {
  /** Default `csv`. */
  format?: ExportFormat;
  /** Columns to export (default all). */
  columns?: readonly string[];
  /** CSV: a header line (default true). */
  header?: boolean;
  /** Compress the stream: gzip (level 0-9), lz4 (0-1) or zstd (1-22), one standard stream. */
  compression?: Compression;
  compressionLevel?: number;
}

/**
 * Exports one table's rows through `client` (run it inside a dump transaction or after
 * `SET TRANSACTION SNAPSHOT` for a consistent set of tables):
 *
 * - `text`, `csv`, `binary`: the server's COPY formats, passed through untouched.
 * - `ndjson`: one JSON object per line, built by the server (`to_json`), so every type keeps
 *   PostgreSQL's own JSON rendering (numbers stay exact, json columns stay nested).
 * - `msgpack`: one MessagePack map per row (msgpackr, `useRecords` + `sequential`: read it with
 *   an `Unpackr({ useRecords: true, sequential: true })` in order), values decoded by pg/types.
 *
 * @example
 * ```ts
 * for await (const chunk of exportTable(client, { schema: "public", table: "orders" }, { format: "ndjson" })) {
 *   process.stdout.write(chunk);
 * }
 * ```
 */
export function exportTable(client: Client, table: { schema: string; table: string }, options: ExportOptions = {}): AsyncIterable<Uint8Array> {
  if (!table || typeof table.schema !== "string" || typeof table.table !== "string") {
    throw new TypeError("exportTable() needs { schema, table } names");
  }
  const format = options.format ?? "csv";
  if (!EXPORT_FORMATS.includes(format)) throw new RangeError(`unknown export format ${JSON.stringify(format)}: use one of ${EXPORT_FORMATS.join(", ")}`);
  const compression = checkCompression(options.compression, options.compressionLevel);
  const target = qualify(table.schema, table.table);
  const cols = options.columns?.length ? `(${options.columns.map(quoteIdent).join(", ")})` : "";
  const selectList = options.columns?.length ? options.columns.map(quoteIdent).join(", ") : "*";
  let source: AsyncIterable<Uint8Array>;
  switch (format) {
    case "text":
      source = client.copyTo(`COPY ${target} ${cols} TO STDOUT`);
      break;
    case "csv":
      source = client.copyTo(`COPY ${target} ${cols} TO STDOUT (FORMAT csv${options.header === false ? "" : ", HEADER"})`);
      break;
    case "binary":
      source = client.copyTo(`COPY ${target} ${cols} TO STDOUT (FORMAT binary)`);
      break;
    case "ndjson":
      source = ndjson(client, `SELECT pg_catalog.to_json(r)::text FROM (SELECT ${selectList} FROM ${target}) r`);
      break;
    case "msgpack":
      source = msgpack(client, `SELECT ${selectList} FROM ${target}`);
      break;
  }
  if (compression === "lz4" || compression === "zstd") return compressStream(source, compression, options.compressionLevel);
  return compression === "gzip" ? gzip(source, options.compressionLevel) : source;
}

const BATCH = 64 * 1024;

async function* ndjson(client: Client, sql: string): AsyncGenerator<Uint8Array> {
  const enc = new TextEncoder();
  let parts: string[] = [];
  let size = 0;
  for await (const row of client.stream<unknown[]>(sql, [], { rowMode: "array" })) {
    const s = row[0] as string;
    parts.push(s, "\n");
    size += s.length + 1;
    if (size >= BATCH) {
      yield enc.encode(parts.join(""));
      parts = [];
      size = 0;
    }
  }
  if (size) yield enc.encode(parts.join(""));
}

async function* msgpack(client: Client, sql: string): AsyncGenerator<Uint8Array> {
  const packr = new Packr({ useRecords: true, sequential: true });
  for await (const row of client.stream(sql)) yield packr.pack(row);
}

async function* gzip(source: AsyncIterable<Uint8Array>, level?: number): AsyncGenerator<Uint8Array> {
  const z = createGzip(level === undefined ? {} : { level });
  const input = Readable.from(source, { objectMode: false });
  input.on("error", (e) => z.destroy(e));
  input.pipe(z);
  for await (const chunk of z) yield chunk as Uint8Array;
}
