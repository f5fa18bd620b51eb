import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { once } from "node:events";
import { RsocketError } from "../ffi/mod.ts";
import { parseWithRsocket, probeRsocket, rsocketFactory, selectTransport } from "../transport/select.ts";
import type { RsocketSocket } from "../transport/socket.ts";

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

test("probeRsocket() says whether an rsocket can be created, with the RsocketError when not", () => {
  const p = probeRsocket();
  if (p.ok) return; // a machine with an RDMA device
  assert.ok(p.error instanceof RsocketError);
  // No device (ENODEV, with advice) or no librdmacm at all (ELIBACC).
  assert.ok(["ENODEV", "ELIBACC"].includes((p.error as RsocketError).code), p.error.message);
});

test("selectTransport(): prefer uses probeRsocket() by default and says why it fell back", () => {
  const notices: string[] = [];
  const d = selectTransport({ setting: "prefer", env: {}, notice: (m) => notices.push(m) });
  const probe = probeRsocket();
  assert.equal(d.transport, probe.ok ? "rsocket" : "tcp");
  if (!probe.ok) assert.ok(d.reason.includes(probe.error.message), d.reason);
});

test("rsocketFactory() connects a TCP target (kernel provider) and refuses unix targets by name", async () => {
  const srv = createServer((s) => s.end("hi"));
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  const factory = rsocketFactory({ provider: "kernel" });
  const s = await factory({ kind: "tcp", host: "localhost", hostaddr: "127.0.0.1", port }, {
    signal: AbortSignal.timeout(5000),
    keepAlive: { idle: 30 },
  }) as RsocketSocket;
  assert.equal(s.remotePort, port);
  assert.equal(s.readyState, "open");
  const [d] = await once(s, "data") as [Uint8Array];
  assert.equal(new TextDecoder().decode(d), "hi");
  s.destroy();
  srv.close();
  assert.throws(
    () => factory({ kind: "unix", path: "/tmp/.s.PGSQL.5432" }, { signal: new AbortController().signal }),
    { name: "TypeError", message: /rsockets have no unix-domain sockets: cannot connect to "\/tmp\/\.s\.PGSQL\.5432"/ },
  );
  assert.throws(() => rsocketFactory({ inlineSize: -1 }), { name: "RangeError", message: /inlineSize/ });
});

test("rsocketFactory(): a refused connection rejects with ECONNREFUSED", async () => {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  const factory = rsocketFactory({ provider: "kernel" });
  await assert.rejects(
    Promise.resolve(factory({ kind: "tcp", host: "127.0.0.1", port }, { signal: AbortSignal.timeout(5000) })),
    { code: "ECONNREFUSED" },
  );
});
