/**
 * What a runtime backend gives the provider layer: open a library from a slice of the symbol
 * table, read errno on the calling thread, learn a buffer's address. The three backends
 * (`_deno.ts`, `_bun.ts`, `_node.ts`) are imported statically but do nothing at import time:
 * `bun:ffi`, `Deno.dlopen` and koffi are reached only inside `backend()` on first use, so a
 * runtime never touches another runtime's FFI.
 *
 * @module
 */
import type { BoundSymbol } from "./_symbols.ts";
import { denoBackend } from "./_deno.ts";
import { bunBackend } from "./_bun.ts";
import { nodeBackend } from "./_node.ts";

/** An argument as the backends accept it. */
export type NativeArg = number | bigint | Uint8Array | null;

/** A synchronous native call; results are always numbers (64-bit results converted). */
export type NativeFn = (...args: NativeArg[]) => number;

/** Outcome of a call that ran on another thread. */
export interface OffThreadResult {
  readonly result: number;
  /** errno of the thread that ran the call, or `undefined` where the runtime loses it (Deno). */
  readonly errno: number | undefined;
}

/** An off-thread native call. Buffers are written back before the Promise resolves. */
export type OffThreadFn = (...args: NativeArg[]) => Promise<OffThreadResult>;

/** A loaded library: every bound symbol as a sync function, `offThread` ones also async. */
export interface NativeLibrary {
  readonly path: string;
  readonly fns: Readonly<Record<string, NativeFn>>;
  readonly offThread: Readonly<Record<string, OffThreadFn>>;
}

/** One runtime's FFI. */
export interface Backend {
  readonly runtime: "deno" | "bun" | "node";
  /** dlopen + declare; throws the runtime's own error when the library cannot be opened. */
  open(path: string, table: readonly BoundSymbol[]): NativeLibrary;
  /** errno of this thread, read right after a sync call (nothing may run in between). */
  errno(): number;
  /** Address of a buffer's first byte (subarray offset included), for iovec/msghdr. */
  address(buf: Uint8Array): bigint;
}

let chosen: Backend | undefined;

/** The backend of the running runtime, created on first use. */
export function backend(): Backend {
  if (chosen) return chosen;
  if ("Deno" in globalThis) chosen = denoBackend();
  else if ("Bun" in globalThis) chosen = bunBackend();
  else chosen = nodeBackend();
  return chosen;
}
