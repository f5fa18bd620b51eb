/**
 * `dump/`: a pg_dump-style exporter on COPY. One consistent snapshot (REPEATABLE READ READ ONLY,
 * SERIALIZABLE DEFERRABLE, or one the caller exported), ACCESS SHARE locks on every dumped table
 * before the catalog is read, parallel workers sharing the snapshot (largest tables first),
 * pg_dump's selection patterns, DDL from the server's own deparsers in dependency order, and three
 * outputs: plain SQL for psql, a directory (toc.json + one data file per table) for the parallel
 * {@link restore}, and per-table streams (CSV, COPY text/binary, NDJSON, MessagePack).
 *
 * @example
 * ```ts
 * import { dump, restore } from "./mod.ts";
 * await dump("dbname=app", { format: "directory", file: "app.dir", jobs: 4 });
 * await restore("app.dir", "dbname=app_copy", { jobs: 4 });
 * ```
 *
 * @module
 */
export { BINARY_MIN_ROW, type DirectoryToc, dump, DumpError, type DumpOptions, type DumpSummary, PREAMBLE, type TableProgress, type TableSummary } from "./dump.ts";
export { readToc, restore, type RestoreOptions, type RestoreSummary } from "./restore.ts";
export { EXPORT_FORMATS, type ExportFormat, type ExportOptions, exportTable } from "./export.ts";
export { matchesPattern, type NamePattern, parseSchemaPattern, parseTablePattern } from "./_pattern.ts";
export { qualify, quoteIdent, quoteLiteral } from "./_quote.ts";
export type { Section, TableData, TocEntry } from "./_catalog.ts";
export type { Compression } from "./_sink.ts";
