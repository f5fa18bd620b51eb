/**
 * `pg-rdma dump` and `pg-rdma restore`: pg_dump and pg_restore on dump/, over RDMA with
 * `--with-rsocket`.
 *
 * - `dump -Fp` (default): plain SQL for psql (or `pg-rdma query -f`), to `-f FILE` (written as
 *   `FILE.partial`, renamed when complete) or stdout. `-Fd -f DIR [-j N]`: a directory dump
 *   (toc.json + one data file per table) for `restore`.
 * - `dump -F csv|ndjson|msgpack|binary|text -f DIR`: one file per table
 *   (`DIR/schema.table.csv`, ...), all read in one snapshot, for pipelines (pg-rdma's own).
 * - Selection and consistency as pg_dump: `-n/-N/-t/-T` patterns, `--exclude-table-data`,
 *   `-a/-s`, `--snapshot`, `--serializable-deferrable`, `-O`, `-x`, `-Z gzip[:N]`.
 * - Durability as pg_dump: a directory dump (and the per-table files) is fsynced, files and
 *   directory, before the command exits, unless `--no-sync`; a plain file is not.
 * - `restore -d DB [-j N] DIR`: restores a directory dump; `-l` lists its contents.
 * - Progress (bytes, per table) on stderr with `--verbose`, or on a terminal; SIGINT/SIGTERM
 *   stop the dump or restore through its `signal`: workers stopped, connections closed, no
 *   output left that looks complete (no `.partial`, no toc.json) (exit 130/143).
 *
 * @module
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { open as openFile } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import {
  type Compression,
  dump,
  type DumpOptions,
  exportTable,
  type ExportFormat,
  matchesPattern,
  parseSchemaPattern,
  parseTablePattern,
  quoteLiteral,
  readToc,
  restore,
  type TableProgress,
} from "../dump/mod.ts";
import { EXIT, UsageError } from "./_args.ts";
import { COMPRESSION_EXTENSIONS, parseCompression as parseCompressionSpec } from "../compress/mod.ts";
import type { CommandContext } from "./_commands.ts";
import { libraryConnection, openConnection } from "./_connect.ts";
import { fsyncPath } from "../replication/_fsync.ts";
import { FlushAhead } from "../dump/_sink.ts";

const list = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);

/**
 * `-Z`: `METHOD[:DETAIL]` with METHOD `none`, `gzip`, `lz4` or `zstd` and DETAIL `N` or
 * `level=N`, or a bare level (0 = none, 1-9 = gzip), as pg_dump 16 (compress/'s rules).
 */
export function parseCompression(
  text: string | undefined,
  command: string,
): { compression: Compression; level?: number } {
  if (text === undefined) return { compression: "none" };
  try {
    const spec = parseCompressionSpec(text);
    return { compression: spec.method, ...(spec.level !== undefined ? { level: spec.level } : {}) };
  } catch (e) {
    throw new UsageError((e as Error).message, { command });
  }
}

function positiveInt(v: unknown, what: string, command: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`invalid ${what} "${String(v)}": must be a whole number of at least 1`, { command });
  }
  return n;
}

/** Progress of many tables as one byte count. */
function tableProgress(ctx: CommandContext, label: string) {
  const show = ctx.verbose || (ctx.stderr.isTTY === true && !ctx.quiet);
  const p = show ? ctx.progress({ label }) : undefined;
  const bytes = new Map<string, number>();
  let sum = 0;
  return {
    onProgress(t: TableProgress) {
      const key = `${t.schema}.${t.table}`;
      sum += t.bytes - (bytes.get(key) ?? 0);
      bytes.set(key, t.bytes);
      p?.update(sum);
      if (t.done) ctx.debug(`${label} of table ${key}: ${t.rows} rows`);
    },
    finish(note?: string) {
      p?.finish(note);
    },
  };
}

