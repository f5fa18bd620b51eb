// The pg-rdma command as users run it: a child process of the same runtime (deno run -A
// cli/main.ts, bun cli/main.ts, node dist/cli/main.js): help, version, usage errors, exit codes,
// and a clean stop on SIGINT / SIGTERM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { moduleCommand } from "./_fixture/runtime.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);
const mainPath = baseArgs[baseArgs.length - 1];

interface Run {
  code: number;
  out: string;
  err: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(exe, [...baseArgs, ...args], {
      env: { ...process.env, NO_COLOR: "1", ...env },
      timeout: 60_000,
    }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
  });
}

/** The flags each command must offer, named as in the PostgreSQL tool it mirrors. */
const FLAGS: Record<string, string[]> = {
  dump: [
    "-f, --file",
    "-F, --format",
    "-j, --jobs",
    "-a, --data-only",
    "-s, --schema-only",
    "-n, --schema",
    "-t, --table",
    "-T, --exclude-table",
    "--snapshot",
  ],
  restore: [
    "-f, --file",
    "-j, --jobs",
    "-c, --clean",
    "-C, --create",
    "-l, --list",
    "-L, --use-list",
    "-1, --single-transaction",
    "--if-exists",
  ],
  receivewal: [
    "-D, --directory",
    "-E, --endpos",
    "-n, --no-loop",
    "-s, --status-interval",
    "-S, --slot",
    "--synchronous",
    "--create-slot",
    "--drop-slot",
  ],
  recvlogical: [
    "--create-slot",
    "--drop-slot",
    "--start",
    "-f, --file",
    "-I, --startpos",
    "-o, --option",
    "-P, --plugin",
    "-S, --slot",
  ],
  basebackup: [
    "-D, --pgdata",
    "-F, --format",
    "-R, --write-recovery-conf",
    "-X, --wal-method",
    "-c, --checkpoint",
    "-P, --progress",
    "-S, --slot",
    "-l, --label",
  ],
  query: [
    "-c, --command",
    "-f, --file",
    "-v, --set",
    "-1, --single-transaction",
    "-A, --no-align",
    "--csv",
    "-t, --tuples-only",
    "-x, --expanded",
    "--json",
    "-X, --no-psqlrc",
  ],
  tunnel: ["-l, --listen", "-c, --connect", "--provider", "--max-connections", "--grace"],
  bench: [
    "-c, --client",
    "-j, --jobs",
    "-T, --time",
    "-t, --transactions",
    "-S, --select-only",
    "-M, --protocol",
  ],
  doctor: ["--json", "--library"],
  demo: [],
};
const CONNECTION = [
  "-d, --dbname",
  "-h, --host",
  "-p, --port",
  "-U, --username",
  "-w, --no-password",
  "-W, --password",
  "--with-rsocket[=true|false|prefer]",
];

for (const [name, flags] of Object.entries(FLAGS)) {
  test(`pg-rdma ${name} --help exits 0 and names its flags and the exit statuses`, async () => {
    const r = await cli([name, "--help"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, "");
    assert.match(r.out, new RegExp(`^pg-rdma ${name}: `));
    assert.match(r.out, new RegExp(`Usage:\\n  pg-rdma ${name} `));
    const connects = !["doctor", "demo", "tunnel"].includes(name);
    for (const f of [...flags, ...(connects ? CONNECTION : []), "-q, --quiet", "-?, --help"]) {
      assert.ok(r.out.includes(f), `${name} --help does not name "${f}"`);
    }
    assert.match(r.out, /--verbose/);
    assert.match(r.out, /130 interrupted \(SIGINT\)/);
  });
}

test("pg-rdma -? lists every command; pg-rdma help <cmd> equals <cmd> --help", async () => {
  const r = await cli(["-?"]);
  assert.equal(r.code, 0);
  for (const name of Object.keys(FLAGS)) {
    assert.match(r.out, new RegExp(`^  ${name} +\\S`, "m"), name);
  }
  const [a, b] = await Promise.all([cli(["help", "recvlogical"]), cli(["recvlogical", "-?"])]);
  assert.equal(a.code, 0);
  assert.equal(a.out, b.out);
});

test("pg-rdma --version prints package.json's version", async () => {
  // Under Node this file runs as dist/tests/cli_main.test.js.
  const pkgUrl = new URL(
    import.meta.url.endsWith(".js") ? "../../package.json" : "../package.json",
    import.meta.url,
  );
  const pkg = JSON.parse(readFileSync(pkgUrl, "utf8"));
  const r = await cli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.out, `pg-rdma ${pkg.version}\n`);
  assert.equal((await cli(["-V"])).out, r.out);
});

