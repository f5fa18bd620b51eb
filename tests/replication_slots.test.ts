// replication/_slots.ts: slot commands and IDENTIFY_SYSTEM against real servers, and the
// version-dependent command text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, createDatabase, psql, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { runtime } from "./_fixture/runtime.ts";
import { connect } from "../pg/mod.ts";
import { formatLsn } from "../replication/mod.ts";
import {
  checkSlotName,
  createReplicationSlot,
  createSlotCommand,
  dropReplicationSlot,
  identifySystem,
  listReplicationSlots,
  quoteIdent,
  quoteLiteral,
  readReplicationSlot,
  serverVersionNum,
  timelineHistory,
} from "../replication/_slots.ts";

const base = { env: {}, homeDir: mkdtempSync(join(tmpdir(), "pg-rdma-home-")) };
let n = 0;
const slotName = (tag: string) => `t_${tag}_${runtime}_${process.pid}_${n++}`;

test("checkSlotName() rejects upper case, punctuation, empty and over-long names", () => {
  assert.equal(checkSlotName("abc_123"), "abc_123");
  for (const bad of ["Abc", "a-b", "", "x".repeat(64), "a b", "a;DROP"]) {
    assert.throws(() => checkSlotName(bad), { name: "TypeError", message: /not valid/ });
  }
  assert.throws(() => checkSlotName(42), TypeError);
});

test("quoteIdent() and quoteLiteral() double quotes and escape backslashes", () => {
  assert.equal(quoteIdent('a"b'), '"a""b"');
  assert.equal(quoteLiteral("it's"), "'it''s'");
  assert.equal(quoteLiteral("a\\b"), "E'a\\\\b'");
  assert.throws(() => quoteIdent("a\0b"), TypeError);
});

test("createSlotCommand() uses parenthesised options from 15 and keywords before", () => {
  assert.equal(
    createSlotCommand("s", { kind: "logical", plugin: "pgoutput", twoPhase: true, snapshot: "export" }, 150000),
    `CREATE_REPLICATION_SLOT "s" LOGICAL "pgoutput" (TWO_PHASE true, SNAPSHOT 'export')`,
  );
  assert.equal(
    createSlotCommand("s", { kind: "logical", plugin: "pgoutput", snapshot: "nothing", temporary: true }, 140000),
    `CREATE_REPLICATION_SLOT "s" TEMPORARY LOGICAL "pgoutput" NOEXPORT_SNAPSHOT`,
  );
  assert.equal(createSlotCommand("p", { kind: "physical", reserveWal: true }, 180000), `CREATE_REPLICATION_SLOT "p" PHYSICAL (RESERVE_WAL true)`);
  assert.equal(
    createSlotCommand("s", { kind: "logical", plugin: "pgoutput", failover: true }, 170000),
    `CREATE_REPLICATION_SLOT "s" LOGICAL "pgoutput" (FAILOVER true)`,
  );
});

test("createSlotCommand() refuses options the version or slot kind cannot take", () => {
  assert.throws(() => createSlotCommand("s", { kind: "logical", plugin: "pgoutput", failover: true }, 160000), { name: "RangeError", message: /17/ });
  assert.throws(() => createSlotCommand("s", { kind: "logical" }, 150000), { name: "TypeError", message: /plugin/ });
  assert.throws(() => createSlotCommand("s", { kind: "physical", plugin: "pgoutput" }, 150000), { name: "TypeError", message: /physical/ });
  assert.throws(() => createSlotCommand("s", { kind: "logical", plugin: "x", snapshot: "all" as "use" }, 150000), { name: "TypeError", message: /snapshot/ });
  assert.throws(() => createSlotCommand("s", { kind: "other" as "logical" }, 150000), TypeError);
  assert.throws(() => createSlotCommand("BAD", { kind: "physical" }, 150000), { message: /not valid/ });
});