/** Rejects when the command is told to stop (the per-table stream formats race their reads against it). */
function stopped(signal: AbortSignal): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  p.catch(() => {});
  return p;
}

const STREAM_EXT: Record<string, string> = {
  csv: "csv",
  text: "copy",
  binary: "bin",
  ndjson: "ndjson",
  msgpack: "msgpack",
};

/** Runs `pg-rdma dump`; resolves to the exit status. */
export async function dumpCommand(ctx: CommandContext): Promise<number> {
  const v = ctx.args.values;
  const cmd = "dump";
  const f = String(v.format ?? "p");
  const format = f === "p" || f === "plain" ? "plain" : f === "d" || f === "directory" ? "directory" : f;
  const jobs = positiveInt(v.jobs, "number of parallel jobs", cmd);
  const { compression, level } = parseCompression(v.compress as string | undefined, cmd);
  const file = v.file as string | undefined;
  if (format !== "plain" && (file === undefined || file === "-")) {
    throw new UsageError(`the ${format} format needs an output directory (-f DIR)`, { command: cmd });
  }
  if (jobs !== undefined && jobs > 1 && format !== "directory") {
    throw new UsageError("parallel dump (-j) needs the directory format (-Fd), as in pg_dump", { command: cmd });
  }
  if (v["data-only"] && v["schema-only"]) {
    throw new UsageError("options -s/--schema-only and -a/--data-only cannot be used together", { command: cmd });
  }
  if (v["data-format"] !== undefined && format !== "directory") {
    throw new UsageError("--data-format applies to the directory format (-Fd) only", { command: cmd });
  }
  const lockWait = v["lock-wait-timeout"] === undefined ? undefined : Number(v["lock-wait-timeout"]);
  if (lockWait !== undefined && !(Number.isInteger(lockWait) && lockWait >= 0)) {
    throw new UsageError(`invalid --lock-wait-timeout "${String(v["lock-wait-timeout"])}" (milliseconds)`, { command: cmd });
  }
  const select = {
    schemas: list(v.schema),
    excludeSchemas: list(v["exclude-schema"]),
    tables: list(v.table),
    excludeTables: list(v["exclude-table"]),
    excludeTableData: list(v["exclude-table-data"]),
    noOwner: v["no-owner"] === true,
    noPrivileges: v["no-privileges"] === true,
  };
  if (format !== "plain" && format !== "directory") {
    return await streamDump(ctx, format as ExportFormat, file!, select, compression, level);
  }
  const { connection, connectOptions } = await libraryConnection(ctx);
  const progress = tableProgress(ctx, "dump");
  const toStdout = format === "plain" && (file === undefined || file === "-");
  const out = ctx.stdout as unknown as Writable & { on?: unknown };
  const options: DumpOptions = {
    ...connectOptions,
    ...select,
    format,
    ...(toStdout ? { output: typeof out.on === "function" ? out : (process.stdout as Writable) } : { file }),
    ...(jobs !== undefined ? { jobs } : {}),
    ...(v.snapshot !== undefined ? { snapshot: String(v.snapshot) } : {}),
    serializableDeferrable: v["serializable-deferrable"] === true,
    ...(lockWait !== undefined ? { lockTimeout: lockWait } : {}),
    dataOnly: v["data-only"] === true,
    schemaOnly: v["schema-only"] === true,
    compression,
    ...(level !== undefined ? { compressionLevel: level } : {}),
    ...(v["data-format"] !== undefined ? { dataFormat: v["data-format"] as "auto" | "text" | "binary" } : {}),
    sync: v["no-sync"] !== true,
    ...(v["no-busy-poll"] === true ? { busyPoll: false } : {}),
    onProgress: progress.onProgress,
    onWarning: (m) => ctx.info(`warning: ${m}`),
  };
  try {
    // The dump stops on the signal itself: workers stopped, connections closed, no file left complete.
    const r = await dump(connection, { ...options, signal: ctx.signal });
    progress.finish();
    ctx.debug(`dumped ${r.tables.length} table(s), ${r.rows} rows in ${(r.ms / 1000).toFixed(1)} s`);
  } catch (e) {
    progress.finish(ctx.signal.aborted ? "interrupted" : "failed");
    throw e;
  }
  return EXIT.ok;
}

