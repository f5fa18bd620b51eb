// replication/logical.ts: the logical replication consumer against real servers — a workload
// through the live stream (plain, chunked, server-streamed), agreement with test_decoding,
// keepalive confirmation on idle slots, applyDelay, snapshot-then-stream under concurrent
// writes, and bad options. Over native sockets, and over the FFI transport (kernel provider).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, createDatabase, psql, ROLES, unavailable, type Version, VERSIONS } from "./_fixture/cluster.ts";
import { runtime } from "./_fixture/runtime.ts";
import type { SocketFactory } from "../pg/mod.ts";
import { TRANSPORTS } from "./_fixture/transports.ts";
import { connect } from "../pg/mod.ts";
import {
  logicalReplication,
  NdjsonEncoder,
  parseLsn,
  parseTestDecoding,
  PgoutputDecoder,
  pgValues,
  type PgoutputEvent,
  rawValues,
  type ReplicationBatch,
  type Row,
  snapshotThenStream,
  type TestDecodingEvent,
  UNCHANGED_TOAST,
} from "../replication/mod.ts";

const base = { env: {}, homeDir: mkdtempSync(join(tmpdir(), "pg-rdma-home-")) };
let n = 0;
const uniq = (tag: string) => `${tag}_${runtime}_${process.pid}_${n++}`;
const BIG = "x".repeat(5000);
const utf8 = new TextDecoder();

