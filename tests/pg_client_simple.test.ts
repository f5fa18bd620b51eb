// query() without parameters sends one simple Query: the results must be exactly those of the
// extended protocol (every decoded type, fields, tags, errors), over native TCP and the FFI
// transport; several statements follow libpq's PQexec (last result, first error throws).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { cluster, type ClusterInfo, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { type Client, connect, connectWith, netSocketFactory, OID, PostgresError, type QueryResult, resolveConnInfo, type SocketFactory, TypeRegistry } from "../pg/mod.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));

const TRANSPORTS = [
  { name: "native", conn: "", env: {}, expect: "tcp" },
  { name: "rsocket/kernel", conn: " with_rsocket=true", env: { PG_RDMA_PROVIDER: "kernel" }, expect: "rsocket" },
] as const;
type Transport = (typeof TRANSPORTS)[number];

function tcpInfo(c: ClusterInfo, tr: Transport): string {
  return `host=127.0.0.1 port=${c.port} user=${ROLES.superuser.user} password=${ROLES.superuser.password} dbname=postgres sslmode=disable${tr.conn}`;
}

async function withClient<T>(c: ClusterInfo, tr: Transport, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(tcpInfo(c, tr), { env: tr.env, homeDir });
  assert.equal(client.transport.transport, tr.expect);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

// One literal per type the default registry decodes (pg/types.ts OID and its arrays); each is
// selected as a value, as NULL and inside an array with a NULL.
const TYPES: [string, string][] = [
  ["bool", "true"],
  ["bytea", `'\\x${Buffer.from(Uint8Array.from({ length: 256 }, (_, i) => i)).toString("hex")}'`],
  ['"char"', "'x'"],
  ["name", "'pg_class'"],
  ["int8", "'-9223372036854775808'"],
  ["int2", "'-32768'"],
  ["int4", "'2147483647'"],
  ["regproc", "'now'"],
  ["text", "'héllo, \"☃\" {x} \\ 😀'"],
  ["oid", "'4294967295'"],
  ["xid", "'42'"],
  ["cid", "'7'"],
  ["json", `'{"a":[1,2.5,{"b":null}],"c":"☃"}'`],
  ["xml", "'<a b=\"1\">t</a>'"],
  ["cidr", "'10.1.0.0/16'"],
  ["float4", "'-Infinity'"],
  ["float8", "'1e308'"],
  ["macaddr", "'08:00:2b:01:02:03'"],
  ["inet", "'::ffff:1.2.3.4/128'"],
  ["bpchar", "'ab'::char(3)"],
  ["varchar", "'abc'"],
  ["date", "'0044-03-15 BC'"],
  ["time", "'23:59:59.999999'"],
  ["timestamp", "'2024-01-02 03:04:05.678'"],
  ["timestamptz", "'2024-01-02 03:04:05.678+05:30'"],
  ["interval", "'1 year 2 mons -3 days 04:05:06.789'"],
  ["timetz", "'12:34:56.5+05:30'"],
  ["numeric", "'-123456789012345678901234567890.000000000000000000001'"],
  ["uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"],
  ["pg_lsn", "'16/B374D848'"],
  ["jsonb", `'{"k":[true,null,"v"]}'`],
];
const TYPE_SQL = "SELECT " + TYPES.flatMap(([t, lit], i) => [
  `${lit}::${t} AS v${i}`,
  `NULL::${t} AS n${i}`,
  `ARRAY[${lit}::${t}, NULL] AS a${i}`,
]).join(", ") + ", 'NaN'::float8 AS nan, 'infinity'::timestamptz AS inf, '{}'::int4[] AS empty_arr";

/** The same SQL by the simple path and by the extended protocol. */
async function both<R>(client: Client, sql: string, rowMode?: "array"): Promise<[QueryResult<R>, QueryResult<R>]> {
  const simple = await client.query<R>(sql, [], rowMode ? { rowMode } : {});
  const extended = await client.query<R>(sql, [], rowMode ? { rowMode, extended: true } : { extended: true });
  return [simple, extended];
}

/** The error a call rejects with. */
async function errorOf(p: Promise<unknown>): Promise<PostgresError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof PostgresError, String(e));
    return e;
  }
  assert.fail("expected a PostgresError");
}

