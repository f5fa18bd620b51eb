// Type decoding and encoding: unit tests of decodeText/decodeBinary, and round trips of every
// supported type through real servers in text and binary result formats, as results and as
// parameters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cluster, createDatabase, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { type Client, connect, decodeBinary, decodeText, encodeText, Interval, OID, TypeRegistry } from "../pg/mod.ts";

const base = { env: {} };

test("decodeText() decodes the common scalar types", () => {
  assert.equal(decodeText(OID.int4, "-42"), -42);
  assert.equal(decodeText(OID.int8, "9223372036854775807"), "9223372036854775807");
  assert.equal(decodeText(OID.bool, "t"), true);
  assert.equal(decodeText(OID.bool, "f"), false);
  assert.ok(Number.isNaN(decodeText(OID.float8, "NaN")));
  assert.equal(decodeText(OID.float8, "-Infinity"), -Infinity);
  assert.equal(decodeText(OID.numeric, "1.000"), "1.000");
  assert.deepEqual(decodeText(OID.bytea, "\\x00ff10"), new Uint8Array([0, 255, 16]));
  assert.deepEqual(decodeText(OID.jsonb, '{"a":[1,null]}'), { a: [1, null] });
  assert.deepEqual(decodeText(OID.timestamptz, "2024-01-02 03:04:05.678+05:30"), new Date("2024-01-01T21:34:05.678Z"));
  assert.deepEqual(decodeText(OID.timestamp, "0044-03-15 12:00:00 BC"), new Date(Date.UTC(-43, 2, 15, 12)));
  assert.equal(decodeText(OID.timestamptz, "infinity"), Infinity);
  assert.deepEqual(decodeText(OID.interval, "1 year 2 mons -3 days -04:05:06.5"), new Interval(14, -3, -14706500000));
  assert.equal(decodeText(99999, "unknown type"), "unknown type");
});

test("decodeText() parses arrays: NULLs, quoting, nesting, bounds", () => {
  assert.deepEqual(decodeText(1007, "{1,NULL,3}"), [1, null, 3]);
  assert.deepEqual(decodeText(1007, "{{1,2},{3,4}}"), [[1, 2], [3, 4]]);
  assert.deepEqual(decodeText(1009, '{"a,b","c\\"d","e\\\\f",NULL,"NULL",""}'), ["a,b", 'c"d', "e\\f", null, "NULL", ""]);
  assert.deepEqual(decodeText(1007, "[0:1]={5,6}"), [5, 6]);
  assert.deepEqual(decodeText(1007, "{}"), []);
  assert.throws(() => decodeText(1007, "{1,2"), TypeError);
});

