/**
 * `pg-rdma query`: run SQL and print the results as psql does for `-c` and `-f`.
 *
 * - Actions run in command-line order: each `-c` string is sent as one query (several
 *   statements in it run as one implicit transaction, as psql's `-c`; the results of those
 *   before a failing one are printed, then its error, as psql 15 does; no variable
 *   interpolation there, also as psql), each `-f FILE` (`-` for stdin) is split into statements
 *   by psql's rules (`cli/_script.ts`) with `:var` interpolation, meta-commands `\echo`,
 *   `\qecho`, `\warn`, `\set`, `\unset`, `\q`, and inline `COPY ... FROM STDIN` data. With
 *   neither, the script comes from stdin.
 * - Output: psql's aligned tables (default), `-A` unaligned with `-F`, `-x` expanded, `--csv`,
 *   `--json` (NDJSON rows, pg-rdma's own), `-t` rows only; command tags unless `-q`.
 *   `COPY ... TO STDOUT` writes its data to the output; `COPY ... FROM STDIN` in `-c` reads stdin.
 * - Errors and notices on stderr in psql's words (`ERROR:  ...`, `LINE n:` with a caret,
 *   `DETAIL:`, `HINT:`, `CONTEXT:`), prefixed `pg-rdma:FILE:LINE: ` inside a script.
 * - `-v ON_ERROR_STOP=1` stops at the first failing statement. Exit status: 0; 1 when the last
 *   action failed (a `-c` whose SQL failed, a script stopped by ON_ERROR_STOP, no connection, an
 *   unreadable file). psql uses 2 and 3 for some of these; pg-rdma's 2 means a usage error and 3
 *   "not implemented", so 1 it is. A script that goes on past errors exits 0, as psql's.
 * - Ctrl-C cancels the running statement on the server and stops (exit 130).
 *
 * @module
 */
import { createWriteStream, readFileSync } from "node:fs";
import { PostgresError, type QueryResult, TypeRegistry } from "../pg/mod.ts";
import { EXIT, UsageError } from "./_args.ts";
import type { CommandContext } from "./_commands.ts";
import { openConnection } from "./_connect.ts";
import { displayWidth, formatResult, type PrintOptions, type TextResult } from "./_format.ts";
import { isCopyFromStdin, isCopyToStdout, scanScript } from "./_script.ts";

/** Every value stays the server's text: psql prints what the server sent. */
class TextOnly extends TypeRegistry {
  override textParser(): undefined {
    return undefined;
  }
}

const TRUE = ["on", "true", "yes", "1", "t", "y"];
const FALSE = ["off", "false", "no", "0", "f", "n"];

/** psql's boolean variables: on/off, true/false, yes/no, 1/0. */
function boolVar(value: string | undefined, name: string): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v) || v === "") return false;
  throw new UsageError(`unrecognized value "${value}" for "${name}": Boolean expected`, {
    command: "query",
  });
}

/**
 * psql's `LINE n: ...` and caret lines for an error position (1-based, in characters of
 * `query`): the line holding it, cut to about 60 columns around it.
 */
export function errorPosition(query: string, position: number): string {
  const chars = [...query];
  const loc = position - 1;
  if (!(loc >= 0) || loc > chars.length) return "";
  const DISPLAY = 60;
  const MIN_RIGHT_CUT = 10;
  // Screen column of each character, tabs shown as spaces.
  const col: number[] = [];
  let c = 0;
  let line = 1;
  let beg = 0;
  let end = -1;
  for (let i = 0; i < chars.length; i++) {
    col[i] = c;
    const ch = chars[i];
    if (ch === "\t") chars[i] = " ";
    else if (ch === "\r" || ch === "\n") {
      if (i < loc) {
        if (ch === "\r" || i === 0 || chars[i - 1] !== "\r") line++;
        beg = i + 1;
      } else {
        end = i;
        break;
      }
    }
    c += Math.max(1, displayWidth(chars[i]));
  }
  if (end < 0) {
    end = chars.length;
    col[end] = c;
  }
  let begCut = false;
  let endCut = false;
  if (col[end] - col[beg] > DISPLAY) {
    if (col[beg] + DISPLAY >= col[loc] + MIN_RIGHT_CUT) {
      while (col[end] - col[beg] > DISPLAY) end--;
      endCut = true;
    } else {
      while (col[loc] + MIN_RIGHT_CUT < col[end]) (end--, endCut = true);
      while (col[end] - col[beg] > DISPLAY) (beg++, begCut = true);
    }
  }
  const prefix = `LINE ${line}: ${begCut ? "..." : ""}`;
  const text = chars.slice(beg, end).join("");
  return `${prefix}${text}${endCut ? "..." : ""}\n${
    " ".repeat(prefix.length + col[loc] - col[beg])
  }^\n`;
}

