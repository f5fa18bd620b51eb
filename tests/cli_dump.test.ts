// pg-rdma dump and restore as users run them (child processes of the same runtime) against the
// fixture's PostgreSQL 15 and 18: a plain dump that psql restores to the same rows, a parallel
// directory dump restored in parallel, per-table stream formats, and usage errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, createDatabase, psql, psqlPath, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, NO_COLOR: "1" }, timeout: 120_000, maxBuffer: 64 << 20 }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
  });
}

const conn = (c: ClusterInfo) => ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres"];
const cli = (c: ClusterInfo, cmd: string, args: string[]) => run(exe, [...baseArgs, cmd, ...conn(c), ...args]);

const SCHEMA = `
CREATE SCHEMA app;
CREATE TABLE app.items (id int PRIMARY KEY, name text NOT NULL, tags text[], doc jsonb, price numeric(10,2), at timestamptz);
INSERT INTO app.items SELECT g, 'item ' || g || E'\\ttab', ARRAY['a', 'b' || g], jsonb_build_object('g', g), g * 1.25, '2024-01-01'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 3000) g;
CREATE INDEX items_name ON app.items (name);
CREATE TABLE app.notes (id int REFERENCES app.items, body text);
INSERT INTO app.notes SELECT g, NULL FROM generate_series(1, 50) g;
CREATE TABLE public.skipme (x int);
INSERT INTO public.skipme VALUES (1);
`;

/** A digest of the rows, to compare databases. */
const FINGERPRINT = `SELECT (SELECT count(*) || ':' || md5(string_agg(i::text, ',' ORDER BY id)) FROM app.items i) || '|' ||
  (SELECT count(*) || ':' || count(body) FROM app.notes)`;

