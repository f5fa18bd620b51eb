/**
 * The pointer-free rsocket API the layers above use: descriptors are numbers, buffers
 * `Uint8Array`s, sizes numbers, addresses {@linkcode SockAddr} objects, poll sets
 * {@linkcode PollSet}s. Two providers share every line of it and differ only in the library and
 * the symbol names: `rdma` (librdmacm, `r`-prefixed) and `kernel` (libc, the same calls without
 * the `r`), so everything above this layer can be tested over loopback TCP.
 *
 * Traps handled here, and why this way:
 * - **Crash on a dead descriptor.** librdmacm's data calls on a number that is not a live rsocket
 *   segfault the process (measured), and `rclose` of an unknown number returns +9. So each
 *   provider keeps its table of live descriptors: a call on an unknown or closed one throws
 *   `RsocketError` EBADF in JS and never reaches C; `close` twice is a no-op.
 * - **errno belongs to the calling thread.** One `#unwrap` at the C boundary reads it right after
 *   the sync call, before any other native call can overwrite it (see the backends for how).
 * - **Off-thread poll.** `pollAsync` runs `rpoll` on another thread (Deno `nonblocking`, koffi
 *   `.async`, a Bun Worker). It polls a private copy of the set, which the pending Promise holds
 *   (Deno does not keep buffer arguments of a nonblocking call alive), and copies revents back
 *   when it settles. Descriptors closed while such a poll is pending leave the live table at once
 *   but are really closed only when the poll returns, so no other thread ever polls a freed
 *   rsocket. A pending poll cannot be cancelled: put a {@linkcode WakeUp} descriptor in the set
 *   and `signal()` it to return early. Where the runtime loses the other thread's errno (Deno),
 *   a failed poll is repeated with timeout 0 on this thread to learn it.
 * - **Would-block is a value, not an exception.** Data calls return {@linkcode WOULD_BLOCK} (-1)
 *   on EAGAIN, because a non-blocking transport hits it constantly and an Error per call costs
 *   microseconds; every other failure throws. EINTR is retried.
 * - **SIGPIPE.** The kernel provider adds `MSG_NOSIGNAL` to every send, so a vanished peer gives
 *   EPIPE instead of a killed process (rsockets raise no signal).
 * - **Non-blocking connect/accept.** `SOCK_NONBLOCK` in `socket()`'s type gives EOPNOTSUPP with
 *   librdmacm v44: use {@linkcode RsocketProvider.setNonBlocking} (`fcntl(F_SETFL, O_NONBLOCK)`;
 *   Deno and Bun call the variadic `rfcntl` as a fixed 3×int function, correct on x86_64 and
 *   aarch64 Linux only).
 *
 * @module
 */
import process from "node:process";
import { type Backend, backend, type NativeFn, type OffThreadFn } from "./_backend.ts";
import {
  EAGAIN,
  EBADF,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINPROGRESS,
  EINTR,
  ELIBACC,
  ENOSYS,
  F_GETFL,
  F_SETFL,
  MSG_NOSIGNAL,
  O_NONBLOCK,
  SO_ERROR,
  SOCK_STREAM,
  SOL_SOCKET,
} from "./constants.ts";
import { RsocketError, rsocketError } from "./_errors.ts";
import { bindTable, type BoundSymbol, type RsocketName } from "./_symbols.ts";
import { decodeSockAddr, encodeSockAddr, type SockAddr, SOCKADDR_IN6_SIZE } from "./_sockaddr.ts";

/** Which library provides the rsocket ABI. */
export type ProviderKind = "rdma" | "kernel";

/** Options of {@linkcode openProvider}. */
export interface ProviderOptions {
  /**
   * The library to load. Default for `rdma`: env `PG_RDMA_LIBRDMACM`, else `librdmacm.so.1`
   * then `librdmacm.so`; for `kernel`: `libc.so.6`.
   */
  readonly libraryPath?: string;
}

/** Returned by data calls when the call would block (errno EAGAIN): poll, then try again. */
export const WOULD_BLOCK = -1;

/** Library names tried for librdmacm when neither option nor environment names one. */
export const DEFAULT_LIBRDMACM_PATHS: readonly string[] = ["librdmacm.so.1", "librdmacm.so"];

const EINTR_RETRY = -2;
const POLLFD_SIZE = 8;

/**
 * A growable `struct pollfd` array: `{ int fd; short events; short revents; }` per entry.
 *
 * @example
 * ```ts
 * const set = new PollSet();
 * const i = set.add(fd, POLLIN);
 * if (provider.poll(set, 100) > 0 && set.revents(i) & POLLIN) { ... }
 * ```
 */
