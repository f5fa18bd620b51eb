// pg-rdma query as users run it (a child process of the same runtime) against the fixture's
// PostgreSQL 15 and 18: output byte for byte as psql 15 prints it, the other formats, errors,
// exit statuses, scripts on stdin, and the rsocket transport (kernel provider). The I/O-free
// parts (script splitting, error positions, formats) are checked in-process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, createDatabase, psql, psqlPath, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";
import { splitScript } from "../cli/_script.ts";
import { errorPosition } from "../cli/query.ts";
import { formatResult } from "../cli/_format.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs a program with optional stdin; never rejects. */
function runProgram(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string | undefined> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", PGCONNECT_TIMEOUT: "10", ...opts.env };
    for (const k of ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE", "WITH_RSOCKET"]) {
      if (!(opts.env && k in opts.env)) delete env[k];
    }
    const child = execFile(cmd, args, { env: env as NodeJS.ProcessEnv, timeout: 60_000, maxBuffer: 64 << 20 }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
    // A program that does not read its stdin (psql -c) may exit first: ignore EPIPE.
    child.stdin!.on("error", () => {});
    child.stdin!.end(opts.input ?? "");
  });
}

/** `pg-rdma query` as the superuser over the cluster's unix socket (trust). */
function query(c: ClusterInfo, db: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  return runProgram(exe, [...baseArgs, "query", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", db, ...args], opts);
}

/** psql 15 with the same connection, for comparison. */
function realPsql(c: ClusterInfo, db: string, args: string[], input?: string) {
  return runProgram(psqlPath(), ["-X", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", db, ...args], { input });
}

const SHAPES = [
  "SELECT 1 AS a, 'xy' AS bbbbbb, NULL AS c, 12.5::numeric AS num, E'l1\\nline2' AS ml, 'x' AS lastcol",
  "SELECT g AS n, repeat('ab', g) AS text, g % 2 = 0 AS even FROM generate_series(1, 4) g",
  "SELECT 1 AS a WHERE false",
  "SELECT 'ü日本' AS \"名前\", -2.5::float8 AS x",
];

for (const v of VERSIONS) {
  test(`pg-rdma query prints tables exactly as psql does (aligned, -x, -A, -t, --csv) on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    for (const sql of SHAPES) {
      for (const flags of [[], ["-x"], ["-A"], ["-t"], ["-At", "-F", ","], ["--csv"], ["-tx"]]) {
        const [ours, theirs] = await Promise.all([query(c, "postgres", [...flags, "-c", sql]), realPsql(c, "postgres", [...flags, "-c", sql])]);
        assert.equal(ours.code, 0, ours.err);
        assert.equal(ours.out, theirs.out, `${flags.join(" ")} -c ${sql}`);
      }
    }
  });

  test(`pg-rdma query --json prints one typed JSON object per row on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const r = await query(c, "postgres", ["--json", "-c", `SELECT g AS n, g::int8 AS big, g * 1.5::float8 AS f, g > 1 AS b, NULL::text AS z, json_build_object('k', g) AS j FROM generate_series(1, 2) g`]);
    assert.equal(r.code, 0, r.err);
    const rows = r.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(rows, [
      { n: 1, big: "1", f: 1.5, b: false, z: null, j: { k: 1 } },
      { n: 2, big: "2", f: 3, b: true, z: null, j: { k: 2 } },
    ]);
  });

  test(`pg-rdma query reports errors like psql (LINE and caret) and exits 1 when the last -c fails on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const r = await query(c, "postgres", ["-c", "SELECT 1", "-c", "SELECT *\n  FROM no_such_table"]);
    assert.equal(r.code, 1);
    assert.match(r.out, /^ \?column\? \n-+\n +1\n\(1 row\)\n\n$/);
    assert.equal(r.err, `ERROR:  relation "no_such_table" does not exist\nLINE 2:   FROM no_such_table\n               ^\n`);
    const ok = await query(c, "postgres", ["-c", "SELECT nope", "-c", "SELECT 2"]);
    assert.equal(ok.code, 0, "the last -c succeeded, so psql's rule says 0");
    assert.match(ok.err, /column "nope" does not exist/);
  });

  test(`pg-rdma query -c with several statements prints the results before a failing one, then the error, as psql does on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "cliq");
    const cases: [string[], string][] = [
      [[], "select 1; select 1/0; select 2"],
      [["-A", "-t"], "select 1 AS a; select 'x' AS b, NULL AS c; select broken; select 2"],
      [[], "CREATE TABLE m (x int); INSERT INTO m VALUES (1), (2); SELECT * FROM m; SELECT x/0 FROM m"],
      [["-q"], "select 1; select 2"],
      [["--csv"], "select 1 AS a, 2 AS b; select *\n from nope"],
    ];
    for (const [flags, sql] of cases) {
      const [ours, theirs] = [await query(c, db, [...flags, "-c", sql]), await realPsql(c, db, [...flags, "-c", sql])];
      assert.equal(ours.out, theirs.out, `stdout of ${flags.join(" ")} -c ${sql}`);
      assert.equal(ours.err, theirs.err, `stderr of ${flags.join(" ")} -c ${sql}`);
      assert.equal(ours.code, theirs.code, `exit status of ${flags.join(" ")} -c ${sql}`);
    }
    // The failed implicit transaction rolled back the CREATE TABLE, in both.
    assert.equal((await psql(c, "SELECT count(*) FROM pg_class WHERE relname = 'm'", { database: db })).trim(), "0");
  });

  test(`pg-rdma query runs a script from stdin: variables, COPY data, meta-commands, ON_ERROR_STOP on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "cliq");
    const script = [
      "\\set tbl items",
      "\\set label 'it''s'",
      "CREATE TABLE :tbl (id int PRIMARY KEY, name text);",
      "COPY :tbl FROM STDIN;",
      "1\tone",
      "2\t\\N",
      "\\.",
      "INSERT INTO :\"tbl\" VALUES (3, :'label'); -- a ; in a comment",
      "\\echo rows: done",
      "SELECT count(*) AS n, string_agg(coalesce(name, '-'), ',' ORDER BY id) AS names FROM :tbl;",
      "SELECT broken FROM :tbl;",
      "INSERT INTO items VALUES (4, 'after the error');",
      "",
    ].join("\n");
    const r = await query(c, db, ["-A", "-t", "-v", "ON_ERROR_STOP=1"], { input: script });
    assert.equal(r.code, 1, r.err);
    assert.equal(r.out, "CREATE TABLE\nCOPY 2\nINSERT 0 1\nrows: done\n3|one,-,it's\n");
    assert.match(r.err, /^pg-rdma:<stdin>:11: ERROR: {2}column "broken" does not exist\nLINE 1: SELECT broken FROM items;\n {15}\^\n$/);
    assert.equal((await psql(c, "SELECT count(*) FROM items", { database: db })).trim(), "3", "ON_ERROR_STOP stopped before the last INSERT");

    // Without ON_ERROR_STOP the script goes on, and exits 0 as psql's does.
    const on = await query(c, db, ["-q", "-A", "-t"], { input: "SELECT broken;\nINSERT INTO items VALUES (5, 'x');\nSELECT max(id) FROM items;\n" });
    assert.equal(on.code, 0, on.err);
    assert.equal(on.out, "5\n");
  });

  test(`pg-rdma query -f FILE -1 -o OUT writes results to OUT and rolls back a failed single transaction on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "cliq");
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-query-"));
    try {
      const sqlFile = join(dir, "in.sql");
      writeFileSync(sqlFile, "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (2);\nSELECT sum(a) FROM t;\n");
      const out = join(dir, "out.txt");
      const r = await query(c, db, ["-1", "-A", "-t", "-f", sqlFile, "-o", out]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, "");
      assert.equal(readFileSync(out, "utf8"), "CREATE TABLE\nINSERT 0 2\n3\n");
      writeFileSync(sqlFile, "INSERT INTO t VALUES (10);\nSELECT 1/0;\n");
      const bad = await query(c, db, ["-1", "-v", "ON_ERROR_STOP=on", "-f", sqlFile]);
      assert.equal(bad.code, 1);
      assert.match(bad.err, /division by zero/);
      assert.equal((await psql(c, "SELECT sum(a) FROM t", { database: db })).trim(), "3");
      const missing = await query(c, db, ["-f", join(dir, "nope.sql")]);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /nope\.sql/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`pg-rdma query --with-rsocket connects over the FFI transport (kernel provider) with a SCRAM password on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const env = { PG_RDMA_PROVIDER: "kernel", PGPASSWORD: ROLES.scram.password };
    const r = await runProgram(exe, [...baseArgs, "query", "--verbose", "--with-rsocket", "-h", c.host, "-p", String(c.port), "-U", ROLES.scram.user, "-d", "postgres", "-At", "-c", "SELECT current_user, inet_client_addr() IS NOT NULL"], { env });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${ROLES.scram.user}|t\n`);
    assert.match(r.err, /transport: rsockets requested by with_rsocket=true/);
    // -w: no password anywhere, so the connection fails (exit 1) instead of prompting.
    const w = await runProgram(exe, [...baseArgs, "query", "-w", "-h", c.host, "-p", String(c.port), "-U", ROLES.scram.user, "-d", "postgres", "-c", "SELECT 1"], { env: { HOME: tmpdir() } });
    assert.equal(w.code, 1);
    assert.match(w.err, /no password supplied/);
  });

  test(`pg-rdma query stops on SIGINT: the running statement is cancelled and the exit status is 130 on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const child = spawn(exe, [...baseArgs, "query", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", "postgres", "-c", "SELECT pg_sleep(30)"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += String(d)));
    // Wait until the statement is running on the server.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const n = await psql(c, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'");
      if (n.trim() === "1") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const started = Date.now();
    // process.kill, not child.kill: after child.kill() Deno reports the signal, not the status.
    process.kill(child.pid!, "SIGINT");
    const code = await new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    assert.equal(code, 130, err);
    assert.ok(Date.now() - started < 10_000, "stopped well before pg_sleep(30) ended");
    assert.match(err, /interrupted by SIGINT/);
  });
}

test("pg-rdma query refuses two output formats at once with a usage error (exit 2)", async () => {
  const r = await runProgram(exe, [...baseArgs, "query", "--csv", "--json", "-c", "SELECT 1"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--csv and --json cannot be used together/);
});

test("splitScript() splits on ; outside quotes, comments, dollar quotes and parentheses, and reports psql's line", () => {
  const items = splitScript(
    "SELECT ';' AS a; -- c;\nSELECT $x$ ; $x$, E'\\';', \"a;b\"\n  FROM t /* ; /* nested ; */ */ WHERE f(1;2);\n\\echo hi :v\nSELECT :v::int, :'v', :\"v\", :missing\n",
    new Map([["v", "o'k"]]),
  );
  assert.deepEqual(items, [
    { kind: "sql", sql: "SELECT ';' AS a;", line: 1 },
    { kind: "sql", sql: "SELECT $x$ ; $x$, E'\\';', \"a;b\"\n  FROM t /* ; /* nested ; */ */ WHERE f(1;2);", line: 3 },
    { kind: "meta", name: "echo", args: ["hi", "o'k"], line: 4 },
    { kind: "sql", sql: "SELECT o'k::int, 'o''k', \"o'k\", :missing", line: 5 },
  ]);
});

test("splitScript() gives COPY FROM STDIN the data lines up to \\.", () => {
  const items = splitScript("COPY t FROM stdin;\n1\ta\n\\.\nSELECT 1;\n", new Map());
  assert.deepEqual(items, [
    { kind: "sql", sql: "COPY t FROM stdin;", line: 1, copyData: "1\ta\n" },
    { kind: "sql", sql: "SELECT 1;", line: 4 },
  ]);
});

test("errorPosition() cuts long lines around the position as libpq does", () => {
  assert.equal(errorPosition("SELECT x", 8), "LINE 1: SELECT x\n               ^\n");
  const long = "SELECT " + "a, ".repeat(40) + "nope FROM t";
  const text = errorPosition(long, long.indexOf("nope") + 1);
  const [line, caret] = text.split("\n");
  assert.ok(line.startsWith("LINE 1: ..."), line);
  assert.ok(line.endsWith("..."), line);
  assert.equal(line[caret.indexOf("^")], "n");
  assert.equal(errorPosition("SELECT 1", 99), "");
});

test("formatResult() prints command tags, and the tag after DML RETURNING rows", () => {
  assert.equal(formatResult({ command: "CREATE TABLE", columns: [], rows: [] }, { format: "aligned" }), "CREATE TABLE\n");
  assert.equal(formatResult({ command: "CREATE TABLE", columns: [], rows: [] }, { format: "aligned", quiet: true }), "");
  assert.equal(
    formatResult({ command: "INSERT 0 1", columns: [{ name: "id", typeOid: 23 }], rows: [["7"]] }, { format: "unaligned" }),
    "id\n7\n(1 row)\nINSERT 0 1\n",
  );
});