for (const v of VERSIONS) {
  test(`dump -Fp writes SQL that psql restores to the same rows (and pg-rdma query -f too) on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await createDatabase(c, "dsrc");
    await psql(c, SCHEMA, { database: src });
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-dump-"));
    try {
      const file = join(dir, "dump.sql");
      const d = await cli(c, "dump", ["-f", file, src]);
      assert.equal(d.code, 0, d.err);
      assert.ok(!existsSync(file + ".partial"));
      const sql = readFileSync(file, "utf8");
      // --no-busy-poll changes how the client waits between reads, not what it writes.
      const quiet = await cli(c, "dump", ["--no-busy-poll", "-f", join(dir, "quiet.sql"), src]);
      assert.equal(quiet.code, 0, quiet.err);
      assert.equal(readFileSync(join(dir, "quiet.sql"), "utf8"), sql);
      assert.match(sql, /COPY app\.items \(id, name, tags, doc, price, at\) FROM stdin;|COPY "app"\."items"/);
      const viaPsql = await createDatabase(c, "dpsql");
      const r = await run(psqlPath(), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", viaPsql, "-f", file]);
      assert.equal(r.code, 0, r.err);
      const viaQuery = await createDatabase(c, "dquery");
      const q = await cli(c, "query", ["-q", "-v", "ON_ERROR_STOP=1", "-d", viaQuery, "-f", file]);
      assert.equal(q.code, 0, q.err);
      const want = await psql(c, FINGERPRINT, { database: src });
      assert.equal(await psql(c, FINGERPRINT, { database: viaPsql }), want);
      assert.equal(await psql(c, FINGERPRINT, { database: viaQuery }), want);
      assert.equal((await psql(c, "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_name'", { database: viaPsql })).trim(), "1");
      // To stdout, with a table pattern.
      const only = await cli(c, "dump", ["-a", "-t", "app.notes", src]);
      assert.equal(only.code, 0, only.err);
      assert.ok(!only.out.includes("CREATE TABLE"));
      assert.ok(!only.out.includes("items"), "-t app.notes dumps only that table");
      assert.equal(only.out.match(/^\d+\t\\N$/gm)?.length, 50);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`dump -Fd -j2 then restore -j2 gives the same rows; restore -l lists the archive on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await createDatabase(c, "dsrc");
    await psql(c, SCHEMA, { database: src });
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-dump-"));
    try {
      const out = join(dir, "d");
      const d = await cli(c, "dump", ["-Fd", "-j", "2", "--data-format", "binary", "-f", out, "-T", "public.skipme", src]);
      assert.equal(d.code, 0, d.err);
      assert.ok(existsSync(join(out, "toc.json")));
      const l = await run(exe, [...baseArgs, "restore", "-l", out]);
      assert.equal(l.code, 0, l.err);
      assert.match(l.out, /^TABLE DATA app items \(binary\)$/m);
      assert.ok(!l.out.includes("skipme"));
      const dst = await createDatabase(c, "drest");
      const r = await cli(c, "restore", ["-d", dst, "-j", "2", out]);
      assert.equal(r.code, 0, r.err);
      assert.equal(await psql(c, FINGERPRINT, { database: dst }), await psql(c, FINGERPRINT, { database: src }));
      // --data-format text: pg_dump's text COPY in every file, and the same restore.
      const outText = join(dir, "t");
      const t = await cli(c, "dump", ["-Fd", "--data-format", "text", "-f", outText, "-T", "public.skipme", src]);
      assert.equal(t.code, 0, t.err);
      const lt = await run(exe, [...baseArgs, "restore", "-l", outText]);
      assert.match(lt.out, /^TABLE DATA app items$/m);
      assert.match(readFileSync(join(outText, "toc.json"), "utf8"), /"version": 1,/);
      const dstText = await createDatabase(c, "drest");
      const rt = await cli(c, "restore", ["-d", dstText, outText]);
      assert.equal(rt.code, 0, rt.err);
      assert.equal(await psql(c, FINGERPRINT, { database: dstText }), await psql(c, FINGERPRINT, { database: src }));
      assert.equal((await psql(c, "SELECT to_regclass('public.skipme') IS NULL", { database: dst })).trim(), "t");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`dump -F csv / ndjson writes one file per selected table, read in one snapshot, on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await createDatabase(c, "dsrc");
    await psql(c, SCHEMA, { database: src });
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-dump-"));
    try {
      const csv = await cli(c, "dump", ["-F", "csv", "-n", "app", "-f", join(dir, "csv"), src]);
      assert.equal(csv.code, 0, csv.err);
      assert.deepEqual(readdirSync(join(dir, "csv")).sort(), ["app.items.csv", "app.notes.csv"]);
      const lines = readFileSync(join(dir, "csv", "app.items.csv"), "utf8").trim().split("\n");
      assert.equal(lines[0], "id,name,tags,doc,price,at");
      assert.equal(lines.length, 3001);
      const nd = await cli(c, "dump", ["-F", "ndjson", "-t", "app.items", "-f", join(dir, "nd"), src]);
      assert.equal(nd.code, 0, nd.err);
      const rows = readFileSync(join(dir, "nd", "app.items.ndjson"), "utf8").trim().split("\n").map((x) => JSON.parse(x));
      assert.equal(rows.length, 3000);
      assert.deepEqual(rows[0].doc, { g: 1 });
      assert.deepEqual(rows[0].tags, ["a", "b1"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// strace shows each fsync with the path of its descriptor (-y): what a directory dump made durable.
const strace = spawnSync("strace", ["-V"]).status === 0 ? "strace" : undefined;

test("dump -Fd and -F csv fsync every file and the directory before exiting (toc.json before its rename), with --no-sync none of them, and both flush a large file while writing it (strace)", {
  skip: unavailable(15) ?? (strace ? undefined : "strace not installed (apt-get install strace)"),
}, async () => {
  const c = await cluster(15);
  const src = await createDatabase(c, "dsync");
  // big: over 64 MiB of COPY text, which a synced directory dump flushes while writing it.
  await psql(c, "CREATE TABLE a (x int); INSERT INTO a VALUES (1); CREATE TABLE b (y text); INSERT INTO b VALUES ('z'); CREATE TABLE big AS SELECT repeat('x', 1000) AS t FROM generate_series(1, 72000)", { database: src });
  const root = realpathSync(mkdtempSync(join(tmpdir(), "pg-rdma-dsync-")));
  // The fsync-family calls on the files of `dir`, in order: [call, path].
  const traced = async (dir: string, name: string, args: string[]) => {
    const log = join(root, `strace-${name}.txt`);
    const r = await run(strace!, ["-f", "-y", "-e", "trace=fsync,fdatasync", "-o", log, exe, ...baseArgs, "dump", ...conn(c), "-f", dir, ...args, src]);
    assert.equal(r.code, 0, r.err);
    // A call that overlaps another thread's is logged in two parts ("<unfinished ...>", then
    // "resumed"): the path is on the first. A failed fsync fails the command.
    return [...readFileSync(log, "utf8").matchAll(/\b(fsync|fdatasync)\(\d+<([^>]*)>/g)].map((m) => [m[1], m[2]]).filter(([, p]) => p === dir || p.startsWith(dir + "/"));
  };
  try {
    for (const [format, noSync] of [["d", false], ["d", true], ["csv", false], ["csv", true]] as const) {
      const dir = join(root, `${format}-${noSync}`);
      const inDir = (await traced(dir, `${format}-${noSync}`, ["-F", format, "-t", "a", "-t", "b", ...(noSync ? ["--no-sync"] : [])])).map(([, p]) => p);
      if (noSync) {
        assert.deepEqual(inDir, [], `${format} --no-sync`);
        continue;
      }
      const files = format === "d"
        ? [...JSON.parse(readFileSync(join(dir, "toc.json"), "utf8")).data.map((d: { file: string }) => join(dir, d.file)), join(dir, "toc.json.partial")]
        : ["public.a.csv", "public.b.csv"].map((f) => join(dir, f + ".partial"));
      for (const f of [...files, dir]) assert.ok(inDir.includes(f), `${format}: ${f} not fsynced; fsynced: ${inDir.join(", ")}`);
      // The directory last: the renames are what it makes durable.
      assert.equal(inDir.at(-1), dir, `${format}: ${inDir.join(", ")}`);
    }
    // A table over 64 MiB: its file is flushed (fdatasync) while it is being written, as
    // `<file>.partial`, and fsynced once written: under its final name in a directory dump,
    // before the rename in a per-table stream dump.
    for (const [format, file, synced] of [["d", "1.dat", "1.dat"], ["csv", "public.big.csv", "public.big.csv.partial"]]) {
      const dir = join(root, `big-${format}`);
      const calls = await traced(dir, `big-${format}`, ["-F", format, "-t", "big"]);
      const shown = calls.map((x) => x.join(" ")).join(", ");
      const ahead = calls.findIndex(([call, p]) => call === "fdatasync" && p === join(dir, file + ".partial"));
      assert.ok(ahead >= 0, `${format}: no flush while writing: ${shown}`);
      assert.ok(calls.findIndex(([call, p]) => call === "fsync" && p === join(dir, synced)) > ahead, `${format}: ${shown}`);
      assert.equal(statSync(join(dir, file)).size > 64 * 1024 * 1024, true);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("dump stops on SIGINT while it waits for a table lock: exit 130, no output file left complete", { skip: unavailable(15) && unavailable(18) ? "no PostgreSQL" : undefined }, async () => {
  const c = await cluster(unavailable(15) ? 18 : 15);
  const src = await createDatabase(c, "dsig");
  await psql(c, SCHEMA, { database: src });
  // Another session holds the table locked, so the dump waits at its LOCK TABLE.
  const holder = spawn(psqlPath(), ["-X", "-q", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", src, "-c", "BEGIN; LOCK app.items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"], { stdio: "ignore" });
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-dump-"));
  try {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && (await psql(c, `SELECT count(*) FROM pg_locks l JOIN pg_class r ON r.oid = l.relation WHERE r.relname = 'items' AND l.mode = 'AccessExclusiveLock' AND l.granted`, { database: src })).trim() !== "1") {
      await new Promise((r) => setTimeout(r, 100));
    }
    const file = join(dir, "out.sql");
    const child = spawn(exe, [...baseArgs, "dump", ...conn(c), "-f", file, src], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += String(d)));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    while (Date.now() < deadline && (await psql(c, `SELECT count(*) FROM pg_locks l JOIN pg_class r ON r.oid = l.relation WHERE r.relname = 'items' AND NOT l.granted`, { database: src })).trim() !== "1") {
      await new Promise((r) => setTimeout(r, 100));
    }
    const at = Date.now();
    process.kill(child.pid!, "SIGINT");
    assert.equal(await exited, 130, err);
    assert.ok(Date.now() - at < 10_000);
    assert.match(err, /interrupted by SIGINT/);
    assert.ok(!existsSync(file), "no complete dump file was left");
  } finally {
    holder.kill("SIGKILL");
    await psql(c, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${src}' AND pid <> pg_backend_pid()`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("dump and restore refuse contradictory options with usage errors (exit 2)", async () => {
  for (const [args, message] of [
    [["dump", "-j", "2", "-f", "/tmp/x.sql", "db"], /needs the directory format/],
    [["dump", "-a", "-s", "db"], /cannot be used together/],
    [["dump", "-F", "csv", "db"], /needs an output directory/],
    [["dump", "--data-format", "binary", "-f", "/tmp/x.sql", "db"], /--data-format applies to the directory format/],
    [["dump", "-Fd", "--data-format", "csv", "-f", "/tmp/x.dir", "db"], /data-format/],
    [["restore", "/tmp/nowhere"], /-d\/--dbname and -l\/--list/],
    [["restore", "-d", "db", "--clean", "/tmp/nowhere"], /--clean is not supported yet/],
  ] as const) {
    const r = await run(exe, [...baseArgs, ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, message);
  }
});