export class PollSet {
  #bytes = new Uint8Array(POLLFD_SIZE * 4);
  #view = new DataView(this.#bytes.buffer);
  #size = 0;

  /** Number of entries. */
  get size(): number {
    return this.#size;
  }

  /** Appends `fd` with the `events` mask (POLLIN, POLLOUT, ...); returns its index. */
  add(fd: number, events: number): number {
    if (!Number.isInteger(fd)) throw new TypeError(`fd must be an integer, got ${String(fd)}`);
    if (this.#size * POLLFD_SIZE === this.#bytes.length) {
      const grown = new Uint8Array(this.#bytes.length * 2);
      grown.set(this.#bytes);
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    const i = this.#size++;
    this.set(i, fd, events);
    return i;
  }

  /** Replaces entry `i` (revents cleared). */
  set(i: number, fd: number, events: number): void {
    this.#index(i);
    this.#view.setInt32(i * POLLFD_SIZE, fd, true);
    this.#view.setInt16(i * POLLFD_SIZE + 4, events, true);
    this.#view.setInt16(i * POLLFD_SIZE + 6, 0, true);
  }

  /** Removes entry `i` by moving the last entry into its place. */
  removeAt(i: number): void {
    this.#index(i);
    const last = --this.#size;
    if (i !== last) {
      this.#bytes.copyWithin(i * POLLFD_SIZE, last * POLLFD_SIZE, (last + 1) * POLLFD_SIZE);
    }
  }

  /** Empties the set. */
  clear(): void {
    this.#size = 0;
  }

  /** The descriptor of entry `i`. */
  fd(i: number): number {
    this.#index(i);
    return this.#view.getInt32(i * POLLFD_SIZE, true);
  }

  /** The requested events of entry `i`. */
  events(i: number): number {
    this.#index(i);
    return this.#view.getUint16(i * POLLFD_SIZE + 4, true);
  }

  /** The events returned for entry `i` by the last poll. */
  revents(i: number): number {
    this.#index(i);
    return this.#view.getUint16(i * POLLFD_SIZE + 6, true);
  }

  /** The raw `struct pollfd` bytes (a view; valid until the set changes). */
  bytes(): Uint8Array {
    return this.#bytes.subarray(0, this.#size * POLLFD_SIZE);
  }

  #index(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.#size) {
      throw new RangeError(`no poll entry ${i} (size ${this.#size})`);
    }
  }
}

/**
 * A wake-up descriptor (a non-blocking eventfd from libc) to put in a poll set beside rsockets:
 * `signal()` makes a pending poll return with POLLIN on it; `drain()` resets it.
 */
export interface WakeUp {
  readonly fd: number;
  /** Makes the descriptor readable (wakes a poll). Callable any number of times. */
  signal(): void;
  /** Consumes pending signals so the descriptor is no longer readable. */
  drain(): void;
  /** Closes the descriptor (a second close is a no-op). */
  close(): void;
}

/** Result of `recvfrom`. */
export interface RecvFromResult {
  /** Bytes received, 0 at end of stream, or {@linkcode WOULD_BLOCK}. */
  readonly bytes: number;
  /** The sender, when the call reported one. */
  readonly from?: SockAddr;
}

/** Result of `recvmsg`. */
export interface RecvMsgResult extends RecvFromResult {
  /** `msg_flags` as returned (MSG_TRUNC, ...). */
  readonly flags: number;
}

/** Result of `select`: the descriptors that are ready, per set. */
export interface SelectResult {
  readonly read: number[];
  readonly write: number[];
  readonly except: number[];
}

/** Library load failure with the paths tried and how to get the library. */
function loadError(kind: ProviderKind, tried: { path: string; error: unknown }[]): RsocketError {
  const list = tried.map((t) =>
    `  ${t.path}: ${t.error instanceof Error ? t.error.message : String(t.error)}`
  ).join("\n");
  const what = kind === "rdma" ? "librdmacm (the rsocket library)" : "libc";
  const hint = kind === "rdma"
    ? "Install it with `apt-get install librdmacm1` (Debian/Ubuntu) or `dnf install librdmacm` " +
      "(Fedora/RHEL), or set PG_RDMA_LIBRDMACM to the library's path."
    : "The kernel provider needs glibc's libc.so.6.";
  return new RsocketError("dlopen", ELIBACC, {
    message: `cannot load ${what}; tried:\n${list}\n${hint}`,
    cause: tried[tried.length - 1]?.error,
  });
}

/**
 * One loaded provider of the rsocket ABI. Get one with {@linkcode openProvider}; every method
 * maps to one C call (named in its doc) and throws {@linkcode RsocketError} on failure.
 */
export class RsocketProvider {
  /** `rdma` or `kernel`. */
  readonly kind: ProviderKind;
  /** The library that was loaded. */
  readonly libraryPath: string;
  /** The C names bound, in table order (`rsocket`, `rbind`, ... or `socket`, `bind`, ...). */
  readonly symbols: readonly string[];
  #b: Backend;
  #fn: Readonly<Record<string, NativeFn>>;
  #off: Readonly<Record<string, OffThreadFn>>;
  #libc: Readonly<Record<string, NativeFn>>;
  #names: Record<string, string> = {};
  #live = new Set<number>();
  #wakeups = new Set<number>();
  #inFlight = new Map<number, number>();
  #closeLater = new Map<number, () => void>();
  #iomaps = new Map<number, Set<Uint8Array>>();
  #sendFlags: number;
  #addr = new Uint8Array(SOCKADDR_IN6_SIZE);
  #len = new Uint8Array(4);
  #lenView = new DataView(this.#len.buffer);
  #eventBuf = new Uint8Array(8);