const SETUP = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t_default (id int PRIMARY KEY, v text, big text);
ALTER TABLE t_default ALTER big SET STORAGE EXTERNAL;
CREATE TABLE t_full (id int, v text, m mood);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_big (id int PRIMARY KEY, v text);
CREATE TABLE t_unpublished (id int);
CREATE PUBLICATION pub FOR TABLE t_default, t_full, t_big;
`;

const WORKLOAD = [
  `INSERT INTO t_default VALUES (1, 'a', '${BIG}')`,
  `UPDATE t_default SET v = 'b' WHERE id = 1`,
  `UPDATE t_default SET id = 2 WHERE id = 1`,
  `DELETE FROM t_default WHERE id = 2`,
  `INSERT INTO t_full VALUES (1, 'x', 'ok'); UPDATE t_full SET v = 'y'; DELETE FROM t_full`,
  `INSERT INTO t_unpublished VALUES (1)`,
  `BEGIN; INSERT INTO t_big VALUES (0, 'zero'); SELECT pg_logical_emit_message(true, 'app', 'in-tx'); COMMIT`,
  `SELECT pg_logical_emit_message(false, 'app', 'no-tx')`,
  `TRUNCATE t_full`,
  `BEGIN; INSERT INTO t_big VALUES (-2, 'prepared'); PREPARE TRANSACTION '${"gid"}_PLACEHOLDER'`,
  `COMMIT PREPARED 'gid_PLACEHOLDER'`,
  `SELECT pg_replication_origin_session_setup('ORIGIN'); BEGIN; SELECT pg_replication_origin_xact_setup('0/ABCDEF', now());
   INSERT INTO t_big VALUES (-1, 'origin'); COMMIT`,
  `BEGIN; INSERT INTO t_big VALUES (-3, 'rolled back'); PREPARE TRANSACTION 'gid_PLACEHOLDER_rb'`,
  `ROLLBACK PREPARED 'gid_PLACEHOLDER_rb'`,
  // Larger than logical_decoding_work_mem (64kB here): streamed when streaming is on.
  `BEGIN; INSERT INTO t_big SELECT g, repeat('s', 100) FROM generate_series(1, 3000) g; COMMIT`,
  `BEGIN; INSERT INTO t_big SELECT g, repeat('a', 100) FROM generate_series(10001, 13000) g; ROLLBACK`,
  `BEGIN; INSERT INTO t_big SELECT g, repeat('c', 100) FROM generate_series(20001, 23000) g; SAVEPOINT sp;
   INSERT INTO t_big SELECT g, repeat('r', 100) FROM generate_series(30001, 33000) g; ROLLBACK TO SAVEPOINT sp; COMMIT`,
  `BEGIN; INSERT INTO t_big SELECT g, repeat('p', 100) FROM generate_series(40001, 43000) g; PREPARE TRANSACTION 'gid_PLACEHOLDER_st'`,
  `COMMIT PREPARED 'gid_PLACEHOLDER_st'`,
];


/** Connection over TCP (the FFI transport has no unix sockets) as the superuser. */
function conn(c: ClusterInfo, db: string, factory: SocketFactory | undefined) {
  return {
    connection: `host=127.0.0.1 port=${c.port} user=${ROLES.superuser.user} dbname=${db} sslmode=disable`,
    connectOptions: { ...base, password: ROLES.superuser.password, socketFactory: factory },
  };
}

const hexBytes = (hex: string) => {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
};

interface Workload {
  c: ClusterInfo;
  db: string;
  /** The slot's content through the SQL interface, decoded: what the stream must carry. */
  reference: PgoutputEvent[];
  testDecoding: TestDecodingEvent[];
  /** Slots created before the workload, for the live streams (plain, streamed; per transport; binary). */
  slots: string[];
  /** The same slot content decoded with pg/'s types (`pgValues`). */
  typed: PgoutputEvent[];
  lastEnd: bigint;
}

const workloads = new Map<Version, Promise<Workload>>();
function workload(v: Version): Promise<Workload> {
  let w = workloads.get(v);
  if (!w) workloads.set(v, w = runWorkload(v));
  return w;
}

async function runWorkload(v: Version): Promise<Workload> {
  const c = await cluster(v);
  const db = await createDatabase(c, "lrw");
  const q = (sql: string) => psql(c, sql, { database: db });
  await q(SETUP);
  const slots = [0, 1, 2, 3, 4].map(() => uniq("lr"));
  const ref = uniq("lr_ref");
  const td = uniq("lr_td");
  for (const s of [...slots, ref]) await q(`SELECT pg_create_logical_replication_slot('${s}', 'pgoutput', false, true)`);
  await q(`SELECT pg_create_logical_replication_slot('${td}', 'test_decoding', false, true)`);
  // Replication origins are cluster-wide: name it after the database.
  const origin = `${db}_upstream`;
  await q(`SELECT pg_replication_origin_create('${origin}')`);
  for (const sql of WORKLOAD) await q(sql.replaceAll("gid_PLACEHOLDER", `gid_${db}`).replaceAll("ORIGIN", origin));
  await q(`SELECT pg_replication_origin_drop('${origin}')`);
  const proto = v >= 16 ? 4 : 3;
  const raw = await q(`SELECT encode(data, 'hex') FROM pg_logical_slot_get_binary_changes('${ref}', NULL, NULL,
    'proto_version', '${proto}', 'publication_names', 'pub', 'messages', 'true', 'two_phase', 'on')`);
  const d = new PgoutputDecoder({ protoVersion: proto, types: rawValues });
  const frames = raw.split("\n").filter(Boolean).map(hexBytes);
  const reference = frames.map((f) => d.decode(f));
  const dt = new PgoutputDecoder({ protoVersion: proto, types: pgValues });
  const typed = frames.map((f) => dt.decode(f));
  const tdRows = await q(`SELECT encode(convert_to(data, 'UTF8'), 'hex') FROM pg_logical_slot_get_changes('${td}', NULL, NULL,
    'skip-empty-xacts', '1', 'include-xids', '0')`);
  const testDecoding = tdRows.split("\n").filter(Boolean).map((h) => parseTestDecoding(hexBytes(h)));
  await q(`SELECT pg_drop_replication_slot('${ref}'); SELECT pg_drop_replication_slot('${td}')`);
  const ends = reference.flatMap((e) => ("endLsn" in e ? [e.endLsn] : []));
  return { c, db, reference, typed, testDecoding, slots, lastEnd: ends.reduce((a, b) => (a > b ? a : b), 0n) };
}

/** Drops a slot, waiting for the walsender of a just-closed stream to release it. */
async function dropSlot(c: Pick<ClusterInfo, "socketDir" | "port">, slot: string): Promise<void> {
  for (let i = 0;; i++) {
    try {
      await psql(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`);
      return;
    } catch (e) {
      if (i >= 100 || !String(e).includes("is active")) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Reads batches (acknowledging each) until `until` returns true; closes the stream. */
async function collect(stream: AsyncIterable<ReplicationBatch> & { close(): Promise<void> }, until: (b: ReplicationBatch) => boolean, timeoutMs = 60_000) {
  const batches: ReplicationBatch[] = [];
  const timer = setTimeout(() => void stream.close(), timeoutMs);
  try {
    for await (const b of stream) {
      batches.push(b);
      b.ack();
      if (until(b)) break;
    }
  } finally {
    clearTimeout(timer);
    await stream.close();
  }
  return batches;
}

const dropNulls = (r: Row | undefined) => r && Object.fromEntries(Object.entries(r).filter(([, x]) => x !== null));

/**
 * Drops Relation events that repeat the last one of the same relation unchanged. pgoutput sends
 * a relation's schema again after any relcache invalidation the walsender processes, e.g. an
 * autoanalyze of t_big running while the live stream decodes: a resend depends on timing, not on
 * the WAL, so the live stream and the SQL-interface reference may differ in them alone.
 */
function withoutResentRelations(events: PgoutputEvent[]): PgoutputEvent[] {
  const last = new Map<number, string>();
  return events.filter((e) => {
    if (e.type !== "relation") return true;
    const json = JSON.stringify(e.relation);
    if (last.get(e.relation.oid) === json) return false;
    last.set(e.relation.oid, json);
    return true;
  });
}

/** Row changes of committed transactions, applying streamed blocks and (sub)transaction aborts. */
function applied(events: PgoutputEvent[]): unknown[] {
  const out: unknown[] = [];
  const pending = new Map<number, { xid: number | undefined; change: unknown }[]>();
  let stream: number | undefined;
  for (const e of events) {
    if (e.type === "streamStart") stream = e.xid;
    else if (e.type === "streamStop") stream = undefined;
    else if (e.type === "insert" || e.type === "update" || e.type === "delete") {
      const change = [e.type, e.relation.name, e.type === "delete" ? dropNulls(e.key ?? e.old) : e.new];
      if (stream === undefined) out.push(change);
      else pending.set(stream, [...(pending.get(stream) ?? []), { xid: e.xid, change }]);
    } else if (e.type === "streamAbort") {
      if (e.subxid === e.xid) pending.delete(e.xid);
      else pending.set(e.xid, (pending.get(e.xid) ?? []).filter((c) => c.xid !== e.subxid));
    } else if (e.type === "streamCommit" || e.type === "streamPrepare") {
      for (const c of pending.get(e.xid) ?? []) out.push(c.change);
      pending.delete(e.xid);
    }
  }
  return out;
}

for (const v of VERSIONS) {
  const skip = unavailable(v);

  for (const [i, t] of TRANSPORTS.entries()) {
    test(`logicalReplication() PG${v} over ${t.name}: batches carry exactly the slot's events, chunked, and confirm end_lsn`, { skip: skip ?? t.skip, timeout: 120_000 }, async () => {
      const w = await workload(v);
      const slot = w.slots[i * 2];
      try {
        const stream = logicalReplication({
          ...conn(w.c, w.db, t.factory),
          slot,
          publications: ["pub"],
          messages: true,
          twoPhase: true,
          streaming: "off",
          types: rawValues,
          maxChunkEvents: 500,
        });
        const batches = await collect(stream, (b) => b.final && b.endLsn !== undefined && b.endLsn >= w.lastEnd);
        const events = batches.flatMap((b) => b.events);
        assert.deepEqual(withoutResentRelations(events), withoutResentRelations(w.reference));
        // The 3000-row transaction came in chunks of at most 500 events; only its last is final.
        const bigXid = batches.find((b) => b.events.some((e) => e.type === "insert" && e.relation.name === "t_big" && e.new.id === "1"))?.xid;
        const bigTx = batches.filter((b) => b.xid === bigXid);
        assert.ok(bigTx.length >= 6, `${bigTx.length} chunks`);
        for (const b of batches) assert.ok(b.events.length <= 500);
        const xids = new Set(batches.filter((b) => b.kind === "transaction" && b.events.length > 400).map((b) => b.xid));
        assert.equal(xids.size, 2, "the two committed large transactions were chunked");
        const finals = batches.filter((b) => b.final);
        assert.deepEqual(finals.map((b) => b.kind), [
          "transaction", "transaction", "transaction", "transaction", "transaction", "transaction", "message", "transaction",
          "prepare", "commitPrepared", "transaction", "prepare", "rollbackPrepared", "transaction", "transaction", "prepare", "commitPrepared",
        ]);
        // Every message type of the workload came through the live stream.
        const types = new Set(events.map((e) => e.type));
        for (const t of ["begin", "commit", "relation", "type", "insert", "update", "delete", "truncate", "message", "origin", "beginPrepare", "prepare", "commitPrepared", "rollbackPrepared"]) {
          assert.ok(types.has(t as PgoutputEvent["type"]), `no ${t} event`);
        }
        for (let k = 1; k < finals.length; k++) assert.ok(finals[k].endLsn! > finals[k - 1].endLsn!);
        assert.equal(stream.acknowledged >= w.lastEnd, true);
        // The acknowledgement reached the server: the slot's confirmed position is past the last commit.
        const confirmed = parseLsn((await psql(w.c, `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim());
        assert.ok(confirmed >= w.lastEnd, `confirmed ${confirmed} < ${w.lastEnd}`);
        // Unchanged TOAST stays the sentinel, never a placeholder value.
        const upd = events.find((e) => e.type === "update" && e.relation.name === "t_default");
        assert.equal(upd?.type === "update" && upd.new.big, UNCHANGED_TOAST);
        // The events feed the NDJSON encoder as they are.
        const nd = new NdjsonEncoder();
        const lines = events.map((e) => utf8.decode(nd.encode(e)));
        assert.equal(lines.length, events.length);
        assert.match(lines[0], /"type":"begin"/);
      } finally {
        await dropSlot(w.c, slot);
      }
    });

    test(`logicalReplication() PG${v} over ${t.name}: with server streaming, applied changes equal the unstreamed ones`, { skip: skip ?? t.skip, timeout: 120_000 }, async () => {
      const w = await workload(v);
      const slot = w.slots[i * 2 + 1];
      try {
        const stream = logicalReplication({
          ...conn(w.c, w.db, t.factory),
          connection: conn(w.c, w.db, t.factory).connection + " options='-c logical_decoding_work_mem=64kB'",
          slot,
          publications: ["pub"],
          messages: true,
          twoPhase: true,
          types: rawValues,
          maxChunkEvents: 1000,
        });
        const batches = await collect(stream, (b) => b.final && b.endLsn !== undefined && b.endLsn >= w.lastEnd);
        const events = batches.flatMap((b) => b.events);
        const streamed = batches.filter((b) => b.kind === "stream");
        assert.ok(streamed.length >= 3, "large transactions arrived streamed");
        assert.ok(streamed.every((b) => !b.final || b.events.at(-1)!.type.startsWith("stream")));
        const kinds = new Set(events.map((e) => e.type));
        for (const t of ["streamStart", "streamStop", "streamCommit", "streamAbort", "streamPrepare"]) assert.ok(kinds.has(t as PgoutputEvent["type"]), `no ${t} event`);
        assert.deepEqual(applied(events), applied(w.reference));
      } finally {
        await dropSlot(w.c, slot);
      }
    });
  }

  test(`logicalReplication() PG${v}: binary values (pgoutput binary) decode to the same JavaScript values as text`, { skip, timeout: 120_000 }, async () => {
    const w = await workload(v);
    const slot = w.slots[4];
    try {
      const stream = logicalReplication({ ...conn(w.c, w.db, undefined), slot, publications: ["pub"], binary: true, twoPhase: true, streaming: "off" });
      const batches = await collect(stream, (b) => b.final && b.endLsn !== undefined && b.endLsn >= w.lastEnd);
      // Rows of the tables whose column types pg/ decodes in both formats (int4, text).
      const rows = (events: PgoutputEvent[]) =>
        events.flatMap((e) => (e.type === "insert" || e.type === "update") && e.relation.name !== "t_full" ? [[e.type, e.relation.name, e.new]] : []);
      const got = rows(batches.flatMap((b) => b.events));
      assert.ok(got.length > 9000);
      assert.deepEqual(got, rows(w.typed));
      const first = got[0][2] as Row;
      assert.equal(first.id, 1);
    } finally {
      await dropSlot(w.c, slot);
    }
  });

  test(`logicalReplication() PG${v}: test_decoding on a second slot agrees row for row with the stream`, { skip, timeout: 120_000 }, async () => {
    const w = await workload(v);
    const fromPg = w.reference.flatMap((e): unknown[][] =>
      e.type === "insert" ? [["insert", e.relation.name, e.new]]
      : e.type === "update" ? [["update", e.relation.name, dropNulls(e.key ?? e.old), e.new]]
      : e.type === "delete" ? [["delete", e.relation.name, dropNulls(e.key ?? e.old)]]
      : e.type === "truncate" ? [["truncate", e.relations.map((r) => r.name)]]
      : []
    );
    // test_decoding sees what publications filter out (t_unpublished) and rolled-back prepares.
    const fromTd = w.testDecoding.flatMap((e): unknown[][] =>
      (e.type === "insert" || e.type === "update" || e.type === "delete") && e.table === "t_unpublished" ? []
      : e.type === "insert" ? [["insert", e.table, e.new?.values]]
      : e.type === "update" ? [["update", e.table, e.key?.values, e.new?.values]]
      : e.type === "delete" ? [["delete", e.table, e.key?.values]]
      : e.type === "truncate" ? [["truncate", e.tables.map((x) => x.table)]]
      : []
    );
    assert.equal(fromTd.length, fromPg.length);
    assert.ok(fromPg.length > 6000);
    for (let k = 0; k < fromPg.length; k++) assert.deepEqual(fromTd[k], fromPg[k], `row ${k}`);
  });

  test(`logicalReplication() PG${v}: an idle slot whose tables see no changes still advances (keepalives confirmed)`, { skip, timeout: 60_000 }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "lri");
    await psql(c, "CREATE TABLE pubd (id int); CREATE TABLE other (id int); CREATE PUBLICATION p FOR TABLE pubd", { database: db });
    const slot = uniq("lri");
    try {
      const stream = logicalReplication({ ...conn(c, db, undefined), slot, createSlot: true, publications: ["p"], statusInterval: 200 });
      const it = stream[Symbol.asyncIterator]();
      const first = it.next(); // starts the connection
      let start = 0n;
      for (let k = 0; k < 100 && start === 0n; k++) {
        await new Promise((r) => setTimeout(r, 50));
        start = stream.acknowledged;
      }
      // Only an unpublished table changes: nothing is delivered, yet the slot must move on.
      for (let k = 0; k < 5; k++) await psql(c, `INSERT INTO other SELECT generate_series(1, 1000)`, { database: db });
      const walNow = parseLsn((await psql(c, "SELECT pg_current_wal_lsn()")).trim());
      let confirmed = 0n;
      for (let k = 0; k < 200 && confirmed < walNow; k++) {
        await new Promise((r) => setTimeout(r, 100));
        confirmed = parseLsn((await psql(c, `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim());
      }
      assert.ok(confirmed >= walNow, `slot stuck at ${confirmed}, WAL at ${walNow}`);
      await stream.close();
      assert.equal((await first).done, true);
    } finally {
      await dropSlot(c, slot);
    }
  });

  test(`logicalReplication() PG${v}: applyDelay holds a transaction until commit time plus the delay`, { skip, timeout: 60_000 }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "lrd");
    await psql(c, "CREATE TABLE d (id int); CREATE PUBLICATION p FOR TABLE d", { database: db });
    const slot = uniq("lrd");
    await psql(c, `SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`, { database: db });
    try {
      await psql(c, "INSERT INTO d VALUES (1)", { database: db });
      const stream = logicalReplication({ ...conn(c, db, undefined), slot, publications: ["p"], applyDelay: 1500 });
      const [b] = await collect(stream, (x) => x.final);
      const delivered = Date.now();
      assert.ok(b.commitTime instanceof Date);
      assert.ok(delivered >= b.commitTime.getTime() + 1500 - 5, `delivered ${delivered - b.commitTime.getTime()} ms after commit`);
      assert.deepEqual(b.events.filter((e) => e.type === "insert").map((e) => e.type === "insert" && e.new), [{ id: 1 }]);
    } finally {
      await dropSlot(c, slot);
    }
  });

  test(`snapshotThenStream() PG${v}: copied rows plus streamed changes equal the final table under concurrent writes`, { skip, timeout: 120_000 }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "lrs");
    await psql(c, "CREATE TABLE s (id int PRIMARY KEY, v int); INSERT INTO s SELECT g, 0 FROM generate_series(1, 20000) g; CREATE PUBLICATION p FOR TABLE s", { database: db });
    const slot = uniq("lrs");
    let writing = true;
    // Concurrent writers: inserts, updates and deletes, each its own transaction.
    const writer = (async () => {
      let k = 0;
      while (writing) {
        k++;
        await psql(c, `INSERT INTO s VALUES (${100000 + k}, ${k}); UPDATE s SET v = v + 1 WHERE id = ${(k * 7) % 20000 + 1}; DELETE FROM s WHERE id = ${(k * 13) % 20000 + 1}`, { database: db });
      }
      await psql(c, "INSERT INTO s VALUES (0, -1)", { database: db });
      return k;
    })();
    const table = new Map<number, number>();
    try {
      await new Promise((r) => setTimeout(r, 300));
      let snapshotRows = 0;
      const stream = snapshotThenStream({ ...conn(c, db, undefined), slot, publications: ["p"], tables: ["public.s"], snapshotChunkRows: 4000 });
      let done = false;
      for await (const item of stream) {
        if (item.kind === "snapshot") {
          for (const r of item.rows) table.set(r.id as number, r.v as number);
          snapshotRows += item.rows.length;
          continue;
        }
        for (const e of item.events) {
          if (e.type === "insert" || e.type === "update") table.set(e.new.id as number, e.new.v as number);
          if (e.type === "delete") table.delete(e.key!.id as number);
          // The marker row the writer adds after its last write.
          if (e.type === "insert" && e.new.id === 0) done = true;
        }
        item.ack();
        // Let the writers run on while the stream starts, then stop them.
        if (writing) {
          await new Promise((r) => setTimeout(r, 300));
          writing = false;
        }
        if (done && item.final) break;
      }
      const writes = await writer;
      assert.ok(writes > 3, `${writes} concurrent write transactions`);
      assert.ok(snapshotRows >= 19000);
      const final = (await psql(c, "SELECT id || ':' || v FROM s ORDER BY id", { database: db })).trim().split("\n");
      const mine = [...table.entries()].sort((a, b) => a[0] - b[0]).map(([id, val]) => `${id}:${val}`);
      assert.equal(mine.length, final.length);
      assert.deepEqual(mine, final);
    } finally {
      writing = false;
      await writer.catch(() => {});
      await dropSlot(c, slot);
    }
  });
}

