// The transport conformance suite against the runtime's own node:net: the reference behaviour
// our rsocket Duplex must match (tests/transport_conformance_kernel.test.ts runs the same tests).
import { createConnection, createServer } from "node:net";
import { socketSuite, type SuiteServer, type SuiteSocket } from "./_conformance/socket_suite.ts";

socketSuite({
  name: "node:net",
  connect: (port, host, opts) => createConnection({ port, host, ...opts }) as SuiteSocket,
  createServer: (opts, onConnection) =>
    createServer(opts, (s) => onConnection(s as SuiteSocket)) as unknown as SuiteServer,
  child: "native",
  backpressureBytes: 256 << 20,
});
