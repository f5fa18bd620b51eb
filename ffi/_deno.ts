/**
 * The Deno backend: `Deno.dlopen` declarations derived from the symbol table.
 *
 * - Types: `buf` → `"buffer"` (a Uint8Array, subarray offset honoured, or null); 64-bit results
 *   come back as BigInt (even -1n) and are turned into numbers here.
 * - errno: read through libc's `__errno_location()` right after the sync call, on the same
 *   thread (measured reliable: 0 wrong in 200k calls).
 * - Off-thread calls: a second declaration with `nonblocking: true` runs on Deno's pool thread.
 *   Deno does not keep buffer arguments of such a call alive (measured: a pending recv wrote into
 *   a freed buffer), so the caller must hold them until the Promise settles (the provider does);
 *   and errno of the pool thread is lost (`errno: undefined`).
 * - Variadic `fcntl`: declared as three `i32` (see `_symbols.ts`).
 *
 * Deno's own types are not visible to tsc here, so the few parts used are declared locally.
 *
 * @module
 */
import type { Backend, NativeArg, NativeFn, NativeLibrary, OffThreadFn } from "./_backend.ts";
import { type ArgType, bindTable, type BoundSymbol, type ResultType } from "./_symbols.ts";

type DenoNativeType = "i32" | "u64" | "i64" | "buffer" | "pointer" | "isize";
interface DenoSymbolDef {
  name: string;
  parameters: DenoNativeType[];
  result: DenoNativeType;
  nonblocking?: boolean;
}
type DenoPointer = object | null;
interface DenoFfi {
  dlopen(
    path: string,
    symbols: Record<string, DenoSymbolDef>,
  ): { symbols: Record<string, (...a: unknown[]) => unknown> };
  UnsafePointer: { of(buf: Uint8Array): DenoPointer; value(p: DenoPointer): bigint | number };
  UnsafePointerView: new (p: object) => { getInt32(offset?: number): number };
}

const ARG: Record<ArgType, DenoNativeType> = { i32: "i32", u64: "u64", i64: "i64", buf: "buffer" };
// isize makes i64 results BigInt too, but signed; pointers come back as pointer objects.
const RESULT: Record<ResultType, DenoNativeType> = { i32: "i32", i64: "isize", ptr: "pointer" };

/** Creates the Deno backend (touches `Deno` only when called). */
export function denoBackend(): Backend {
  const D = (globalThis as unknown as { Deno: DenoFfi }).Deno;
  let errnoView: { getInt32(offset?: number): number } | undefined;

  function declare(table: readonly BoundSymbol[]): Record<string, DenoSymbolDef> {
    const defs: Record<string, DenoSymbolDef> = {};
    for (const s of table) {
      const def = {
        name: s.native,
        parameters: s.args.map((a) => ARG[a]),
        result: RESULT[s.result],
      };
      defs[s.key] = def;
      if (s.offThread) defs[`${s.key}$offThread`] = { ...def, nonblocking: true };
    }
    return defs;
  }

  function open(path: string, table: readonly BoundSymbol[]): NativeLibrary {
    const raw = D.dlopen(path, declare(table)).symbols;
    const fns: Record<string, NativeFn> = {};
    const offThread: Record<string, OffThreadFn> = {};
    for (const s of table) {
      const f = raw[s.key] as (...a: NativeArg[]) => unknown;
      if (s.result === "i32") fns[s.key] = f as NativeFn;
      else if (s.result === "i64") fns[s.key] = (...a) => Number(f(...a) as bigint);
      else fns[s.key] = (...a) => Number(D.UnsafePointer.value(f(...a) as DenoPointer));
      if (s.offThread) {
        const g = raw[`${s.key}$offThread`] as (...a: NativeArg[]) => Promise<number | bigint>;
        offThread[s.key] = async (...a) => ({ result: Number(await g(...a)), errno: undefined });
      }
    }
    // Look errno's address up now: doing it lazily after a failed call could clobber errno.
    errnoReader();
    return { path, fns, offThread };
  }

  function errnoReader() {
    if (!errnoView) {
      const spec = bindTable("libc").filter((s) => s.key === "__errno_location");
      const libc = D.dlopen("libc.so.6", declare(spec)).symbols;
      // errno sits at a fixed thread-local address per thread; this module instance only ever
      // runs on one thread (a Worker loads its own), so look it up once.
      errnoView = new D.UnsafePointerView(libc.__errno_location() as object);
    }
    return errnoView;
  }

  return {
    runtime: "deno",
    open,
    errno: () => errnoReader().getInt32(0),
    address(buf) {
      return BigInt(D.UnsafePointer.value(D.UnsafePointer.of(buf)));
    },
  };
}