test("logicalReplication() refuses a temporary slot together with reconnection, and other bad options", () => {
  const good = { connection: "host=/tmp", slot: "s1", publications: ["p"] };
  assert.throws(() => logicalReplication({ ...good, createSlot: { temporary: true } }), { name: "TypeError", message: /temporary.*retryInterval: null/ });
  assert.doesNotThrow(() => logicalReplication({ ...good, createSlot: { temporary: true }, retryInterval: null }));
  assert.throws(() => logicalReplication({ ...good, slot: "Bad-Name" }), { name: "TypeError", message: /options\.slot/ });
  assert.throws(() => logicalReplication({ ...good, publications: [] }), { name: "TypeError", message: /publications/ });
  assert.throws(() => logicalReplication({ ...good, statusInterval: -1 }), { name: "RangeError", message: /statusInterval/ });
  assert.throws(() => logicalReplication({ ...good, protoVersion: 5 as 4 }), { name: "RangeError", message: /protoVersion/ });
  assert.throws(() => logicalReplication({ ...good, streaming: "yes" as "on" }), { name: "TypeError", message: /streaming/ });
  assert.throws(() => logicalReplication({ ...good, startLsn: 5 as unknown as bigint }), { name: "TypeError", message: /startLsn/ });
});

for (const v of VERSIONS) {
  test(`logicalReplication() PG${v}: a missing slot fails at once with the server's error, no retry loop`, { skip: unavailable(v), timeout: 30_000 }, async () => {
    const c = await cluster(v);
    const stream = logicalReplication({ ...conn(c, "postgres", undefined), slot: uniq("missing"), publications: ["p"], retryInterval: 100 });
    const t0 = Date.now();
    await assert.rejects(async () => {
      for await (const _ of stream) { /* nothing */ }
    }, { name: "PostgresError", code: "42704" });
    assert.ok(Date.now() - t0 < 5000);
  });
}

