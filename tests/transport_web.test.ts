// The Web-streams socket adapter over the runtime's own TCP socket (the rsocket Duplex gets the
// same treatment in the transport conformance suite).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { createHash } from "node:crypto";
import { toWebSocket } from "../transport/_web.ts";

async function server(onConn: (s: Socket) => void): Promise<{ srv: Server; port: number }> {
  // Half-open allowed, so a test can answer after the client's end(); a reset by a client that
  // closes early is part of some tests, not a failure.
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    onConn(s);
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { srv, port: (srv.address() as { port: number }).port };
}

function dial(port: number) {
  const s = createConnection({ port, host: "127.0.0.1", allowHalfOpen: true });
  return toWebSocket(once(s, "connect").then(() => s));
}

test("toWebSocket(): opened resolves with addresses; echo through readable/writable", async () => {
  const { srv, port } = await server((s) => s.pipe(s));
  const ws = dial(port);
  const info = await ws.opened;
  assert.equal(info.remotePort, port);
  assert.equal(info.remoteAddress, "127.0.0.1");
  const w = ws.writable.getWriter();
  await w.write(new TextEncoder().encode("hello"));
  const r = ws.readable.getReader();
  let got = "";
  while (got.length < 5) got += new TextDecoder().decode((await r.read()).value);
  assert.equal(got, "hello");
  await ws.close();
  await ws.closed;
  srv.close();
});

test("toWebSocket(): BYOB reads fill the caller's buffer", async () => {
  const payload = new Uint8Array(100_000).map((_, i) => i % 251);
  const { srv, port } = await server((s) => s.end(payload));
  const ws = dial(port);
  const reader = ws.readable.getReader({ mode: "byob" });
  const out = new Uint8Array(payload.length);
  let n = 0;
  for (;;) {
    const { value, done } = await reader.read(new Uint8Array(4096));
    if (done) break;
    assert.ok(value.byteLength <= 4096);
    out.set(value, n);
    n += value.byteLength;
  }
  assert.equal(n, payload.length);
  assert.deepEqual(out, payload);
  await ws.close();
  srv.close();
});

test("toWebSocket(): 32 MiB each way with a checksum, and half-close via writable.close()", async () => {
  const size = 32 << 20;
  const chunk = new Uint8Array(64 * 1024).map((_, i) => (i * 7) % 256);
  const { srv, port } = await server((s) => {
    // Count what arrives, then answer with as much once the client half-closed.
    const h = createHash("sha256");
    let n = 0;
    s.on("data", (d: Uint8Array) => (h.update(d), n += d.length));
    s.on("end", () => {
      const digest = h.digest("hex");
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
        s.end(`|${n}|${digest}`);
      };
      pump();
    });
  });
  const ws = dial(port);
  const w = ws.writable.getWriter();
  const sent = createHash("sha256");
  for (let i = 0; i < size; i += chunk.length) {
    await w.write(chunk);
    sent.update(chunk);
  }
  await w.close();
  const got = createHash("sha256");
  let tail = new Uint8Array(0);
  let n = 0;
  for await (const d of ws.readable as unknown as AsyncIterable<Uint8Array>) {
    const room = size - n;
    if (room > 0) got.update(d.subarray(0, room));
    if (d.length > room) tail = new Uint8Array([...tail, ...d.subarray(Math.max(room, 0))]);
    n += d.length;
  }
  assert.equal(new TextDecoder().decode(tail), `|${size}|${sent.digest("hex")}`);
  const expect = createHash("sha256");
  for (let i = 0; i < size; i += chunk.length) expect.update(chunk);
  assert.equal(got.digest("hex"), expect.digest("hex"));
  srv.close();
});

test("toWebSocket(): a slow reader pauses the socket instead of queueing everything", async () => {
  let written = 0;
  let blocked = false;
  const { srv, port } = await server((s) => {
    const chunk = new Uint8Array(64 * 1024);
    const pump = () => {
      while (written < 64 << 20) {
        written += chunk.length;
        if (!s.write(chunk)) {
          blocked = true;
          return void s.once("drain", pump);
        }
      }
      s.end();
    };
    pump();
  });
  const ws = dial(port);
  const r = ws.readable.getReader();
  await r.read();
  await new Promise((res) => setTimeout(res, 300));
  // Nobody reads: the server must have hit backpressure long before 64 MiB.
  assert.equal(blocked, true);
  assert.ok(written < 32 << 20, `server wrote ${written} bytes into a paused reader`);
  r.releaseLock();
  await ws.close();
  srv.close();
});

test("toWebSocket(): opened and closed reject when the connection is refused", async () => {
  const { srv, port } = await server(() => {});
  await new Promise((res) => srv.close(res));
  const s = createConnection(port, "127.0.0.1");
  const ws = toWebSocket(new Promise((resolve, reject) => {
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  }));
  await assert.rejects(ws.opened, { code: "ECONNREFUSED" });
  await assert.rejects(ws.closed, { code: "ECONNREFUSED" });
});