/** An error or notice as psql prints it (default verbosity), without the location prefix. */
export function formatServerMessage(
  e: Pick<
    PostgresError,
    "severity" | "message" | "detail" | "hint" | "position" | "internalPosition" | "internalQuery" | "where"
  >,
  query: string | undefined,
  isError: boolean,
): string {
  let s = `${e.severity ?? "ERROR"}:  ${e.message}\n`;
  if (e.position && query !== undefined) s += errorPosition(query, Number(e.position));
  else if (e.internalPosition && e.internalQuery) {
    s += errorPosition(e.internalQuery, Number(e.internalPosition));
  }
  if (e.detail) s += `DETAIL:  ${e.detail}\n`;
  if (e.hint) s += `HINT:  ${e.hint}\n`;
  if (e.internalQuery) s += `QUERY:  ${e.internalQuery}\n`;
  if (e.where && isError) s += `CONTEXT:  ${e.where}\n`;
  return s;
}

interface Output {
  write(s: string | Uint8Array): void;
  close(): Promise<void>;
}

function openOutput(ctx: CommandContext, path: string | undefined): Output {
  if (path === undefined || path === "-") {
    return { write: (s) => void ctx.stdout.write(s as string), close: async () => {} };
  }
  const file = createWriteStream(path);
  let failed: Error | undefined;
  file.on("error", (e) => (failed = e));
  return {
    write: (s) => {
      if (failed) throw new Error(`could not write to "${path}": ${failed.message}`, { cause: failed });
      file.write(s);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (failed) return reject(failed);
        file.end(() => (failed ? reject(failed) : resolve()));
      }),
  };
}

async function readStdin(): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const chunk of process.stdin) {
    parts.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
  }
  let n = 0;
  for (const p of parts) n += p.length;
  const all = new Uint8Array(n);
  let o = 0;
  for (const p of parts) (all.set(p, o), o += p.length);
  return new TextDecoder().decode(all);
}

function toText(r: QueryResult<unknown[]>): TextResult {
  return {
    command: r.command,
    columns: r.fields.map((f) => ({ name: f.name, typeOid: f.typeOid })),
    rows: r.rows as (string | null)[][],
  };
}

/** One `-c` or `-f` of the command line. */
type Action = { kind: "command"; text: string } | { kind: "file"; path: string };

function actionsOf(ctx: CommandContext): Action[] {
  const v = ctx.args.values;
  const commands = [...((v.command as string[] | undefined) ?? [])];
  const files = [...((v.file as string[] | undefined) ?? [])];
  const out: Action[] = [];
  for (const name of ctx.args.order) {
    if (name === "command") out.push({ kind: "command", text: commands.shift()! });
    else if (name === "file") out.push({ kind: "file", path: files.shift()! });
  }
  if (out.length === 0) out.push({ kind: "file", path: "-" });
  return out;
}