for (const v of VERSIONS) {
  for (const t of TRANSPORTS) {
    test(`copyBoth({ batched: true }) PG${v} over ${t.name}: batches() carries the same CopyData, in order, as the per-message iterator`, { skip: unavailable(v) ?? t.skip, timeout: 60_000 }, async () => {
      const c = await cluster(v);
      const db = await createDatabase(c, "cb");
      const q = (sql: string) => psql(c, sql, { database: db });
      const slots = [uniq("cb_msg"), uniq("cb_batch")];
      await q("CREATE TABLE b (id int PRIMARY KEY, v text)");
      for (const s of slots) await q(`SELECT pg_create_logical_replication_slot('${s}', 'test_decoding')`);
      try {
        await q(`DO $$ BEGIN FOR i IN 0..19 LOOP INSERT INTO b SELECT g, repeat('v', g % 50) FROM generate_series(i * 100 + 1, i * 100 + 100) g; COMMIT; END LOOP; END $$`);
        // XLogData payloads (header fields but the send time, which differs between the two reads).
        const read = async (slot: string, batched: boolean) => {
          const o = conn(c, db, t.factory);
          const client = await connect(`${o.connection} replication=database`, o.connectOptions);
          const out: string[] = [];
          let commits = 0;
          try {
            const copy = client.copyBoth(`START_REPLICATION SLOT ${slot} LOGICAL 0/0`, { batched });
            const take = (b: Uint8Array) => {
              // Nothing past the 20th commit: a batch can hold what came after it (an empty
              // transaction of an autoanalyze, say), which the per-message read never takes.
              if (b[0] !== 0x77 || commits >= 20) return;
              const text = utf8.decode(b.subarray(25));
              out.push(`${new DataView(b.buffer, b.byteOffset + 1, 16).getBigUint64(0)} ${text}`);
              if (text.startsWith("COMMIT")) commits++;
            };
            if (batched) {
              assert.throws(() => copy[Symbol.asyncIterator](), { name: "TypeError", message: /batches\(\)/ });
              let messages = 0;
              for await (const { bytes, offsets } of copy.batches()) {
                assert.equal(offsets.length, 2 * bytes.length);
                for (let i = 0; i < bytes.length; i++) take(bytes[i].subarray(offsets[2 * i], offsets[2 * i + 1]));
                messages += bytes.length;
                if (commits >= 20) break;
              }
              assert.ok(messages >= out.length);
            } else {
              assert.throws(() => copy.batches(), { name: "TypeError", message: /batched: true/ });
              for await (const b of copy) {
                take(b);
                if (commits >= 20) break;
              }
            }
          } finally {
            await client.close();
          }
          return out;
        };
        const perMessage = await read(slots[0], false);
        const batched = await read(slots[1], true);
        assert.equal(perMessage.filter((l) => / table public\.b: INSERT: /.test(l)).length, 2000);
        assert.deepEqual(batched, perMessage);
      } finally {
        for (const s of slots) await dropSlot(c, s);
      }
    });
  }
}