for (const v of VERSIONS) {
  const skip = unavailable(v);
  for (const tr of TRANSPORTS) {
    test(`query() PG${v} ${tr.name}: without parameters gives exactly the extended protocol's result for every decoded type`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await client.query("SET TimeZone = 'Asia/Kolkata'");
        for (const rowMode of [undefined, "array"] as const) {
          const [simple, extended] = await both<Record<string, unknown>>(client, TYPE_SQL, rowMode);
          assert.deepEqual(simple, extended);
          assert.equal(simple.fields.length, TYPES.length * 3 + 3);
        }
        // Decoded, not left as text: the comparison above is between real decodings.
        const { rows: [row] } = await client.query(TYPE_SQL);
        assert.equal(row.v0, true);
        assert.equal(row.v6, 2147483647);
        assert.deepEqual(row.a6, [2147483647, null]);
        assert.ok(row.v23 instanceof Date);
        assert.equal(row.v1 instanceof Uint8Array && row.v1.length, 256);
        assert.ok(Number.isNaN(row.nan));
        assert.equal(row.inf, Infinity);
        assert.deepEqual(row.empty_arr, []);
      });
    });

    test(`query() PG${v} ${tr.name}: without parameters gives the extended protocol's tags, fields and errors`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await client.query("CREATE TEMP TABLE s (id int PRIMARY KEY, t text); INSERT INTO s VALUES (1, 'a'), (2, 'b')");
        for (const sql of [
          "INSERT INTO s SELECT coalesce(max(id), 0) + 1, 'n' FROM s",
          "UPDATE s SET t = t || 'x' WHERE id = 1 RETURNING *",
          "SELECT s.*, s.tableoid::regclass::text AS rel FROM s ORDER BY id",
          "SELECT 1 AS a WHERE false",
          "DELETE FROM s WHERE id > 100",
          "",
          "-- only a comment",
          "SHOW TimeZone",
          "VALUES (1, 'x'), (2, NULL)",
        ]) {
          const [simple, extended] = await both(client, sql);
          // The extended run of a DML statement changed the table again: compare the shape.
          assert.deepEqual({ ...simple, rows: simple.rows.length }, { ...extended, rows: extended.rows.length }, sql);
          if (!/^(UPDATE|INSERT)/.test(sql)) assert.deepEqual(simple.rows, extended.rows, sql);
        }
        const sel = await client.query("SELECT id, t FROM s ORDER BY id");
        assert.equal(sel.fields[0].tableOid > 0, true);
        assert.deepEqual(sel.rows, [{ id: 1, t: "axx" }, { id: 2, t: "b" }, { id: 3, t: "n" }, { id: 4, t: "n" }]);
        for (const sql of ["SELEC 1", "SELECT * FROM no_such_table", "SELECT 1/0", "INSERT INTO s VALUES (1, 'dup')", "SELECT 'x'::int", "SELECT * FROM s WHERE nope"]) {
          const [a, b] = [await errorOf(client.query(sql)), await errorOf(client.query(sql, [], { extended: true }))];
          const strip = (e: PostgresError) => ({ code: e.code, message: e.message, position: e.position, detail: e.detail, severity: e.severity, constraint: e.constraint });
          assert.deepEqual(strip(a), strip(b), sql);
        }
        // The one difference: a placeholder without parameters fails in the parser (42P02, with
        // its position) instead of at Bind (08P01). Both refuse it.
        assert.deepEqual([(await errorOf(client.query("SELECT $1"))).code, (await errorOf(client.query("SELECT $1", [], { extended: true }))).code], ["42P02", "08P01"]);
        assert.deepEqual((await client.query("SELECT 'after errors' AS s")).rows, [{ s: "after errors" }]);
      });
    });

    test(`query() PG${v} ${tr.name}: several statements return the last result, as PQexec does`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        const r = await client.query("CREATE TEMP TABLE m (x int); INSERT INTO m VALUES (1), (2); SELECT sum(x)::int AS s FROM m");
        assert.deepEqual(r.rows, [{ s: 3 }]);
        assert.equal(r.command, "SELECT 1");
        const tag = await client.query("SELECT 1; INSERT INTO m VALUES (3)");
        assert.deepEqual([tag.command, tag.rowCount, tag.fields, tag.rows], ["INSERT 0 1", 1, [], []]);
        const arr = await client.query<unknown[]>("SELECT 1; SELECT 'a', NULL", [], { rowMode: "array" });
        assert.deepEqual(arr.rows, [["a", null]]);
        // The extended protocol (and every option that needs it) still refuses several statements.
        for (const options of [{ extended: true }, { binary: true }, { types: [23] }, { prepare: true }]) {
          assert.equal((await errorOf(client.query("SELECT 1; SELECT 2", [], options))).code, "42601", JSON.stringify(options));
        }
        assert.equal((await errorOf(client.query("SELECT $1::int; SELECT 2", [1]))).code, "42601");
      });
    });

    test(`query() PG${v} ${tr.name}: the first failing statement throws; later ones do not run; earlier ones roll back`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await client.query("CREATE TEMP TABLE f (x int)");
        const e = await errorOf(client.query("INSERT INTO f VALUES (1); SELECT 1/0; INSERT INTO f VALUES (2)"));
        assert.equal(e.code, "22012");
        assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM f")).rows, [{ n: 0 }]);
        assert.equal(client.transactionStatus, "I");
        // A COMMIT inside the text ends the implicit transaction: what it committed stays.
        assert.equal((await errorOf(client.query("BEGIN; INSERT INTO f VALUES (3); COMMIT; INSERT INTO f VALUES (4); SELECT 1/0"))).code, "22012");
        assert.deepEqual((await client.query("SELECT array_agg(x)::int[] AS xs FROM f")).rows, [{ xs: [3] }]);
        // An open transaction stays open, and an error in it leaves it failed, as in psql.
        await client.query("BEGIN; INSERT INTO f VALUES (5)");
        assert.equal(client.transactionStatus, "T");
        assert.equal((await errorOf(client.query("SELECT 1/0"))).code, "22012");
        assert.equal(client.transactionStatus, "E");
        assert.equal((await errorOf(client.query("SELECT 1"))).code, "25P02");
        await client.query("ROLLBACK");
        assert.deepEqual((await client.query("SELECT array_agg(x)::int[] AS xs FROM f")).rows, [{ xs: [3] }]);
      });
    });

    test(`query() PG${v} ${tr.name}: simple and extended queries pipelined together come back in order; a failure fails alone`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        const n = 3000;
        const ps = Array.from({ length: n }, (_, i) =>
          i === 1500 ? client.query("SELECT 1/0") : i % 2 ? client.query(`SELECT ${i} AS i`) : client.query("SELECT $1::int AS i", [i]));
        const settled = await Promise.allSettled(ps);
        for (let i = 0; i < n; i++) {
          const s = settled[i];
          if (i === 1500) assert.equal(s.status === "rejected" && (s.reason as PostgresError).code, "22012");
          else assert.equal(s.status === "fulfilled" && (s.value.rows[0] as { i: number }).i, i, `query ${i}`);
        }
      });
    });

    test(`query() PG${v} ${tr.name}: COPY through the simple path is refused cleanly and the connection goes on`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await client.query("CREATE TEMP TABLE cp (x int)");
        await assert.rejects(client.query("COPY cp FROM STDIN"), /use copyFrom\(\)/);
        await assert.rejects(client.query("COPY (SELECT 1) TO STDOUT"), /use copyTo\(\)/);
        assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM cp")).rows, [{ n: 0 }]);
      });
    });
  }

  test(`simpleQuery() PG${v}: onResult sees the results before a failing statement; the call rejects with its error`, { skip }, async () => {
    const c = await cluster(v);
    await withClient(c, TRANSPORTS[0], async (client) => {
      const seen: unknown[] = [];
      const e = await errorOf(client.simpleQuery("SELECT 1 AS a; SELECT 'b' AS b; SELECT 1/0; SELECT 3", { onResult: (r) => seen.push(r.rows) }));
      assert.equal(e.code, "22012");
      assert.deepEqual(seen, [[{ a: 1 }], [{ b: "b" }]]);
      // A callback that throws rejects the call after the server is done; the client goes on.
      await assert.rejects(client.simpleQuery("SELECT 1; SELECT 2", { onResult: () => { throw new RangeError("mine"); } }), RangeError);
      assert.deepEqual((await client.simpleQuery("SELECT 2 AS two")).map((r) => r.rows), [[{ two: 2 }]]);
      await assert.rejects(client.simpleQuery("SELECT 1", { onResult: 5 as unknown as () => void }), TypeError);
    });
  });
}

