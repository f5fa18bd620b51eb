// pg-rdma recvlogical as users run it (a child process of the same runtime) against the
// fixture's PostgreSQL 15 and 18: slots created and dropped, test_decoding text as
// pg_recvlogical writes it, pgoutput as NDJSON and MessagePack, the end position, and a clean
// stop on SIGINT that leaves the slot confirmed up to what was written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Unpackr } from "msgpackr";
import { cluster, type ClusterInfo, createDatabase, psql, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  code: number;
  out: string;
  err: string;
}

function recvlogical(c: ClusterInfo, db: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(exe, [...baseArgs, "recvlogical", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", db, ...args], {
      env: { ...process.env, NO_COLOR: "1" },
      timeout: 60_000,
      maxBuffer: 64 << 20,
    }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
  });
}

const lsnNow = async (c: ClusterInfo) => (await psql(c, "SELECT pg_current_wal_lsn()")).trim();

for (const v of VERSIONS) {
  test(`recvlogical creates a test_decoding slot, streams pg_recvlogical's text up to -E, and drops the slot on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "rl");
    const slot = `rl_td_${v}_${process.pid}`;
    await psql(c, "CREATE TABLE t (id int PRIMARY KEY, v text)", { database: db });
    const created = await recvlogical(c, db, ["-S", slot, "--create-slot"]);
    assert.equal(created.code, 0, created.err);
    const again = await recvlogical(c, db, ["-S", slot, "--create-slot"]);
    assert.equal(again.code, 1);
    assert.match(again.err, /already exists/);
    assert.equal((await recvlogical(c, db, ["-S", slot, "--create-slot", "--if-not-exists"])).code, 0);

    // Three transactions (one psql -c would make them one).
    for (const sql of ["INSERT INTO t VALUES (1, 'a'), (2, 'b')", "UPDATE t SET v = 'c' WHERE id = 1", "DELETE FROM t WHERE id = 2"]) {
      await psql(c, sql, { database: db });
    }
    const end = await lsnNow(c);
    const r = await recvlogical(c, db, ["-S", slot, "--start", "-f", "-", "-E", end]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split("\n").map((l) => l.replace(/^(BEGIN|COMMIT) \d+$/, "$1 N"));
    assert.deepEqual(lines, [
      "BEGIN N",
      "table public.t: INSERT: id[integer]:1 v[text]:'a'",
      "table public.t: INSERT: id[integer]:2 v[text]:'b'",
      "COMMIT N",
      "BEGIN N",
      "table public.t: UPDATE: id[integer]:1 v[text]:'c'",
      "COMMIT N",
      "BEGIN N",
      "table public.t: DELETE: id[integer]:2",
      "COMMIT N",
    ]);
    // What was written is confirmed: a second run up to the same point writes nothing.
    const second = await recvlogical(c, db, ["-S", slot, "--start", "-E", end]);
    assert.equal(second.code, 0, second.err);
    assert.equal(second.out, "");

    const dropped = await recvlogical(c, db, ["-S", slot, "--drop-slot"]);
    assert.equal(dropped.code, 0, dropped.err);
    assert.equal((await psql(c, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim(), "0");
  });

  test(`recvlogical --format ndjson and msgpack decode pgoutput changes that match what was done on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "rl");
    const slot = `rl_po_${v}_${process.pid}`;
    await psql(c, "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t", { database: db });
    assert.equal((await recvlogical(c, db, ["-S", slot, "--create-slot", "-P", "pgoutput"])).code, 0);
    for (const sql of ["INSERT INTO t VALUES (1, 'one'), (2, 'two')", "UPDATE t SET v = 'uno' WHERE id = 1", "DELETE FROM t WHERE id = 2"]) {
      await psql(c, sql, { database: db });
    }
    const end = await lsnNow(c);
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-rl-"));
    try {
      // A second slot, created after those changes, sees only the next one.
      const slot2 = `${slot}_b`;
      assert.equal((await recvlogical(c, db, ["-S", slot2, "--create-slot", "-P", "pgoutput"])).code, 0);
      await psql(c, "INSERT INTO t VALUES (3, 'three')", { database: db });
      const end2 = await lsnNow(c);

      const r = await recvlogical(c, db, ["-S", slot, "--start", "-o", "publication_names=p", "-E", end, "--format", "ndjson"]);
      assert.equal(r.code, 0, r.err);
      const events = r.out.trim().split("\n").map((l) => JSON.parse(l));
      const changes = events.filter((e) => ["insert", "update", "delete"].includes(e.type));
      assert.deepEqual(changes.map((e) => [e.type, `${e.relation.schema}.${e.relation.name}`, e.new ?? e.key]), [
        ["insert", "public.t", { id: "1", v: "one" }],
        ["insert", "public.t", { id: "2", v: "two" }],
        ["update", "public.t", { id: "1", v: "uno" }],
        ["delete", "public.t", { id: "2" }],
      ]);
      assert.equal(events.filter((e) => e.type === "commit").length, 3);

      const file = join(dir, "changes.msgpack");
      const m = await recvlogical(c, db, ["-S", slot2, "--start", "-o", "publication_names=p", "-E", end2, "--format", "msgpack", "-f", file]);
      assert.equal(m.code, 0, m.err);
      const decoded = new Unpackr({ useRecords: true, sequential: true }).unpackMultiple(readFileSync(file)) as { type: string }[];
      assert.deepEqual(decoded.filter((e) => ["insert", "update", "delete"].includes(e.type)).map((e) => e.type), ["insert"]);
      // The last commit was flushed to the slot before exiting.
      const confirmed = (await psql(c, `SELECT confirmed_flush_lsn >= '${end2}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '${slot2}'`)).trim();
      assert.equal(confirmed, "t");
      for (const s of [slot, slot2]) assert.equal((await recvlogical(c, db, ["-S", s, "--drop-slot"])).code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`recvlogical stops on SIGINT with the output fsynced and the slot confirmed up to it (exit 130) on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "rl");
    const slot = `rl_int_${v}_${process.pid}`;
    await psql(c, "CREATE TABLE t (id int)", { database: db });
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-rl-"));
    const file = join(dir, "out.txt");
    try {
      const child = spawn(exe, [...baseArgs, "recvlogical", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", db, "-S", slot, "--create-slot", "--start", "-f", file, "-F", "60"], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (d) => (err += String(d)));
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const n = await psql(c, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${slot}' AND active`);
        if (n.trim() === "1") break;
        await sleep(100);
      }
      await psql(c, "INSERT INTO t SELECT generate_series(1, 100)", { database: db });
      const lsn = await lsnNow(c);
      while (Date.now() < deadline && !(existsSync(file) && readFileSync(file, "utf8").includes("COMMIT"))) await sleep(100);
      process.kill(child.pid!, "SIGINT");
      assert.equal(await exited, 130, err);
      const text = readFileSync(file, "utf8");
      assert.equal(text.match(/INSERT: id\[integer\]/g)?.length, 100);
      assert.match(text, /^COMMIT \d+$/m);
      const confirmed = (await psql(c, `SELECT confirmed_flush_lsn >= '${lsn}'::pg_lsn, active FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim();
      assert.equal(confirmed, "t|f");
      await psql(c, `SELECT pg_drop_replication_slot('${slot}')`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("recvlogical refuses a bad -E position and a missing database with usage errors (exit 2)", async () => {
  const r = await new Promise<Run>((resolve) => {
    execFile(exe, [...baseArgs, "recvlogical", "-d", "x", "-S", "s", "--start", "-E", "nope"], (e, out, err) => {
      resolve({ code: e ? Number((e as { code?: unknown }).code ?? 1) : 0, out: String(out), err: String(err) });
    });
  });
  assert.equal(r.code, 2);
  assert.match(r.err, /could not parse end position "nope"/);
});
