/**
 * Command-line options: one spec per option drives both `node:util` `parseArgs` and the `--help`
 * text, so the help can never name a flag the parser does not know (or miss one it does).
 *
 * Parsing follows PostgreSQL's tools (getopt_long) where they differ from `parseArgs` defaults:
 * `--help` / `-?`, `-V`, short options bundled (`-qf out`, `-fout`), `--opt=value`, and `--`
 * ending the options. It is stricter in one place: a value taken from the next argument may not
 * start with "-" (`-f -v` is almost always a forgotten file name), write `-f=-v` or `--file=-v`;
 * a lone `-` (stdin/stdout) is fine.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseWithRsocket } from "../transport/select.ts";

/**
 * Exit status of every `pg-rdma` command, documented in `--help` and the README.
 *
 * | status | meaning |
 * |---|---|
 * | 0 | success (`doctor`: RDMA is usable here) |
 * | 1 | runtime failure (`doctor`: RDMA is not usable here) |
 * | 2 | usage error: unknown command or option, bad or missing value |
 * | 3 | the command is not implemented yet |
 * | 130 | interrupted by SIGINT (Ctrl-C), after a clean stop |
 * | 143 | terminated by SIGTERM, after a clean stop |
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notImplemented: 3,
  interrupted: 130,
  terminated: 143,
} as const;

/** A wrong command line: exit status 2, the message and a `--help` hint on stderr. */
export class UsageError extends Error {
  /** The command whose `--help` the hint names; `undefined` for the top level. */
  readonly command: string | undefined;