test("an unknown subcommand exits 2 with a suggestion and a --help hint on stderr", async () => {
  const r = await cli(["dupm"]);
  assert.equal(r.code, 2);
  assert.equal(r.out, "");
  assert.equal(
    r.err,
    'pg-rdma: unknown command "dupm"; did you mean "dump"?\nTry "pg-rdma --help" for more information.\n',
  );
});

test("a bad flag exits 2 naming the flag, with the command's --help hint", async () => {
  const r = await cli(["dump", "--tabel=x"]);
  assert.equal(r.code, 2);
  assert.equal(
    r.err,
    'pg-rdma: dump: unrecognized option "--tabel"\nTry "pg-rdma dump --help" for more information.\n',
  );
  const v = await cli(["basebackup", "-D", "/tmp/x", "--wal-method=maybe"]);
  assert.equal(v.code, 2);
  assert.match(v.err, /invalid value "maybe" for option "--wal-method"/);
  const w = await cli(["query", "--with-rsocket=sometimes"]);
  assert.equal(w.code, 2);
  assert.match(
    w.err,
    /invalid --with-rsocket value: "sometimes" \(expected true, false or prefer\)/,
  );
});

test("no command exits 2 and names the commands", async () => {
  const r = await cli([]);
  assert.equal(r.code, 2);
  assert.match(
    r.err,
    /^pg-rdma: no command given \(one of: dump, restore, .*doctor.*\)\nTry "pg-rdma --help"/,
  );
});

test("missing required options are usage errors, as in the PostgreSQL tools", async () => {
  const r = await cli(["receivewal", "-S", "slot1"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /pg-rdma: receivewal: no target directory specified/);
  const l = await cli(["recvlogical", "--slot=s"]);
  assert.equal(l.code, 2);
  assert.match(l.err, /at least one action needs to be specified/);
});

test("a command checks its whole command line before it connects: a bad value exits 2", async () => {
  const bad = await cli(["bench", "-d", "postgresql://nowhere.invalid/app", "-M", "nope"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /-M|protocol|nope/);
  assert.doesNotMatch(bad.err, /could not|connection/i, "it must not have tried to connect");
});

/** Runs a command that waits for its stop signal, in a child process; sends `sig` once it is ready. */
async function stopWith(
  sig: "SIGINT" | "SIGTERM",
): Promise<{ code: number | null; out: string; err: string }> {
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-cli-"));
  try {
    const script = join(dir, "wait.mjs");
    writeFileSync(
      script,
      `const { main } = await import(${JSON.stringify(pathToFileURL(mainPath).href)});
const wait = {
  name: "wait", summary: "waits for a stop signal", usage: [], connects: false, options: [],
  run: (ctx) => new Promise((resolve) => {
    const keepAlive = setInterval(() => {}, 1000);
    ctx.signal.addEventListener("abort", () => {
      process.stdout.write("stopping cleanly\\n");
      clearInterval(keepAlive);
      resolve(0);
    });
    process.stdout.write("ready\\n");
  }),
};
const code = await main(["wait"], { commands: [wait] });
process.exit(code);
`,
    );
    // The same runtime flags (deno run -A) and our script; Deno finds the project's import map
    // (bare "ts-pattern") only through its config, which a script in /tmp does not sit under.
    const deno = baseArgs[0] === "run"
      ? [
        "--config",
        fileURLToPath(
          new URL(
            "../deno.json",
            pathToFileURL(mainPath).href.replace(/\/cli\/main\.ts$/, "/cli/"),
          ),
        ),
      ]
      : [];
    const args = [...baseArgs.slice(0, -1), ...deno, script];
    const child = spawn(exe, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    return await new Promise((resolve) => {
      child.stdout.on("data", (d) => {
        out += d;
        // process.kill, not child.kill: after child.kill() Deno reports the signal instead of the
        // exit status the child chose (measured: Deno 2.9.6 gives code null, signal SIGINT).
        if (out === "ready\n") process.kill(child.pid!, sig);
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("SIGINT aborts the command's signal: it stops cleanly and the process exits 130", async () => {
  const r = await stopWith("SIGINT");
  assert.equal(r.out, "ready\nstopping cleanly\n");
  assert.equal(r.code, 130, r.err);
  assert.match(r.err, /pg-rdma: wait: interrupted by SIGINT, stopped/);
});

test("SIGTERM aborts the command's signal: it stops cleanly and the process exits 143", async () => {
  const r = await stopWith("SIGTERM");
  assert.equal(r.out, "ready\nstopping cleanly\n");
  assert.equal(r.code, 143, r.err);
});
