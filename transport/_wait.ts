/**
 * The poller's thread adapter: how one `rpoll` over a poll set runs off the main thread, per
 * runtime. This and `ffi/` are the only runtime-specific code.
 *
 * - Deno and Node: the provider's `pollAsync` (Deno `nonblocking` symbol; koffi `.async` on the
 *   libuv pool).
 * - Bun: koffi `.async`, not the provider's Worker. Measured here (2 vCPU, loaded), wake-up of a
 *   pending poll by an eventfd, 2000 samples: Worker p50 11-12 µs, p99 66-691 µs, max 1.6-21 ms;
 *   koffi `.async` p50 8.6 µs, p99 20 µs, max 1.0 ms. koffi runs under Bun for sync and `.async`
 *   calls; only `koffi.node.poll` aborts Bun, and it is never called.
 *
 * The koffi path polls a private copy of the set, like `pollAsync`, and the poller defers
 * closing any descriptor in a pending poll until it returns (a freed rsocket must never be
 * polled: librdmacm would crash).
 *
 * @module
 */
import { createRequire } from "node:module";
import { EINTR, type PollSet, RsocketError, type RsocketProvider } from "../ffi/mod.ts";

/** Runs one rpoll over `set` (timeout ms, -1 forever) off the main thread; writes revents back. */
export type OffThreadPoll = (set: PollSet, timeoutMs: number) => Promise<number>;

interface KoffiAsyncFn {
  async(...args: unknown[]): void;
}
interface Koffi {
  load(path: string): { func(name: string, result: string, args: string[]): KoffiAsyncFn };
  errno(): number;
}

/** Which off-thread wait this runtime uses (for benchmarks and docs). */
export function offThreadKind(): "deno nonblocking" | "koffi .async" {
  return "Deno" in globalThis ? "deno nonblocking" : "koffi .async";
}

/** The off-thread poll for `provider` in this runtime. */
export function offThreadPoll(provider: RsocketProvider): OffThreadPoll {
  if (!("Bun" in globalThis)) return (set, timeoutMs) => provider.pollAsync(set, timeoutMs);
  const koffi = createRequire(import.meta.url)("koffi") as Koffi;
  const name = provider.kind === "rdma" ? "rpoll" : "poll";
  const fn = koffi.load(provider.libraryPath).func(name, "int", ["void *", "uint64_t", "int"]);
  return (set, timeoutMs) => {
    const n = set.size;
    const pinned = set.bytes().slice();
    return new Promise<number>((resolve, reject) => {
      fn.async(
        pinned,
        n,
        timeoutMs < 0 ? -1 : Math.min(Math.ceil(timeoutMs), 0x7fffffff),
        (err: unknown, r: number) => {
          if (err) return reject(err);
          if (r === -1) {
            const errno = koffi.errno();
            if (errno === EINTR) return resolve(0);
            return reject(new RsocketError(name, errno));
          }
          // Copy revents back where the entry still holds the same descriptor.
          const pv = new DataView(pinned.buffer);
          const out = set.bytes();
          for (let i = 0; i < Math.min(n, set.size); i++) {
            if (set.fd(i) === pv.getInt32(i * 8, true)) {
              out[i * 8 + 6] = pinned[i * 8 + 6];
              out[i * 8 + 7] = pinned[i * 8 + 7];
            }
          }
          resolve(r);
        },
      );
    });
  };
}
