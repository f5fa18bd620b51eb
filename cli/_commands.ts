/**
 * The subcommands of `pg-rdma`: name, options, help, and how each runs. Options are named as in
 * the PostgreSQL tool each command mirrors (pg_dump, pg_restore, pg_receivewal, pg_recvlogical,
 * pg_basebackup, psql, pgbench), so what users know carries over.
 *
 * A command without `run` is registered but not implemented yet: its `--help` works, its command
 * line is checked, and running it exits with status 3. Implementations are loaded on first use
 * (dynamic `import()`), so `--help` loads no FFI, no client, nothing else.
 *
 * @module
 */
import {
  CONNECTION_OPTIONS,
  type OptionGroup,
  type OptionSpec,
  type ParsedArgs,
  type PasswordPrompt,
  UsageError,
} from "./_args.ts";
import type { Progress, ProgressOptions, ProgressStream } from "./_progress.ts";

/** Everything a command gets to run: its parsed command line, where to write, and the stop signal. */
export interface CommandContext {
  /** The command's name, e.g. `"dump"`. */
  readonly command: string;
  /** Option values by long name, positionals, and the order options came in. */
  readonly args: ParsedArgs;
  /**
   * The libpq keyword record of the connection options (only what the command line said), for
   * `resolveConnInfo()`; the environment and service files apply there.
   */
  readonly connection: Readonly<Record<string, string>>;
  /** `-w` (never), `-W` (always) or neither (when the server asks). */
  readonly passwordPrompt: PasswordPrompt;
  readonly quiet: boolean;
  readonly verbose: boolean;
  /** Aborted on SIGINT or SIGTERM: stop cleanly (finish the current write, close, flush) and return. */
  readonly signal: AbortSignal;
  /** The environment (`process.env` unless a test gave another). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: ProgressStream;
  readonly stderr: ProgressStream;
  /** A progress reporter on stderr that honours `--quiet`. */
  progress(opts?: Omit<ProgressOptions, "stream" | "quiet">): Progress;
  /** A message on stderr (`pg-rdma: <command>: ...`), unless `--quiet`. */
  info(message: string): void;
  /** A message on stderr only with `--verbose`. */
  debug(message: string): void;
}

/** One subcommand. */
export interface Command {
  readonly name: string;
  /** One line for the command list and the first line of `--help`. */
  readonly summary: string;
  /** The synopsis lines after `pg-rdma <name>`. */
  readonly usage: readonly string[];
  readonly description?: string;
  /** The command's own options, in `--help` order. */
  readonly options: readonly OptionSpec[];
  /** Takes the connection options (`-d -h -p -U -w -W --with-rsocket`). */
  readonly connects: boolean;
  /**
   * Positional arguments: how many at most, and which of them stand for `--dbname` /
   * `--username` when those are not given (as pg_dump's `[DBNAME]`, psql's `[DBNAME [USERNAME]]`).
   */
  readonly positionals?: { max: number; dbname?: number; user?: number };
  /** `-v` is taken by the command (psql's `--set`): `--verbose` has no short form. */
  readonly noVerboseShort?: boolean;
  /** `--help` text after the options. */
  readonly footer?: string;
  /** Listed in `pg-rdma --help` (false only for internal commands). Default true. */
  readonly listed?: boolean;
  /** Checks beyond the option syntax; throws {@linkcode UsageError}. */
  readonly check?: (args: ParsedArgs) => void;
  /** Runs the command; resolves to the exit status. Absent: not implemented yet (exit 3). */
  readonly run?: (ctx: CommandContext) => Promise<number>;
}

/** `--quiet`, `--verbose`, `--help` for a command. */
export function generalOptions(cmd: Pick<Command, "noVerboseShort">): OptionGroup {
  return {
    title: "General options",
    options: [
      {
        long: "quiet",
        short: "q",
        type: "boolean",
        help: "print nothing but errors (no progress, no summary)",
      },
      cmd.noVerboseShort
        ? { long: "verbose", type: "boolean", help: "say more about what is done" }
        : { long: "verbose", short: "v", type: "boolean", help: "say more about what is done" },
      { long: "help", short: "?", type: "boolean", help: "show this help, then exit" },
    ],
  };
}

