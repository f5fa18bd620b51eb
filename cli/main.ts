#!/usr/bin/env node
/**
 * The `pg-rdma` command: `npx pg-rdma` (Node, the built `dist/cli/main.js`), `bunx pg-rdma` or
 * `bun cli/main.ts` (Bun), `deno run -A cli/main.ts` (Deno); the same behaviour in all three.
 *
 * `pg-rdma <command> [options]`: arguments are parsed with `node:util`'s `parseArgs` against
 * the command's option table (`_commands.ts`), which also writes its `--help`. Errors go to
 * stderr with a hint (`Try "pg-rdma dump --help" for more information.`). SIGINT and SIGTERM abort
 * the `AbortSignal` a command gets, so it can stop cleanly; a second one ends the process at
 * once. Exit status: see {@linkcode EXIT}.
 *
 * @example
 * ```ts
 * import { main } from "./cli/main.ts";
 * const status = await main(["doctor", "--json"]);
 * ```
 *
 * @module
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { match, P } from "ts-pattern";
import { VERSION } from "../version.ts";
import {
  connectionRecord,
  EXIT,
  helpText,
  parseCommandLine,
  passwordPrompt,
  UsageError,
} from "./_args.ts";
import { type Command, type CommandContext, COMMANDS, optionGroups } from "./_commands.ts";
import { createProgress, type ProgressStream } from "./_progress.ts";

export { EXIT, UsageError } from "./_args.ts";
export type { Command, CommandContext } from "./_commands.ts";

/** Where `main` writes and what it reads; defaults are the process's. */
export interface MainOptions {
  stdout?: ProgressStream;
  stderr?: ProgressStream;
  env?: Record<string, string | undefined>;
  /**
   * A stop signal from the caller. When absent, `main` aborts its own on SIGINT / SIGTERM for as
   * long as the command runs.
   */
  signal?: AbortSignal;
  /** The command table (tests add commands; default {@linkcode COMMANDS}). */
  commands?: readonly Command[];
}

function topUsage(commands: readonly Command[]): string {
  const listed = commands.filter((c) => c.listed !== false);
  const width = Math.max(...listed.map((c) => c.name.length)) + 2;
  return `pg-rdma ${VERSION}: PostgreSQL over RDMA (rsockets) for Deno, Node and Bun

Usage:
  pg-rdma <command> [OPTION]...
  pg-rdma <command> --help

Commands:
${
    listed.map((c) =>
      `  ${c.name.padEnd(width)}${c.summary}${
        c.run || c.name === "help" ? "" : " (not implemented yet)"
      }`
    ).join("\n")
  }

Options:
  -?, --help     show this help, then exit
  -V, --version  print the version, then exit

Exit status:
  0 success, 1 failure, 2 usage error, 3 not implemented yet,
  130 interrupted (SIGINT), 143 terminated (SIGTERM)
`;
}

/** Edit distance counting a swap of neighbours as one edit (optimal string alignment), for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

function commandHelp(cmd: Command): string {
  return helpText({
    name: cmd.name,
    summary: cmd.summary + (cmd.run || cmd.name === "help" ? "" : " (not implemented yet)"),
    usage: cmd.usage,
    description: cmd.description,
    groups: optionGroups(cmd),
    footer: cmd.footer,
  });
}

/**
 * Runs the CLI with the given arguments (without the runtime and script: `process.argv.slice(2)`);
 * resolves to the exit status. Never throws: every error is reported on stderr.
 */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const commands = options.commands ?? COMMANDS;
  const find = (name: string) => commands.find((c) => c.name === name);
  const usageError = (e: UsageError) => {
    const who = e.command ? `pg-rdma: ${e.command}` : "pg-rdma";
    stderr.write(
      `${who}: ${e.message}\nTry "pg-rdma${
        e.command ? ` ${e.command}` : ""
      } --help" for more information.\n`,
    );
    return EXIT.usage;
  };

  // Options before the command are the top level's own: --help/-?, --version/-V.
  const at = argv.findIndex((a) => !a.startsWith("-") || a === "-");
  const top = at === -1 ? argv : argv.slice(0, at);
  const name = at === -1 ? undefined : argv[at];
  const rest = at === -1 ? [] : argv.slice(at + 1);
  try {
    for (const a of top) {
      if (a === "--help" || a === "-?") return (stdout.write(topUsage(commands)), EXIT.ok);
      if (a === "--version" || a === "-V") return (stdout.write(`pg-rdma ${VERSION}\n`), EXIT.ok);
      throw new UsageError(`unrecognized option "${a}" (options go after the command)`);
    }
    if (name === undefined) {
      const names = commands.filter((c) => c.listed !== false).map((c) => c.name);
      throw new UsageError(`no command given (one of: ${names.join(", ")})`);
    }
    const cmd = find(name);
    if (!cmd) {
      const near = commands.filter((c) => c.listed !== false)
        .map((c) => ({ c, d: distance(name, c.name) }))
        .filter((x) => x.d <= Math.max(1, Math.floor(x.c.name.length / 3)))
        .sort((x, y) => x.d - y.d)[0];
      throw new UsageError(
        `unknown command "${name}"${near ? `; did you mean "${near.c.name}"?` : ""}`,
      );
    }
    const args = parseCommandLine(optionGroups(cmd), rest, {
      command: cmd.name,
      maxPositionals: cmd.positionals?.max ?? 0,
    });
    if (args.values.help) return (stdout.write(commandHelp(cmd)), EXIT.ok);
    if (cmd.name === "help") {
      const [about] = args.positionals;
      if (about === undefined) return (stdout.write(topUsage(commands)), EXIT.ok);
      const target = find(about);
      if (!target) throw new UsageError(`unknown command "${about}"`, { command: "help" });
      return (stdout.write(commandHelp(target)), EXIT.ok);
    }
    cmd.check?.(args);
    if (!cmd.run) {
      stderr.write(`pg-rdma: ${cmd.name}: not implemented yet\n`);
      return EXIT.notImplemented;
    }
    return await runCommand(cmd, args, { ...options, stdout, stderr });
  } catch (e) {
    if (e instanceof UsageError) return usageError(e);
    stderr.write(
      `pg-rdma: ${name ? `${name}: ` : ""}error: ${e instanceof Error ? e.message : String(e)}\n`,
    );
    return EXIT.failure;
  }
}