/** `-F csv|ndjson|...`: one file per table, all read in one snapshot. */
async function streamDump(
  ctx: CommandContext,
  format: ExportFormat,
  dir: string,
  select: { schemas: string[]; excludeSchemas: string[]; tables: string[]; excludeTables: string[]; excludeTableData: string[] },
  compression: Compression,
  level: number | undefined,
): Promise<number> {
  const v = ctx.args.values;
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new UsageError(`output directory "${dir}" exists and is not empty`, { command: "dump" });
  }
  const sync = v["no-sync"] !== true;
  const client = await openConnection(ctx);
  const progress = tableProgress(ctx, "dump");
  try {
    if (v["serializable-deferrable"]) {
      await client.simpleQuery("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE");
    } else await client.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (v.snapshot !== undefined) {
      await client.simpleQuery(`SET TRANSACTION SNAPSHOT ${quoteLiteral(String(v.snapshot))}`);
    }
    const r = await client.simpleQuery<string[]>(
      `SELECT n.nspname, c.relname, pg_catalog.pg_table_is_visible(c.oid)::text
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
        ORDER BY 1, 2`,
      { rowMode: "array" },
    );
    const pat = (p: string[], parse: (s: string) => ReturnType<typeof parseTablePattern>) => p.map(parse);
    const incS = pat(select.schemas, parseSchemaPattern);
    const excS = pat(select.excludeSchemas, parseSchemaPattern);
    const incT = pat(select.tables, parseTablePattern);
    const excT = pat([...select.excludeTables, ...select.excludeTableData], parseTablePattern);
    const tables = r[0].rows.filter(([schema, name, visible]) => {
      const vis = visible === "true";
      if (incS.length && !incS.some((p) => matchesPattern(p, schema))) return false;
      if (excS.some((p) => matchesPattern(p, schema))) return false;
      if (incT.length && !incT.some((p) => matchesPattern(p, schema, name, vis))) return false;
      return !excT.some((p) => matchesPattern(p, schema, name, vis));
    });
    // Lock them all before reading any, as pg_dump does, so no table changes shape meanwhile.
    for (const [schema, name] of tables) {
      await client.simpleQuery(`LOCK TABLE ${ident(schema)}.${ident(name)} IN ACCESS SHARE MODE`);
    }
    mkdirSync(dir, { recursive: true });
    const stop = stopped(ctx.signal);
    for (const [schema, name] of tables) {
      const base = join(dir, `${schema}.${name}.${STREAM_EXT[format]}${COMPRESSION_EXTENSIONS[compression]}`);
      const partial = base + ".partial";
      const fh = await openFile(partial, "w");
      let bytes = 0;
      // Written to be fsynced: flushed while written, as the directory dump's data files are.
      // A failed flush fails the table.
      const ahead = sync ? new FlushAhead(() => fh.datasync()) : undefined;
      try {
        const it = exportTable(client, { schema, table: name }, {
          format,
          ...(compression !== "none" ? { compression, ...(level !== undefined ? { compressionLevel: level } : {}) } : {}),
        })[Symbol.asyncIterator]();
        for (;;) {
          const step = await Promise.race([it.next(), stop]);
          if (step.done) break;
          await fh.write(step.value);
          if (ahead?.error) throw ahead.error;
          ahead?.wrote(step.value.length);
          bytes += step.value.length;
          progress.onProgress({ schema, table: name, rows: 0, bytes, estimatedRows: -1, estimatedBytes: 0, done: false });
        }
        if (ahead) {
          await ahead.settled();
          if (ahead.error) throw ahead.error;
          await fh.sync();
        }
      } catch (e) {
        await ahead?.settled();
        await fh.close();
        rmSync(partial, { force: true });
        throw e;
      } finally {
        await fh.close().catch(() => {});
      }
      renameSync(partial, base);
      ctx.debug(`dumped table ${schema}.${name}: ${bytes} bytes`);
    }
    // The renames reach the disk with the directory (as pg_dump -Fd fsyncs its directory).
    if (sync) fsyncPath(dir);
    await client.simpleQuery("COMMIT");
    progress.finish();
  } catch (e) {
    progress.finish(ctx.signal.aborted ? "interrupted" : "failed");
    throw e;
  } finally {
    await client.close();
  }
  return EXIT.ok;
}

