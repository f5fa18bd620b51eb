/**
 * `RsocketSocket`: a `node:stream` Duplex over an rsocket (or, with the `kernel` provider, a
 * plain TCP socket driven through the same FFI calls) that behaves like `net.Socket`, so
 * node-postgres, postgres.js and `tls.connect({ socket })` take it unchanged.
 *
 * How it moves bytes, and why:
 * - Data calls are synchronous and non-blocking (`O_NONBLOCK`), on the calling thread, where
 *   errno is valid and a call costs well under a microsecond. On would-block the socket parks
 *   with its provider's poller (`_poller.ts`), which tells it when to try again.
 * - Reads land in a shared slab and are pushed as `Buffer` views of it (no copy), like Node's
 *   own sockets; a new slab is started when the current one runs low. Slabs are allocated
 *   uninitialised (`recv` overwrites every byte that is pushed; zeroing them cost ~10% of a
 *   download's CPU), and a read asks for up to 256 KiB: measured on a bulk download, 256 KiB
 *   reads used 10-20% less CPU per GiB than 64 KiB reads. A socket starts with a 64 KiB slab and
 *   moves to 1 MiB slabs once a read fills the room it had (a bulk flow), so a thousand idle
 *   tunnel connections do not each hold a megabyte.
 * - A transfer yields to the event loop after {@linkcode TURN_BYTES} bytes (setImmediate), so
 *   timers keep firing while gigabytes stream through.
 * - Writes go straight to `send`/`writev`; `write()` returns false once the stream's buffer is
 *   over its high-water mark, and `drain` follows when the kernel (or the RDMA queue) took it.
 *
 * @module
 */
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import process from "node:process";
import { clearTimeout, setImmediate, setTimeout } from "node:timers";
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  openProvider,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  type ProviderKind,
  RDMA_INLINE,
  RDMA_RQSIZE,
  RDMA_SQSIZE,
  RsocketError,
  type RsocketProvider,
  SHUT_WR,
  SO_KEEPALIVE,
  SOCK_STREAM,
  type SockAddr,
  SOL_RDMA,
  SOL_SOCKET,
  TCP_KEEPIDLE,
  TCP_NODELAY,
  WOULD_BLOCK,
} from "../ffi/mod.ts";
import { pollerFor, type Watch } from "./_poller.ts";

/** Bytes read (or written) in one event-loop turn before the socket yields with setImmediate. */
export const TURN_BYTES = 1 << 20;
/** Largest slab; a socket starts with {@link FIRST_SLAB} and grows once a read fills its room. */
const SLAB_SIZE = 1024 * 1024;
const FIRST_SLAB = 64 * 1024;
/** Largest single `recv` (a flowing stream gets chunks of up to this size). */
const MAX_READ = 256 * 1024;
/** A slab with less room than this is left for a new one. */
const MIN_READ = 16 * 1024;
const IOV_MAX = 1024;
const EBADF = 9;

/** Options shared by sockets and servers: which provider, and rsocket tuning. */
export interface RsocketOptions {
  /**
   * `"rdma"` (librdmacm, the default) or `"kernel"` (libc TCP through the same code), or an
   * opened provider.
   */
  provider?: ProviderKind | RsocketProvider;
  /**
   * Busy-poll budget in µs: before parking on the helper thread, the poller spins on
   * `rpoll(…, 0)` this long (rsocket's own `polling_time` idea). Lower latency, more CPU.
   * Default 0.
   */
  pollingTime?: number;
  /** RDMA send queue size (`RDMA_SQSIZE`, set before connect). rdma provider only. */
  sqSize?: number;
  /** RDMA receive queue size (`RDMA_RQSIZE`, set before connect). rdma provider only. */
  rqSize?: number;
  /** Largest send carried inline in the work request (`RDMA_INLINE`). rdma provider only. */
  inlineSize?: number;
}