test("query(): decoders a caller registered for int4, text and bool are used on both paths (built-in fast paths step aside)", { skip: unavailable(18) }, async () => {
  const c = await cluster(18);
  const types = new TypeRegistry()
    .set(OID.int4, { text: (s) => `int:${s}` })
    .set(OID.text, { text: (s) => `text:${s}` })
    .set(OID.bool, { text: (s) => `bool:${s}` });
  const client = await connect(tcpInfo(c, TRANSPORTS[0]), { env: {}, homeDir, types });
  try {
    const want = [{ i: "int:-7", t: "text:x", b: "bool:t", s: 3 }];
    assert.deepEqual((await client.query("SELECT -7 AS i, 'x'::text AS t, true AS b, 3::int2 AS s")).rows, want);
    assert.deepEqual((await client.query("SELECT -7 AS i, 'x'::text AS t, true AS b, 3::int2 AS s", [], { extended: true })).rows, want);
  } finally {
    await client.close();
  }
});

/** The default socket factory, recording the message types of each write in `writes`. */
function recordingFactory(writes: number[][]): SocketFactory {
  return async (target, options) => {
    const s: Duplex = await netSocketFactory(target, options);
    const write = s.write.bind(s) as (chunk: Uint8Array, ...rest: unknown[]) => boolean;
    s.write = ((chunk: Uint8Array, ...rest: unknown[]) => {
      // Message types of one write (after startup, every write is whole messages).
      const types: number[] = [];
      const b = Uint8Array.from(chunk);
      const dv = new DataView(b.buffer);
      for (let p = 0; p + 5 <= b.length; p += 1 + dv.getInt32(p + 1)) types.push(b[p]);
      writes.push(types);
      return write(chunk, ...rest);
    }) as typeof s.write;
    return s;
  };
}

