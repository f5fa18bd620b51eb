// pg_dump's name patterns (-n/-N/-t/-T), the rules of processSQLNamePattern, I/O-free; and the
// quoting of identifiers and literals in the SQL the dump writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { matchesPattern, parseSchemaPattern, parseTablePattern, quoteIdent, quoteLiteral } from "../dump/mod.ts";

test("parseTablePattern() folds unquoted letters to lower case and keeps quoted ones", () => {
  assert.deepEqual(parseTablePattern("Public.MyTable"), { pattern: "Public.MyTable", schema: "^(public)$", name: "^(mytable)$", qualified: true });
  assert.deepEqual(parseTablePattern('"Public"."MyTable"'), { pattern: '"Public"."MyTable"', schema: "^(Public)$", name: "^(MyTable)$", qualified: true });
  assert.equal(parseTablePattern('my"Big"table').name, "^(myBigtable)$");
});

test("parseTablePattern() turns * into .* and ? into . outside quotes only", () => {
  assert.equal(parseTablePattern("app_*").name, "^(app_.*)$");
  assert.equal(parseTablePattern("t?").name, "^(t.)$");
  assert.equal(parseTablePattern('"a*b?"').name, "^(a\\*b\\?)$");
});

test("parseTablePattern() reads a doubled quote inside quotes as one quote, and a dot in quotes as a letter", () => {
  const p = parseTablePattern('"we ""quote"" it"."a.b"');
  assert.equal(p.schema, '^(we "quote" it)$');
  assert.equal(p.name, "^(a\\.b)$");
});

test("parseTablePattern() treats $ as a literal everywhere and keeps other regex characters outside quotes", () => {
  assert.equal(parseTablePattern("a$b").name, "^(a\\$b)$");
  assert.equal(parseTablePattern("(foo|bar)+").name, "^((foo|bar)+)$");
  assert.equal(parseTablePattern('"(x)"').name, "^(\\(x\\))$");
});

test("parseTablePattern() leaves a bare * or an empty part unrestricted", () => {
  assert.deepEqual(parseTablePattern("*.orders"), { pattern: "*.orders", schema: undefined, name: "^(orders)$", qualified: true });
  assert.equal(parseTablePattern("app.*").name, undefined);
  assert.equal(parseTablePattern("app.").name, undefined);
});

test("parseTablePattern() accepts db.schema.table and rejects more dots", () => {
  assert.deepEqual(parseTablePattern("MyDb.s.t"), { pattern: "MyDb.s.t", database: "mydb", schema: "^(s)$", name: "^(t)$", qualified: true });
  assert.equal(parseTablePattern('"My.Db".s.t').database, "My.Db");
  assert.throws(() => parseTablePattern("a.b.c.d"), { name: "RangeError", message: /too many dotted names/ });
});

test("parseSchemaPattern() accepts schema or db.schema and rejects more dots", () => {
  assert.deepEqual(parseSchemaPattern("App*"), { pattern: "App*", schema: "^(app.*)$", qualified: true });
  assert.deepEqual(parseSchemaPattern("db.s"), { pattern: "db.s", database: "db", schema: "^(s)$", qualified: true });
  assert.throws(() => parseSchemaPattern("a.b.c"), { name: "RangeError", message: /too many dotted names/ });
});

test("parseTablePattern() rejects an unterminated quote and a non-string", () => {
  assert.throws(() => parseTablePattern('"abc'), { name: "RangeError", message: /unterminated quoted identifier/ });
  assert.throws(() => parseTablePattern(42 as unknown as string), TypeError);
});

test("matchesPattern() matches whole names, unicode and newlines included, and unqualified patterns only visible tables", () => {
  const p = parseTablePattern("ord*");
  assert.equal(matchesPattern(p, "public", "orders"), true);
  assert.equal(matchesPattern(p, "public", "xorders"), false);
  assert.equal(matchesPattern(p, "other", "orders", false), false);
  assert.equal(matchesPattern(parseTablePattern("*.orders"), "other", "orders", false), true);
  assert.equal(matchesPattern(parseTablePattern('"Ünï"."a\nb"'), "Ünï", "a\nb"), true);
  assert.equal(matchesPattern(parseTablePattern("ünï.?"), "ünï", "é"), true);
  assert.equal(matchesPattern(parseSchemaPattern("app"), "app"), true);
  assert.equal(matchesPattern(parseSchemaPattern("app"), "apps"), false);
});

test("quoteIdent() always double-quotes and doubles embedded quotes; rejects NUL", () => {
  assert.equal(quoteIdent("plain"), '"plain"');
  assert.equal(quoteIdent('My "odd"\ntable'), '"My ""odd""\ntable"');
  assert.equal(quoteIdent("Ünï"), '"Ünï"');
  assert.throws(() => quoteIdent("a\0b"), RangeError);
});

test("quoteLiteral() doubles single quotes and leaves backslashes alone (standard_conforming_strings)", () => {
  assert.equal(quoteLiteral("it's \\ fine"), "'it''s \\ fine'");
  assert.throws(() => quoteLiteral("\0"), RangeError);
});
