/**
 * The Node backend: koffi declarations derived from the symbol table.
 *
 * - Types: `buf` → `void *` (koffi passes a Uint8Array's memory directly, subarray offset
 *   honoured, or NULL for null); 64-bit results come back as numbers.
 * - errno: `koffi.errno()`, which koffi saves right after each sync call on this thread.
 * - Off-thread calls: `fn.async(...)` on the libuv thread pool; errno is read inside the
 *   callback, where koffi makes the worker thread's errno visible. The pool has 4 threads by
 *   default and is shared with fs and dns: the poller should keep one multiplexed poll in
 *   flight, not one per socket.
 * - Variadic `fcntl`: koffi supports variadics in sync calls, so it is declared with `...` and
 *   called with its third argument typed `int`, which is correct on every ABI.
 *
 * @module
 */
import { createRequire } from "node:module";
import type { Backend, NativeFn, NativeLibrary, OffThreadFn } from "./_backend.ts";
import { type ArgType, bindTable, type BoundSymbol, type ResultType } from "./_symbols.ts";

interface KoffiFunction {
  (...args: unknown[]): number | bigint;
  async(...args: unknown[]): void;
}
interface Koffi {
  load(path: string): { func(name: string, result: string, args: string[]): KoffiFunction };
  errno(): number;
}

const ARG: Record<ArgType, string> = { i32: "int", u64: "uint64_t", i64: "int64_t", buf: "void *" };
const RESULT: Record<ResultType, string> = { i32: "int", i64: "int64_t", ptr: "uint64_t" };

/** Creates the Node backend (requires koffi only when called). */
export function nodeBackend(): Backend {
  const koffi = createRequire(import.meta.url)("koffi") as Koffi;
  let memmove: NativeFn | undefined;

  function open(path: string, table: readonly BoundSymbol[]): NativeLibrary {
    const lib = koffi.load(path);
    const fns: Record<string, NativeFn> = {};
    const offThread: Record<string, OffThreadFn> = {};
    for (const s of table) {
      if (s.variadic) {
        const fixed = s.args.slice(0, -1);
        const f = lib.func(s.native, RESULT[s.result], [...fixed.map((a) => ARG[a]), "..."]);
        const last = ARG[s.args[s.args.length - 1]];
        const n = fixed.length;
        fns[s.key] = (...a) => Number(f(...a.slice(0, n), last, a[n]));
        continue;
      }
      const f = lib.func(s.native, RESULT[s.result], s.args.map((a) => ARG[a]));
      fns[s.key] = s.result === "i32" ? (f as NativeFn) : (...a) => Number(f(...a));
      if (s.offThread) {
        offThread[s.key] = (...a) =>
          new Promise((resolve, reject) => {
            f.async(...a, (err: unknown, res: number | bigint) => {
              if (err) return reject(err);
              const result = Number(res);
              // Inside the callback koffi exposes the errno of the pool thread that ran the call.
              resolve({ result, errno: result === -1 ? koffi.errno() : 0 });
            });
          });
      }
    }
    return { path, fns, offThread };
  }

  return {
    runtime: "node",
    open,
    errno: () => koffi.errno(),
    address(buf) {
      if (!memmove) {
        memmove = open(
          "libc.so.6",
          bindTable("libc").filter((s) => s.key === "memmove"),
        ).fns.memmove;
      }
      return BigInt(memmove(buf, buf, 0));
    },
  };
}