/** Runs `pg-rdma query`; resolves to the exit status. */
export async function queryCommand(ctx: CommandContext): Promise<number> {
  const v = ctx.args.values;
  const vars = new Map<string, string>();
  for (const assignment of (v.set as string[] | undefined) ?? []) {
    const eq = assignment.indexOf("=");
    if (eq === 0) {
      throw new UsageError(`invalid variable assignment "${assignment}"`, { command: "query" });
    }
    if (eq < 0) vars.delete(assignment);
    else vars.set(assignment.slice(0, eq), assignment.slice(eq + 1));
  }
  boolVar(vars.get("ON_ERROR_STOP"), "ON_ERROR_STOP"); // refuse a bad value before connecting
  const formats = [v["no-align"] && "-A", v.csv && "--csv", v.json && "--json"].filter(Boolean);
  if (formats.length > 1) {
    throw new UsageError(`${formats.join(" and ")} cannot be used together`, { command: "query" });
  }
  const print: PrintOptions = {
    format: v.json ? "json" : v.csv ? "csv" : v["no-align"] ? "unaligned" : "aligned",
    tuplesOnly: v["tuples-only"] === true,
    expanded: v.expanded === true,
    quiet: ctx.quiet,
    ...(typeof v["field-separator"] === "string"
      ? { fieldSeparator: (v["field-separator"] as string).replaceAll("\\t", "\t") }
      : {}),
  };
  const actions = actionsOf(ctx);
  // Read the scripts first: a missing file fails before anything runs.
  const scripts = new Map<Action, string>();
  let stdinUsed = false;
  for (const a of actions) {
    if (a.kind !== "file") continue;
    if (a.path === "-") {
      if (stdinUsed) continue;
      stdinUsed = true;
      scripts.set(a, await readStdin());
    } else {
      try {
        scripts.set(a, readFileSync(a.path, "utf8"));
      } catch (e) {
        ctx.stderr.write(`pg-rdma: query: error: ${a.path}: ${(e as Error).message}\n`);
        return EXIT.failure;
      }
    }
  }

  let where = ""; // "pg-rdma:FILE:LINE: " while a script runs
  let current: string | undefined; // the SQL being run, for error positions
  const client = await openConnection(ctx, {
    types: new TextOnly(),
    onNotice: (n) => {
      ctx.stderr.write(where + formatServerMessage(n as PostgresError, undefined, false));
    },
  });
  const out = openOutput(ctx, typeof v.output === "string" ? v.output : undefined);
  const onAbort = () => void client.cancel().catch(() => {});
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  const stopOnError = () => boolVar(vars.get("ON_ERROR_STOP"), "ON_ERROR_STOP");
  const reportError = (e: unknown) => {
    if (e instanceof PostgresError) {
      ctx.stderr.write(where + formatServerMessage(e, current, true));
    } else if (e instanceof UsageError) {
      ctx.stderr.write(`${where || "pg-rdma: query: "}error: ${e.message}\n`);
    } else throw e; // the connection is gone: main reports it
  };

  /** Runs one query (one or more statements); prints its results. */
  const run = async (sql: string, copyData?: string): Promise<void> => {
    current = sql;
    if (v["echo-queries"]) out.write(sql + "\n");
    if (isCopyToStdout(sql)) {
      const copy = client.copyTo(sql);
      // psql prints no tag after data it wrote to stdout.
      for await (const chunk of copy) out.write(chunk);
      return;
    }
    if (isCopyFromStdin(sql)) {
      const source = copyData !== undefined ? [copyData] : process.stdin;
      const r = await client.copyFrom(sql, source);
      if (!ctx.quiet) out.write(r.command + "\n");
      return;
    }
    // Each statement's result as it completes: psql 15 shows those before a failing one.
    await client.simpleQuery<unknown[]>(sql, { rowMode: "array", onResult: (r) => out.write(formatResult(toText(r), print)) });
  };

  let status: number = EXIT.ok;
  let quit = false;
  try {
    if (v["single-transaction"]) await client.simpleQuery("BEGIN");
    for (const a of actions) {
      if (quit || ctx.signal.aborted) break;
      if (a.kind === "command") {
        where = "";
        try {
          if (a.text.trimStart().startsWith("\\")) {
            const [item] = [...scanScript(a.text, vars)];
            if (item?.kind === "meta") quit = meta(item.name, item.args);
          } else await run(a.text);
          status = EXIT.ok;
        } catch (e) {
          reportError(e);
          status = EXIT.failure;
          if (stopOnError()) break;
        }
        continue;
      }
      const text = scripts.get(a) ?? "";
      const name = a.path === "-" ? "<stdin>" : a.path;
      status = EXIT.ok;
      for (const item of scanScript(text, vars)) {
        if (ctx.signal.aborted) break;
        where = `pg-rdma:${name}:${item.line}: `;
        try {
          if (item.kind === "meta") {
            if ((quit = meta(item.name, item.args))) break;
          } else await run(item.sql, item.copyData);
        } catch (e) {
          reportError(e);
          if (stopOnError()) {
            status = EXIT.failure;
            quit = true;
            break;
          }
        }
      }
      where = "";
    }
    if (v["single-transaction"] && !ctx.signal.aborted && !client.closed) {
      await client.simpleQuery(status === EXIT.ok ? "COMMIT" : "ROLLBACK");
    }
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    await out.close();
    await client.close();
  }
  return status;

  /** Runs a meta-command; true for `\q`. */
  function meta(name: string, args: string[]): boolean {
    switch (name) {
      case "q":
      case "quit":
        return true;
      case "echo":
      case "qecho":
        out.write(args.join(" ") + "\n");
        return false;
      case "warn":
        ctx.stderr.write(args.join(" ") + "\n");
        return false;
      case "set":
        if (args.length === 0) {
          for (const [k, val] of vars) out.write(`${k} = '${val}'\n`);
        } else vars.set(args[0], args.slice(1).join(""));
        return false;
      case "unset":
        if (args[0] !== undefined) vars.delete(args[0]);
        return false;
      default:
        throw new UsageError(
          `invalid command \\${name} (pg-rdma query runs SQL and \\echo, \\qecho, \\warn, \\set, \\unset, \\q)`,
        );
    }
  }
}
