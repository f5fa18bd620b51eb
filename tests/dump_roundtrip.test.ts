// dump/ against real servers: a database with every covered object kind and every text hazard,
// dumped as plain SQL (restored by psql) and as a directory (restored by our restore()), with
// per-table data checksums and, on PostgreSQL 15, Debian's pg_dump --schema-only compared
// between source and copy. Also stream formats, selection and warnings for uncovered kinds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { Unpackr } from "msgpackr";
import { cluster, type ClusterInfo, createDatabase, psql, psqlPath, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { connect } from "../pg/mod.ts";
import { dump, exportTable, readToc, restore, type TableProgress } from "../dump/mod.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const base = { env: {}, homeDir };
const work = mkdtempSync(join(tmpdir(), "pg-rdma-dump-"));
const conn = (c: ClusterInfo, db: string) => `host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`;

/** Every covered object kind, names with quotes/spaces/capitals/unicode/newlines, every data hazard. */
// Not String.raw: Bun's transpiler turns non-ASCII characters of raw templates into \u escapes.
const HAZARD_SQL = `
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dump reader') THEN CREATE ROLE "dump reader"; END IF; END $$;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA "Odd ""Schema""
x";
COMMENT ON SCHEMA "Odd ""Schema""
x" IS 'schema with a quote, a space and a newline';
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'h''appy');
CREATE DOMAIN app.posint AS integer DEFAULT 1 NOT NULL CONSTRAINT posint_check CHECK (VALUE > 0);
CREATE TYPE app.pair AS (a integer, "B b" text);
CREATE FUNCTION app.double_it(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$;
COMMENT ON FUNCTION app.double_it(integer) IS 'doubles';
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW."Updated" := now(); RETURN NEW; END $$;
CREATE SEQUENCE app.counter START 100 INCREMENT 5;
SELECT nextval('app.counter'), nextval('app.counter');
CREATE TABLE app."Parent" (
  id integer GENERATED ALWAYS AS IDENTITY (START WITH 10) PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  doubled integer GENERATED ALWAYS AS (length(name) * 2) STORED,
  m app.mood DEFAULT 'ok',
  p app.posint,
  d integer DEFAULT app.double_it(21) CHECK (d > 0),
  "Updated" timestamptz
);
COMMENT ON TABLE app."Parent" IS 'parent table';
COMMENT ON COLUMN app."Parent".name IS E'the\\nname';
CREATE TABLE app.child (
  id bigserial PRIMARY KEY,
  parent_id integer REFERENCES app."Parent"(id) ON DELETE CASCADE,
  pr app.pair,
  r int4range,
  moods app.mood[],
  rc regclass,
  EXCLUDE USING gist (r WITH &&)
);
CREATE INDEX child_parent_idx ON app.child (parent_id) WHERE parent_id IS NOT NULL;
CREATE TRIGGER "Touch it" BEFORE UPDATE ON app."Parent" FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE TABLE "Odd ""Schema""
x"."Ünïcode ""tbl""
 two" ("col ""1""" text, "Čol
2" int);
CREATE TABLE public.hazards (id int PRIMARY KEY, t text, b bytea, arr text[], j jsonb, js json, n numeric, f float8, ts timestamptz, iv interval);
INSERT INTO public.hazards VALUES
  (1, E'tab\\there', '\\x00', '{a,"b c",NULL,"d\\"e"}', '{"k": "v\\n"}', '[1, 2.50]', 1.5, 'NaN', '2020-01-01 00:00:00+00', '1 year 2 mons'),
  (2, E'new\\nline\\r\\n', '\\xdeadbeef', '{}', 'null', 'null', -0.0, '-Infinity', 'infinity', '-1 day'),
  (3, E'back\\\\slash', '', NULL, '[]', '{}', 1e100, 1.0000000000000002, '1999-12-31 23:59:59.999999+00', '00:00:00.000001'),
  (4, E'\\\\.', NULL, '{"\\\\\\\\."}', '"\\\\\\\\."', '"x"', 0, 0.1, NULL, NULL),
  (5, E'line\\n\\\\.\\nafter', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (6, '', NULL, '{""}', NULL, NULL, NULL, NULL, NULL, NULL),
  (7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (8, 'ünï €😀 ', NULL, '{ü}', '{"ü": "😀"}', NULL, NULL, NULL, NULL, NULL);
INSERT INTO public.hazards (id, b) SELECT 100, string_agg(set_byte('\\x00'::bytea, 0, i), ''::bytea ORDER BY i) FROM generate_series(0, 255) i;
INSERT INTO app."Parent" (name, m, p) VALUES ('alpha', 'sad', 3), ('beta', 'h''appy', 5), (E'ga\\tmma', NULL, 7);
UPDATE app."Parent" SET name = name || '!' WHERE name = 'beta';
INSERT INTO app.child (parent_id, pr, r, moods, rc) VALUES (10, ROW(1, 'x y'), '[1,5)', '{sad,NULL,h''appy}', 'app.child'), (11, ROW(NULL, NULL), '[5,9)', '{}', 'pg_catalog.pg_class'), (NULL, NULL, NULL, NULL, NULL);
INSERT INTO "Odd ""Schema""
x"."Ünïcode ""tbl""
 two" VALUES (E'a\\tb', 1), (NULL, NULL);
CREATE VIEW app.v1 AS SELECT id, name FROM app."Parent";
CREATE VIEW app.a_v2 AS SELECT id FROM app.v1 WHERE id > 10;
CREATE MATERIALIZED VIEW app.mv AS SELECT count(*) AS n FROM app.a_v2;
CREATE UNIQUE INDEX mv_n ON app.mv (n);
GRANT USAGE ON SCHEMA app TO "dump reader";
GRANT SELECT ON app."Parent" TO "dump reader";
GRANT SELECT (id), UPDATE (parent_id) ON app.child TO "dump reader";
REVOKE EXECUTE ON FUNCTION app.double_it(integer) FROM PUBLIC;
CREATE TABLE public.big (id int, t text);
INSERT INTO public.big SELECT 1, repeat(E'ab\\tc\\\\d\\n', 50 * 1024 * 1024 / 8);
`;

/** md5 of every user table's rows, by qualified name. */
async function checksums(c: ClusterInfo, db: string): Promise<Record<string, string>> {
  const client = await connect(conn(c, db), base);
  try {
    const { rows } = await client.query<{ s: string; t: string }>(
      `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1, 2`,
    );
    const out: Record<string, string> = {};
    for (const { s, t } of rows) {
      const q = `"${s.replaceAll('"', '""')}"."${t.replaceAll('"', '""')}"`;
      const r = await client.query<{ m: string | null; n: string }>(`SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) AS m, count(*)::text AS n FROM ${q} x`);
      out[`${s}.${t}`] = `${r.rows[0].n}:${r.rows[0].m}`;
    }
    const seq = await client.query<{ v: string }>(`SELECT string_agg(sequencename || '=' || coalesce(last_value::text, 'null'), ',' ORDER BY sequencename) AS v FROM pg_sequences`);
    out["(sequences)"] = seq.rows[0].v;
    return out;
  } finally {
    await client.close();
  }
}

function exec(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 256 << 20, env: { ...process.env, PGCONNECT_TIMEOUT: "10" } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/**
 * Debian pg_dump --schema-only output, normalised only where pg_dump itself varies between two
 * databases with the same schema: the "Dumped from/by" header lines (versions) and the
 * `\restrict`/`\unrestrict` lines whose key is random per run (pg_dump 15.14+).
 */
async function schemaOf(c: ClusterInfo, db: string): Promise<string> {
  const out = await exec("/usr/lib/postgresql/15/bin/pg_dump", ["--schema-only", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", db]);
  return out.split("\n").filter((l) => !/^-- Dumped (from|by) /.test(l) && !/^\\(un)?restrict /.test(l)).join("\n");
}

const hazardDbs = new Map<number, Promise<string>>();
function hazardDb(c: ClusterInfo): Promise<string> {
  let p = hazardDbs.get(c.version);
  if (!p) {
    p = (async () => {
      const db = await createDatabase(c, "dumpsrc");
      await psql(c, HAZARD_SQL, { database: db });
      await psql(c, "REFRESH MATERIALIZED VIEW app.mv; ANALYZE", { database: db });
      return db;
    })();
    hazardDbs.set(c.version, p);
  }
  return p;
}

for (const v of VERSIONS) {
  test(`dump() plain output restored by psql reproduces every table's data and the schema (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await hazardDb(c);
    const file = join(work, `plain-${v}.sql`);
    const progress: TableProgress[] = [];
    const summary = await dump(conn(c, src), { ...base, file, onProgress: (p) => void progress.push(p) });
    assert.ok(existsSync(file) && !existsSync(`${file}.partial`));
    const text = readFileSync(file, "utf8");
    assert.match(text, /^SET standard_conforming_strings = on;$/m);
    assert.match(text, /^COPY "public"."hazards" \("id", "t", "b", "arr", "j", "js", "n", "f", "ts", "iv"\) FROM stdin;$/m);
    assert.ok(summary.tables.some((t) => t.table === "big" && t.rows === 1 && t.bytes > 50e6));
    assert.deepEqual(summary.warnings, []); // every object in it is of a covered kind
    assert.ok(progress.some((p) => p.table === "hazards" && p.done && p.rows === 9));
    const dst = await createDatabase(c, "dumpdst");
    await exec(psqlPath(), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", dst, "-f", file]);
    const sums = await checksums(c, src);
    assert.equal(Object.keys(sums).length, 7); // 5 tables, 1 materialized view, the sequences
    assert.deepEqual(await checksums(c, dst), sums);
    if (v === 15) {
      const schema = await schemaOf(c, src);
      for (const s of [/CREATE TRIGGER "Touch it"/, /CREATE MATERIALIZED VIEW app\.mv/, /GENERATED ALWAYS AS IDENTITY/, /EXCLUDE USING gist/, /GRANT SELECT\(id\)/]) {
        assert.match(schema, s);
      }
      assert.equal(await schemaOf(c, dst), schema);
    }
  });

  test(`dump() directory output restored by restore() with jobs=4 matches the source, as jobs=1 does (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await hazardDb(c);
    const want = await checksums(c, src);
    for (const jobs of [1, 4]) {
      const dir = join(work, `dir-${v}-${jobs}`);
      const summary = await dump(conn(c, src), { ...base, format: "directory", file: dir, jobs, compression: jobs === 4 ? "gzip" : "none", dataFormat: "binary" });
      assert.equal(summary.tables.length, 5);
      const toc = await readToc(dir);
      assert.equal(toc.data.length, 5);
      // Binary COPY wherever the types allow (asked for); app.child has an array of the database's own enum
      // (array_recv checks the element type's OID, which a restore changes) and a regclass
      // (binary: the OID itself), so it stays text. Its composite of built-in types is fine.
      assert.deepEqual(toc.data.map((d) => `${d.table}:${d.format ?? "text"}`).sort(), ["Parent:binary", "big:binary", "child:text", "hazards:binary", "Ünïcode \"tbl\"\n two:binary"].sort());
      assert.equal(toc.version, 2);
      assert.ok(readdirSync(dir).every((f) => !f.endsWith(".partial")));
      const dst = await createDatabase(c, "dumpdst");
      const r = await restore(dir, conn(c, dst), { ...base, jobs });
      assert.equal(r.tables, 5);
      assert.deepEqual(await checksums(c, dst), want, `jobs=${jobs}`);
      if (v === 15) assert.equal(await schemaOf(c, dst), await schemaOf(c, src), `jobs=${jobs}`);
    }
  });

  test(`exportTable() streams CSV, NDJSON, MessagePack and binary COPY of one table (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await hazardDb(c);
    const client = await connect(conn(c, src), base);
    try {
      const collect = async (it: AsyncIterable<Uint8Array>) => {
        const parts: Uint8Array[] = [];
        for await (const p of it) parts.push(p);
        return Buffer.concat(parts);
      };
      const t = { schema: "public", table: "hazards" };
      const csv = (await collect(exportTable(client, t, { format: "csv", columns: ["id", "t"] }))).toString();
      assert.ok(csv.startsWith("id,t\n1,tab\there\n"));
      assert.match(csv, /\n6,""\n7,\n/);
      const lines = (await collect(exportTable(client, t, { format: "ndjson" }))).toString().trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.equal(lines.length, 9);
      assert.deepEqual(lines.find((l) => l.id === 1).j, { k: "v\n" });
      assert.equal(lines.find((l) => l.id === 5).t, "line\n\\.\nafter");
      const packed = await collect(exportTable(client, t, { format: "msgpack" }));
      const rows = new Unpackr({ useRecords: true, sequential: true }).unpackMultiple(packed) as Record<string, unknown>[];
      assert.equal(rows.length, 9);
      assert.deepEqual(Uint8Array.from(rows.find((r) => r.id === 100)!.b as Uint8Array), new Uint8Array(256).map((_, i) => i));
      const bin = await collect(exportTable(client, t, { format: "binary", compression: "gzip" }));
      const { gunzipSync } = await import("node:zlib");
      assert.equal(gunzipSync(bin).subarray(0, 11).toString("latin1"), "PGCOPY\n\xff\r\n\0");
    } finally {
      await client.close();
    }
  });

  test(`dump() honours -n/-t/-T/--exclude-table-data selection and schemaOnly/dataOnly (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await hazardDb(c);
    const sel = async (o: Parameters<typeof dump>[1]) => {
      const file = join(work, `sel-${v}-${Math.random().toString(36).slice(2)}.sql`);
      const s = await dump(conn(c, src), { ...base, file, ...o });
      return { s, text: readFileSync(file, "utf8") };
    };
    const a = await sel({ tables: ["app.?arent"] });
    assert.deepEqual(a.s.tables.map((t) => t.table), ["Parent"]);
    assert.doesNotMatch(a.text, /CREATE SCHEMA/);
    const b = await sel({ schemas: ["APP"], excludeTables: ["app.child"], excludeTableData: ["app.*ar*"] });
    assert.deepEqual(b.s.tables.map((t) => t.table), []);
    assert.match(b.text, /CREATE TABLE "app"."Parent"/);
    assert.doesNotMatch(b.text, /CREATE TABLE "app"."child"/);
    const d = await sel({ tables: ["hazards"], dataOnly: true });
    assert.doesNotMatch(d.text, /CREATE TABLE/);
    assert.match(d.text, /^COPY "public"."hazards"/m);
    const s = await sel({ tables: ["hazards"], schemaOnly: true });
    assert.equal(s.s.tables.length, 0);
    assert.match(s.text, /CREATE TABLE "public"."hazards"/);
    await assert.rejects(sel({ tables: ["otherdb.public.hazards"] }), /cross-database references are not implemented/);
    const full = await sel({});
    assert.match(full.text, /^ALTER TABLE "app"."Parent" OWNER TO "postgres";$/m);
    assert.match(full.text, /^GRANT SELECT \("id"\) ON TABLE "app"."child" TO "dump reader";$/m);
    const bare = await sel({ noOwner: true, noPrivileges: true });
    assert.doesNotMatch(bare.text, / OWNER TO |^GRANT |^REVOKE /m);
  });

  test(`dump() writes a plain dump to a caller's stream and leaves it open (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const src = await hazardDb(c);
    const chunks: Buffer[] = [];
    const out = new PassThrough();
    out.on("data", (b: Buffer) => chunks.push(b));
    const s = await dump(conn(c, src), { ...base, output: out, tables: ["hazards"] });
    assert.equal(s.rows, 9);
    assert.equal(out.writableEnded, false);
    const text = Buffer.concat(chunks).toString();
    assert.match(text, /^COPY "public"."hazards" .* FROM stdin;\n1\ttab\\there\t/m);
    assert.ok(text.endsWith("-- PostgreSQL database dump complete\n--\n\n"));
  });
}

// The upgrade path: a directory dump of PostgreSQL 15 with binary data files (the built-in types'
// binary forms do not change between versions) restored into PostgreSQL 18.
test("a directory dump of PostgreSQL 15 in binary COPY restores into PostgreSQL 18 with the same data", { skip: unavailable(15) ?? unavailable(18) }, async () => {
  const [c15, c18] = [await cluster(15), await cluster(18)];
  const src = await hazardDb(c15);
  await hazardDb(c18); // the role "dump reader" the privileges name
  const dir = join(work, "dir-15-to-18");
  await dump(conn(c15, src), { ...base, format: "directory", file: dir, jobs: 2, dataFormat: "binary" });
  assert.equal((await readToc(dir)).data.filter((d) => d.format === "binary").length, 4);
  const dst = await createDatabase(c18, "dumpup");
  await restore(dir, conn(c18, dst), { ...base, jobs: 2 });
  assert.deepEqual(await checksums(c18, dst), await checksums(c15, src));
});

test("dump() -f /dev/null or a FIFO writes in place: the device stays a device, no .partial beside it (PostgreSQL 18)", { skip: unavailable(18) }, async () => {
  const c = await cluster(18);
  const src = await hazardDb(c);
  const s = await dump(conn(c, src), { ...base, file: "/dev/null", tables: ["hazards"] });
  assert.equal(s.rows, 9);
  assert.ok(statSync("/dev/null").isCharacterDevice(), "/dev/null is still a character device");
  assert.equal(existsSync("/dev/null.partial"), false);
  // A FIFO read by another process gets the whole dump through the FIFO itself.
  const fifo = join(mkdtempSync(join(work, "fifo-")), "dump.fifo");
  execFileSync("mkfifo", [fifo]);
  const copied = `${fifo}.out`;
  const reader = spawn("sh", ["-c", `cat "$1" > "$2"`, "sh", fifo, copied], { stdio: "ignore" });
  const exited = new Promise<number | null>((r) => reader.on("exit", (code) => r(code)));
  await dump(conn(c, src), { ...base, file: fifo, tables: ["hazards"] });
  assert.equal(await exited, 0);
  assert.ok(statSync(fifo).isFIFO(), "the FIFO is still a FIFO");
  assert.equal(existsSync(`${fifo}.partial`), false);
  assert.match(readFileSync(copied, "utf8"), /^COPY "public"."hazards" .* FROM stdin;\n1\ttab\\there\t/m);
});

test("dump() warns by name about object kinds it does not cover (PostgreSQL 18)", { skip: unavailable(18) }, async () => {
  const c = await cluster(18);
  const db = await createDatabase(c, "dumpwarn");
  await psql(c, `CREATE TABLE t (a int, b int); ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY p1 ON t USING (true);
    CREATE RULE r1 AS ON INSERT TO t WHERE false DO INSTEAD NOTHING; CREATE TABLE parted (a int) PARTITION BY RANGE (a);
    CREATE AGGREGATE my_sum(int) (sfunc = int4pl, stype = int); CREATE STATISTICS st ON a, b FROM t`, { database: db });
  const warned: string[] = [];
  const s = await dump(conn(c, db), { ...base, file: join(work, "warn.sql"), onWarning: (m) => void warned.push(m) });
  assert.deepEqual(s.warnings, warned);
  for (
    const what of [
      'policy p1 on table "public"."t": object kind not covered',
      'rule r1 on table "public"."t": object kind not covered',
      'table "public"."parted": object kind not covered',
      'function "public"."my_sum"(integer): object kind not covered',
      'statistics object "public"."st": object kind not covered',
      'table "public"."t": its row-level security setting is not dumped',
    ]
  ) {
    assert.ok(warned.some((w) => w.includes(what)), `warning for ${what} in ${JSON.stringify(warned)}`);
  }
});

test("dump() refuses a bad zstd level with a clear error, and bad options with TypeError/RangeError", async () => {
  await assert.rejects(dump("host=/nonexistent", { file: join(work, "x.sql"), compression: "zstd", compressionLevel: 0 }), { name: "RangeError", message: /zstd compression level must be/ });
  await assert.rejects(dump("host=/nonexistent", { file: join(work, "x.sql"), jobs: 2 }), { name: "RangeError", message: /directory format/ });
  await assert.rejects(dump("host=/nonexistent", { format: "directory" }), { name: "TypeError" });
  await assert.rejects(dump("host=/nonexistent", { file: "x", dataOnly: true, schemaOnly: true }), RangeError);
  await assert.rejects(dump("host=/nonexistent", { file: "x", snapshot: "x'; DROP" }), RangeError);
  await assert.rejects(dump("host=/nonexistent", { file: "x", dataFormat: "binary" }), { name: "RangeError", message: /dataFormat binary needs the directory format/ });
  await assert.rejects(dump("host=/nonexistent", { format: "directory", file: "x", dataFormat: "csv" as "text" }), { name: "RangeError", message: /unknown dataFormat "csv"/ });
  writeFileSync(join(work, "not-a-dump.json"), "{}");
  await assert.rejects(restore(work, "host=/nonexistent"), /not a finished pg-rdma dump directory/);
  // A table of contents of an unknown version, or with a data file in an unknown format.
  const bad = join(work, "bad-toc");
  mkdirSync(bad);
  const toc = { format: "pg-rdma-dump", version: 2, data: [{ schema: "public", table: "t", format: "csv" }] };
  writeFileSync(join(bad, "toc.json"), JSON.stringify({ ...toc, version: 3 }));
  await assert.rejects(restore(bad, "host=/nonexistent"), /is not a pg-rdma dump table of contents \(version 1 or 2\)/);
  writeFileSync(join(bad, "toc.json"), JSON.stringify(toc));
  await assert.rejects(restore(bad, "host=/nonexistent"), /table data public\.t has an unknown format "csv"/);
});