/** Options of `new RsocketSocket()`. */
export interface RsocketSocketOptions extends RsocketOptions {
  /** Keep the writable side open after the peer ended (default false, as `net.Socket`). */
  allowHalfOpen?: boolean;
  /** Readable high-water mark in bytes (default: the stream default). */
  readableHighWaterMark?: number;
  /** Writable high-water mark in bytes (default: the stream default). */
  writableHighWaterMark?: number;
  /** Abort to destroy the socket (with an AbortError). */
  signal?: AbortSignal;
  /** @internal An accepted, connected descriptor (used by the server). */
  fd?: number;
}

/** Options of {@linkcode RsocketSocket.connect} / {@linkcode createConnection}. */
export interface RsocketConnectOptions extends RsocketSocketOptions {
  port: number;
  /** Host name or address (default `localhost`); names are resolved with `dns.lookup`. */
  host?: string;
  /** Restrict name resolution to IPv4 (4) or IPv6 (6). */
  family?: 0 | 4 | 6;
  /** Local address to bind before connecting. */
  localAddress?: string;
  /** Local port to bind before connecting. */
  localPort?: number;
  /** Disable Nagle's algorithm once connected. */
  noDelay?: boolean;
  /** Enable keepalives once connected. */
  keepAlive?: boolean;
  /** Idle time (ms) before the first keepalive (TCP_KEEPIDLE, whole seconds). */
  keepAliveInitialDelay?: number;
  /** Idle timeout in ms: as `setTimeout(timeout)`. */
  timeout?: number;
}

/** `address()` result, as `net.Socket`'s. */
export interface AddressInfo {
  address: string;
  family: "IPv4" | "IPv6";
  port: number;
}

type Cb = (error?: Error | null) => void;

function checkSize(name: string, v: unknown): void {
  if (
    v !== undefined && (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0x7fffffff)
  ) {
    throw new RangeError(`${name} must be a non-negative integer, got ${String(v)}`);
  }
}

/** Validates the shared options: TypeError/RangeError naming the bad one. Opens nothing. */
export function checkRsocketOptions(options: RsocketOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  checkSize("sqSize", options.sqSize);
  checkSize("rqSize", options.rqSize);
  checkSize("inlineSize", options.inlineSize);
  const pt = options.pollingTime;
  if (pt !== undefined && (typeof pt !== "number" || !(pt >= 0) || pt > 1e6)) {
    throw new RangeError(`pollingTime must be between 0 and 1000000 µs, got ${String(pt)}`);
  }
  const p = options.provider ?? "rdma";
  if (typeof p === "string" ? p !== "rdma" && p !== "kernel" : typeof p?.socket !== "function") {
    throw new TypeError(
      `provider must be "rdma", "kernel" or an opened RsocketProvider, got ${JSON.stringify(p)}`,
    );
  }
}

/** Validates the shared options and opens the provider (loading its library on first use). */
export function resolveProvider(options: RsocketOptions): RsocketProvider {
  checkRsocketOptions(options);
  const p = options.provider ?? "rdma";
  return typeof p === "string" ? openProvider(p) : p;
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error("The operation was aborted", { cause: signal.reason }), {
    name: "AbortError",
    code: "ABORT_ERR",
  });
}

/**
 * A `net.Socket`-compatible Duplex over rsockets.
 *
 * Events: `lookup`, `connect`, `ready`, `data`, `drain`, `end`, `close`, `error`, `timeout`.
 *
 * @example
 * ```ts
 * const s = new RsocketSocket({ provider: "kernel" }).connect(5432, "127.0.0.1");
 * s.on("connect", () => s.end());
 * ```
 */
