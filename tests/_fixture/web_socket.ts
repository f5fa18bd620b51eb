// Cases shared by the Web-streams socket tests: the same checks run against the adapter over
// the runtime's own TCP socket and over our rsocket Duplex (kernel provider), each against a
// node:net peer. `dial(port)` opens the socket under test.
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import type { WebSocketStream } from "../../transport/_web.ts";

/** Opens the Web-streams socket under test to 127.0.0.1:`port`. */
export type Dial = (port: number) => WebSocketStream;

/**
 * A node:net peer on 127.0.0.1 with half-open allowed (so a test can answer after the client's
 * end); a reset by a client that closes early is part of some tests, not a failure.
 */
export async function peer(onConn: (s: Socket) => void): Promise<{ srv: Server; port: number }> {
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    onConn(s);
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { srv, port: (srv.address() as { port: number }).port };
}

/** `opened` gives the addresses, and `text` echoes back through readable/writable. */
export async function echoCase(dial: Dial, text: string): Promise<void> {
  const { srv, port } = await peer((s) => s.pipe(s));
  const ws = dial(port);
  const info = await ws.opened;
  assert.equal(info.remoteAddress, "127.0.0.1");
  assert.equal(info.remotePort, port);
  assert.ok((info.localPort ?? 0) > 0);
  const w = ws.writable.getWriter();
  await w.write(new TextEncoder().encode(text));
  const r = ws.readable.getReader();
  let got = "";
  while (got.length < text.length) got += new TextDecoder().decode((await r.read()).value);
  assert.equal(got, text);
  await ws.close();
  await ws.closed;
  srv.close();
}

/** BYOB reads of at most `readSize` bytes fill the caller's buffers with `size` bytes, then done. */
export async function byobCase(dial: Dial, size: number, readSize: number): Promise<void> {
  const payload = new Uint8Array(size).map((_, i) => (i * 13) % 251);
  const { srv, port } = await peer((s) => s.end(payload));
  const ws = dial(port);
  const reader = ws.readable.getReader({ mode: "byob" });
  const out = new Uint8Array(payload.length);
  let n = 0;
  for (;;) {
    const { value, done } = await reader.read(new Uint8Array(readSize));
    if (done) break;
    assert.ok(value.byteLength <= readSize);
    out.set(value, n);
    n += value.byteLength;
  }
  assert.equal(n, payload.length);
  assert.deepEqual(out, payload);
  await ws.close();
  srv.close();
}

/** A reader that stops reading makes the peer hit backpressure long before 64 MiB. */
export async function backpressureCase(dial: Dial): Promise<void> {
  let written = 0;
  let blocked = false;
  const { srv, port } = await peer((s) => {
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
  assert.equal(blocked, true);
  assert.ok(written < 32 << 20, `the peer wrote ${written} bytes into a stalled reader`);
  r.releaseLock();
  await ws.close();
  srv.close();
}

/** With nobody listening, `opened` and `closed` reject with ECONNREFUSED. */
export async function refusedCase(dial: Dial): Promise<void> {
  const { srv, port } = await peer(() => {});
  await new Promise((res) => srv.close(res));
  const ws = dial(port);
  await assert.rejects(ws.opened, { code: "ECONNREFUSED" });
  await assert.rejects(ws.closed, { code: "ECONNREFUSED" });
}