const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;

/** Options of the restore table the library does not do yet: refused rather than ignored. */
const RESTORE_UNSUPPORTED = [
  "clean",
  "create",
  "use-list",
  "schema",
  "exclude-schema",
  "table",
  "single-transaction",
  "if-exists",
  "no-owner",
  "no-privileges",
  "file",
] as const;

/** Runs `pg-rdma restore`; resolves to the exit status. */
export async function restoreCommand(ctx: CommandContext): Promise<number> {
  const v = ctx.args.values;
  const cmd = "restore";
  const dir = ctx.args.positionals[0];
  if (dir === undefined) throw new UsageError("no dump directory given (pg-rdma restore -d DB DIR)", { command: cmd });
  if (v.format !== undefined && v.format !== "d" && v.format !== "directory") {
    throw new UsageError(`only directory dumps (-Fd) can be restored, not "${String(v.format)}"`, { command: cmd });
  }
  for (const o of RESTORE_UNSUPPORTED) {
    if (v[o] !== undefined) throw new UsageError(`--${o} is not supported yet`, { command: cmd });
  }
  if (v.list) {
    const toc = await readToc(dir);
    const out: string[] = [
      `;`,
      `; Archive created by pg-rdma dump (${toc.format} version ${toc.version})`,
      `;     Dumped from database version: ${toc.server}`,
      `;     Compression: ${toc.compression}`,
      `;`,
    ];
    const entry = (e: { kind: string; schema: string; name: string }) => `${e.kind} ${e.schema || "-"} ${e.name}`;
    for (const e of toc.preData) out.push(entry(e));
    for (const d of toc.data) out.push(`TABLE DATA ${d.schema} ${d.table}${d.format === "binary" ? " (binary)" : ""}`);
    for (const e of toc.sequenceValues) out.push(entry(e));
    for (const e of toc.postData) out.push(entry(e));
    ctx.stdout.write(out.join("\n") + "\n");
    return EXIT.ok;
  }
  if (ctx.connection.dbname === undefined) {
    throw new UsageError("one of -d/--dbname and -l/--list must be specified (writing a script is not supported)", { command: cmd });
  }
  const jobs = positiveInt(v.jobs, "number of parallel jobs", cmd);
  if (v["data-only"] && v["schema-only"]) {
    throw new UsageError("options -s/--schema-only and -a/--data-only cannot be used together", { command: cmd });
  }
  const { connection, connectOptions } = await libraryConnection(ctx);
  const progress = tableProgress(ctx, "restore");
  try {
    const r = await restore(dir, connection, {
      ...connectOptions,
      ...(jobs !== undefined ? { jobs } : {}),
      dataOnly: v["data-only"] === true,
      schemaOnly: v["schema-only"] === true,
      onProgress: progress.onProgress,
      signal: ctx.signal,
    });
    progress.finish();
    ctx.debug(`restored ${r.tables} table(s), ${r.rows} rows, ${r.entries} entries in ${(r.ms / 1000).toFixed(1)} s`);
  } catch (e) {
    progress.finish(ctx.signal.aborted ? "interrupted" : "failed");
    throw e;
  }
  return EXIT.ok;
}