for (const v of VERSIONS) {
  const skip = unavailable(v);

  test(`identifySystem() PG${v}: gives system id, timeline, position and database`, { skip }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "slots");
    const phys = await connect(`host=${c.socketDir} port=${c.port} user=postgres replication=true`, base);
    const logi = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db} replication=database`, base);
    try {
      const a = await identifySystem(phys);
      const b = await identifySystem(logi);
      const sysid = (await psql(c, "SELECT system_identifier FROM pg_control_system()")).trim();
      assert.equal(a.systemId, sysid);
      assert.equal(a.timeline, 1);
      assert.equal(a.dbname, null);
      assert.equal(b.dbname, db);
      assert.ok(typeof a.xlogpos === "bigint" && a.xlogpos > 0n);
      assert.equal(Math.floor(serverVersionNum(phys) / 10000), v);
    } finally {
      await phys.close();
      await logi.close();
    }
  });

  test(`createReplicationSlot() PG${v}: logical slot with exported snapshot, listed, then dropped`, { skip }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "slots");
    const repl = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db} replication=database`, base);
    const name = slotName("log");
    try {
      const s = await createReplicationSlot(repl, name, { kind: "logical", plugin: "pgoutput", snapshot: "export", twoPhase: true });
      assert.equal(s.slotName, name);
      assert.equal(s.outputPlugin, "pgoutput");
      assert.match(s.snapshotName ?? "", /^[0-9A-F]+-[0-9A-F]+-\d+$/);
      assert.ok(s.consistentPoint > 0n);
      const listed = (await listReplicationSlots(repl)).find((x) => x.slotName === name);
      assert.ok(listed, "slot is listed");
      assert.equal(listed.slotType, "logical");
      assert.equal(listed.plugin, "pgoutput");
      assert.equal(listed.database, db);
      assert.equal(listed.temporary, false);
      assert.equal(listed.twoPhase, true);
      assert.equal(listed.confirmedFlushLsn, s.consistentPoint);
      if (v >= 17) assert.equal(listed.failover, false);
      await dropReplicationSlot(repl, name, { wait: true });
      assert.equal((await listReplicationSlots(repl)).some((x) => x.slotName === name), false);
    } finally {
      await psql(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${name}'`);
      await repl.close();
    }
  });

  test(`createReplicationSlot() PG${v}: temporary slot disappears with its session`, { skip }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "slots");
    const repl = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db} replication=database`, base);
    const name = slotName("tmp");
    const s = await createReplicationSlot(repl, name, { kind: "logical", plugin: "test_decoding", temporary: true, snapshot: "nothing" });
    assert.equal(s.snapshotName, null);
    assert.equal((await psql(c, `SELECT temporary FROM pg_replication_slots WHERE slot_name = '${name}'`)).trim(), "t");
    await repl.close();
    let left = "x";
    for (let i = 0; i < 50 && left !== ""; i++) {
      left = (await psql(c, `SELECT slot_name FROM pg_replication_slots WHERE slot_name = '${name}'`)).trim();
      if (left) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(left, "");
  });

  test(`createReplicationSlot() PG${v}: FAILOVER where supported, a clear error where not`, { skip }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "slots");
    const repl = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db} replication=database`, base);
    const name = slotName("fo");
    try {
      if (v >= 17) {
        await createReplicationSlot(repl, name, { kind: "logical", plugin: "pgoutput", failover: true, snapshot: "nothing" });
        assert.equal((await listReplicationSlots(repl)).find((x) => x.slotName === name)?.failover, true);
        await dropReplicationSlot(repl, name);
      } else {
        await assert.rejects(createReplicationSlot(repl, name, { kind: "logical", plugin: "pgoutput", failover: true }), { name: "RangeError", message: /17/ });
      }
    } finally {
      await psql(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${name}'`);
      await repl.close();
    }
  });

  test(`readReplicationSlot() PG${v}: physical slot's restart position; missing slot gives nulls`, { skip }, async () => {
    const c = await cluster(v);
    const repl = await connect(`host=${c.socketDir} port=${c.port} user=postgres replication=true`, base);
    const name = slotName("phys");
    try {
      const s = await createReplicationSlot(repl, name, { kind: "physical", reserveWal: true });
      assert.equal(s.consistentPoint, 0n, "physical slots report no consistent point");
      const { xlogpos } = await identifySystem(repl);
      const r = await readReplicationSlot(repl, name);
      assert.equal(r.slotType, "physical");
      assert.equal(r.restartTli, 1);
      assert.ok(r.restartLsn !== null && r.restartLsn > 0n && r.restartLsn <= xlogpos);
      assert.deepEqual(await readReplicationSlot(repl, slotName("none")), { slotType: null, restartLsn: null, restartTli: null });
      await dropReplicationSlot(repl, name);
      await assert.rejects(dropReplicationSlot(repl, name), { code: "42704" });
    } finally {
      await psql(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${name}'`);
      await repl.close();
    }
  });

  test(`timelineHistory() PG${v}: timeline 1 has no history file (server error 58P01)`, { skip }, async () => {
    const c = await cluster(v);
    const repl = await connect(`host=${c.socketDir} port=${c.port} user=postgres replication=true`, base);
    try {
      await assert.rejects(timelineHistory(repl, 1), { name: "PostgresError" });
      await assert.rejects(timelineHistory(repl, 0), RangeError);
    } finally {
      await repl.close();
    }
  });

  test(`dropReplicationSlot() PG${v}: an active slot fails at once without WAIT (55006)`, { skip }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "slots");
    const a = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db} replication=database`, base);
    const b = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db} replication=database`, base);
    const name = slotName("act");
    try {
      const s = await createReplicationSlot(a, name, { kind: "logical", plugin: "test_decoding", snapshot: "nothing" });
      const copy = a.copyBoth(`START_REPLICATION SLOT ${name} LOGICAL ${formatLsn(s.consistentPoint)}`);
      await copy.started();
      await assert.rejects(dropReplicationSlot(b, name), { code: "55006" });
      copy.end();
      for await (const _ of copy) { /* drain */ }
      await copy.done;
      await dropReplicationSlot(b, name, { wait: true });
    } finally {
      await psql(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${name}'`);
      await a.close();
      await b.close();
    }
  });
}
