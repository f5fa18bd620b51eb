// replication/logical.ts: one transaction of 1 GiB of row data is consumed with resident memory
// staying under 256 MiB, without and with server-side streaming. GiB-scale: PostgreSQL 18 only,
// native TCP, on a cluster of its own (its WAL and spill files go away with it). The consumer
// runs in a child process of the same runtime, so that the resident memory measured is its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { type OwnedCluster, psql, ROLES, startCluster, unavailable } from "./_fixture/cluster.ts";
import { moduleCommand, runtime } from "./_fixture/runtime.ts";

const ROWS = 1 << 20; // × 1 KiB of text = 1 GiB
const LIMIT = 256 << 20;
let own: Promise<OwnedCluster> | undefined;

async function consumeBig(streaming: "off" | "on"): Promise<{ rows: number; peak: number; ms: number }> {
  own ??= startCluster(18);
  const c = await own;
  const db = `big_${runtime}_${streaming}`;
  const slot = `big_${runtime}_${process.pid}_${streaming}`;
  await psql(c, `CREATE DATABASE ${db}`);
  const q = (sql: string) => psql(c, sql, { database: db });
  await q("CREATE TABLE big (id int, v text); ALTER TABLE big ALTER v SET STORAGE PLAIN; CREATE PUBLICATION p FOR TABLE big");
  await q(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
  try {
    await q(`INSERT INTO big SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, ${ROWS}) g`);
    const [cmd, args] = moduleCommand("./_fixture/logical_big_consumer.ts", import.meta.url);
    const cfg = {
      connection: `host=127.0.0.1 port=${c.port} user=${ROLES.superuser.user} dbname=${db} sslmode=disable`,
      password: ROLES.superuser.password,
      slot,
      publication: "p",
      rows: ROWS,
      streaming,
    };
    const out = await new Promise<string>((resolve, reject) => {
      execFile(cmd, args, { env: { ...process.env, PG_RDMA_LB: JSON.stringify(cfg) }, timeout: 300_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`consumer failed: ${stderr}`, { cause: err }));
        else resolve(String(stdout));
      });
    });
    const r = JSON.parse(out.trim().split("\n").at(-1)!) as { rows: number; bytes: number; baseRss: number; peakRss: number; ms: number };
    assert.equal(r.bytes, ROWS * 1024);
    return { rows: r.rows, peak: r.peakRss, ms: r.ms };
  } finally {
    await q(`SELECT pg_drop_replication_slot('${slot}')`).catch(() => {});
    await psql(c, `DROP DATABASE ${db}`).catch(() => {});
  }
}

const skip = unavailable(18);

test("logicalReplication() PG18: a 1 GiB transaction without server streaming is consumed in chunks under 256 MiB RSS", { skip, timeout: 600_000 }, async () => {
  const r = await consumeBig("off");
  assert.equal(r.rows, ROWS);
  assert.ok(r.peak < LIMIT, `peak RSS ${(r.peak / 2 ** 20).toFixed(0)} MiB (${r.ms} ms)`);
});

test("logicalReplication() PG18: a 1 GiB transaction with server streaming is consumed under 256 MiB RSS", { skip, timeout: 600_000 }, async () => {
  const r = await consumeBig("on");
  assert.equal(r.rows, ROWS);
  assert.ok(r.peak < LIMIT, `peak RSS ${(r.peak / 2 ** 20).toFixed(0)} MiB (${r.ms} ms)`);
  await (await own!).stop();
});