  /** @internal Use {@linkcode openProvider}. */
  constructor(kind: ProviderKind, options: ProviderOptions = {}) {
    if (kind !== "rdma" && kind !== "kernel") {
      throw new TypeError(`provider must be "rdma" or "kernel", got ${JSON.stringify(kind)}`);
    }
    if (
      options.libraryPath !== undefined &&
      (typeof options.libraryPath !== "string" || options.libraryPath === "")
    ) {
      throw new TypeError("libraryPath must be a non-empty string");
    }
    this.kind = kind;
    this.#b = backend();
    const env = kind === "rdma" ? process.env.PG_RDMA_LIBRDMACM : undefined;
    const paths = options.libraryPath !== undefined
      ? [options.libraryPath]
      : kind === "kernel"
      ? ["libc.so.6"]
      : env
      ? [env]
      : DEFAULT_LIBRDMACM_PATHS;
    const table: BoundSymbol[] = bindTable(kind);
    const tried: { path: string; error: unknown }[] = [];
    let lib;
    for (const path of paths) {
      try {
        lib = this.#b.open(path, table);
        break;
      } catch (error) {
        tried.push({ path, error });
      }
    }
    if (!lib) throw loadError(kind, tried);
    this.libraryPath = lib.path;
    this.#fn = lib.fns;
    this.#off = lib.offThread;
    this.#libc = this.#b.open("libc.so.6", bindTable("libc")).fns;
    for (const s of table) this.#names[s.key] = s.native;
    this.symbols = table.map((s) => s.native);
    this.#sendFlags = kind === "kernel" ? MSG_NOSIGNAL : 0;
  }

  /** True while `fd` is a descriptor this provider opened and has not closed. */
  isOpen(fd: number): boolean {
    return this.#live.has(fd);
  }

  /** The one place -1 + errno becomes an error. Returns `r`, -1 for errno `soft`, -2 for EINTR. */
  #unwrap(key: string, r: number, soft = -1): number {
    if (r !== -1) return r;
    const errno = this.#b.errno(); // first thing after the call: nothing may run before it
    if (errno === soft) return -1;
    if (errno === EINTR) return EINTR_RETRY;
    throw rsocketError(this.#names[key] ?? key, errno);
  }

