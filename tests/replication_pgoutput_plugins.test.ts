// Passthrough of other plugins' output: the test_decoding row parser and wal2json, on hand-written
// rows (quoting, identifiers, every row kind, malformed input) and on a real PostgreSQL 15 with
// wal2json where it is installed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { binDir, cluster, createDatabase, psql } from "./_fixture/cluster.ts";
import { parseTestDecoding, parseWal2json, PgoutputDecoder, ReplicationDecodeError, UNCHANGED_TOAST } from "../replication/mod.ts";

test("parseTestDecoding() reads BEGIN and COMMIT with and without xids and timestamps", () => {
  assert.deepEqual(parseTestDecoding("BEGIN 745"), { type: "begin", xid: 745 });
  assert.deepEqual(parseTestDecoding("BEGIN"), { type: "begin", xid: undefined });
  assert.deepEqual(parseTestDecoding("COMMIT 745"), { type: "commit", xid: 745, time: undefined });
  assert.deepEqual(parseTestDecoding("COMMIT 745 (at 2026-11-21 05:42:57.118719+00)"), {
    type: "commit",
    xid: 745,
    time: "2026-11-21 05:42:57.118719+00",
  });
});

test("parseTestDecoding() unquotes values, identifiers and type names the way test_decoding prints them", () => {
  const ev = parseTestDecoding(
    `table "My Schema"."odd ""t""": INSERT: id[integer]:1 "a col"[text]:'it''s ]: a x[text]:''' tags[text[]]:'{a,b}' ` +
      `n[numeric]:-1.5e3 ok[boolean]:true bits[bit varying]:B'101' z[text]:null big[text]:unchanged-toast-datum e[text]:''`,
  );
  assert.deepEqual(ev, {
    type: "insert",
    schema: "My Schema",
    table: 'odd "t"',
    new: {
      values: { id: "1", "a col": "it's ]: a x[text]:'", tags: "{a,b}", n: "-1.5e3", ok: "true", bits: "101", z: null, big: UNCHANGED_TOAST, e: "" },
      types: {
        id: "integer",
        "a col": "text",
        tags: "text[]",
        n: "numeric",
        ok: "boolean",
        bits: "bit varying",
        z: "text",
        big: "text",
        e: "text",
      },
    },
  });
});

test("parseTestDecoding() reads UPDATE with and without old-key and DELETE with and without tuple data", () => {
  const u = parseTestDecoding("table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 v[text]:'new-tuple: x'");
  assert.deepEqual(u, {
    type: "update",
    schema: "public",
    table: "t",
    key: { values: { id: "1" }, types: { id: "integer" } },
    new: { values: { id: "2", v: "new-tuple: x" }, types: { id: "integer", v: "text" } },
  });
  const plain = parseTestDecoding("table public.t: UPDATE: id[integer]:1 v[text]:'b'");
  assert.equal(plain.type === "update" && plain.key, undefined);
  assert.deepEqual(parseTestDecoding("table public.t: DELETE: (no-tuple-data)"), { type: "delete", schema: "public", table: "t", key: undefined });
  assert.deepEqual(parseTestDecoding("table public.t: DELETE: id[integer]:3"), {
    type: "delete",
    schema: "public",
    table: "t",
    key: { values: { id: "3" }, types: { id: "integer" } },
  });
});

test("parseTestDecoding() reads TRUNCATE of several tables with its flags", () => {
  assert.deepEqual(parseTestDecoding("table public.a, public.b: TRUNCATE: restart_seqs cascade"), {
    type: "truncate",
    tables: [{ schema: "public", table: "a" }, { schema: "public", table: "b" }],
    cascade: true,
    restartIdentity: true,
  });
  assert.deepEqual(parseTestDecoding("table public.a: TRUNCATE: (no-flags)"), {
    type: "truncate",
    tables: [{ schema: "public", table: "a" }],
    cascade: false,
    restartIdentity: false,
  });
});

test("parseTestDecoding() reads messages, two-phase and streaming rows", () => {
  assert.deepEqual(parseTestDecoding("message: transactional: 1 prefix: app, sz: 11 content:a, sz: 2 \nb"), {
    type: "message",
    transactional: true,
    prefix: "app",
    size: 11,
    content: "a, sz: 2 \nb",
    streamed: false,
  });
  assert.deepEqual(parseTestDecoding("streaming message: transactional: 1 prefix: p, sz: 4"), {
    type: "message",
    transactional: true,
    prefix: "p",
    size: 4,
    content: undefined,
    streamed: true,
  });
  assert.deepEqual(parseTestDecoding("PREPARE TRANSACTION 'g''1', txid 77"), { type: "prepare", gid: "g'1", xid: 77, time: undefined });
  assert.deepEqual(parseTestDecoding("COMMIT PREPARED 'g1', txid 77"), { type: "commitPrepared", gid: "g1", xid: 77, time: undefined });
  assert.deepEqual(parseTestDecoding("ROLLBACK PREPARED 'g1'"), { type: "rollbackPrepared", gid: "g1", xid: undefined, time: undefined });
  assert.deepEqual(parseTestDecoding("preparing streamed transaction TXN 'g2', txid 80"), { type: "streamPrepare", gid: "g2", xid: 80, time: undefined });
  assert.deepEqual(parseTestDecoding("opening a streamed block for transaction TXN 80"), { type: "streamStart", xid: 80 });
  assert.deepEqual(parseTestDecoding("closing a streamed block for transaction"), { type: "streamStop", xid: undefined });
  assert.deepEqual(parseTestDecoding("streaming change for TXN 80"), { type: "streamChange", xid: 80 });
  assert.deepEqual(parseTestDecoding("aborting streamed (sub)transaction TXN 81"), { type: "streamAbort", xid: 81 });
  assert.deepEqual(parseTestDecoding("committing streamed transaction TXN 80"), { type: "streamCommit", xid: 80, time: undefined });
  assert.deepEqual(parseTestDecoding(new TextEncoder().encode("BEGIN 1")), { type: "begin", xid: 1 });
});

