// replication/logical.ts under failure: the consumer SIGKILLed mid-transaction and restarted
// (at least once, nothing acknowledged delivered again), the server crashing and restarting
// mid-stream (the consumer reconnects and resumes), and synchronous standby mode (a commit on
// the primary waits for the consumer's acknowledgement under remote_write, on and remote_apply).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, createDatabase, type OwnedCluster, psql, reloadConf, ROLES, startCluster, unavailable, type Version, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand, runtime } from "./_fixture/runtime.ts";
import { TRANSPORTS } from "./_fixture/transports.ts";
import { logicalReplication, parseLsn, type ReplicationBatch } from "../replication/mod.ts";

const home = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
let n = 0;
const uniq = (tag: string) => `${tag}_${runtime}_${process.pid}_${n++}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const owned = new Map<Version, Promise<OwnedCluster>>();
/** One cluster of our own per version (crashed and reconfigured by these tests). */
function ownCluster(v: Version): Promise<OwnedCluster> {
  let p = owned.get(v);
  if (!p) owned.set(v, p = startCluster(v));
  return p;
}


/** Drops a slot, waiting for the walsender of a just-closed stream to release it. */
async function dropSlot(c: { socketDir: string; port: number }, slot: string): Promise<void> {
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

const tcp = (c: { port: number }, db: string) => `host=127.0.0.1 port=${c.port} user=${ROLES.superuser.user} dbname=${db} sslmode=disable`;

for (const v of VERSIONS) {
  const skip = unavailable(v);

  for (const t of TRANSPORTS) {
    test(`logicalReplication() PG${v} over ${t.name}: a consumer SIGKILLed mid-transaction resumes: every change at least once, nothing acknowledged again`, { skip: skip ?? t.skip, timeout: 120_000 }, async () => {
      const c = await cluster(v);
      const db = await createDatabase(c, "lrk");
      const slot = uniq("lrk");
      const q = (sql: string) => psql(c, sql, { database: db });
      await q(`CREATE TABLE k (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE k`);
      await q(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
      try {
        // 20 transactions of 1000 rows: five chunks each at 200 events per chunk.
        await q(`DO $$ BEGIN FOR t IN 0..19 LOOP INSERT INTO k SELECT g FROM generate_series(t * 1000 + 1, t * 1000 + 1000) g; COMMIT; END LOOP; END $$`);
        const out = join(mkdtempSync(join(tmpdir(), "pg-rdma-lrk-")), "log");
        const [cmd, args] = moduleCommand("./_fixture/logical_consumer.ts", import.meta.url);
        const child = spawn(cmd, args, {
          env: { ...process.env, PG_RDMA_LC: JSON.stringify({ connection: tcp(c, db), password: ROLES.superuser.password, slot, publication: "p", out, pauseAfter: 7, ffi: t.factory !== undefined }) },
          stdio: ["ignore", "ignore", "pipe"],
        });
        let stderr = "";
        child.stderr!.on("data", (d) => (stderr += d));
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        for (let i = 0; i < 600 && !(existsSync(out) && readFileSync(out, "utf8").includes("\np ")); i++) {
          if (child.exitCode !== null) break;
          await sleep(100);
        }
        assert.ok(readFileSync(out, "utf8").includes("\np "), `child never paused: ${stderr}`);
        child.kill("SIGKILL");
        await exited;
        const log = readFileSync(out, "utf8").trim().split("\n").map((l) => l.split(" "));
        const acks = log.filter((l) => l[0] === "a");
        assert.equal(acks.length, 7);
        const lastAcked = BigInt(acks.at(-1)![2]);
        const pausedXid = log.at(-1)![1];
        // The slot was confirmed exactly up to the last acknowledged transaction: not beyond it
        // (the paused one was handled only in part), and not short of it.
        let confirmed = 0n;
        for (let i = 0; i < 100; i++) {
          const [active, lsn] = (await psql(c, `SELECT active, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim().split("|");
          confirmed = parseLsn(lsn);
          if (active === "f") break;
          await sleep(100);
        }
        assert.equal(confirmed, lastAcked);
        const firstRun = new Set<number>();
        for (const l of log) if (l[0] === "d" && l[2] !== "-") for (let id = +l[2]; id <= +l[3]; id++) firstRun.add(id);

        // Restart (in this process): the paused transaction comes again, acknowledged ones never.
        const stream = logicalReplication({ connection: tcp(c, db), connectOptions: { env: {}, homeDir: home, password: ROLES.superuser.password, socketFactory: t.factory }, slot, publications: ["p"], streaming: "off", maxChunkEvents: 200 });
        const second: ReplicationBatch[] = [];
        const seen = new Set<number>();
        for await (const b of stream) {
          second.push(b);
          for (const e of b.events) if (e.type === "insert") seen.add(e.new.id as number);
          b.ack();
          if (seen.has(20000) && b.final) break;
        }
        await stream.close();
        assert.equal(String(second[0].xid), pausedXid, "the interrupted transaction is delivered again, from its start");
        assert.ok(second.every((b) => b.endLsn === undefined || b.endLsn > lastAcked), "nothing acknowledged came again");
        assert.equal(Math.min(...seen), 7001);
        for (let id = 1; id <= 20000; id++) assert.ok(firstRun.has(id) || seen.has(id), `row ${id} never delivered`);
        assert.equal(second.filter((b) => b.final).length, 13);
      } finally {
        await dropSlot(c, slot);
      }
    });
  }

  for (const t of TRANSPORTS) {
    test(`logicalReplication() PG${v} over ${t.name}: the server crashing and restarting mid-stream is survived, nothing lost`, { skip: skip ?? t.skip, timeout: 120_000 }, async () => {
      const c = await ownCluster(v);
      const db = `lrr_${runtime}_${t.tag}`;
      await psql(c, `CREATE DATABASE ${db}`);
      const q = (sql: string) => psql(c, sql, { database: db });
      const slot = uniq("lrr");
      await q(`CREATE TABLE r (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE r`);
      await q(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
      const stream = logicalReplication({
        connection: tcp(c, db),
        connectOptions: { env: {}, homeDir: home, password: ROLES.superuser.password, socketFactory: t.factory },
        slot,
        publications: ["p"],
        retryInterval: 200,
        applicationName: slot,
        statusInterval: 500,
      });
      const seen = new Set<number>();
      let crashed = false;
      const consumer = (async () => {
        for await (const b of stream) {
          for (const e of b.events) if (e.type === "insert") seen.add(e.new.id as number);
          b.ack();
          if (seen.size >= 20 * 500) break;
        }
      })();
      try {
        for (let t = 0; t < 20; t++) {
          if (t === 10) {
            // Crash: SIGKILL the walsender; the postmaster then restarts every process (crash recovery).
            for (let i = 0; i < 100 && seen.size < 5000; i++) await sleep(50);
            const pid = Number((await psql(c, `SELECT pid FROM pg_stat_replication WHERE application_name = '${slot}'`)).trim());
            assert.ok(pid > 0, "the consumer is streaming");
            process.kill(pid, "SIGKILL");
            crashed = true;
            await sleep(500);
          }
          for (let i = 0; ; i++) {
            try {
              await q(`INSERT INTO r SELECT g FROM generate_series(${t * 500 + 1}, ${t * 500 + 500}) g`);
              break;
            } catch (e) {
              if (i > 100) throw e; // still recovering
              await sleep(100);
            }
          }
        }
        const timer = setTimeout(() => void stream.close(), 60_000);
        await consumer;
        clearTimeout(timer);
        assert.ok(crashed);
        assert.ok(stream.stats.connections >= 2, `${stream.stats.connections} connections`);
        for (let id = 1; id <= 10000; id++) assert.ok(seen.has(id), `row ${id} lost`);
      } finally {
        await stream.close();
        await dropSlot(c, slot);
      }
    });

    for (const mode of ["remote_write", "on", "remote_apply"] as const) {
      test(`logicalReplication() PG${v} over ${t.name}: synchronous standby, synchronous_commit=${mode}: a commit waits for the acknowledgement`, { skip: skip ?? t.skip, timeout: 120_000 }, async () => {
        const c = await ownCluster(v);
        const db = `lrs_${runtime}_${mode}_${t.tag}`;
        await psql(c, `CREATE DATABASE ${db}`);
        const q = (sql: string) => psql(c, sql, { database: db });
        const slot = uniq("lrsync");
        const app = uniq("sync_app");
        await q(`CREATE TABLE s (id int); CREATE PUBLICATION p FOR TABLE s`);
      await q(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
        await reloadConf(c, { synchronous_standby_names: `"${app}"` });
        const stream = logicalReplication({
          connection: tcp(c, db),
          connectOptions: { env: {}, homeDir: home, password: ROLES.superuser.password, socketFactory: t.factory },
          slot,
          publications: ["p"],
          applicationName: app,
        });
        const it = stream[Symbol.asyncIterator]();
        try {
          let state = "";
          const first = it.next();
          for (let i = 0; i < 100 && state !== "sync"; i++) {
            await sleep(100);
            state = (await psql(c, `SELECT sync_state FROM pg_stat_replication WHERE application_name = '${app}'`)).trim();
          }
          assert.equal(state, "sync");
          let settled = false;
          const commit = q(`SET synchronous_commit = ${mode}; INSERT INTO s VALUES (1)`).then(() => (settled = true));
          const r = await first;
          assert.equal(r.done, false);
          const batch = r.value as ReplicationBatch;
          assert.ok(batch.final && batch.events.some((e) => e.type === "insert"));
          await sleep(1000);
          assert.equal(settled, false, "the commit returned before the consumer acknowledged it");
          const t0 = Date.now();
          batch.ack();
          await commit;
          assert.ok(Date.now() - t0 < 5000, `commit completed ${Date.now() - t0} ms after the ack`);
        } finally {
          await reloadConf(c, { synchronous_standby_names: null });
          await stream.close();
          await dropSlot(c, slot);
        }
      });
    }
  }
}
