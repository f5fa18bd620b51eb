// The transport conformance suite against our rsocket Duplex and server on the `kernel`
// provider (libc TCP through the FFI layer, the poller and the same code as rsockets): the same
// tests node:net passes in tests/transport_conformance_native.test.ts. This file carries the
// one GiB-scale case per runtime.
import { createConnection, createServer } from "../transport/mod.ts";
import { socketSuite, type SuiteServer } from "./_conformance/socket_suite.ts";

socketSuite({
  name: "RsocketSocket (kernel)",
  connect: (port, host, opts) => createConnection({ port, host, provider: "kernel", ...opts }),
  createServer: (opts, onConnection) =>
    createServer({ provider: "kernel", ...opts }, onConnection) as unknown as SuiteServer,
  child: "kernel",
  backpressureBytes: 1 << 30,
});