test("parseTestDecoding() rejects malformed rows with ReplicationDecodeError naming the offset", () => {
  const cases: [string, RegExp][] = [
    ["HELLO", /test_decoding message at offset 0: unrecognised output row "HELLO"/],
    ["table public.t: MERGE: x", /offset 15: expected INSERT, UPDATE, DELETE or TRUNCATE/],
    ["table public.t: INSERT: id[integer:1", /offset 27: column id: unterminated type/],
    ["table public.t: INSERT: v[text]:'abc", /offset 33: column v: unterminated quoted value/],
    ["table public.t: INSERT: v[text]:", /offset 32: column v: missing value/],
    ['table "public.t: INSERT:', /offset 6: unterminated quoted identifier/],
    ["table public.t: UPDATE: old-key: id[integer]:1", /expected " new-tuple:"/],
    ["table public.a, public.b: INSERT: id[integer]:1", /several tables outside TRUNCATE/],
    ["table public.a: TRUNCATE: sideways", /malformed TRUNCATE flags/],
  ];
  for (const [row, re] of cases) {
    assert.throws(() => parseTestDecoding(row), (e: unknown) => e instanceof ReplicationDecodeError && re.test(e.message), `${row} → ${re}`);
  }
  assert.throws(() => parseTestDecoding(5 as never), TypeError);
});

test("parseWal2json() parses a row and reports invalid JSON as ReplicationDecodeError", () => {
  assert.deepEqual(parseWal2json('{"action":"I","schema":"public","table":"t","columns":[{"name":"id","type":"integer","value":1}]}'), {
    action: "I",
    schema: "public",
    table: "t",
    columns: [{ name: "id", type: "integer", value: 1 }],
  });
  assert.deepEqual(parseWal2json(new TextEncoder().encode('{"action":"B"}')), { action: "B" });
  assert.throws(() => parseWal2json('{"action":'), (e: unknown) => e instanceof ReplicationDecodeError && e.messageType === "wal2json" && /invalid JSON/.test(e.message));
});

const wal2jsonSo = (() => {
  const bin = binDir(15);
  return bin ? existsSync(join(bin, "..", "lib", "wal2json.so")) : false;
})();

test("wal2json: PostgreSQL 15 output parses and agrees row for row with pgoutput", {
  skip: wal2jsonSo ? undefined : "wal2json is not installed for PostgreSQL 15 (apt-get install postgresql-15-wal2json)",
  timeout: 120_000,
}, async () => {
  const c = await cluster(15);
  const db = await createDatabase(c, "w2j");
  const q = (sql: string) => psql(c, sql, { database: db });
  await q(`CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION pub FOR TABLE t`);
  await q(`SELECT pg_create_logical_replication_slot('${db}_w', 'wal2json'); SELECT pg_create_logical_replication_slot('${db}_p', 'pgoutput')`);
  try {
    await q(`INSERT INTO t VALUES (1, 'a'), (2, 'b')`);
    await q(`UPDATE t SET v = 'c' WHERE id = 1`);
    await q(`UPDATE t SET id = 3 WHERE id = 2`);
    await q(`DELETE FROM t WHERE id = 1`);
    const w = (await q(`SELECT data FROM pg_logical_slot_peek_changes('${db}_w', NULL, NULL, 'format-version', '2')`))
      .split("\n").filter(Boolean).map((row) => parseWal2json(row) as Record<string, unknown>);
    const cols = (list: unknown) => Object.fromEntries((list as { name: string; value: unknown }[]).map((x) => [x.name, String(x.value)]));
    const fromW = w.filter((r) => r.action === "I" || r.action === "U" || r.action === "D").map((r) => [
      r.action,
      r.table,
      r.action === "D" ? undefined : cols(r.columns),
      r.identity ? cols(r.identity) : undefined,
    ]);
    const hex = await q(`SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('${db}_p', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')`);
    const d = new PgoutputDecoder({ protoVersion: 1 });
    const fromP = hex.split("\n").filter(Boolean).map((h) => d.decode(Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)))))
      .flatMap((e) => {
        if (e.type === "insert") return [["I", e.relation.name, e.new, undefined]];
        // wal2json always prints the replica identity of updates; pgoutput only when it changed.
        if (e.type === "update") return [["U", e.relation.name, e.new, e.key ?? { id: e.new.id }]];
        if (e.type === "delete") return [["D", e.relation.name, undefined, e.key]];
        return [];
      });
    assert.deepEqual(fromW, fromP);
    assert.equal(fromP.length, 5);
  } finally {
    await q(`SELECT pg_drop_replication_slot('${db}_w'); SELECT pg_drop_replication_slot('${db}_p')`);
  }
});
