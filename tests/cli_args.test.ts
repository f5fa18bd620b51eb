// Command-line parsing of the pg-rdma CLI, in-process: the option table drives parseArgs and the
// help text, connection options become a libpq keyword record, errors are usage errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CONNECTION_OPTIONS,
  connectionRecord,
  EXIT,
  helpText,
  type OptionGroup,
  parseCommandLine,
  passwordPrompt,
  UsageError,
} from "../cli/_args.ts";
import { COMMANDS, optionGroups } from "../cli/_commands.ts";
import { main } from "../cli/main.ts";

const FILE: OptionGroup = {
  title: "Options",
  options: [
    { long: "file", short: "f", type: "string", arg: "FILE", help: "output file" },
    { long: "table", short: "t", type: "string", multiple: true, help: "table" },
    { long: "format", short: "F", type: "string", choices: ["p", "d"], help: "format" },
    { long: "quiet", short: "q", type: "boolean", help: "quiet" },
  ],
};
const GROUPS = [FILE, CONNECTION_OPTIONS];

function usageError(fn: () => unknown, message: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

test("parseCommandLine() reads long, short, bundled and inline forms like getopt_long", () => {
  const a = parseCommandLine(GROUPS, [
    "-qfout.sql",
    "--table",
    "a",
    "-t",
    "b",
    "--format=d",
    "-h",
    "db",
    "-p5433",
  ]);
  assert.deepEqual(a.values, {
    quiet: true,
    file: "out.sql",
    table: ["a", "b"],
    format: "d",
    host: "db",
    port: "5433",
  });
  assert.deepEqual(a.order, ["quiet", "file", "table", "table", "format", "host", "port"]);
});

test("parseCommandLine() rejects an unknown option, naming it", () => {
  usageError(() => parseCommandLine(GROUPS, ["--fiel=x"]), /unrecognized option "--fiel"/);
  usageError(() => parseCommandLine(GROUPS, ["-qZ"]), /unrecognized option "-Z"/);
});

test("parseCommandLine() rejects a missing value, a value on a flag and a value outside the choices", () => {
  usageError(() => parseCommandLine(GROUPS, ["--file"]), /option "--file" requires a value/);
  usageError(
    () => parseCommandLine(GROUPS, ["--quiet=yes"]),
    /option "--quiet" does not take a value/,
  );
  usageError(
    () => parseCommandLine(GROUPS, ["-F", "x"]),
    /invalid value "x" for option "-F" \(expected p, d\)/,
  );
});

test("parseCommandLine() refuses an option-looking value from the next argument but takes - and --opt=-x", () => {
  usageError(() => parseCommandLine(GROUPS, ["-f", "-q"]), /looks like an option.*--file=-q/);
  assert.equal(parseCommandLine(GROUPS, ["-f", "-"]).values.file, "-");
  assert.equal(parseCommandLine(GROUPS, ["--file=-q"]).values.file, "-q");
});

test("parseCommandLine() counts positionals and stops options at --", () => {
  usageError(
    () => parseCommandLine(GROUPS, ["db"]),
    /too many command-line arguments \(first is "db"\)/,
  );
  const a = parseCommandLine(GROUPS, ["-q", "--", "-f"], { maxPositionals: 1 });
  assert.deepEqual(a.positionals, ["-f"]);
  assert.equal(a.values.file, undefined);
});

test("--with-rsocket alone means true; a value is normalised; a bad value is a usage error", () => {
  assert.equal(parseCommandLine(GROUPS, ["--with-rsocket", "-q"]).values["with-rsocket"], "true");
  assert.equal(
    parseCommandLine(GROUPS, ["--with-rsocket=PREFER"]).values["with-rsocket"],
    "prefer",
  );
  assert.equal(parseCommandLine(GROUPS, ["--with-rsocket=off"]).values["with-rsocket"], "false");
  // After "--" it is a positional, not the option.
  assert.deepEqual(
    parseCommandLine(GROUPS, ["--", "--with-rsocket"], { maxPositionals: 1 }).positionals,
    [
      "--with-rsocket",
    ],
  );
  usageError(
    () => parseCommandLine(GROUPS, ["--with-rsocket=maybe"]),
    /invalid --with-rsocket value: "maybe"/,
  );
});

test("connectionRecord() builds libpq keywords from the connection options, positionals as fallback", () => {
  const a = parseCommandLine(GROUPS, [
    "-d",
    "postgresql://db1/app?sslmode=require",
    "-h",
    "db2",
    "-p",
    "5433",
    "-U",
    "alice",
    "--with-rsocket=prefer",
  ]);
  assert.deepEqual(connectionRecord(a.values, { dbname: "ignored", user: "ignored" }), {
    dbname: "postgresql://db1/app?sslmode=require",
    host: "db2",
    port: "5433",
    user: "alice",
    with_rsocket: "prefer",
  });
  assert.deepEqual(connectionRecord({}, { dbname: "shop", user: "bob" }), {
    dbname: "shop",
    user: "bob",
  });
  assert.deepEqual(
    connectionRecord({}),
    {},
    "nothing given: nothing set, so PG* variables apply later",
  );
});

test("passwordPrompt(): -w never, -W always, neither auto, the later one wins", () => {
  const p = (...argv: string[]) => passwordPrompt(parseCommandLine(GROUPS, argv));
  assert.equal(p(), "auto");
  assert.equal(p("-w"), "never");
  assert.equal(p("--password"), "always");
  assert.equal(p("-W", "-w"), "never");
  assert.equal(p("-w", "--password"), "always");
});

test("helpText() lists every option with its short form, value name and group", () => {
  const text = helpText({ name: "x", summary: "does x", usage: ["[OPTION]..."], groups: GROUPS });
  assert.match(text, /^pg-rdma x: does x\n/);
  assert.match(text, /^ {2}-f, --file=FILE +output file$/m);
  assert.ok(text.includes("\n      --with-rsocket[=true|false|prefer]\n"));
  assert.ok(text.includes("Connection options:\n  -d, --dbname=DBNAME"));
  assert.ok(
    text.includes(
      "Exit status:\n  0 success, 1 failure, 2 usage error, 3 not implemented yet,\n  130 interrupted",
    ),
  );
});

test("every command's option table is consistent: no name or short option used twice", () => {
  for (const cmd of COMMANDS) {
    // parseCommandLine() throws a TypeError on a duplicate; an empty command line must parse.
    const a = parseCommandLine(optionGroups(cmd), [], {
      command: cmd.name,
      maxPositionals: cmd.positionals?.max ?? 0,
    });
    assert.deepEqual(a.positionals, [], cmd.name);
  }
  assert.deepEqual(
    COMMANDS.map((c) => c.name),
    [
      "dump",
      "restore",
      "receivewal",
      "recvlogical",
      "basebackup",
      "query",
      "tunnel",
      "bench",
      "doctor",
      "demo",
      "help",
    ],
  );
});

test("parseCommandLine() rejects an option table that declares a short option twice", () => {
  const bad: OptionGroup = {
    title: "x",
    options: [{ long: "a", short: "a", type: "boolean", help: "" }, {
      long: "b",
      short: "a",
      type: "boolean",
      help: "",
    }],
  };
  assert.throws(() => parseCommandLine([bad], []), TypeError);
});

test("main() in-process: a command's run gets the keyword record, the prompt mode and a signal", async () => {
  const out: string[] = [];
  const err: string[] = [];
  const seen: unknown[] = [];
  const status = await main(["probe", "-U", "bob", "-w", "--with-rsocket", "shop"], {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    signal: new AbortController().signal,
    commands: [{
      name: "probe",
      summary: "test",
      usage: [],
      connects: true,
      positionals: { max: 1, dbname: 0 },
      options: [],
      run: (ctx) => {
        seen.push(ctx.connection, ctx.passwordPrompt, ctx.signal.aborted, ctx.quiet);
        ctx.info("hello");
        ctx.debug("not shown without --verbose");
        return Promise.resolve(7);
      },
    }],
  });
  assert.equal(status, 7);
  assert.deepEqual(seen, [
    { dbname: "shop", user: "bob", with_rsocket: "true" },
    "never",
    false,
    false,
  ]);
  assert.deepEqual(err, ["pg-rdma: probe: hello\n"]);
  assert.deepEqual(out, []);
});

test("main() in-process: an error thrown by a command is exit 1 with the message, never a crash", async () => {
  const err: string[] = [];
  const status = await main(["boom", "--verbose"], {
    stdout: { write: () => true },
    stderr: { write: (s: string) => err.push(s) },
    signal: new AbortController().signal,
    commands: [{
      name: "boom",
      summary: "test",
      usage: [],
      connects: false,
      options: [],
      run: () => Promise.reject(new Error("it broke", { cause: new Error("the root cause") })),
    }],
  });
  assert.equal(status, EXIT.failure);
  assert.equal(err.join(""), "pg-rdma: boom: error: it broke\n  caused by: the root cause\n");
});

test("main() in-process: a command stopped by the caller's signal exits 130", async () => {
  const ac = new AbortController();
  const err: string[] = [];
  const status = await main(["wait"], {
    stdout: { write: () => true },
    stderr: { write: (s: string) => err.push(s) },
    signal: ac.signal,
    commands: [{
      name: "wait",
      summary: "test",
      usage: [],
      connects: false,
      options: [],
      run: (ctx) => {
        setTimeout(() => ac.abort(), 10);
        return new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(0)));
      },
    }],
  });
  assert.equal(status, EXIT.interrupted);
  assert.match(err.join(""), /pg-rdma: wait: interrupted, stopped/);
});

test("main() in-process: ctx.progress() reports on stderr, and --quiet silences it", async () => {
  const runWith = async (argv: string[]) => {
    const err: string[] = [];
    const status = await main(argv, {
      stdout: { write: () => true },
      stderr: { isTTY: false, write: (s: string) => err.push(s) },
      signal: new AbortController().signal,
      commands: [{
        name: "copy",
        summary: "test",
        usage: [],
        connects: false,
        options: [],
        run: (ctx) => {
          const p = ctx.progress({ unit: "rows", label: "copy" });
          p.add(42);
          p.finish();
          return Promise.resolve(0);
        },
      }],
    });
    assert.equal(status, 0);
    return err.join("");
  };
  assert.match(await runWith(["copy"]), /^copy: 42 rows in \d+\.\d s/);
  assert.equal(await runWith(["copy", "-q"]), "");
});
