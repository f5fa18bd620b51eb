// target_session_attrs and multi-host connection strings against a real primary and a real hot
// standby (PostgreSQL 15: Debian's pg_basebackup -R makes the standby), as libpq picks them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binDir, type OwnedCluster, type OwnedServer, ROLES, serverBaseDir, startCluster, startServer, unavailable } from "./_fixture/cluster.ts";
import { connect, ConnectionError } from "../pg/mod.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const basebackup = join(binDir(15) ?? "/usr/lib/postgresql/15/bin", "pg_basebackup");
const skip = unavailable(15) ?? (existsSync(basebackup) ? undefined : "pg_basebackup 15 is not installed");

const TRANSPORTS = [
  { name: "native", conn: "", env: {}, expect: "tcp" },
  { name: "rsocket/kernel", conn: " with_rsocket=true", env: { PG_RDMA_PROVIDER: "kernel" }, expect: "rsocket" },
] as const;

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A primary of our own and a hot standby made from it with `pg_basebackup -R`. */
async function primaryAndStandby(): Promise<{ primary: OwnedCluster; standby: OwnedServer }> {
  const primary = await startCluster(15);
  try {
    const base = serverBaseDir(15);
    await new Promise<void>((resolve, reject) => {
      execFile(basebackup, ["-h", primary.socketDir, "-p", String(primary.port), "-U", ROLES.replication.user, "-D", join(base, "data"), "-R", "-X", "stream", "-c", "fast"], (e, _o, stderr) => {
        if (e) reject(new Error(`pg_basebackup failed: ${stderr}`, { cause: e }));
        else resolve();
      });
    });
    const standby = await startServer(15, base, { hot_standby: "on" });
    return { primary, standby };
  } catch (e) {
    await primary.stop();
    throw e;
  }
}

test("connect() PG15: target_session_attrs picks the real primary or the real hot standby, over both transports; a dead host is skipped", { skip }, async () => {
  const { primary, standby } = await primaryAndStandby();
  let standbyUp = true;
  try {
    const user = `user=${ROLES.scram.user} password=${ROLES.scram.password} dbname=postgres sslmode=disable`;
    const both = `host=127.0.0.1,127.0.0.1 port=${standby.port},${primary.port} ${user}`;
    for (const tr of TRANSPORTS) {
      for (const [attrs, want, recovery] of [
        ["read-write", primary.port, false],
        ["primary", primary.port, false],
        ["standby", standby.port, true],
        ["read-only", standby.port, true],
        ["prefer-standby", standby.port, true],
        ["any", standby.port, true], // the first host that answers
      ] as const) {
        const client = await connect(`${both} target_session_attrs=${attrs}${tr.conn}`, { env: tr.env, homeDir });
        try {
          assert.equal(client.transport.transport, tr.expect);
          assert.equal(client.host.port, want, `${tr.name} target_session_attrs=${attrs}`);
          const { rows } = await client.query<{ r: boolean }>("SELECT pg_is_in_recovery() AS r");
          assert.equal(rows[0].r, recovery, `${tr.name} target_session_attrs=${attrs}`);
        } finally {
          await client.close();
        }
      }
    }
    // The first host down (nothing listens on its port): libpq goes on to the second.
    const dead = await closedPort();
    const second = await connect(`host=127.0.0.1,127.0.0.1 port=${dead},${primary.port} ${user}`, { env: {}, homeDir });
    assert.equal(second.host.port, primary.port);
    await second.close();
    // Only the standby reachable: primary / read-write refuse it with libpq's messages.
    const onlyStandby = `host=127.0.0.1,127.0.0.1 port=${standby.port},${dead} ${user}`;
    const e = await connect(`${onlyStandby} target_session_attrs=primary`, { env: {}, homeDir }).then(() => undefined, (x) => x);
    assert.ok(e instanceof ConnectionError);
    assert.equal(e.message, [
      `connection to server at "127.0.0.1", port ${standby.port} failed: server is in hot standby mode`,
      `connection to server at "127.0.0.1", port ${dead} failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?`,
    ].join("\n"));
    const rw = await connect(`${onlyStandby} target_session_attrs=read-write`, { env: {}, homeDir }).then(() => undefined, (x) => x);
    assert.match((rw as Error).message, new RegExp(`^connection to server at "127.0.0.1", port ${standby.port} failed: session is read-only\n`));
    // The standby down: standby fails naming both hosts; prefer-standby settles for the primary.
    await standby.stop();
    standbyUp = false;
    const sb = await connect(`${both} target_session_attrs=standby`, { env: {}, homeDir }).then(() => undefined, (x) => x);
    assert.ok(sb instanceof ConnectionError);
    assert.equal(sb.message, [
      `connection to server at "127.0.0.1", port ${standby.port} failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?`,
      `connection to server at "127.0.0.1", port ${primary.port} failed: server is not in hot standby mode`,
    ].join("\n"));
    const prefer = await connect(`${both} target_session_attrs=prefer-standby`, { env: {}, homeDir });
    assert.equal(prefer.host.port, primary.port);
    await prefer.close();
  } finally {
    if (standbyUp) await standby.stop();
    await primary.stop();
  }
});
