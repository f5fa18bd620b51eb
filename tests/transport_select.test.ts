import { test } from "node:test";
import assert from "node:assert/strict";
import { parseWithRsocket, selectTransport } from "../transport/select.ts";

const noDevice = () => ({ ok: false as const, error: new Error("no RDMA device is present") });
const device = () => ({ ok: true as const });

test("selectTransport() defaults to native TCP and says so", () => {
  const d = selectTransport({ env: {} });
  assert.deepEqual([d.transport, d.source, d.setting], ["tcp", "default", "false"]);
  assert.match(d.reason, /native TCP by default/);
});

test("selectTransport() takes WITH_RSOCKET from the environment", () => {
  const d = selectTransport({ env: { WITH_RSOCKET: "true" }, probe: noDevice });
  assert.deepEqual([d.transport, d.source], ["rsocket", "environment"]);
});

test("selectTransport(): the connection string wins over the environment", () => {
  const d = selectTransport({ setting: "false", env: { WITH_RSOCKET: "true" } });
  assert.deepEqual([d.transport, d.source], ["tcp", "connection string"]);
});

test("selectTransport(): with_rsocket=true never falls back to TCP, even with no device", () => {
  let probed = false;
  const d = selectTransport({ setting: "true", env: {}, probe: () => (probed = true, noDevice()) });
  assert.equal(d.transport, "rsocket");
  assert.equal(probed, false, "true must not probe: the connection itself reports ENODEV");
});

test("selectTransport(): prefer uses rsockets when a device is present", () => {
  const notices: string[] = [];
  const d = selectTransport({ setting: "prefer", env: {}, probe: device, notice: (m) => notices.push(m) });
  assert.equal(d.transport, "rsocket");
  assert.deepEqual(notices, []);
});

test("selectTransport(): prefer falls back to TCP with one notice naming the cause", () => {
  const notices: string[] = [];
  const d = selectTransport({ setting: "prefer", env: {}, probe: noDevice, notice: (m) => notices.push(m) });
  assert.equal(d.transport, "tcp");
  assert.equal(notices.length, 1);
  assert.match(notices[0], /no RDMA device is present/);
  assert.equal(d.reason, notices[0]);
});

test("parseWithRsocket() accepts libpq boolean spellings and rejects anything else by name", () => {
  for (const v of ["on", "YES", "1", "true"]) assert.equal(parseWithRsocket(v), "true");
  for (const v of ["off", "no", "0", "False"]) assert.equal(parseWithRsocket(v), "false");
  assert.equal(parseWithRsocket("Prefer"), "prefer");
  assert.throws(() => parseWithRsocket("maybe"), { name: "TypeError", message: 'invalid with_rsocket value: "maybe" (expected true, false or prefer)' });
  assert.throws(() => selectTransport({ env: { WITH_RSOCKET: "sometimes" } }), /invalid WITH_RSOCKET value: "sometimes"/);
});
