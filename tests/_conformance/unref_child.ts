// Child process of the conformance suite's unref test: connects with the implementation named
// in argv[2] to 127.0.0.1:argv[3], prints "connected", unrefs the socket while it is still
// reading (parked with the poller, for rsockets), and must then exit on its own. With argv[4]
// "ref" it keeps the socket ref'ed instead (and must then stay alive).
import process from "node:process";
import { createConnection as netConnect } from "node:net";
import { createConnection } from "../../transport/socket.ts";

const [impl, port, mode] = process.argv.slice(2);
const s = impl === "native"
  ? netConnect({ port: Number(port), host: "127.0.0.1" })
  : createConnection({ port: Number(port), host: "127.0.0.1", provider: "kernel" });
s.on("error", (e) => {
  process.stderr.write(`child: ${e.message}\n`);
  process.exitCode = 1;
});
s.on("connect", () => {
  process.stdout.write("connected\n");
  s.resume();
  if (mode !== "ref") s.unref();
});
