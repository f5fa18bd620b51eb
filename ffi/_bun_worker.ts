/**
 * Worker body for Bun's off-thread calls (see `_bun.ts`): declares the requested symbol with
 * `bun:ffi`, makes the blocking call on this thread, reads this thread's errno right after it,
 * and sends the result and the (possibly written) buffers back.
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import type { NativeFn } from "./_backend.ts";
import { bunBackend, bunOpen, type WorkerCall, type WorkerReply } from "./_bun.ts";

const opened = new Map<string, NativeFn>();
const local = bunBackend();
local.errno(); // resolve errno's address before any call, so the first lookup cannot clobber it

parentPort?.on("message", (m: WorkerCall) => {
  let reply: WorkerReply;
  try {
    const id = `${m.path}\0${m.symbol.native}`;
    let fn = opened.get(id);
    if (!fn) {
      fn = bunOpen(m.path, [m.symbol])[m.symbol.key];
      opened.set(id, fn);
    }
    const result = fn(...m.args);
    const errno = result === -1 ? local.errno() : 0;
    reply = { result, errno, args: m.args };
  } catch (e) {
    reply = { result: -1, errno: undefined, args: m.args, error: String(e) };
  }
  parentPort?.postMessage(reply);
});
