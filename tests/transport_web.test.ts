// The Web-streams socket adapter over the runtime's own TCP socket; the cases shared with the
// rsocket-backed connect() are in tests/_fixture/web_socket.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { once } from "node:events";
import { createHash } from "node:crypto";
import { toWebSocket } from "../transport/_web.ts";
import { backpressureCase, byobCase, echoCase, peer, refusedCase } from "./_fixture/web_socket.ts";

function dial(port: number) {
  const s = createConnection({ port, host: "127.0.0.1", allowHalfOpen: true });
  return toWebSocket(once(s, "connect").then(() => s));
}

test("toWebSocket(): opened resolves with addresses; echo through readable/writable", () => echoCase(dial, "hello"));

test("toWebSocket(): BYOB reads fill the caller's buffer", () => byobCase(dial, 100_000, 4096));

test("toWebSocket(): 32 MiB each way with a checksum, and half-close via writable.close()", async () => {
  const size = 32 << 20;
  const chunk = new Uint8Array(64 * 1024).map((_, i) => (i * 7) % 256);
  const { srv, port } = await peer((s) => {
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

test("toWebSocket(): a slow reader pauses the socket instead of queueing everything", () => backpressureCase(dial));

test("toWebSocket(): opened and closed reject when the connection is refused", () =>
  refusedCase((port) => {
    const s = createConnection(port, "127.0.0.1");
    return toWebSocket(new Promise((resolve, reject) => {
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    }));
  }));