  #live_(fd: number, key: string): void {
    if (!this.#live.has(fd)) {
      if (typeof fd !== "number" || !Number.isInteger(fd)) {
        throw new TypeError(`fd must be an integer, got ${String(fd)}`);
      }
      throw new RsocketError(this.#names[key] ?? key, EBADF, {
        message: `${
          this.#names[key] ?? key
        }() refused: descriptor ${fd} is not an open ${this.kind} socket of this provider (EBADF)`,
      });
    }
  }

  #need(key: RsocketName): NativeFn {
    const f = this.#fn[key];
    if (!f) {
      throw new RsocketError(`r${key}`, ENOSYS, {
        message:
          `r${key}() has no kernel twin: the kernel provider cannot do it; use the rdma provider (ENOSYS)`,
      });
    }
    return f;
  }

  #buf(b: unknown, what = "buffer"): Uint8Array {
    if (!(b instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
    return b;
  }

  /**
   * `rsocket(domain, type, protocol)`: a new descriptor. With no RDMA device, the rdma provider
   * throws ENODEV with how to check for one.
   */
  socket(domain: number, type: number = SOCK_STREAM, protocol = 0): number {
    const fd = this.#unwrap("socket", this.#fn.socket(domain | 0, type | 0, protocol | 0));
    if (fd === EINTR_RETRY) return this.socket(domain, type, protocol);
    this.#live.add(fd);
    return fd;
  }

  /** `rbind(fd, addr)`. */
  bind(fd: number, addr: SockAddr): void {
    this.#live_(fd, "bind");
    const a = encodeSockAddr(addr, this.#addr);
    this.#unwrap("bind", this.#fn.bind(fd, a, a.length));
  }

  /** `rlisten(fd, backlog)`. */
  listen(fd: number, backlog = 511): void {
    this.#live_(fd, "listen");
    this.#unwrap("listen", this.#fn.listen(fd, backlog | 0));
  }

  /** `raccept(fd, NULL, NULL)`: the new descriptor, or {@linkcode WOULD_BLOCK}. */
  accept(fd: number): number {
    this.#live_(fd, "accept");
    let r;
    do r = this.#unwrap("accept", this.#fn.accept(fd, null, null), EAGAIN); while (
      r === EINTR_RETRY
    );
    if (r >= 0) this.#live.add(r);
    return r;
  }

  /**
   * `rconnect(fd, addr)`: true when connected, false when a non-blocking connect is in progress
   * (EINPROGRESS: wait for POLLOUT, then {@linkcode RsocketProvider.finishConnect}).
   */
  connect(fd: number, addr: SockAddr): boolean {
    this.#live_(fd, "connect");
    const a = encodeSockAddr(addr, this.#addr);
    const r = this.#unwrap("connect", this.#fn.connect(fd, a, a.length), EINPROGRESS);
    // EINTR: the connect goes on in the background, exactly like EINPROGRESS.
    return r >= 0;
  }

  /** After POLLOUT on a connecting socket: reads SO_ERROR and throws it as a `connect` error. */
  finishConnect(fd: number): void {
    const err = this.getsockopt(fd, SOL_SOCKET, SO_ERROR);
    if (err !== 0) throw rsocketError(this.#names.connect, err);
  }

  /** `rshutdown(fd, how)` (SHUT_RD, SHUT_WR, SHUT_RDWR). */
  shutdown(fd: number, how: number): void {
    this.#live_(fd, "shutdown");
    this.#unwrap("shutdown", this.#fn.shutdown(fd, how | 0));
  }

  /**
   * `rclose(fd)`. Returns false (and does nothing) when `fd` is not open, so closing twice is
   * harmless. If an off-thread poll is using `fd`, it is closed when that poll returns.
   */
  close(fd: number): boolean {
    if (!this.#live.delete(fd)) return false;
    this.#iomaps.delete(fd);
    if (this.#inFlight.has(fd)) {
      this.#closeLater.set(fd, () => this.#close(fd));
      return true;
    }
    this.#close(fd);
    return true;
  }

  #close(fd: number): void {
    // EINTR (-2 from unwrap): Linux has released the descriptor anyway; never retry a close.
    this.#unwrap("close", this.#fn.close(fd));
  }

  /** `rrecv(fd, buf, len, flags)`: bytes read, 0 at end of stream, or {@linkcode WOULD_BLOCK}. */
  recv(fd: number, buf: Uint8Array, flags = 0): number {
    this.#live_(fd, "recv");
    this.#buf(buf);
    let r;
    do r = this.#unwrap("recv", this.#fn.recv(fd, buf, buf.length, flags | 0), EAGAIN); while (
      r === EINTR_RETRY
    );
    return r;
  }

  /** `rsend(fd, buf, len, flags)`: bytes sent (maybe fewer than asked) or {@linkcode WOULD_BLOCK}. */
  send(fd: number, buf: Uint8Array, flags = 0): number {
    this.#live_(fd, "send");
    this.#buf(buf);
    let r;
    do r = this.#unwrap(
      "send",
      this.#fn.send(fd, buf, buf.length, flags | this.#sendFlags),
      EAGAIN,
    ); while (r === EINTR_RETRY);
    return r;
  }

  /** `rread(fd, buf, len)`: like `recv` without flags. */
  read(fd: number, buf: Uint8Array): number {
    this.#live_(fd, "read");
    this.#buf(buf);
    let r;
    do r = this.#unwrap("read", this.#fn.read(fd, buf, buf.length), EAGAIN); while (
      r === EINTR_RETRY
    );
    return r;
  }

  /** `rwrite(fd, buf, len)`: like `send` without flags (kernel: SIGPIPE is the runtime's to ignore). */
  write(fd: number, buf: Uint8Array): number {
    this.#live_(fd, "write");
    this.#buf(buf);
    let r;
    do r = this.#unwrap("write", this.#fn.write(fd, buf, buf.length), EAGAIN); while (
      r === EINTR_RETRY
    );
    return r;
  }

  /** `struct iovec[]` for `bufs`: { void *base; size_t len } each, 16 bytes on LP64. */
  #iovec(bufs: readonly Uint8Array[]): Uint8Array {
    if (!Array.isArray(bufs)) throw new TypeError("buffers must be an array of Uint8Array");
    if (bufs.length > 1024) {
      throw new RangeError(`at most 1024 buffers (IOV_MAX), got ${bufs.length}`);
    }
    const iov = new Uint8Array(16 * bufs.length);
    const v = new DataView(iov.buffer);
    for (let i = 0; i < bufs.length; i++) {
      const b = this.#buf(bufs[i], `buffers[${i}]`);
      v.setBigUint64(16 * i, b.length ? this.#b.address(b) : 0n, true);
      v.setBigUint64(16 * i + 8, BigInt(b.length), true);
    }
    return iov;
  }

  /** `rreadv(fd, iov, n)`: scatter read into `bufs` in order; total bytes or {@linkcode WOULD_BLOCK}. */
  readv(fd: number, bufs: readonly Uint8Array[]): number {
    this.#live_(fd, "readv");
    const iov = this.#iovec(bufs);
    let r;
    do r = this.#unwrap("readv", this.#fn.readv(fd, iov, bufs.length), EAGAIN); while (
      r === EINTR_RETRY
    );
    return r;
  }

  /** `rwritev(fd, iov, n)`: gather write of `bufs`; total bytes or {@linkcode WOULD_BLOCK}. */
  writev(fd: number, bufs: readonly Uint8Array[]): number {
    this.#live_(fd, "writev");
    const iov = this.#iovec(bufs);
    let r;
    do r = this.#unwrap("writev", this.#fn.writev(fd, iov, bufs.length), EAGAIN); while (
      r === EINTR_RETRY
    );
    return r;
  }

  /** `rrecvfrom(fd, buf, len, flags, addr, addrlen)`. */
  recvfrom(fd: number, buf: Uint8Array, flags = 0): RecvFromResult {
    this.#live_(fd, "recvfrom");
    this.#buf(buf);
    const addr = new Uint8Array(SOCKADDR_IN6_SIZE), len = new Uint8Array(4);
    const lv = new DataView(len.buffer);
    let r;
    do {
      lv.setUint32(0, addr.length, true);
      r = this.#unwrap(
        "recvfrom",
        this.#fn.recvfrom(fd, buf, buf.length, flags | 0, addr, len),
        EAGAIN,
      );
    } while (r === EINTR_RETRY);
    const n = lv.getUint32(0, true);
    // Connected stream sockets report no sender (length 0).
    return r >= 0 && n >= 2
      ? { bytes: r, from: decodeSockAddr(addr, Math.min(n, addr.length)) }
      : { bytes: r };
  }

  /** `rsendto(fd, buf, len, flags, addr, addrlen)`; `to` may be omitted on a connected socket. */
  sendto(fd: number, buf: Uint8Array, flags = 0, to?: SockAddr): number {
    this.#live_(fd, "sendto");
    this.#buf(buf);
    const a = to ? encodeSockAddr(to) : null;
    let r;
    do {
      r = this.#unwrap(
        "sendto",
        this.#fn.sendto(fd, buf, buf.length, flags | this.#sendFlags, a, a ? a.length : 0),
        EAGAIN,
      );
    } while (r === EINTR_RETRY);
    return r;
  }

  /**
   * `struct msghdr` (56 bytes on LP64): name ptr @0, namelen u32 @8, iov ptr @16, iovlen u64 @24,
   * control ptr @32, controllen u64 @40, flags i32 @48. No control messages.
   */
  #msghdr(iov: Uint8Array, count: number, name: Uint8Array | null): Uint8Array {
    const m = new Uint8Array(56);
    const v = new DataView(m.buffer);
    if (name) {
      v.setBigUint64(0, this.#b.address(name), true);
      v.setUint32(8, name.length, true);
    }
    if (count) v.setBigUint64(16, this.#b.address(iov), true);
    v.setBigUint64(24, BigInt(count), true);
    return m;
  }

  /** `rsendmsg(fd, msg, flags)` with the payload gathered from `bufs`. */
  sendmsg(fd: number, bufs: readonly Uint8Array[], flags = 0, to?: SockAddr): number {
    this.#live_(fd, "sendmsg");
    const iov = this.#iovec(bufs);
    const name = to ? encodeSockAddr(to) : null;
    const msg = this.#msghdr(iov, bufs.length, name);
    let r;
    do r = this.#unwrap(
      "sendmsg",
      this.#fn.sendmsg(fd, msg, flags | this.#sendFlags),
      EAGAIN,
    ); while (r === EINTR_RETRY);
    // iov, name and bufs are referenced by msg's addresses: keep them alive until here.
    void [iov, name, bufs];
    return r;
  }

  /** `rrecvmsg(fd, msg, flags)` scattering into `bufs`. */
  recvmsg(fd: number, bufs: readonly Uint8Array[], flags = 0): RecvMsgResult {
    this.#live_(fd, "recvmsg");
    const iov = this.#iovec(bufs);
    const name = new Uint8Array(SOCKADDR_IN6_SIZE);
    const msg = this.#msghdr(iov, bufs.length, name);
    const v = new DataView(msg.buffer);
    let r;
    do r = this.#unwrap("recvmsg", this.#fn.recvmsg(fd, msg, flags | 0), EAGAIN); while (
      r === EINTR_RETRY
    );
    void [iov, bufs];
    const n = v.getUint32(8, true), mflags = v.getInt32(48, true);
    return r >= 0 && n >= 2
      ? { bytes: r, flags: mflags, from: decodeSockAddr(name, Math.min(n, name.length)) }
      : { bytes: r, flags: r >= 0 ? mflags : 0 };
  }

  #checkPollSet(set: PollSet, key: string): void {
    if (!(set instanceof PollSet)) throw new TypeError("set must be a PollSet");
    for (let i = 0; i < set.size; i++) {
      const fd = set.fd(i);
      // Negative descriptors are skipped by poll, as in C.
      if (fd >= 0 && !this.#wakeups.has(fd)) this.#live_(fd, key);
    }
  }

  #timeout(ms: number): number {
    if (typeof ms !== "number" || Number.isNaN(ms)) {
      throw new TypeError("timeout must be a number of milliseconds");
    }
    return ms < 0 ? -1 : Math.min(Math.ceil(ms), 0x7fffffff);
  }

  /**
   * `rpoll(fds, n, timeout)` on this thread: the number of entries with revents, 0 on timeout
   * (or when a signal interrupted the wait). `timeoutMs` < 0 waits forever; this blocks the
   * event loop, so use it with 0 or use {@linkcode RsocketProvider.pollAsync}.
   */
  poll(set: PollSet, timeoutMs: number): number {
    this.#checkPollSet(set, "poll");
    const r = this.#unwrap("poll", this.#fn.poll(set.bytes(), set.size, this.#timeout(timeoutMs)));
    return r === EINTR_RETRY ? 0 : r;
  }

  /**
   * `rpoll` on another thread, so timers and I/O go on meanwhile. Resolves like
   * {@linkcode RsocketProvider.poll} and writes revents into `set` (entries whose descriptor is
   * unchanged). The call cannot be cancelled: include a {@linkcode WakeUp} to end it early.
   */
  async pollAsync(set: PollSet, timeoutMs: number): Promise<number> {
    this.#checkPollSet(set, "poll");
    const timeout = this.#timeout(timeoutMs);
    const n = set.size;
    // A private copy, held by this frame until the call settles (Deno does not pin arguments).
    const pinned = set.bytes().slice();
    const fds: number[] = [];
    for (let i = 0; i < n; i++) fds.push(set.fd(i));
    for (const fd of fds) this.#inFlight.set(fd, (this.#inFlight.get(fd) ?? 0) + 1);
    let out;
    try {
      out = await this.#off.poll(pinned, n, timeout);
    } finally {
      for (const fd of fds) {
        const c = (this.#inFlight.get(fd) ?? 1) - 1;
        if (c > 0) this.#inFlight.set(fd, c);
        else {
          this.#inFlight.delete(fd);
          const closeNow = this.#closeLater.get(fd);
          if (closeNow) this.#closeLater.delete(fd), closeNow();
        }
      }
    }
    if (out.result === -1) {
      if (out.errno === undefined) {
        // errno stayed on the other thread: repeat without waiting here to learn it.
        return this.poll(set, 0);
      }
      if (out.errno === EINTR) return 0;
      throw rsocketError(this.#names.poll, out.errno);
    }
    const pv = new DataView(pinned.buffer);
    for (let i = 0; i < Math.min(n, set.size); i++) {
      if (set.fd(i) === fds[i]) this.#setRevents(set, i, pv.getUint16(i * POLLFD_SIZE + 6, true));
    }
    return out.result;
  }

  #setRevents(set: PollSet, i: number, revents: number): void {
    const b = set.bytes();
    b[i * POLLFD_SIZE + 6] = revents & 0xff;
    b[i * POLLFD_SIZE + 7] = revents >> 8;
  }

  /**
   * `rselect(nfds, read, write, except, timeout)` over arrays of descriptors (each < 1024, the
   * fd_set size); `timeoutMs` undefined or < 0 waits forever. Blocks this thread like `poll`.
   */
  select(
    read: readonly number[],
    write: readonly number[] = [],
    except: readonly number[] = [],
    timeoutMs = -1,
  ): SelectResult {
    const sets = [read, write, except].map((fds) => {
      const s = new Uint8Array(128);
      for (const fd of fds) {
        if (!this.#wakeups.has(fd)) this.#live_(fd, "select");
        if (fd >= 1024) {
          throw new RangeError(
            `select() cannot watch descriptor ${fd} (FD_SETSIZE is 1024): use poll`,
          );
        }
        s[fd >> 3] |= 1 << (fd & 7);
      }
      return s;
    });
    const nfds = Math.max(-1, ...read, ...write, ...except) + 1;
    let tv: Uint8Array | null = null;
    const t = this.#timeout(timeoutMs);
    if (t >= 0) {
      tv = new Uint8Array(16);
      const v = new DataView(tv.buffer);
      v.setBigInt64(0, BigInt(Math.floor(t / 1000)), true);
      v.setBigInt64(8, BigInt((t % 1000) * 1000), true);
    }
    const r = this.#unwrap("select", this.#fn.select(nfds, sets[0], sets[1], sets[2], tv));
    const pick = (fds: readonly number[], s: Uint8Array) =>
      r > 0 ? fds.filter((fd) => (s[fd >> 3] & (1 << (fd & 7))) !== 0) : [];
    return {
      read: pick(read, sets[0]),
      write: pick(write, sets[1]),
      except: pick(except, sets[2]),
    };
  }

  /** `rgetsockopt` of an int option (SO_ERROR, SO_RCVBUF, TCP_NODELAY, RDMA_SQSIZE, ...). */
  getsockopt(fd: number, level: number, name: number): number {
    const b = new Uint8Array(4);
    const n = this.getsockoptBytes(fd, level, name, b);
    if (n < 4) return n === 0 ? 0 : b[0];
    return new DataView(b.buffer).getInt32(0, true);
  }

  /** `rgetsockopt` into `out`; returns the option's length (struct options like SO_LINGER). */
  getsockoptBytes(fd: number, level: number, name: number, out: Uint8Array): number {
    this.#live_(fd, "getsockopt");
    this.#buf(out, "out");
    this.#lenView.setUint32(0, out.length, true);
    this.#unwrap("getsockopt", this.#fn.getsockopt(fd, level | 0, name | 0, out, this.#len));
    return this.#lenView.getUint32(0, true);
  }

  /**
   * `rsetsockopt`: a number or boolean is passed as an int; a Uint8Array as raw bytes. SOL_RDMA
   * options and SO_RCVBUF/SO_SNDBUF take effect on rsockets only before connect.
   */
  setsockopt(fd: number, level: number, name: number, value: number | boolean | Uint8Array): void {
    this.#live_(fd, "setsockopt");
    let b: Uint8Array;
    if (value instanceof Uint8Array) b = value;
    else if (typeof value === "number" || typeof value === "boolean") {
      b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, Number(value) | 0, true);
    } else throw new TypeError("option value must be a number, a boolean or a Uint8Array");
    this.#unwrap("setsockopt", this.#fn.setsockopt(fd, level | 0, name | 0, b, b.length));
  }

  #name(fd: number, key: "getsockname" | "getpeername"): SockAddr {
    this.#live_(fd, key);
    this.#lenView.setUint32(0, this.#addr.length, true);
    this.#unwrap(key, this.#fn[key](fd, this.#addr, this.#len));
    return decodeSockAddr(
      this.#addr,
      Math.min(this.#lenView.getUint32(0, true), this.#addr.length),
    );
  }

  /** `rgetsockname(fd)`: the local address. */
  getsockname(fd: number): SockAddr {
    return this.#name(fd, "getsockname");
  }

  /** `rgetpeername(fd)`: the peer's address (ENOTCONN when not connected). */
  getpeername(fd: number): SockAddr {
    return this.#name(fd, "getpeername");
  }

  /** `rfcntl(fd, cmd, arg)` with an int argument (F_GETFL, F_SETFL). */
  fcntl(fd: number, cmd: number, arg = 0): number {
    this.#live_(fd, "fcntl");
    return this.#unwrap("fcntl", this.#fn.fcntl(fd, cmd | 0, arg | 0));
  }

  /** Sets or clears O_NONBLOCK with `rfcntl(F_GETFL)` + `rfcntl(F_SETFL)`. */
  setNonBlocking(fd: number, on = true): void {
    const flags = this.fcntl(fd, F_GETFL);
    const want = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (want !== flags) this.fcntl(fd, F_SETFL, want);
  }

  /**
   * `riomap(fd, buf, len, prot, flags, offset)`: registers `buf` for remote writes by the peer
   * (needs RDMA_IOMAPSIZE set before connect); returns the offset the peer uses. `buf` stays
   * referenced until `iounmap` or `close`. rdma provider only.
   */
  iomap(fd: number, buf: Uint8Array, prot: number, flags = 0, offset = -1): number {
    const f = this.#need("iomap");
    this.#live_(fd, "iomap");
    this.#buf(buf);
    const r = this.#unwrap("iomap", f(fd, buf, buf.length, prot | 0, flags | 0, offset));
    let held = this.#iomaps.get(fd);
    if (!held) this.#iomaps.set(fd, held = new Set());
    held.add(buf);
    return r;
  }

  /** `riounmap(fd, buf, len)`. rdma provider only. */
  iounmap(fd: number, buf: Uint8Array): void {
    const f = this.#need("iounmap");
    this.#live_(fd, "iounmap");
    this.#buf(buf);
    this.#unwrap("iounmap", f(fd, buf, buf.length));
    this.#iomaps.get(fd)?.delete(buf);
  }

  /** `riowrite(fd, buf, count, offset, flags)`: bytes written into the peer's mapping. rdma only. */
  iowrite(fd: number, buf: Uint8Array, offset: number, flags = 0): number {
    const f = this.#need("iowrite");
    this.#live_(fd, "iowrite");
    this.#buf(buf);
    let r;
    do r = this.#unwrap(
      "iowrite",
      f(fd, buf, buf.length, offset, flags | this.#sendFlags),
      EAGAIN,
    ); while (r === EINTR_RETRY);
    return r;
  }

  /**
   * A wake-up descriptor: a non-blocking libc eventfd, accepted by this provider's `poll`,
   * `pollAsync` and `select` beside its sockets (rpoll handles kernel descriptors too).
   */
  createWakeUp(): WakeUp {
    const libc = this.#libc;
    const fd = this.#unwrap("eventfd", libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    this.#wakeups.add(fd);
    const one = new Uint8Array(8);
    one[0] = 1;
    const sink = this.#eventBuf;
    let open = true;
    return {
      fd,
      signal: () => {
        if (!open) {
          throw new RsocketError("write", EBADF, {
            message: "signal() on a closed wake-up descriptor (EBADF)",
          });
        }
        // EAGAIN only when the counter is about to overflow: it is readable anyway.
        this.#unwrap("write", libc.write(fd, one, 8), EAGAIN);
      },
      drain: () => {
        if (!open) return;
        this.#unwrap("read", libc.read(fd, sink, 8), EAGAIN);
      },
      close: () => {
        if (!open) return;
        open = false;
        this.#wakeups.delete(fd);
        const closeNow = () => void this.#unwrap("close", libc.close(fd));
        // Same rule as sockets: never close under a poll running on another thread.
        if (this.#inFlight.has(fd)) this.#closeLater.set(fd, closeNow);
        else closeNow();
      },
    };
  }
}

const opened = new Map<string, RsocketProvider>();

/**
 * The provider of the rsocket ABI: `"rdma"` (librdmacm, the default) or `"kernel"` (libc's
 * sockets, for tests and TCP). Loads the library on first call, then returns the same object for
 * the same kind and path, so every user shares one table of live descriptors.
 *
 * @example
 * ```ts
 * const tcp = openProvider("kernel");
 * const fd = tcp.socket(AF_INET);
 * tcp.close(fd);
 * ```
 */
export function openProvider(
  kind: ProviderKind = "rdma",
  options: ProviderOptions = {},
): RsocketProvider {
  const id = `${kind}\0${
    options.libraryPath ?? (kind === "rdma" ? process.env.PG_RDMA_LIBRDMACM ?? "" : "")
  }`;
  let p = opened.get(id);
  if (!p) opened.set(id, p = new RsocketProvider(kind, options));
  return p;
}
