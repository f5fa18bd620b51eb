// RsocketServer (kernel provider) beyond what the conformance suite covers, RsocketSocket's
// socket options as the kernel sees them, and the rdma provider on a machine without a device.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection as netConnect } from "node:net";
import {
  IPPROTO_TCP,
  openProvider,
  RsocketError,
  SO_KEEPALIVE,
  SOL_SOCKET,
  TCP_KEEPIDLE,
  TCP_NODELAY,
} from "../ffi/mod.ts";
import { createConnection, createServer, probeRsocket, RsocketSocket } from "../transport/mod.ts";

test("createServer(): listening, address(), and close() waits for open connections", async () => {
  const accepted: RsocketSocket[] = [];
  const srv = createServer({ provider: "kernel" }, (s) => accepted.push(s));
  assert.equal(srv.address(), null);
  srv.listen({ host: "127.0.0.1", port: 0 });
  await once(srv, "listening");
  assert.equal(srv.listening, true);
  const addr = srv.address()!;
  assert.equal(addr.address, "127.0.0.1");
  assert.equal(addr.family, "IPv4");
  assert.ok(addr.port > 0);
  const c = netConnect(addr.port, "127.0.0.1");
  await once(c, "connect");
  while (accepted.length === 0) await new Promise((r) => setTimeout(r, 2));
  assert.equal(accepted[0].remotePort, c.localPort);
  let closed = false;
  srv.close(() => (closed = true));
  assert.equal(srv.listening, false);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(closed, false, "close fired with a connection still open");
  const count = await new Promise<number>((resolve) => srv.getConnections((_e, n) => resolve(n)));
  assert.equal(count, 1);
  c.end();
  await once(srv, "close");
  assert.equal(closed, true);
  await new Promise<void>((resolve) =>
    srv.close((
      e,
    ) => (assert.equal((e as NodeJS.ErrnoException).code, "ERR_SERVER_NOT_RUNNING"), resolve()))
  );
});

test("createServer(): maxConnections closes connections beyond the limit", async () => {
  const srv = createServer({ provider: "kernel" }, () => {});
  srv.maxConnections = 1;
  let drops = 0;
  srv.on("drop", () => drops++);
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = srv.address()!.port;
  const first = netConnect(port, "127.0.0.1");
  await once(first, "connect");
  await new Promise((r) => setTimeout(r, 30));
  const second = netConnect(port, "127.0.0.1");
  second.on("error", () => {});
  second.resume();
  await once(second, "close");
  assert.equal(drops, 1);
  first.destroy();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
});

test("createServer(): listening on a port in use emits EADDRINUSE", async () => {
  const a = createServer({ provider: "kernel" });
  a.listen(0, "127.0.0.1");
  await once(a, "listening");
  const b = createServer({ provider: "kernel" });
  // SO_REUSEADDR does not allow two listeners on one port.
  b.listen(a.address()!.port, "127.0.0.1");
  const [err] = await once(b, "error") as [RsocketError];
  assert.equal(err.code, "EADDRINUSE");
  assert.equal(b.listening, false);
  await new Promise<void>((resolve) => a.close(() => resolve()));
});

test("RsocketSocket: setNoDelay and setKeepAlive reach the kernel as TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE", async () => {
  const srv = createServer({ provider: "kernel" }, () => {});
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const s = createConnection({
    host: "127.0.0.1",
    port: srv.address()!.port,
    provider: "kernel",
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: 42_000,
  });
  await once(s, "connect");
  const k = openProvider("kernel");
  assert.equal(k.getsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY), 1);
  assert.equal(k.getsockopt(s.fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  assert.equal(k.getsockopt(s.fd, IPPROTO_TCP, TCP_KEEPIDLE), 42);
  s.setKeepAlive(false).setNoDelay(false);
  assert.equal(k.getsockopt(s.fd, SOL_SOCKET, SO_KEEPALIVE), 0);
  assert.equal(k.getsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY), 0);
  s.destroy();
  // Options given to the constructor survive connect(port, host), the way pg calls it.
  const t = new RsocketSocket({ provider: "kernel", pollingTime: 77 }).connect(
    srv.address()!.port,
    "127.0.0.1",
  );
  await once(t, "connect");
  assert.equal(t.pollingTime, 77);
  t.destroy();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
});

const rdma = probeRsocket();
test(
  "RsocketSocket on the rdma provider without a device fails with ENODEV and says how to check",
  { skip: rdma.ok ? "this machine has an RDMA device" : undefined },
  async () => {
    const s = createConnection({
      host: "127.0.0.1",
      port: 5432,
      provider: "rdma",
      sqSize: 128,
      inlineSize: 64,
    });
    const closed = new Promise((r) => s.once("close", r));
    const [err] = await once(s, "error") as [RsocketError];
    assert.ok(err instanceof RsocketError);
    assert.ok(["ENODEV", "ELIBACC"].includes(err.code), err.message);
    if (err.code === "ENODEV") assert.match(err.message, /ibv_devices|rdma link/);
    await closed;
    assert.equal(s.readyState, "closed");
  },
);

test("RsocketSocket: aborting its signal while connecting destroys it with an AbortError", async () => {
  const srv = createServer({ provider: "kernel" }, () => {});
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const ac = new AbortController();
  const s = new RsocketSocket({ provider: "kernel", signal: ac.signal });
  const closed = new Promise((r) => s.once("close", r));
  let connected = false;
  s.connect(srv.address()!.port, "localhost", () => (connected = true));
  ac.abort(new Error("gave up"));
  const [err] = await once(s, "error") as [Error & { code?: string }];
  assert.equal(err.name, "AbortError");
  assert.equal(err.code, "ABORT_ERR");
  await closed;
  assert.equal(connected, false);
  assert.equal(s.destroyed, true);
  await new Promise<void>((resolve) => srv.close(() => resolve()));
});