/** Signals that stop a command cleanly, and the exit status each gives. */
const STOP_SIGNALS = { SIGINT: EXIT.interrupted, SIGTERM: EXIT.terminated } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

async function runCommand(
  cmd: Command,
  args: ReturnType<typeof parseCommandLine>,
  io: MainOptions & { stdout: ProgressStream; stderr: ProgressStream },
): Promise<number> {
  const quiet = args.values.quiet === true;
  const verbose = args.values.verbose === true && !quiet;
  const controller = new AbortController();
  let caught: StopSignal | undefined;
  const handlers: [StopSignal, () => void][] = [];
  const outer = io.signal;
  const follow = () => controller.abort(outer?.reason);
  if (outer) {
    if (outer.aborted) follow();
    else outer.addEventListener("abort", follow, { once: true });
  } else {
    for (const sig of Object.keys(STOP_SIGNALS) as StopSignal[]) {
      const h = () => {
        if (caught !== undefined) {
          // A second signal: the user does not want to wait for the clean stop.
          io.stderr.write(`pg-rdma: ${cmd.name}: ${sig} again, exiting now\n`);
          process.exit(STOP_SIGNALS[caught]);
        }
        caught = sig;
        controller.abort(new DOMException(`interrupted by ${sig}`, "AbortError"));
      };
      process.on(sig, h);
      handlers.push([sig, h]);
    }
  }
  const prefix = `pg-rdma: ${cmd.name}: `;
  const ctx: CommandContext = {
    command: cmd.name,
    args,
    connection: cmd.connects
      ? connectionRecord(args.values, {
        dbname: cmd.positionals?.dbname !== undefined
          ? args.positionals[cmd.positionals.dbname]
          : undefined,
        user: cmd.positionals?.user !== undefined
          ? args.positionals[cmd.positionals.user]
          : undefined,
      })
      : {},
    passwordPrompt: passwordPrompt(args),
    quiet,
    verbose,
    signal: controller.signal,
    env: io.env ?? process.env,
    stdout: io.stdout,
    stderr: io.stderr,
    progress(opts = {}) {
      return createProgress({ ...opts, stream: io.stderr, quiet });
    },
    info(message) {
      if (!quiet) io.stderr.write(prefix + message + "\n");
    },
    debug(message) {
      if (verbose) io.stderr.write(prefix + message + "\n");
    },
  };
  try {
    const status = await cmd.run!(ctx);
    return stopped() ?? status;
  } catch (e) {
    const s = stopped();
    if (s !== undefined) return s;
    if (e instanceof UsageError) throw e;
    io.stderr.write(`${prefix}error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (verbose) {
      for (
        let c = e instanceof Error ? e.cause : undefined;
        c !== undefined;
        c = c instanceof Error ? c.cause : undefined
      ) {
        io.stderr.write(`  caused by: ${c instanceof Error ? c.message : String(c)}\n`);
      }
    }
    return EXIT.failure;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    outer?.removeEventListener("abort", follow);
  }

  /** When the command ended because it was told to stop: report it, give the status. */
  function stopped(): number | undefined {
    if (!controller.signal.aborted) return undefined;
    const status = match(caught)
      .with(P.nullish, () => EXIT.interrupted) // the caller's signal
      .with("SIGINT", () => EXIT.interrupted)
      .with("SIGTERM", () => EXIT.terminated)
      .exhaustive();
    if (!quiet) io.stderr.write(`${prefix}interrupted${caught ? ` by ${caught}` : ""}, stopped\n`);
    return status;
  }
}

function isEntry(): boolean {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (typeof meta.main === "boolean") return meta.main; // Deno, Bun
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntry()) {
  main(process.argv.slice(2)).then((code) => {
    // Let stdout drain (a pipe may still hold the --json report) before exiting.
    process.exitCode = code;
    process.stdout.write("", () => process.exit(code));
  }, (err) => {
    process.stderr.write(`pg-rdma: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.failure);
  });
}