test("query() without parameters writes one Query message; with parameters or extended: true, Parse/Bind/Describe/Execute/Sync", { skip: unavailable(18) }, async () => {
  const c = await cluster(18);
  const writes: number[][] = [];
  const info = resolveConnInfo(tcpInfo(c, TRANSPORTS[0]), { env: {}, homeDir });
  const client = await connectWith(info, { socketFactory: recordingFactory(writes) });
  try {
    const letters = (ts: number[]) => String.fromCharCode(...ts);
    writes.length = 0;
    await client.query("SELECT 1");
    await client.query("SELECT $1::int", [1]);
    await client.query("SELECT 1", [], { extended: true });
    await client.query("SELECT 1", [], { rowMode: "array" });
    assert.deepEqual(writes.map(letters), ["Q", "PBDES", "PBDES", "Q"]);
    await assert.rejects(client.query("SELECT '\0'"), TypeError);
    // A message that fails half written leaves nothing behind in the reused builder.
    await assert.rejects(client.query("SELECT $1::text AS t, '\0'", ["x"]), TypeError);
    await assert.rejects(client.query("SELECT $1::text AS t, '\0'", ["x"], { prepare: true }), TypeError);
    await assert.rejects(client.query("SELECT $1::text AS t, '\0'", ["x"], { prepare: true }), TypeError);
    const big = "é".repeat(100_000);
    assert.deepEqual((await client.query("SELECT $1::text AS t", [big])).rows, [{ t: big }]);
    assert.deepEqual((await client.query("SELECT $1::int AS n", [5], { prepare: true })).rows, [{ n: 5 }]);
    assert.deepEqual((await client.query("SELECT $1::int AS n", [6], { prepare: true })).rows, [{ n: 6 }]);
  } finally {
    await client.close();
  }
});

