// with_rsocket through pg/'s connect(): the decision, the never-silent failure without a device,
// the rsocket path on the kernel provider, and a TCP client that never loads the FFI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, ROLES, unavailable } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";
import { connect } from "../pg/mod.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const skip = unavailable(18);
const tcp = (port: number, extra = "") =>
  `host=127.0.0.1 port=${port} user=${ROLES.scram.user} password=${ROLES.scram.password} dbname=postgres sslmode=disable ${extra}`;

test("connect(): native TCP by default, and says so", { skip }, async () => {
  const c = await cluster(18);
  const client = await connect(tcp(c.port), { env: {}, homeDir });
  try {
    assert.deepEqual(client.transport, { transport: "tcp", reason: "native TCP by default" });
    assert.equal((await client.query("SELECT 1 AS one")).rows[0].one, 1);
  } finally {
    await client.close();
  }
});

test("connect(): with_rsocket=true and no RDMA device fails with ENODEV, never falls back to TCP", { skip }, async () => {
  const c = await cluster(18);
  await assert.rejects(connect(tcp(c.port, "with_rsocket=true"), { env: {}, homeDir }), (e: Error) => {
    const text = `${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`;
    assert.match(text, /RDMA device/i, text);
    return true;
  });
});

test("connect(): WITH_RSOCKET=true in the environment is honoured like the connection string", { skip }, async () => {
  const c = await cluster(18);
  await assert.rejects(connect(tcp(c.port), { env: { WITH_RSOCKET: "true" }, homeDir }), /RDMA device/i);
});

test("connect(): with_rsocket=prefer falls back to TCP and names the reason", { skip }, async () => {
  const c = await cluster(18);
  const client = await connect(tcp(c.port, "with_rsocket=prefer"), { env: {}, homeDir });
  try {
    assert.equal(client.transport.transport, "tcp");
    assert.match(client.transport.reason, /unavailable/);
  } finally {
    await client.close();
  }
});

test("connect(): with_rsocket=true over the kernel provider runs queries through the FFI transport", { skip }, async () => {
  const c = await cluster(18);
  const client = await connect(tcp(c.port, "with_rsocket=true"), { env: { PG_RDMA_PROVIDER: "kernel" }, homeDir });
  try {
    assert.equal(client.transport.transport, "rsocket");
    assert.equal(client.transport.provider, "kernel");
    const { rows } = await client.query("SELECT count(*)::int AS n FROM generate_series(1, 100000)");
    assert.equal(rows[0].n, 100000);
  } finally {
    await client.close();
  }
});

test("connect(): a bad PG_RDMA_PROVIDER is named", { skip }, async () => {
  const c = await cluster(18);
  await assert.rejects(connect(tcp(c.port, "with_rsocket=true"), { env: { PG_RDMA_PROVIDER: "infiniband" }, homeDir }), /invalid PG_RDMA_PROVIDER value: "infiniband"/);
});

test("pg/ over native TCP never loads an FFI library (no koffi, no librdmacm in the process)", { skip }, async () => {
  const c = await cluster(18);
  const [cmd, args] = moduleCommand("./_fixture/pg_no_ffi.ts", import.meta.url);
  const out = await new Promise<string>((resolve, reject) => {
    execFile(cmd, [...args, String(c.port), ROLES.scram.user, ROLES.scram.password], (e, stdout, stderr) => {
      if (e) reject(new Error(`${e.message}\n${stderr}`));
      else resolve(String(stdout));
    });
  });
  const r = JSON.parse(out) as { one: number; ffi: string[] };
  assert.equal(r.one, 1);
  assert.deepEqual(r.ffi, []);
});
