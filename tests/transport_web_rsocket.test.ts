// connect(): the Web-streams socket over our rsocket Duplex (kernel provider), against a
// node:net peer: addresses, echo, BYOB reads, backpressure toward the peer, refusal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { connect } from "../transport/mod.ts";

async function server(onConn: (s: Socket) => void): Promise<{ srv: Server; port: number }> {
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    onConn(s);
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { srv, port: (srv.address() as { port: number }).port };
}

test("connect() (kernel): opened gives the addresses, and bytes echo through readable/writable", async () => {
  const { srv, port } = await server((s) => s.pipe(s));
  const ws = connect({ hostname: "127.0.0.1", port }, { provider: "kernel" });
  const info = await ws.opened;
  assert.equal(info.remoteAddress, "127.0.0.1");
  assert.equal(info.remotePort, port);
  assert.ok((info.localPort ?? 0) > 0);
  const w = ws.writable.getWriter();
  await w.write(new TextEncoder().encode("ping over rsocket"));
  const r = ws.readable.getReader();
  let got = "";
  while (got.length < 17) got += new TextDecoder().decode((await r.read()).value);
  assert.equal(got, "ping over rsocket");
  await ws.close();
  await ws.closed;
  srv.close();
});

test("connect() (kernel): BYOB reads fill the caller's buffers, then done at the peer's end", async () => {
  const payload = new Uint8Array(300_000).map((_, i) => (i * 13) % 256);
  const { srv, port } = await server((s) => s.end(payload));
  const ws = connect("127.0.0.1:" + port, { provider: "kernel" });
  const reader = ws.readable.getReader({ mode: "byob" });
  const out = new Uint8Array(payload.length);
  let n = 0;
  for (;;) {
    const { value, done } = await reader.read(new Uint8Array(8192));
    if (done) break;
    assert.ok(value.byteLength <= 8192);
    out.set(value, n);
    n += value.byteLength;
  }
  assert.equal(n, payload.length);
  assert.deepEqual(out, payload);
  await ws.close();
  srv.close();
});

test("connect() (kernel): a reader that stops reading makes the peer hit backpressure", async () => {
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
  const ws = connect({ hostname: "127.0.0.1", port }, {
    provider: "kernel",
    highWaterMark: 128 * 1024,
  });
  const r = ws.readable.getReader();
  await r.read();
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(blocked, true);
  assert.ok(written < 32 << 20, `the peer wrote ${written} bytes into a stalled reader`);
  r.releaseLock();
  await ws.close();
  srv.close();
});

test("connect() (kernel): opened and closed reject with ECONNREFUSED when nobody listens", async () => {
  const { srv, port } = await server(() => {});
  await new Promise((res) => srv.close(res));
  const ws = connect({ hostname: "127.0.0.1", port }, { provider: "kernel" });
  await assert.rejects(ws.opened, { code: "ECONNREFUSED" });
  await assert.rejects(ws.closed, { code: "ECONNREFUSED" });
});

test("connect() rejects a malformed address or port by name", () => {
  assert.throws(() => connect("no-port-here", { provider: "kernel" }), {
    name: "TypeError",
    message: /invalid socket address "no-port-here"/,
  });
  assert.throws(() => connect({ hostname: "127.0.0.1", port: 70000 }, { provider: "kernel" }), {
    name: "RangeError",
    message: /port must be an integer 1-65535, got 70000/,
  });
  assert.throws(
    () => connect({ hostname: "127.0.0.1", port: 5432 }, { provider: "tcp" as "kernel" }),
    { name: "TypeError", message: /provider must be "rdma", "kernel"/ },
  );
});
