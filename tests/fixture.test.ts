// The test fixture's own tests: each cluster starts, speaks TLS and every auth method the client
// must prove, has logical WAL, and is gone afterwards, even when its owner dies abruptly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import {
  cluster,
  type ClusterInfo,
  createDatabase,
  psql,
  psqlPath,
  ROLES,
  startCluster,
  unavailable,
  VERSIONS,
} from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";

/** Runs psql on a connection string; resolves with exit code, stdout and stderr. */
function psqlConn(conninfo: string, sql: string, password = ""): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(psqlPath(), ["-X", "-A", "-t", "-c", sql, conninfo], {
      env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: "10" },
    }, (e, out, err) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out: String(out).trim(), err: String(err) }));
  });
}

const tcp = (c: ClusterInfo, user: string, extra = "") =>
  `host=127.0.0.1 port=${c.port} dbname=postgres user=${user} sslmode=verify-full sslrootcert=${c.tls.ca} ${extra}`;

async function gone(pid: number, dir: string, ms = 30_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive && !existsSync(dir)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

for (const v of VERSIONS) {
  const skip = unavailable(v);

  test(`fixture: PostgreSQL ${v} runs with logical WAL and room for senders and slots`, { skip }, async () => {
    const c = await cluster(v);
    assert.equal(c.version, v);
    assert.match(c.serverVersion, new RegExp(`^${v}\\.`));
    assert.equal((await psql(c, "SHOW wal_level")).trim(), "logical");
    assert.ok(Number(await psql(c, "SHOW max_wal_senders")) >= 10);
    assert.ok(Number(await psql(c, "SHOW max_replication_slots")) >= 10);
    assert.ok(Number(await psql(c, "SHOW max_prepared_transactions")) >= 10);
  });

  test(`fixture: PostgreSQL ${v} accepts unix-socket connections with trust`, { skip }, async () => {
    const c = await cluster(v);
    // A unix-socket backend has no client address.
    assert.equal((await psql(c, "SELECT coalesce(inet_client_addr()::text, 'unix')", { user: ROLES.scram.user })).trim(), "unix");
  });

  test(`fixture: PostgreSQL ${v} accepts TCP with TLS verified against the run's CA`, { skip }, async () => {
    const c = await cluster(v);
    const r = await psqlConn(tcp(c, ROLES.scram.user), "SELECT ssl, inet_client_addr() FROM pg_stat_ssl WHERE pid = pg_backend_pid()", ROLES.scram.password);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "t|127.0.0.1");
    // A name the certificate does not carry fails verify-full.
    const wrong = await psqlConn(`host=127.0.0.2 hostaddr=127.0.0.1 port=${c.port} user=${ROLES.scram.user} dbname=postgres sslmode=verify-full sslrootcert=${c.tls.ca}`, "SELECT 1", ROLES.scram.password);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.err, /does not match host name|server certificate/);
  });

  for (const method of ["scram", "md5", "password"] as const) {
    test(`fixture: PostgreSQL ${v} authenticates ${ROLES[method].user} by ${method} and refuses a wrong password`, { skip }, async () => {
      const c = await cluster(v);
      const role = ROLES[method];
      const ok = await psqlConn(tcp(c, role.user), "SELECT current_user", role.password);
      assert.equal(ok.code, 0, ok.err);
      assert.equal(ok.out, role.user);
      const bad = await psqlConn(tcp(c, role.user), "SELECT 1", "wrong");
      assert.notEqual(bad.code, 0);
      assert.match(bad.err, new RegExp(`password authentication failed for user "${role.user}"`));
      const stored = (await psql(c, `SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '${role.user}'`)).trim();
      assert.equal(stored, method === "md5" ? "md5" : "SCR");
    });
  }

  test(`fixture: PostgreSQL ${v} authenticates pgrdma_cert by TLS client certificate only`, { skip }, async () => {
    const c = await cluster(v);
    const ok = await psqlConn(tcp(c, ROLES.cert.user, `sslcert=${c.tls.clientCert} sslkey=${c.tls.clientKey}`), "SELECT current_user");
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out, ROLES.cert.user);
    const none = await psqlConn(tcp(c, ROLES.cert.user, "sslcert=/nonexistent sslkey=/nonexistent"), "SELECT 1");
    assert.notEqual(none.code, 0);
  });

  test(`fixture: PostgreSQL ${v} accepts replication connections over TCP`, { skip }, async () => {
    const c = await cluster(v);
    const r = await psqlConn(tcp(c, ROLES.replication.user, "replication=database"), "IDENTIFY_SYSTEM", ROLES.replication.password);
    assert.equal(r.code, 0, r.err);
    const [systemid, timeline] = r.out.split("|");
    assert.match(systemid, /^\d{10,}$/);
    assert.equal(timeline, "1");
  });

  test(`fixture: PostgreSQL ${v} gives each test a fresh database`, { skip }, async () => {
    const c = await cluster(v);
    const a = await createDatabase(c);
    const b = await createDatabase(c);
    assert.notEqual(a, b);
    await psql(c, "CREATE TABLE t (x int)", { database: a });
    assert.equal((await psql(c, "SELECT count(*) FROM pg_class WHERE relname = 't'", { database: b })).trim(), "0");
  });
}

test("fixture: stop() ends the server and removes its directory", { skip: unavailable(18) }, async () => {
  const c = await startCluster(18);
  assert.ok(existsSync(c.dataDir));
  await c.stop();
  assert.ok(await gone(c.pid, c.baseDir, 5_000), "postmaster or directory left behind");
});

test("fixture: a cluster goes away when the process that started it is killed", { skip: unavailable(18) }, async () => {
  const [cmd, args] = moduleCommand("./_fixture/hold_cluster.ts", import.meta.url);
  const child = spawn(cmd, [...args, "18"], { stdio: ["ignore", "pipe", "inherit"] });
  const info = await new Promise<ClusterInfo>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += String(d);
      if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0]));
    });
    child.once("exit", (code) => reject(new Error(`holder exited with ${code} before starting a cluster`)));
  });
  assert.ok(existsSync(info.dataDir));
  process.kill(info.pid, 0); // running
  child.kill("SIGKILL");
  assert.ok(await gone(info.pid, info.baseDir), "postmaster or directory survived its owner");
});
