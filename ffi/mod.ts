/**
 * The rsocket ABI for Deno, Bun and Node, pointer-free.
 *
 * `openProvider("rdma")` loads librdmacm (env `PG_RDMA_LIBRDMACM`, else `librdmacm.so.1`, then
 * `librdmacm.so`) and binds its `r`-prefixed calls; `openProvider("kernel")` binds libc's plain
 * socket calls, which share the signatures, so the layers above are tested over loopback TCP
 * through the same code. Each method of {@linkcode RsocketProvider} is one C call:
 *
 * | method | C call (rdma / kernel) |
 * |---|---|
 * | `socket` `bind` `listen` `accept` `connect` `shutdown` `close` | `rsocket` … `rclose` / `socket` … `close` |
 * | `recv` `send` `read` `write` `readv` `writev` | `rrecv` … `rwritev` / `recv` … `writev` |
 * | `recvfrom` `sendto` `recvmsg` `sendmsg` | `rrecvfrom` … / `recvfrom` … |
 * | `poll` / `pollAsync` | `rpoll` on this thread / on another thread |
 * | `select` | `rselect` / `select` |
 * | `getsockopt` `getsockoptBytes` `setsockopt` | `rgetsockopt` / `rsetsockopt` |
 * | `getsockname` `getpeername` | `rgetsockname` `rgetpeername` |
 * | `fcntl` `setNonBlocking` | `rfcntl` (variadic; see below) |
 * | `iomap` `iounmap` `iowrite` | `riomap` `riounmap` `riowrite` (no kernel twin: ENOSYS) |
 * | `createWakeUp` | libc `eventfd` + `write`/`read` (polls beside rsockets) |
 *
 * How the traps are handled (details in `_provider.ts` and the backends):
 * - a data call on a descriptor that is not a live rsocket segfaults librdmacm, so every call is
 *   checked against the provider's live table and refused with EBADF in JS; `close` twice is a
 *   no-op;
 * - errno is read on the calling thread right after the call (`__errno_location()` in Deno and
 *   Bun, `koffi.errno()` in Node) and turned into an {@linkcode RsocketError} with `code`,
 *   `errno`, `syscall` and a message that says what to do (ENODEV: no RDMA device, check
 *   `ibv_devices` / `rdma link`);
 * - `rfcntl` is variadic: koffi declares it so; Deno and Bun cannot, and call it as a fixed
 *   `(int, int, int)` function, which is correct on x86_64 and aarch64 Linux only;
 * - `SOCK_NONBLOCK` in `socket()` gives EOPNOTSUPP on librdmacm v44: use `setNonBlocking`, or
 *   `MSG_DONTWAIT` per call; would-block returns {@linkcode WOULD_BLOCK} rather than throwing;
 * - `pollAsync` runs rpoll off the main thread (Deno `nonblocking` symbol, koffi `.async`, a Bun
 *   Worker, since `koffi.node.poll` aborts Bun) on a private copy of the poll set that stays
 *   referenced until the call settles (Deno does not keep nonblocking buffers alive); it cannot be
 *   cancelled, so put a {@linkcode WakeUp} in the set and signal it.
 *
 * @example
 * ```ts
 * import { AF_INET, openProvider, RsocketError } from "./ffi/mod.ts";
 * try {
 *   const rdma = openProvider("rdma");
 *   const fd = rdma.socket(AF_INET);
 *   rdma.close(fd);
 * } catch (e) {
 *   if (e instanceof RsocketError && e.code === "ENODEV") console.error(e.message);
 *   else throw e;
 * }
 * ```
 *
 * @module
 */
export {
  DEFAULT_LIBRDMACM_PATHS,
  openProvider,
  PollSet,
  type ProviderKind,
  type ProviderOptions,
  type RecvFromResult,
  type RecvMsgResult,
  RsocketProvider,
  type SelectResult,
  type WakeUp,
  WOULD_BLOCK,
} from "./_provider.ts";
export { RsocketError } from "./_errors.ts";
export {
  decodeSockAddr,
  encodeSockAddr,
  type SockAddr,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
} from "./_sockaddr.ts";
export { RSOCKET_SYMBOLS, type RsocketName, type SymbolSpec } from "./_symbols.ts";
export * from "./constants.ts";