test("query() with prepare: true parses and describes a statement once, then sends only Bind/Execute/Sync; results match the unprepared path", { skip: unavailable(18) }, async () => {
  const c = await cluster(18);
  const writes: number[][] = [];
  const info = resolveConnInfo(tcpInfo(c, TRANSPORTS[0]), { env: {}, homeDir });
  const client = await connectWith(info, { socketFactory: recordingFactory(writes), prepare: true });
  const letters = () => writes.map((ts) => String.fromCharCode(...ts)).join("");
  try {
    const sql = "SELECT $1::int AS n, $1::text AS t, ARRAY[$1::int, NULL] AS a";
    const want = (i: number) => [{ n: i, t: String(i), a: [i, null] }];
    writes.length = 0;
    // Pipelined, all written before any answer: the first fails in Bind (bad int), after its
    // statement was described; the others run without a Describe and still decode every column.
    const settled = await Promise.allSettled(["x", ...Array.from({ length: 20 }, (_, i) => i)].map((p) => client.query(sql, [p])));
    assert.equal(letters(), "PDBES" + "BES".repeat(20));
    assert.equal(settled[0].status === "rejected" && (settled[0].reason as PostgresError).code, "22P02");
    for (let i = 0; i < 20; i++) {
      const s = settled[i + 1];
      assert.equal(s.status, "fulfilled");
      assert.deepEqual((s as PromiseFulfilledResult<QueryResult>).value.rows, want(i));
    }
    const unprepared = await client.query(sql, [7], { prepare: false });
    writes.length = 0;
    const text = await client.query(sql, [7]);
    const binary = await client.query(sql, [7], { binary: true });
    assert.equal(letters(), "BESBES");
    assert.deepEqual(text.rows, want(7));
    assert.deepEqual(binary.rows, want(7));
    assert.deepEqual(text.fields, unprepared.fields);
    assert.deepEqual(binary.fields.map((f) => f.format), [1, 1, 1]);
    assert.deepEqual(text.fields.map((f) => f.format), [0, 0, 0]);
    // A statement without rows: no columns, its command tag and count.
    await client.query("CREATE TEMP TABLE prep_t (a int)", [], { prepare: false });
    for (const v of [1, 2]) {
      const r = await client.query("INSERT INTO prep_t VALUES ($1)", [v]);
      assert.deepEqual([r.command, r.rowCount, r.fields, r.rows], ["INSERT 0 1", 1, [], []]);
    }
    // Result columns changed under the cached statement: the server refuses it (0A000), never
    // rows decoded with the old columns; the next call prepares afresh and sees the new type.
    const sel = "SELECT a FROM prep_t WHERE $1::int IS NOT NULL ORDER BY a";
    assert.deepEqual((await client.query(sel, [1])).rows, [{ a: 1 }, { a: 2 }]);
    await client.query("ALTER TABLE prep_t ALTER a TYPE text", [], { prepare: false });
    await assert.rejects(client.query(sel, [1]), { code: "0A000" });
    assert.deepEqual((await client.query(sel, [1])).rows, [{ a: "1" }, { a: "2" }]);
  } finally {
    await client.close();
  }
});