test("decodeBinary() decodes integers, floats, numerics, uuids and arrays", () => {
  assert.equal(decodeBinary(OID.int4, new Uint8Array([0xff, 0xff, 0xff, 0xfe])), -2);
  assert.equal(decodeBinary(OID.int8, new Uint8Array([0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), "9223372036854775807");
  assert.equal(decodeBinary(OID.oid, new Uint8Array([0xff, 0xff, 0xff, 0xff])), 4294967295);
  // numeric -12.5: ndigits 2, weight 0, sign 0x4000, dscale 1, digits 12, 5000
  assert.equal(decodeBinary(OID.numeric, new Uint8Array([0, 2, 0, 0, 0x40, 0, 0, 1, 0, 12, 0x13, 0x88])), "-12.5");
  // numeric 0.0001: ndigits 1, weight -1, dscale 4, digit 1
  assert.equal(decodeBinary(OID.numeric, new Uint8Array([0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1])), "0.0001");
  // numeric 20000: ndigits 1, weight 1, digit 2
  assert.equal(decodeBinary(OID.numeric, new Uint8Array([0, 1, 0, 1, 0, 0, 0, 0, 0, 2])), "20000");
  assert.equal(decodeBinary(OID.uuid, Uint8Array.from({ length: 16 }, (_, i) => i)), "00010203-0405-0607-0809-0a0b0c0d0e0f");
  // int4[] {7,NULL}: ndim 1, hasnull 1, elem 23, dim 2, lbound 1, then 7 and NULL
  const arr = new Uint8Array([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 23, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(decodeBinary(1007, arr), [7, null]);
  const unknown = decodeBinary(99999, new Uint8Array([1, 2]));
  assert.deepEqual(unknown, new Uint8Array([1, 2]));
});

test("TypeRegistry: int8 as bigint or number, custom decoders, and bad options", () => {
  const big = new TypeRegistry({ int8: "bigint" });
  assert.equal(big.decodeText(OID.int8, "-9223372036854775808"), -9223372036854775808n);
  assert.equal(new TypeRegistry({ int8: "number" }).decodeText(OID.int8, "12"), 12);
  const custom = new TypeRegistry().set(424242, { text: (s) => s.toUpperCase() }).setArray(424243, 424242);
  assert.deepEqual(custom.decodeText(424243, "{a,b}"), ["A", "B"]);
  assert.throws(() => new TypeRegistry({ int8: "float" as "number" }), TypeError);
  assert.throws(() => custom.set(-1, {}), RangeError);
});

test("encodeText() writes values PostgreSQL reads back", () => {
  assert.equal(encodeText(null), null);
  assert.equal(encodeText(NaN), "NaN");
  assert.equal(encodeText(-Infinity), "-Infinity");
  assert.equal(encodeText(12n), "12");
  assert.equal(encodeText(true), "t");
  assert.equal(encodeText(new Date(Date.UTC(2024, 0, 2))), "2024-01-02T00:00:00.000Z");
  assert.equal(encodeText([1, null, ["a\"b", "c\\d"]]), '{"1",NULL,{"a\\"b","c\\\\d"}}');
  assert.equal(encodeText(new Uint8Array([0, 255])), "\\x00ff");
  assert.equal(encodeText({ a: 1 }), '{"a":1}');
  assert.equal(encodeText(new Interval(1, 2, 3)), "1 mons 2 days 3 microseconds");
  assert.throws(() => encodeText(Symbol("x")), TypeError);
  assert.throws(() => encodeText(new Date(NaN)), RangeError);
});

// [SQL expression, expected value] pairs that must come back exactly, in text and binary format.
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const CASES: [string, unknown][] = [
  ["32767::int2", 32767],
  ["(-32768)::int2", -32768],
  ["2147483647::int4", 2147483647],
  ["(-2147483648)::int4", -2147483648],
  ["9223372036854775807::int8", "9223372036854775807"],
  ["(-9223372036854775808)::int8", "-9223372036854775808"],
  ["1.5::float4", 1.5],
  ["'NaN'::float4", NaN],
  ["'Infinity'::float4", Infinity],
  ["0.1::float8", 0.1],
  ["1e308::float8", 1e308],
  ["'NaN'::float8", NaN],
  ["'Infinity'::float8", Infinity],
  ["'-Infinity'::float8", -Infinity],
  ["'123456789012345678901234567890.123456789012345678901234567890'::numeric", "123456789012345678901234567890.123456789012345678901234567890"],
  ["'-0.000001'::numeric", "-0.000001"],
  ["'100000000'::numeric", "100000000"],
  ["0::numeric", "0"],
  ["'1.10'::numeric(10,2)", "1.10"],
  ["'NaN'::numeric", "NaN"],
  ["true", true],
  ["false", false],
  ["'héllo ☃ 😀'::text", "héllo ☃ 😀"],
  ["'abc'::varchar(10)", "abc"],
  ["'ab'::char(3)", "ab "],
  ["'pg_class'::name", "pg_class"],
  ["'x'::\"char\"", "x"],
  ["'\\x00ff10'::bytea", new Uint8Array([0, 255, 16])],
  ["''::bytea", new Uint8Array(0)],
  [`'\\x${Buffer.from(ALL_BYTES).toString("hex")}'::bytea`, ALL_BYTES],
  [`'{"a":[1,2.5,{"b":null}],"c":"☃"}'::json`, { a: [1, 2.5, { b: null }], c: "☃" }],
  [`'{"a":[1,2.5,{"b":null}],"c":"☃"}'::jsonb`, { a: [1, 2.5, { b: null }], c: "☃" }],
  ["'2024-02-29'::date", "2024-02-29"],
  ["'0044-03-15 BC'::date", "0044-03-15 BC"],
  ["'infinity'::date", "infinity"],
  ["'23:59:59.999999'::time", "23:59:59.999999"],
  ["'00:00:00'::time", "00:00:00"],
  ["'12:34:56.5+05:30'::timetz", "12:34:56.5+05:30"],
  ["'2024-01-02 03:04:05.678'::timestamp", new Date("2024-01-02T03:04:05.678Z")],
  ["'1999-12-31 23:59:59.999'::timestamp", new Date("1999-12-31T23:59:59.999Z")],
  ["'2024-01-02 03:04:05.678+00'::timestamptz", new Date("2024-01-02T03:04:05.678Z")],
  ["'infinity'::timestamptz", Infinity],
  ["'-infinity'::timestamp", -Infinity],
  ["'1 year 2 mons 3 days 04:05:06.789'::interval", new Interval(14, 3, 14706789000)],
  ["'-1 days -00:00:01'::interval", new Interval(0, -1, -1000000)],
  ["'0'::interval", new Interval(0, 0, 0)],
  ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
  ["4294967295::oid", 4294967295],
  ["'16/B374D848'::pg_lsn", "16/B374D848"],
  ["ARRAY[1,NULL,3]::int4[]", [1, null, 3]],
  ["ARRAY[[1,2],[3,NULL]]::int8[]", [["1", "2"], ["3", null]]],
  [`ARRAY['a,b','c"d','e\\f',NULL,'NULL','', ' sp ']::text[]`, ["a,b", 'c"d', "e\\f", null, "NULL", "", " sp "]],
  ["ARRAY['NaN','Infinity','-Infinity',1.5]::float8[]", [NaN, Infinity, -Infinity, 1.5]],
  ["ARRAY[true,NULL,false]", [true, null, false]],
  ["ARRAY['1.5','NaN',NULL]::numeric[]", ["1.5", "NaN", null]],
  ["ARRAY['\\x00'::bytea, NULL, '\\xff'::bytea]", [new Uint8Array([0]), null, new Uint8Array([255])]],
  ["ARRAY['2024-01-01'::date, NULL]", ["2024-01-01", null]],
  ["ARRAY['2024-01-02 03:04:05+00'::timestamptz]", [new Date("2024-01-02T03:04:05Z")]],
  [`ARRAY['{"k":1}'::jsonb, 'null'::jsonb]`, [{ k: 1 }, null]],
  ["ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]],
  ["ARRAY['1 day'::interval]", [new Interval(0, 1, 0)]],
  ["'{}'::int4[]", []],
  ["NULL::int4", null],
];

async function roundTrip(client: Client, binary: boolean): Promise<void> {
  const sql = "SELECT " + CASES.map(([expr], i) => `${expr} AS c${i}`).join(", ");
  const { rows } = await client.query<unknown[]>(sql, [], { rowMode: "array", binary });
  CASES.forEach(([expr, want], i) => assert.deepEqual(rows[0][i], want, `${expr} (${binary ? "binary" : "text"})`));
}

for (const v of VERSIONS) {
  const skip = unavailable(v);

  test(`types PG${v}: every supported type round-trips exactly in text format`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
    try {
      await client.query("SET TimeZone = 'Asia/Kolkata'"); // offsets other than +00 must not matter
      await roundTrip(client, false);
    } finally {
      await client.close();
    }
  });

  test(`types PG${v}: every supported type round-trips exactly in binary format`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
    try {
      await roundTrip(client, true);
    } finally {
      await client.close();
    }
  });

  test(`types PG${v}: JavaScript values sent as parameters come back unchanged`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
    try {
      const params: [string, unknown][] = [
        ["int4", -7],
        ["int8", "9223372036854775807"],
        ["int8", 9223372036854775807n],
        ["float8", NaN],
        ["float8", -Infinity],
        ["float8", 0.1],
        ["numeric", "98765432109876543210.0123456789"],
        ["bool", false],
        ["text", "quote ' backslash \\ ☃"],
        ["bytea", ALL_BYTES],
        ["jsonb", { nested: [1, "two", null] }],
        ["timestamptz", new Date("2024-05-06T07:08:09.123Z")],
        ["timestamptz", Infinity],
        ["interval", new Interval(13, -2, 3600000001)],
        ["int4[]", [1, null, 3]],
        ["text[]", ["a,b", 'q"uote', null, "NULL", ""]],
        ["int4[]", [[1, 2], [3, 4]]],
        ["uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
        ["date", "2024-02-29"],
      ];
      for (const [type, value] of params) {
        const { rows } = await client.query<unknown[]>(`SELECT $1::${type}`, [value], { rowMode: "array" });
        const want = typeof value === "bigint" ? String(value) : value;
        assert.deepEqual(rows[0][0], want, `${type} ${String(value)}`);
      }
      const big = new TypeRegistry({ int8: "bigint" });
      const c2 = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, { ...base, types: big });
      try {
        assert.deepEqual((await c2.query("SELECT 9007199254740993::int8 AS n")).rows, [{ n: 9007199254740993n }]);
      } finally {
        await c2.close();
      }
    } finally {
      await client.close();
    }
  });

  test(`types PG${v}: a custom decoder registered for an enum's OID is used in text and binary`, { skip }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c);
    const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`, base);
    try {
      await client.query("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
      const { rows } = await client.query<{ oid: number; typarray: number }>("SELECT oid, typarray FROM pg_type WHERE typname = 'mood'");
      const types = new TypeRegistry()
        .set(rows[0].oid, { text: (s) => `<${s}>`, binary: (b) => `<${new TextDecoder().decode(b)}>` })
        .setArray(rows[0].typarray, rows[0].oid);
      const c2 = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`, { ...base, types });
      try {
        for (const binary of [false, true]) {
          const r = await c2.query("SELECT 'ok'::mood AS m, ARRAY['sad','happy']::mood[] AS ms", [], { binary });
          assert.deepEqual(r.rows, [{ m: "<ok>", ms: ["<sad>", "<happy>"] }]);
        }
      } finally {
        await c2.close();
      }
    } finally {
      await client.close();
    }
  });
}
