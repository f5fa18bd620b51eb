// Child process: a node:net echo server on 127.0.0.1, in its own process so that a peer that
// busy-polls (and so blocks its own event loop) still gets answers. Prints "port <n>"; exits
// when its stdin closes.
import process from "node:process";
import { createServer } from "node:net";

const srv = createServer((s) => {
  s.setNoDelay(true);
  s.on("error", () => {});
  s.pipe(s);
});
srv.listen(0, "127.0.0.1", () => {
  process.stdout.write(`port ${(srv.address() as { port: number }).port}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
