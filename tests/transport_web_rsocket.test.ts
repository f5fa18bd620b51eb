// connect(): the Web-streams socket over our rsocket Duplex (kernel provider), against a
// node:net peer: addresses, echo, BYOB reads, backpressure toward the peer, refusal (the cases
// shared with the adapter over the runtime's own socket are in tests/_fixture/web_socket.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../transport/mod.ts";
import { backpressureCase, byobCase, type Dial, echoCase, refusedCase } from "./_fixture/web_socket.ts";

const dial: Dial = (port) => connect({ hostname: "127.0.0.1", port }, { provider: "kernel", highWaterMark: 128 * 1024 });

test("connect() (kernel): opened gives the addresses, and bytes echo through readable/writable", () => echoCase(dial, "ping over rsocket"));

test("connect() (kernel): BYOB reads fill the caller's buffers, then done at the peer's end", () =>
  byobCase((port) => connect("127.0.0.1:" + port, { provider: "kernel" }), 300_000, 8192));

test("connect() (kernel): a reader that stops reading makes the peer hit backpressure", () => backpressureCase(dial));

test("connect() (kernel): opened and closed reject with ECONNREFUSED when nobody listens", () => refusedCase(dial));

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
