/**
 * The Bun backend: `bun:ffi` declarations derived from the symbol table.
 *
 * - Types: `buf` → `"ptr"` (Bun converts a Uint8Array, subarray offset honoured, or null);
 *   64-bit results use `"i64_fast"`, which gives numbers instead of BigInt.
 * - errno: read through libc's `__errno_location()` right after the sync call, on the same
 *   thread.
 * - Off-thread calls: Bun has no async FFI, so a `node:worker_threads` Worker (from
 *   `_bun_worker.ts`) declares the same symbol and makes the blocking call; buffers travel by
 *   copy and are written back before the Promise resolves, and the Worker reads its own errno.
 *   Idle Workers are kept for reuse and `unref()`ed so they never hold the process open; a busy
 *   one is `ref()`ed, like a pending Deno or koffi async call. koffi `.async` would also work
 *   under Bun, but `koffi.node.poll` aborts Bun (uncatchable), so Bun stays on its own FFI.
 * - Variadic `fcntl`: declared as three `i32` (see `_symbols.ts`).
 *
 * Bun's types are not visible to tsc here, so the few parts used are declared locally.
 *
 * @module
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type {
  Backend,
  NativeArg,
  NativeFn,
  NativeLibrary,
  OffThreadFn,
  OffThreadResult,
} from "./_backend.ts";
import { type ArgType, bindTable, type BoundSymbol, type ResultType } from "./_symbols.ts";

type BunType = "i32" | "u64" | "i64" | "ptr" | "i64_fast";
interface BunFfi {
  dlopen(path: string, symbols: Record<string, { args: BunType[]; returns: BunType }>): {
    symbols: Record<string, (...a: NativeArg[]) => number>;
  };
  ptr(buf: Uint8Array): number;
  read: { i32(address: number, offset?: number): number };
}

const ARG: Record<ArgType, BunType> = { i32: "i32", u64: "u64", i64: "i64", buf: "ptr" };
const RESULT: Record<ResultType, BunType> = { i32: "i32", i64: "i64_fast", ptr: "ptr" };

let ffi: BunFfi | undefined;
/** `bun:ffi`, required on first use only. */
export function bunFfi(): BunFfi {
  return ffi ??= createRequire(import.meta.url)("bun:ffi") as BunFfi;
}

/** Opens a library with Bun's names (Bun binds by the exported name, so keys are mapped after). */
export function bunOpen(path: string, table: readonly BoundSymbol[]): Record<string, NativeFn> {
  const defs: Record<string, { args: BunType[]; returns: BunType }> = {};
  for (const s of table) {
    defs[s.native] = { args: s.args.map((a) => ARG[a]), returns: RESULT[s.result] };
  }
  const raw = bunFfi().dlopen(path, defs).symbols;
  const fns: Record<string, NativeFn> = {};
  for (const s of table) fns[s.key] = raw[s.native];
  return fns;
}

/** Message to the worker: make one call. */
export interface WorkerCall {
  readonly path: string;
  readonly symbol: BoundSymbol;
  readonly args: NativeArg[];
}
/** Reply from the worker. */
export interface WorkerReply extends OffThreadResult {
  readonly args: NativeArg[];
  readonly error?: string;
}

/** Creates the Bun backend (touches `bun:ffi` only when called). */
export function bunBackend(): Backend {
  let errnoAt = 0;
  const idle: Worker[] = [];
  const workerUrl = new URL(
    import.meta.url.endsWith(".js") ? "./_bun_worker.js" : "./_bun_worker.ts",
    import.meta.url,
  );

  function callInWorker(
    path: string,
    symbol: BoundSymbol,
    args: NativeArg[],
  ): Promise<OffThreadResult> {
    const w = idle.pop() ?? new Worker(workerUrl);
    w.ref();
    return new Promise((resolve, reject) => {
      const done = () => {
        w.off("message", onMessage);
        w.off("error", onError);
      };
      const onMessage = (m: WorkerReply) => {
        done();
        w.unref();
        idle.push(w);
        if (m.error !== undefined) return reject(new Error(m.error));
        // Write the worker's copies back into the caller's buffers (poll's revents).
        for (let i = 0; i < args.length; i++) {
          const a = args[i];
          if (a instanceof Uint8Array) a.set(m.args[i] as Uint8Array);
        }
        resolve({ result: m.result, errno: m.errno });
      };
      const onError = (e: Error) => {
        done();
        void w.terminate();
        reject(e);
      };
      w.on("message", onMessage);
      w.on("error", onError);
      w.postMessage({ path, symbol, args } satisfies WorkerCall);
    });
  }

  function errnoAddress(): number {
    if (!errnoAt) {
      const libc = bunOpen(
        "libc.so.6",
        bindTable("libc").filter((s) => s.key === "__errno_location"),
      );
      // A fixed thread-local address per thread; this module instance runs on one thread.
      errnoAt = libc.__errno_location();
    }
    return errnoAt;
  }

  return {
    runtime: "bun",
    open(path: string, table: readonly BoundSymbol[]): NativeLibrary {
      const fns = bunOpen(path, table);
      // Look errno's address up now: doing it lazily after a failed call could clobber errno.
      errnoAddress();
      const offThread: Record<string, OffThreadFn> = {};
      for (const s of table) {
        if (s.offThread) offThread[s.key] = (...a) => callInWorker(path, s, a);
      }
      return { path, fns, offThread };
    },
    errno: () => bunFfi().read.i32(errnoAddress(), 0),
    address(buf) {
      return BigInt(bunFfi().ptr(buf));
    },
  };
}