  constructor(message: string, options?: { command?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "UsageError";
    this.command = options?.command;
  }
}

/** One option of a command. */
export interface OptionSpec {
  /** Long name without dashes, e.g. `"file"`; also the key in the parsed values. */
  readonly long: string;
  /** One-character short name, e.g. `"f"`. */
  readonly short?: string;
  /** `"boolean"` (a flag) or `"string"` (takes a value). */
  readonly type: "boolean" | "string";
  /** The value's name in `--help`, e.g. `"FILE"`; for strings only. */
  readonly arg?: string;
  /** May be given more than once; the values collect into an array. */
  readonly multiple?: boolean;
  /** One line for `--help` (wrapped lines may follow after "\n"). */
  readonly help: string;
  /** Allowed values (checked after parsing), e.g. `["p", "c", "d", "t", "plain", ...]`. */
  readonly choices?: readonly string[];
  /** `--name` alone means this value (for `--with-rsocket`, which mirrors an optional argument). */
  readonly bare?: string;
}

/** A titled group of options in `--help`. */
export interface OptionGroup {
  readonly title: string;
  readonly options: readonly OptionSpec[];
}

/** The connection options of PostgreSQL's tools, plus `--with-rsocket`. */
export const CONNECTION_OPTIONS: OptionGroup = {
  title: "Connection options",
  options: [
    {
      long: "dbname",
      short: "d",
      type: "string",
      arg: "DBNAME",
      help:
        'database to connect to; may be a connection string\n("host=db user=app" or "postgresql://...")',
    },
    {
      long: "host",
      short: "h",
      type: "string",
      arg: "HOSTNAME",
      help: "database server host or socket directory",
    },
    { long: "port", short: "p", type: "string", arg: "PORT", help: "database server port" },
    {
      long: "username",
      short: "U",
      type: "string",
      arg: "NAME",
      help: "connect as this database user",
    },
    { long: "no-password", short: "w", type: "boolean", help: "never prompt for a password" },
    { long: "password", short: "W", type: "boolean", help: "force a password prompt" },
    {
      long: "with-rsocket",
      type: "string",
      arg: "true|false|prefer",
      bare: "true",
      help: "RDMA (rsockets): true (RDMA or fail), false (TCP), prefer\n" +
        "(RDMA when a device is present, else TCP); alone: true",
    },
  ],
};

/** What a command line gave. */
export interface ParsedArgs {
  /** Option values by long name: `true` for flags, strings, or arrays for `multiple`. */
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
  /** The long names of the options given, in command-line order (repeats included). */
  readonly order: readonly string[];
}

type ParseArgsOptions = Record<
  string,
  { type: "boolean" | "string"; short?: string; multiple?: boolean }
>;

/**
 * Parses `argv` (the arguments after the command name) against the option groups; throws
 * {@linkcode UsageError} naming the first problem: an unknown option, a flag given a value, a
 * missing value, a value outside the choices, or more positionals than `maxPositionals`.
 *
 * @example
 * ```ts
 * const { values } = parseCommandLine([CONNECTION_OPTIONS], ["-h", "db", "--with-rsocket"]);
 * values["with-rsocket"]; // "true"
 * ```
 */
export function parseCommandLine(
  groups: readonly OptionGroup[],
  argv: readonly string[],
  opts: { command?: string; maxPositionals?: number } = {},
): ParsedArgs {
  const specs = new Map<string, OptionSpec>();
  const shorts = new Map<string, string>();
  for (const o of groups.flatMap((g) => g.options)) {
    if (specs.has(o.long)) throw new TypeError(`option --${o.long} is declared twice`);
    if (o.short !== undefined) {
      if (o.short.length !== 1) {
        throw new TypeError(`short option of --${o.long} must be one character`);
      }
      if (shorts.has(o.short)) throw new TypeError(`short option -${o.short} is declared twice`);
      shorts.set(o.short, o.long);
    }
    specs.set(o.long, o);
  }
  const usage = (message: string) => new UsageError(message, { command: opts.command });

  // An option with a bare form (`--with-rsocket`) is a string option whose lone flag means a
  // value; rewriting it first keeps parseArgs from taking the next argument as its value.
  const end = argv.indexOf("--");
  const args = argv.map((a, i) => {
    if ((end === -1 || i < end) && a.startsWith("--")) {
      const bare = specs.get(a.slice(2))?.bare;
      if (bare !== undefined) return `${a}=${bare}`;
    }
    return a;
  });

  const config: ParseArgsOptions = {};
  for (const o of specs.values()) {
    config[o.long] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  // strict: false, then our own checks on the tokens: the messages are ours (pg's wording, the
  // same in all three runtimes) and "-f -v" can be refused.
  const { values, positionals, tokens } = parseArgs({
    args,
    options: config,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const order: string[] = [];
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    order.push(t.name);
    const spec = specs.get(t.name);
    if (!spec) throw usage(`unrecognized option "${t.rawName}"`);
    if (spec.type === "boolean" && t.value !== undefined) {
      throw usage(`option "${t.rawName}" does not take a value`);
    }
    if (spec.type === "string") {
      if (t.value === undefined) throw usage(`option "${t.rawName}" requires a value`);
      if (!t.inlineValue && t.value.startsWith("-") && t.value !== "-") {
        throw usage(
          `option "${t.rawName}" requires a value, but got "${t.value}", which looks like an option; ` +
            `if that is the value, write --${spec.long}=${t.value}`,
        );
      }
      if (spec.choices && !spec.choices.includes(t.value)) {
        throw usage(
          `invalid value "${t.value}" for option "${t.rawName}" (expected ${
            spec.choices.join(", ")
          })`,
        );
      }
    }
  }
  const max = opts.maxPositionals ?? 0;
  if (positionals.length > max) {
    throw usage(`too many command-line arguments (first is "${positionals[max]}")`);
  }
  const out: Record<string, string | boolean | string[] | undefined> = {};
  for (const [k, v] of Object.entries(values)) {
    out[k] = Array.isArray(v) ? v.map(String) : (v as string | boolean | undefined);
  }
  if (typeof out["with-rsocket"] === "string") {
    try {
      out["with-rsocket"] = parseWithRsocket(out["with-rsocket"], "--with-rsocket");
    } catch (e) {
      throw usage(e instanceof Error ? e.message : String(e));
    }
  }
  return { values: out, positionals, order };
}

/** How to ask for a password: libpq tools' `-w` (never), `-W` (always), or when the server asks. */
export type PasswordPrompt = "never" | "always" | "auto";

/**
 * The libpq keyword record that the connection options ask for, for `resolveConnInfo()` in
 * `pg/conninfo.ts`: only what was given on the command line. The environment (`PGHOST`,
 * `WITH_RSOCKET`, ...), service files and defaults apply there, with libpq's precedence; a
 * `dbname` that is a connection string is expanded there too, and options given separately
 * (`-h`, `-p`, `-U`) override what it says, as in PostgreSQL's tools.
 *
 * @example
 * ```ts
 * connectionRecord({ dbname: "postgresql://db/app", port: "5433", "with-rsocket": "prefer" });
 * // { dbname: "postgresql://db/app", port: "5433", with_rsocket: "prefer" }
 * ```
 */
export function connectionRecord(
  values: ParsedArgs["values"],
  positional?: { dbname?: string; user?: string },
): Record<string, string> {
  const rec: Record<string, string> = {};
  const str = (k: string) => (typeof values[k] === "string" ? values[k] as string : undefined);
  const dbname = str("dbname") ?? positional?.dbname;
  if (dbname !== undefined) rec.dbname = dbname;
  const host = str("host");
  if (host !== undefined) rec.host = host;
  const port = str("port");
  if (port !== undefined) rec.port = port;
  const user = str("username") ?? positional?.user;
  if (user !== undefined) rec.user = user;
  const rs = str("with-rsocket");
  if (rs !== undefined) rec.with_rsocket = rs;
  return rec;
}

/** `-w` / `-W` as a {@linkcode PasswordPrompt}; the last one given wins, as in psql. */
export function passwordPrompt(parsed: ParsedArgs): PasswordPrompt {
  let last: PasswordPrompt = "auto";
  for (const name of parsed.order) {
    if (name === "no-password") last = "never";
    else if (name === "password") last = "always";
  }
  return last;
}

/** Wraps `--help` lines to this width. */
const COLUMN = 29;

/** One option's `--help` lines: `  -f, --file=FILE          text`. */
function optionLines(o: OptionSpec): string[] {
  const value = o.type === "string"
    ? (o.bare !== undefined ? `[=${o.arg ?? "VALUE"}]` : `=${o.arg ?? "VALUE"}`)
    : "";
  const names = `  ${o.short ? `-${o.short}, ` : "    "}--${o.long}${value}`;
  const text = o.help.split("\n");
  const lines: string[] = [];
  if (names.length + 2 > COLUMN) {
    lines.push(names);
    for (const t of text) lines.push(" ".repeat(COLUMN) + t);
  } else {
    lines.push(names.padEnd(COLUMN) + text[0]);
    for (const t of text.slice(1)) lines.push(" ".repeat(COLUMN) + t);
  }
  return lines;
}

/** The `--help` text of a command, from its option groups. */
export function helpText(opts: {
  name: string;
  summary: string;
  usage: readonly string[];
  description?: string;
  groups: readonly OptionGroup[];
  footer?: string;
}): string {
  const out: string[] = [`pg-rdma ${opts.name}: ${opts.summary}`, ""];
  if (opts.description) out.push(opts.description, "");
  out.push("Usage:");
  for (const u of opts.usage) out.push(`  pg-rdma ${opts.name} ${u}`);
  for (const g of opts.groups) {
    out.push("", `${g.title}:`);
    for (const o of g.options) out.push(...optionLines(o));
  }
  if (opts.footer) out.push("", opts.footer);
  out.push("", EXIT_STATUS_HELP);
  return out.join("\n") + "\n";
}

/** The exit-status paragraph every `--help` ends with. */
export const EXIT_STATUS_HELP = `Exit status:
  0 success, 1 failure, 2 usage error, 3 not implemented yet,
  130 interrupted (SIGINT), 143 terminated (SIGTERM)`;