/** The option groups of a command, in `--help` order. */
export function optionGroups(cmd: Command): OptionGroup[] {
  const groups: OptionGroup[] = [];
  if (cmd.options.length) groups.push({ title: "Options", options: cmd.options });
  if (cmd.connects) groups.push(CONNECTION_OPTIONS);
  groups.push(generalOptions(cmd));
  return groups;
}

const s = (
  long: string,
  short: string | undefined,
  arg: string,
  help: string,
  extra: Partial<OptionSpec> = {},
): OptionSpec => ({
  long,
  ...(short ? { short } : {}),
  type: "string",
  arg,
  help,
  ...extra,
});
const b = (long: string, short: string | undefined, help: string): OptionSpec => ({
  long,
  ...(short ? { short } : {}),
  type: "boolean",
  help,
});

const need = (cmd: string, args: ParsedArgs, option: string, message: string) => {
  if (args.values[option] === undefined) throw new UsageError(message, { command: cmd });
};

const ENV_FOOTER =
  `Environment: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSERVICE and the other
libpq variables, and WITH_RSOCKET=true|false|prefer; options on the command line win.`;

/** Every subcommand, in `pg-rdma --help` order. */
export const COMMANDS: readonly Command[] = [
  {
    name: "dump",
    summary: "export a database, like pg_dump, over RDMA when asked",
    usage: ["[OPTION]... [DBNAME]"],
    connects: true,
    positionals: { max: 1, dbname: 0 },
    options: [
      s("file", "f", "FILE", "output file or directory name (default: stdout)"),
      s(
        "format",
        "F",
        "FORMAT",
        "p plain SQL (default), d directory (for restore), or one\n" +
          "file per table: csv, ndjson, msgpack, binary, text",
        {
          choices: ["p", "plain", "d", "directory", "csv", "ndjson", "msgpack", "binary", "text"],
        },
      ),
      s("jobs", "j", "NUM", "use this many parallel jobs to dump (directory format)"),
      b("data-only", "a", "dump only the data, not the schema"),
      b("schema-only", "s", "dump only the schema, no data"),
      s("schema", "n", "PATTERN", "dump the matching schemas only", { multiple: true }),
      s("exclude-schema", "N", "PATTERN", "do not dump the matching schemas", { multiple: true }),
      s("table", "t", "PATTERN", "dump the matching tables only", { multiple: true }),
      s("exclude-table", "T", "PATTERN", "do not dump the matching tables", { multiple: true }),
      s("exclude-table-data", undefined, "PATTERN", "do not dump data for the matching tables", {
        multiple: true,
      }),
      b("no-owner", "O", "skip restoration of object ownership"),
      b("no-privileges", "x", "do not dump privileges (grant/revoke)"),
      s("snapshot", undefined, "SNAPSHOT", "use this exported snapshot for the dump"),
      b("serializable-deferrable", undefined, "wait until the dump can run without anomalies"),
      s("lock-wait-timeout", undefined, "MS", "fail after waiting MS for a table lock"),
      s("compress", "Z", "METHOD[:DETAIL]", "compress the output (gzip, lz4, zstd or none)"),
      s("data-format", undefined, "auto|binary|text", "-Fd data files: binary COPY for wide rows (auto, default), wherever the types allow, or text", {
        choices: ["auto", "binary", "text"],
      }),
      b("no-sync", undefined, "do not wait for changes to reach the disk"),
      b("no-busy-poll", undefined, "one job: sleep between reads instead of polling (less CPU, more for the server)"),
    ],
    footer: ENV_FOOTER,
    run: async (ctx) => (await import("./dump.ts")).dumpCommand(ctx),
  },
  {
    name: "restore",
    summary: "restore a dump made by pg-rdma dump, like pg_restore",
    usage: ["[OPTION]... [FILE]"],
    connects: true,
    positionals: { max: 1 },
    options: [
      s("file", "f", "FILE", "output file for the SQL script (when no -d is given)"),
      s("format", "F", "d|stream", "dump format (detected when not given)", {
        choices: ["d", "directory", "stream"],
      }),
      s("jobs", "j", "NUM", "use this many parallel jobs to restore"),
      b("data-only", "a", "restore only the data, not the schema"),
      b("schema-only", "s", "restore only the schema, no data"),
      b("clean", "c", "drop database objects before recreating them"),
      b("create", "C", "create the target database"),
      b("exit-on-error", "e", "stop at the first error (default: continue and count them)"),
      b("list", "l", "print a summarized table of contents of the archive"),
      s("use-list", "L", "FILE", "restore only the objects listed in FILE, in its order"),
      s("schema", "n", "NAME", "restore only objects in this schema", { multiple: true }),
      s("exclude-schema", "N", "NAME", "do not restore objects in this schema", { multiple: true }),
      s("table", "t", "NAME", "restore the named table only", { multiple: true }),
      b("single-transaction", "1", "restore as a single transaction"),
      b("if-exists", undefined, "use IF EXISTS when dropping objects"),
      b("no-owner", "O", "skip restoration of object ownership"),
      b("no-privileges", "x", "skip restoration of access privileges (grant/revoke)"),
    ],
    footer: ENV_FOOTER,
    run: async (ctx) => (await import("./dump.ts")).restoreCommand(ctx),
  },
  {
    name: "receivewal",
    summary: "stream write-ahead log to files, like pg_receivewal",
    usage: ["-D DIRECTORY [OPTION]..."],
    connects: true,
    options: [
      s("directory", "D", "DIR", "receive write-ahead log files into this directory"),
      s("endpos", "E", "LSN", "exit after receiving the specified LSN"),
      b("if-not-exists", undefined, "do not error if the slot already exists when creating it"),
      b("no-loop", "n", "do not loop on connection lost"),
      b("no-sync", undefined, "do not wait for changes to reach the disk"),
      s(
        "status-interval",
        "s",
        "SECS",
        "time between status packets sent to the server (default: 10)",
      ),
      s("slot", "S", "SLOTNAME", "replication slot to use"),
      b("synchronous", undefined, "flush write-ahead log immediately after writing"),
      s("compress", "Z", "METHOD[:DETAIL]", "compress the files (gzip, lz4, zstd or none)"),
      b("create-slot", undefined, "create a new replication slot (for the slot's name see --slot)"),
      b("drop-slot", undefined, "drop the replication slot (for the slot's name see --slot)"),
    ],
    check(args) {
      const action = args.values["create-slot"] || args.values["drop-slot"];
      if (!action) need("receivewal", args, "directory", "no target directory specified (-D DIR)");
      if (action && args.values.slot === undefined) {
        throw new UsageError("--create-slot and --drop-slot need a slot name (--slot)", {
          command: "receivewal",
        });
      }
    },
    footer: ENV_FOOTER,
    run: async (ctx) => (await import("./receivewal.ts")).receivewalCommand(ctx),
  },
  {
    name: "recvlogical",
    summary: "control logical decoding streams, like pg_recvlogical",
    usage: ["--slot=SLOT {--create-slot | --start | --drop-slot} [OPTION]..."],
    connects: true,
    options: [
      b("create-slot", undefined, "create a new replication slot"),
      b("drop-slot", undefined, "drop the replication slot"),
      b("start", undefined, "start streaming in a replication slot"),
      s("endpos", "E", "LSN", "exit after receiving the specified LSN"),
      s("file", "f", "FILE", "receive the log into this file, - for stdout"),
      s("fsync-interval", "F", "SECS", "time between fsyncs to the output file (default: 10)"),
      b("if-not-exists", undefined, "do not error if the slot already exists when creating it"),
      s("startpos", "I", "LSN", "where in an existing slot should the streaming start"),
      b("no-loop", "n", "do not loop on connection lost"),
      s(
        "option",
        "o",
        "NAME[=VALUE]",
        "pass option NAME with optional value VALUE to the\noutput plugin",
        {
          multiple: true,
        },
      ),
      s("plugin", "P", "PLUGIN", "use output plugin PLUGIN (default: test_decoding)"),
      s(
        "status-interval",
        "s",
        "SECS",
        "time between status packets sent to the server (default: 10)",
      ),
      s("slot", "S", "SLOTNAME", "name of the logical replication slot"),
      b("two-phase", "t", "enable decoding of prepared transactions when creating a slot"),
      b(
        "failover",
        undefined,
        "enable replication slot synchronization to standbys when\ncreating a slot",
      ),
      s("format", undefined, "text|ndjson|msgpack", "output: the plugin's text (default), NDJSON\nor MessagePack records", {
        choices: ["text", "ndjson", "msgpack"],
      }),
    ],
    check(args) {
      const v = args.values;
      need("recvlogical", args, "slot", "no slot specified (--slot=SLOT)");
      if (!v["create-slot"] && !v.start && !v["drop-slot"]) {
        throw new UsageError(
          "at least one action needs to be specified (--create-slot, --start or --drop-slot)",
          {
            command: "recvlogical",
          },
        );
      }
      if (v["drop-slot"] && (v["create-slot"] || v.start)) {
        throw new UsageError("cannot use --create-slot or --start together with --drop-slot", {
          command: "recvlogical",
        });
      }
    },
    footer: ENV_FOOTER,
    run: async (ctx) => (await import("./recvlogical.ts")).recvlogicalCommand(ctx),
  },
  {
    name: "basebackup",
    summary: "take a base backup of a PostgreSQL cluster, like pg_basebackup",
    usage: ["-D DIRECTORY [OPTION]..."],
    connects: true,
    options: [
      s(
        "pgdata",
        "D",
        "DIRECTORY",
        "receive the base backup into this directory (- with -Ft: stdout)",
      ),
      s("format", "F", "p|t", "output format (plain (default), tar)", {
        choices: ["p", "plain", "t", "tar"],
      }),
      s(
        "max-rate",
        "r",
        "RATE",
        'maximum transfer rate to transfer the data directory\n(in kB/s, or use suffix "k" or "M")',
      ),
      b("write-recovery-conf", "R", "write configuration for replication"),
      s("target", "t", "TARGET[:DETAIL]", "backup target (if other than client)"),
      s("tablespace-mapping", "T", "OLDDIR=NEWDIR", "relocate the tablespace in OLDDIR to NEWDIR", {
        multiple: true,
      }),
      s("waldir", undefined, "WALDIR", "location for the write-ahead log directory"),
      s(
        "wal-method",
        "X",
        "none|fetch|stream",
        "include required WAL files with the specified method",
        {
          choices: ["none", "n", "fetch", "f", "stream", "s"],
        },
      ),
      b("gzip", "z", "compress tar output"),
      s("compress", "Z", "METHOD[:DETAIL]", "compress on client or server as specified"),
      s("checkpoint", "c", "fast|spread", "set fast or spread (default) checkpointing", {
        choices: ["fast", "spread"],
      }),
      b("create-slot", "C", "create replication slot"),
      s("label", "l", "LABEL", "set backup label"),
      b("no-clean", "n", "do not clean up after errors"),
      b("no-sync", "N", "do not wait for changes to be written safely to disk"),
      b("progress", "P", "show progress information"),
      s("slot", "S", "SLOTNAME", "replication slot to use"),
      s("incremental", "i", "OLDMANIFEST", "take incremental backup (PostgreSQL 17+)"),
      s(
        "manifest-checksums",
        undefined,
        "SHA{224,256,384,512}|CRC32C|NONE",
        "use algorithm for manifest checksums",
      ),
      b("no-manifest", undefined, "suppress generation of backup manifest"),
      b("no-slot", undefined, "prevent creation of temporary replication slot"),
      b("no-verify-checksums", undefined, "do not verify checksums"),
    ],
    check(args) {
      need("basebackup", args, "pgdata", "no target directory specified (-D DIRECTORY)");
    },
    footer: ENV_FOOTER,
    run: async (ctx) => (await import("./basebackup.ts")).basebackupCommand(ctx),
  },
  {
    name: "query",
    summary: "run SQL and print the results, like psql -c / -f",
    usage: ["[OPTION]... [DBNAME [USERNAME]]"],
    connects: true,
    noVerboseShort: true,
    positionals: { max: 2, dbname: 0, user: 1 },
    options: [
      s("command", "c", "COMMAND", "run this SQL command (may be repeated)", { multiple: true }),
      s("file", "f", "FILE", "run the SQL in FILE, - for stdin (may be repeated)", {
        multiple: true,
      }),
      b("single-transaction", "1", "run all commands in one transaction"),
      s("set", "v", "NAME=VALUE", "set variable NAME to VALUE (used as :NAME in the SQL)", {
        multiple: true,
      }),
      s("output", "o", "FILE", "write results to FILE (default: stdout)"),
      b("no-align", "A", "unaligned output"),
      b("csv", undefined, "CSV output"),
      s("field-separator", "F", "STRING", 'field separator for unaligned output (default: "|")'),
      b("tuples-only", "t", "print rows only"),
      b("json", undefined, "NDJSON output: one JSON object per row (pg-rdma's own)"),
      b("expanded", "x", "one line per column (expanded output)"),
      b("echo-queries", "e", "echo commands sent to the server"),
      b("no-psqlrc", "X", "accepted for psql compatibility (no startup file is read)"),
    ],
    footer: ENV_FOOTER +
      `\n\nWithout -c or -f the SQL comes from stdin. With -v ON_ERROR_STOP=1 a script stops at
its first error. Exit status 1 when the last -c or script failed (psql: 1 or 3).`,
    run: async (ctx) => (await import("./query.ts")).queryCommand(ctx),
  },
  {
    name: "tunnel",
    summary: "relay TCP clients to PostgreSQL over RDMA, or RDMA clients to a TCP server",
    usage: ["--listen=URL --connect=URL [OPTION]..."],
    description:
      "Lets any PostgreSQL client (psql, pg_dump, JDBC, a standby) use RDMA without changing it.\n" +
      "Client side: --listen tcp://127.0.0.1:6432 --connect rdma://db-host:5432\n" +
      "Server side: --listen rdma://0.0.0.0:5432 --connect tcp://127.0.0.1:5432\n" +
      "An endpoint is tcp://HOST:PORT or rdma://HOST:PORT ([HOST:]PORT means tcp; default host\n" +
      "127.0.0.1). Bytes pass unchanged, both ways, with backpressure and half-close.",
    connects: false,
    options: [
      s("listen", "l", "URL", "where to accept clients (tcp://HOST:PORT or rdma://HOST:PORT)"),
      s("connect", "c", "URL", "where to carry each connection (tcp:// or rdma://)"),
      s("provider", undefined, "rdma|kernel", "rsockets provider for rdma:// endpoints: rdma\n" +
        "(librdmacm, default) or kernel (the same code on TCP)", { choices: ["rdma", "kernel"] }),
      s(
        "max-connections",
        undefined,
        "NUM",
        "refuse clients beyond this many at once (default: 1000)",
      ),
      s("grace", undefined, "SECS", "on SIGINT/SIGTERM, wait this long for open connections\n" +
        "before closing them (default: 10)"),
    ],
    check(args) {
      need("tunnel", args, "listen", "no listen address specified (--listen=URL)");
      need("tunnel", args, "connect", "no upstream specified (--connect=URL)");
    },
    footer: "Log lines (connection received / disconnection, as PostgreSQL's log_connections)\n" +
      "go to stderr; -q silences them. SIGINT/SIGTERM stop accepting, let open connections\n" +
      "finish (--grace), then exit 130/143.",
    run: async (ctx) => (await import("./tunnel.ts")).tunnelCommand(ctx),
  },
  {
    name: "bench",
    summary: "measure a connection path (tps, latency, COPY MB/s) over RDMA or TCP, like pgbench",
    usage: ["-i [-s SCALE] [OPTION]... [DBNAME]", "[-S | --copy SIZE] [-c NUM] [-T SECS | -t NUM] [OPTION]... [DBNAME]"],
    description:
      "-i creates the table pg_rdma_bench (pgbench_accounts' columns); without it the run uses\n" +
      "pg_rdma_bench, or an existing pgbench schema (pgbench -i). Clients are connections in this\n" +
      "process; --with-rsocket picks the transport, and the report names the one that ran.",
    connects: true,
    positionals: { max: 1, dbname: 0 },
    options: [
      b("initialize", "i", "create pg_rdma_bench (100 000 rows per scale unit), then exit"),
      s("scale", "s", "NUM", "scaling factor for -i (default: 1)"),
      s("client", "c", "NUM", "number of concurrent database clients (default: 1)"),
      s("jobs", "j", "NUM", "number of threads (worker threads of this runtime) the clients\nare dealt to (default: 1: they share this process's thread)"),
      s("time", "T", "NUM", "duration of the benchmark in seconds"),
      s("transactions", "t", "NUM", "number of transactions each client runs (default: 10)"),
      b("select-only", "S", "perform a SELECT-only workload"),
      s("copy", undefined, "SIZE", "each transaction is a COPY TO STDOUT of SIZE bytes\n(e.g. 8MB, 1GB; MB = 2^20 bytes); reports MB/s"),
      s("protocol", "M", "simple|extended|prepared", "protocol for submitting queries (default: simple)", {
        choices: ["simple", "extended", "prepared"],
      }),
      s("progress", "P", "NUM", "show a progress report every NUM seconds"),
      b("json", undefined, "print the report as one JSON object (stable keys)"),
    ],
    footer: ENV_FOOTER +
      "\n\nExit status 1 when a client aborted (its transaction failed) or no connection was made.",
    run: async (ctx) => (await import("./bench.ts")).benchCommand(ctx),
  },
  {
    name: "doctor",
    summary: "check whether RDMA (rsockets) can work on this host, and what to fix",
    usage: ["[OPTION]..."],
    description:
      "Checks librdmacm and its rsocket functions, RDMA devices and their ports, kernel modules,\n" +
      "the locked-memory limit, swap, /etc/rdma/rsocket settings, whether an rsocket can be\n" +
      "created, and which transport with_rsocket=prefer would choose.",
    connects: false,
    options: [
      b("json", undefined, "print the report as JSON (stable keys, for scripts)"),
      s(
        "library",
        undefined,
        "PATH",
        "check this librdmacm instead of the default search\n(like PG_RDMA_LIBRDMACM)",
      ),
    ],
    footer:
      'doctor exits 0 when RDMA is usable here and 1 when it is not (see "verdict" in --json).',
    run: async (ctx) => (await import("./doctor.ts")).doctorCommand(ctx),
  },
  {
    name: "demo",
    summary: "start an embedded PostgreSQL 18, connect, show the transport, stop (npm start)",
    usage: [""],
    connects: false,
    options: [],
    run: async (ctx) => {
      const { demo } = await import("./demo.ts");
      return await demo((line) => {
        ctx.stdout.write(line + "\n");
      }, ctx.signal);
    },
  },
  {
    name: "help",
    summary: "show the help of a command",
    usage: ["[COMMAND]"],
    connects: false,
    positionals: { max: 1 },
    options: [],
  },
];