export class RsocketSocket extends Duplex {
  #p: RsocketProvider;
  #opts: RsocketSocketOptions;
  #fd = -1;
  #connecting = false;
  #remote: SockAddr | undefined;
  #local: SockAddr | undefined;
  #bytesRead = 0;
  #bytesWritten = 0;
  // Poller registration: one Watch, re-parked with the events wanted now.
  #watch: Watch;
  #ref = true;
  #waitRead = false;
  #readPending = false;
  #inRead = false;
  // The write in progress: buffers, position, completion.
  #wq: Uint8Array[] | null = null;
  #wi = 0;
  #woff = 0;
  #wcb: Cb | null = null;
  #waitWrite = false;
  #finalCb: Cb | null = null;
  // Per-turn budget, reset by one setImmediate.
  #turn = 0;
  #yielding = false;
  #deferredCb: Cb | null = null;
  #slab = new Uint8Array(0);
  #slabSize = FIRST_SLAB;
  #slabOff = 0;
  // Idle timeout.
  #timeoutMs = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastActive = 0;
  // Options applied once a descriptor exists.
  #noDelay: boolean | undefined;
  #keepAlive: [boolean, number] | undefined;

  /** Creates an unconnected socket (call `connect`), or wraps an accepted descriptor. */
  constructor(options: RsocketSocketOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("options must be an object");
    }
    super({
      allowHalfOpen: options.allowHalfOpen ?? false,
      readableHighWaterMark: options.readableHighWaterMark,
      writableHighWaterMark: options.writableHighWaterMark,
      emitClose: true,
      autoDestroy: true,
    });
    this.#p = resolveProvider(options);
    this.#opts = options;
    this.#watch = {
      fd: -1,
      events: 0,
      ref: true,
      pollingTime: options.pollingTime ?? 0,
      ready: (revents, error) => this.#ready(revents, error),
    };
    if (options.signal) {
      const signal = options.signal;
      if (signal.aborted) process.nextTick(() => this.destroy(abortError(signal)));
      else {
        const onAbort = () => this.destroy(abortError(signal));
        signal.addEventListener("abort", onAbort, { once: true });
        this.once("close", () => signal.removeEventListener("abort", onAbort));
      }
    }
    if (options.fd !== undefined) {
      if (!this.#p.isOpen(options.fd)) {
        throw new RangeError(
          `fd ${options.fd} is not an open socket of the ${this.#p.kind} provider`,
        );
      }
      this.#adopt(options.fd);
      this.#p.setNonBlocking(this.#fd);
      this.#addresses();
      // As net.Socket: start reading at once (a connected socket keeps the process alive).
      process.nextTick(() => this.isPaused() || this.read(0));
    }
  }

  /** The provider kind this socket runs on. */
  get provider(): ProviderKind {
    return this.#p.kind;
  }

  /** The rsocket descriptor, -1 when there is none (not connected yet, or closed). */
  get fd(): number {
    return this.#fd;
  }

  /** True while a connection attempt is in progress. */
  get connecting(): boolean {
    return this.#connecting;
  }

  /** True until the socket is connected (as `net.Socket.pending`). */
  get pending(): boolean {
    return this.#fd < 0 || this.#connecting;
  }

  /** `opening`, `open`, `readOnly`, `writeOnly` or `closed`, as `net.Socket.readyState`. */
  get readyState(): "opening" | "open" | "readOnly" | "writeOnly" | "closed" {
    if (this.#connecting) return "opening";
    if (this.#fd < 0 || this.destroyed) return "closed";
    const r = this.readable, w = this.writable;
    return r && w ? "open" : r ? "readOnly" : w ? "writeOnly" : "closed";
  }

  /** Bytes received. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Bytes handed to the kernel / RDMA queue, plus those still buffered in the stream. */
  get bytesWritten(): number {
    return this.#bytesWritten + this.writableLength;
  }

  /** The peer's address (undefined until connected). */
  get remoteAddress(): string | undefined {
    return this.#remote?.address;
  }
  /** The peer's port. */
  get remotePort(): number | undefined {
    return this.#remote?.port;
  }
  /** `IPv4` or `IPv6`. */
  get remoteFamily(): string | undefined {
    return this.#remote?.family;
  }
  /** The local address. */
  get localAddress(): string | undefined {
    return this.#local?.address;
  }
  /** The local port. */
  get localPort(): number | undefined {
    return this.#local?.port;
  }
  /** The idle timeout set with `setTimeout` (ms), or undefined. */
  get timeout(): number | undefined {
    return this.#timeoutMs || undefined;
  }

  /** The local address as `{ address, family, port }` (`{}` when not bound). */
  address(): AddressInfo | Record<string, never> {
    if (!this.#local && this.#fd >= 0) {
      try {
        this.#local = this.#p.getsockname(this.#fd);
      } catch { /* not bound yet */ }
    }
    const l = this.#local;
    return l ? { address: l.address, family: l.family, port: l.port } : {};
  }

  /**
   * Connects: `connect(port, host?, listener?)` or `connect(options, listener?)`. Host names are
   * resolved with `dns.lookup` (rsockets take addresses), each address tried in turn.
   */
  connect(port: number | string, host?: string, listener?: () => void): this;
  connect(options: RsocketConnectOptions, listener?: () => void): this;
  connect(
    a: number | string | RsocketConnectOptions,
    b?: string | (() => void),
    c?: () => void,
  ): this {
    let opts: RsocketConnectOptions;
    let listener: (() => void) | undefined;
    if (typeof a === "object" && a !== null) {
      opts = a;
      listener = b as (() => void) | undefined;
    } else {
      if (typeof b === "function") {
        listener = b;
        b = undefined;
      } else listener = c;
      opts = { port: Number(a), host: b };
    }
    if ("path" in (opts as object)) {
      throw new TypeError("rsockets have no unix-domain sockets: connect by host and port");
    }
    const port = opts.port;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(`port must be an integer 0-65535, got ${String(opts.port)}`);
    }
    if (this.#connecting || this.#fd >= 0) {
      throw new Error("socket is already connected or connecting");
    }
    if (listener !== undefined && typeof listener !== "function") {
      throw new TypeError("connect listener must be a function");
    }
    // Tuning given to connect() adds to (and overrides) what the constructor got.
    checkRsocketOptions({ ...opts, provider: this.#p });
    opts = { ...this.#opts, ...opts };
    if (opts.pollingTime !== undefined) this.#watch.pollingTime = opts.pollingTime;
    if (listener) this.once("connect", listener);
    if (opts.timeout !== undefined) this.setTimeout(opts.timeout);
    if (opts.noDelay !== undefined) this.#noDelay = opts.noDelay;
    if (opts.keepAlive) this.#keepAlive = [true, opts.keepAliveInitialDelay ?? 0];
    this.#connecting = true;
    void this.#connect(opts, port);
    return this;
  }

  async #connect(opts: RsocketConnectOptions, port: number): Promise<void> {
    const host = opts.host ?? "localhost";
    let addrs: { address: string; family: number }[];
    try {
      if (isIP(host)) addrs = [{ address: host, family: isIP(host) }];
      else {
        addrs = await lookup(host, { all: true, family: opts.family ?? 0 });
        this.emit("lookup", null, addrs[0]?.address, addrs[0]?.family, host);
      }
    } catch (e) {
      this.#connecting = false;
      this.emit("lookup", e, undefined, undefined, host);
      this.destroy(e as Error);
      return;
    }
    let last: unknown;
    for (const a of addrs) {
      if (this.destroyed) return;
      const to: SockAddr = { family: a.family === 6 ? "IPv6" : "IPv4", address: a.address, port };
      try {
        await this.#attempt(to, opts);
        if (this.destroyed) return;
        this.#connected();
        return;
      } catch (e) {
        last = e;
        this.#release();
      }
    }
    this.#connecting = false;
    if (!this.destroyed) this.destroy(last as Error);
  }

  /** One connect attempt: resolves once connected, rejects with the connect error. */
  #attempt(to: SockAddr, opts: RsocketConnectOptions): Promise<void> {
    const p = this.#p;
    const fd = p.socket(to.family === "IPv6" ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    this.#adopt(fd);
    p.setNonBlocking(fd);
    if (p.kind === "rdma") {
      // SOL_RDMA options count only before connect (EINVAL after).
      if (opts.sqSize !== undefined) p.setsockopt(fd, SOL_RDMA, RDMA_SQSIZE, opts.sqSize);
      if (opts.rqSize !== undefined) p.setsockopt(fd, SOL_RDMA, RDMA_RQSIZE, opts.rqSize);
      if (opts.inlineSize !== undefined) p.setsockopt(fd, SOL_RDMA, RDMA_INLINE, opts.inlineSize);
    }
    if (opts.localAddress !== undefined || opts.localPort !== undefined) {
      p.bind(fd, {
        family: to.family,
        address: opts.localAddress ?? (to.family === "IPv6" ? "::" : "0.0.0.0"),
        port: opts.localPort ?? 0,
      });
    }
    if (p.connect(fd, to)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#onConnect = (err) => (err ? reject(err) : resolve());
      this.#rewatch();
    });
  }

  #onConnect: ((err?: unknown) => void) | null = null;

  #adopt(fd: number): void {
    this.#fd = fd;
    this.#watch = { ...this.#watch, fd, events: 0, ref: this.#ref };
  }

  /** Drops the descriptor: unparks it and closes it. */
  #release(): void {
    if (this.#fd < 0) return;
    this.#watch.events = 0;
    pollerFor(this.#p).close(this.#fd);
    this.#fd = -1;
  }

  #addresses(): void {
    try {
      this.#remote = this.#p.getpeername(this.#fd);
    } catch { /* reset already */ }
    try {
      this.#local = this.#p.getsockname(this.#fd);
    } catch { /* idem */ }
  }

  #connected(): void {
    this.#connecting = false;
    this.#addresses();
    if (this.#noDelay !== undefined) this.setNoDelay(this.#noDelay);
    if (this.#keepAlive) this.setKeepAlive(...this.#keepAlive);
    this.#touch();
    this.emit("connect");
    this.emit("ready");
    if (this.destroyed) return;
    if (this.#wq) this.#flush();
    if (this.#finalCb && !this.#wq) this.#final(this.#finalCb);
    if (this.#readPending) this.#readNow();
    // As net.Socket: read ahead up to the high-water mark even before anyone listens, so a
    // connected socket is parked (and keeps the process alive until unref()).
    else this.read(0);
  }

  /** The poller says the descriptor is ready (or polling failed: revents -1). */
  #ready(revents: number, error?: unknown): void {
    if (this.destroyed || this.#fd < 0) return;
    if (revents < 0) return void this.destroy(error as Error);
    if (revents & POLLNVAL) {
      return void this.destroy(new RsocketError("poll", EBADF));
    }
    const hit = revents & (POLLOUT | POLLERR | POLLHUP);
    if (this.#onConnect && hit) {
      const done = this.#onConnect;
      this.#onConnect = null;
      try {
        this.#p.finishConnect(this.#fd);
        done();
      } catch (e) {
        done(e);
      }
      return;
    }
    if (this.#waitWrite && hit) {
      this.#waitWrite = false;
      this.#turn = 0;
      this.#flush();
    }
    if (this.#waitRead && (revents & (POLLIN | POLLERR | POLLHUP))) {
      this.#waitRead = false;
      this.#turn = 0;
      this.#readNow();
    }
    this.#rewatch();
  }

  /** Parks the descriptor for what it waits for now (or unparks it). */
  #rewatch(): void {
    const w = this.#watch;
    const want = this.destroyed || this.#fd < 0
      ? 0
      : (this.#waitRead ? POLLIN : 0) | (this.#waitWrite || this.#onConnect ? POLLOUT : 0);
    if (w.events === want && w.ref === this.#ref) return;
    w.events = want;
    w.ref = this.#ref;
    pollerFor(this.#p).update(w);
  }

  #yield(): void {
    if (this.#yielding) return;
    this.#yielding = true;
    setImmediate(() => {
      this.#yielding = false;
      this.#turn = 0;
      if (this.destroyed) return;
      const cb = this.#deferredCb;
      this.#deferredCb = null;
      if (cb) cb();
      if (this.#readPending && !this.#waitRead) this.#readNow();
    });
  }

  #touch(): void {
    if (this.#timeoutMs) {
      this.#lastActive = performance.now();
      if (!this.#timer) this.#arm(this.#timeoutMs);
    }
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#timeoutMs || this.destroyed) return;
      const idle = performance.now() - this.#lastActive;
      if (idle + 1 >= this.#timeoutMs) this.emit("timeout");
      else this.#arm(this.#timeoutMs - idle);
    }, Math.max(1, ms));
    // As in Node, an idle timeout never holds the process open.
    this.#timer.unref();
  }

  // -- reading ----------------------------------------------------------------------------------

  override _read(): void {
    this.#readPending = true;
    if (this.#fd < 0 || this.#connecting || this.#waitRead || this.#yielding) return;
    this.#readNow();
  }

  #readNow(): void {
    // push() may emit `data`, whose listener may call read() again: the outer loop goes on.
    if (this.#inRead) return;
    this.#inRead = true;
    try {
      this.#readLoop();
    } finally {
      this.#inRead = false;
    }
  }

  #readLoop(): void {
    const p = this.#p;
    while (this.#readPending && !this.destroyed && this.#fd >= 0) {
      if (this.#turn >= TURN_BYTES) return this.#yield();
      if (this.#slab.length - this.#slabOff < MIN_READ) {
        // Not zeroed: only bytes that recv() wrote are ever pushed.
        this.#slab = Buffer.allocUnsafeSlow(this.#slabSize);
        this.#slabOff = 0;
      }
      const off = this.#slabOff;
      const room = Math.min(MAX_READ, this.#slab.length - off);
      let n: number;
      try {
        n = p.recv(this.#fd, this.#slab.subarray(off, off + room));
      } catch (e) {
        return void this.destroy(e as Error);
      }
      if (n === WOULD_BLOCK) {
        this.#waitRead = true;
        this.#turn = 0;
        return this.#rewatch();
      }
      if (n === 0) {
        this.#readPending = false;
        this.push(null);
        // As net.Socket: with nothing buffered, `end` follows even if nobody is reading.
        this.read(0);
        return;
      }
      // A read that filled all the room it had means a bulk flow: use bigger slabs from now on.
      if (n === room && this.#slabSize < SLAB_SIZE) this.#slabSize *= 4;
      this.#slabOff += n;
      this.#bytesRead += n;
      this.#turn += n;
      this.#touch();
      const chunk = Buffer.from(this.#slab.buffer, this.#slab.byteOffset + off, n);
      // Cleared first: a read() from inside push() (re-entrant _read) sets it again.
      this.#readPending = false;
      if (this.push(chunk)) this.#readPending = true;
      if (n < room && this.#readPending && !this.destroyed && this.#fd >= 0 && !this.#waitRead) {
        // A short read drained the socket: another recv() now would almost surely say EAGAIN,
        // a wasted call per message. Park instead; poll is level-triggered, so bytes that came
        // meanwhile are seen on the poller's next round.
        this.#waitRead = true;
        this.#turn = 0;
        return this.#rewatch();
      }
    }
  }

  // -- writing ----------------------------------------------------------------------------------

  override _write(chunk: Uint8Array, _encoding: string, cb: Cb): void {
    this.#startWrite([chunk], cb);
  }

  override _writev(chunks: { chunk: Uint8Array }[], cb: Cb): void {
    this.#startWrite(chunks.map((c) => c.chunk), cb);
  }

  #startWrite(bufs: Uint8Array[], cb: Cb): void {
    this.#wq = bufs;
    this.#wi = 0;
    this.#woff = 0;
    this.#wcb = cb;
    if (this.#fd < 0 || this.#connecting) return; // sent once connected
    this.#flush();
  }

  #flush(): void {
    const p = this.#p, q = this.#wq!;
    while (this.#wi < q.length) {
      if (this.destroyed || this.#fd < 0) return;
      const head = this.#woff ? q[this.#wi].subarray(this.#woff) : q[this.#wi];
      let n: number, asked = head.length;
      try {
        if (q.length - this.#wi === 1) n = p.send(this.#fd, head);
        else {
          // writev takes no MSG_NOSIGNAL; Deno, Bun and Node all ignore SIGPIPE (measured), so
          // a vanished peer gives EPIPE here too. rsockets raise no signal at all.
          const bufs = [head];
          for (let i = this.#wi + 1; i < q.length && bufs.length < IOV_MAX; i++) {
            bufs.push(q[i]);
            asked += q[i].length;
          }
          n = p.writev(this.#fd, bufs);
        }
      } catch (e) {
        return this.#endWrite(e as Error);
      }
      if (n === WOULD_BLOCK) {
        this.#waitWrite = true;
        this.#turn = 0;
        return this.#rewatch();
      }
      // A short send means the send buffer (or RDMA queue) is full: the next call would say
      // EAGAIN, so wait for POLLOUT straight away (after accounting what went).
      const full = n < asked;
      this.#bytesWritten += n;
      this.#turn += n;
      // Advance over whole buffers, then into the partly sent one.
      while (n > 0 && this.#wi < q.length) {
        const left = q[this.#wi].length - this.#woff;
        if (n >= left) {
          n -= left;
          this.#wi++;
          this.#woff = 0;
        } else {
          this.#woff += n;
          n = 0;
        }
      }
      while (this.#wi < q.length && q[this.#wi].length === 0) this.#wi++;
      if (full && this.#wi < q.length) {
        this.#waitWrite = true;
        this.#turn = 0;
        return this.#rewatch();
      }
    }
    this.#touch();
    this.#endWrite(null);
  }

  #endWrite(err: Error | null): void {
    const cb = this.#wcb!;
    this.#wq = null;
    this.#wcb = null;
    if (err) return cb(err);
    if (this.#finalCb) return cb(); // _final is only called after this callback
    if (this.#turn >= TURN_BYTES) {
      // Completing now would let a writer loop synchronously: finish on the next turn.
      this.#deferredCb = cb;
      return this.#yield();
    }
    cb();
  }

  override _final(cb: Cb): void {
    if (this.#fd < 0 || this.#connecting) {
      this.#finalCb = cb;
      return;
    }
    this.#final(cb);
  }

  #final(cb: Cb): void {
    this.#finalCb = null;
    try {
      if (this.#fd >= 0) this.#p.shutdown(this.#fd, SHUT_WR);
    } catch (e) {
      // ENOTCONN: the peer is gone already; the read side will tell.
      if ((e as RsocketError).code !== "ENOTCONN") return cb(e as Error);
    }
    cb();
  }

  override _destroy(err: Error | null, cb: Cb): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#connecting = false;
    this.#waitRead = this.#waitWrite = false;
    const connectCb = this.#onConnect;
    this.#onConnect = null;
    try {
      this.#release();
    } catch (e) {
      err ??= e as Error;
    }
    // Settle a write in flight, so its callback runs and `close` is not held back.
    const wcb = this.#wcb ?? this.#deferredCb;
    this.#wcb = this.#deferredCb = null;
    this.#wq = null;
    const fin = this.#finalCb;
    this.#finalCb = null;
    const gone = Object.assign(new Error("socket destroyed before the write completed"), {
      code: "ERR_STREAM_DESTROYED",
    });
    if (wcb) wcb(gone);
    if (fin) fin(gone);
    if (connectCb) connectCb(gone);
    cb(err);
  }

  // -- net.Socket knobs -------------------------------------------------------------------------

  /** TCP_NODELAY (accepted by rsockets, which never delay small sends anyway). */
  setNoDelay(noDelay = true): this {
    this.#noDelay = noDelay;
    if (this.#fd >= 0 && !this.#connecting) {
      try {
        this.#p.setsockopt(this.#fd, IPPROTO_TCP, TCP_NODELAY, noDelay ? 1 : 0);
      } catch { /* as net.Socket: best effort on a closing socket */ }
    }
    return this;
  }

  /** SO_KEEPALIVE, and TCP_KEEPIDLE from `initialDelay` (ms, rounded to whole seconds). */
  setKeepAlive(enable = false, initialDelay = 0): this {
    if (typeof initialDelay !== "number" || !(initialDelay >= 0)) {
      throw new RangeError(
        `initialDelay must be a non-negative number of ms, got ${String(initialDelay)}`,
      );
    }
    this.#keepAlive = [enable, initialDelay];
    if (this.#fd >= 0 && !this.#connecting) {
      try {
        this.#p.setsockopt(this.#fd, SOL_SOCKET, SO_KEEPALIVE, enable ? 1 : 0);
        if (enable && initialDelay > 0) {
          this.#p.setsockopt(
            this.#fd,
            IPPROTO_TCP,
            TCP_KEEPIDLE,
            Math.max(1, Math.round(initialDelay / 1000)),
          );
        }
      } catch { /* best effort, as net.Socket */ }
    }
    return this;
  }

  /** Emits `timeout` after `ms` of inactivity (0 disables); the socket stays open. */
  setTimeout(ms: number, callback?: () => void): this {
    if (typeof ms !== "number" || !(ms >= 0) || ms === Infinity) {
      throw new RangeError(`timeout must be a non-negative number of ms, got ${String(ms)}`);
    }
    if (callback) {
      if (typeof callback !== "function") throw new TypeError("callback must be a function");
      if (ms === 0) this.off("timeout", callback);
      else this.once("timeout", callback);
    }
    this.#timeoutMs = ms;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (ms > 0) {
      this.#lastActive = performance.now();
      this.#arm(ms);
    }
    return this;
  }

  /** Lets the process exit while this socket waits (it stays usable). */
  unref(): this {
    this.#ref = false;
    this.#rewatch();
    return this;
  }

  /** Undoes `unref()`. */
  ref(): this {
    this.#ref = true;
    this.#rewatch();
    return this;
  }

  /** Busy-poll budget in µs (see {@linkcode RsocketOptions.pollingTime}); settable at any time. */
  get pollingTime(): number {
    return this.#watch.pollingTime;
  }
  set pollingTime(us: number) {
    resolveProvider({ pollingTime: us, provider: this.#p });
    this.#watch.pollingTime = us;
  }
}

/**
 * Creates an {@linkcode RsocketSocket} and connects it, like `net.createConnection`.
 *
 * @example
 * ```ts
 * const s = createConnection({ port: 5432, host: "10.0.0.2", provider: "rdma", sqSize: 256 });
 * s.once("connect", () => console.log(s.remoteAddress));
 * ```
 */
export function createConnection(
  options: RsocketConnectOptions,
  listener?: () => void,
): RsocketSocket;
export function createConnection(port: number, host?: string, listener?: () => void): RsocketSocket;
export function createConnection(
  a: number | RsocketConnectOptions,
  b?: string | (() => void),
  c?: () => void,
): RsocketSocket {
  if (typeof a === "object" && a !== null) {
    return new RsocketSocket(a).connect(a, b as (() => void) | undefined);
  }
  return new RsocketSocket().connect(a, b as string | undefined, c);
}
