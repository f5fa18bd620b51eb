/**
 * The transports integration tests run over: the runtime's own TCP (`factory` undefined) and the
 * FFI transport with the `kernel` provider (libc sockets through the same FFI, poller and Duplex
 * code as rsockets), skipped with the reason when its native library cannot be loaded.
 *
 * @module
 */
import type { SocketFactory } from "../../pg/mod.ts";
import { rsocketFactory } from "../../transport/mod.ts";

/** One transport of {@link TRANSPORTS}. */
export interface TestTransport {
  /** For test names: "native TCP", "FFI transport (kernel)". */
  name: string;
  /** Short form for slot and file names: "tcp", "ffi". */
  tag: "tcp" | "ffi";
  /** The socket factory to pass as `connectOptions.socketFactory` (undefined: the default). */
  factory: SocketFactory | undefined;
  /** Skip reason when the transport is unavailable here. */
  skip: string | undefined;
}

let ffiSkip: string | undefined;
let ffiFactory: SocketFactory | undefined;
try {
  ffiFactory = rsocketFactory({ provider: "kernel" }) as SocketFactory;
} catch (e) {
  ffiSkip = `FFI transport unavailable: ${(e as Error).message}`;
}

/** Native TCP, then the FFI transport (kernel provider). */
export const TRANSPORTS: readonly TestTransport[] = [
  { name: "native TCP", tag: "tcp", factory: undefined, skip: undefined },
  { name: "FFI transport (kernel)", tag: "ffi", factory: ffiFactory, skip: ffiSkip },
];
