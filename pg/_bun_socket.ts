/**
 * In Bun, a socket over `Bun.connect` instead of Bun's `node:net` layer, for the connections
 * that can never negotiate TLS: unix sockets, and plain attempts on TCP (`sslmode=disable`, the
 * first attempt of `sslmode=allow`, cancel requests). Bun's `node:net` runs every chunk through
 * a JS stream layer on top of the same native socket; skipping it measured 4-7% more `SELECT 1`
 * round trips (pinned) and 1.6x the bulk read rate. TLS stays on `node:net`: `pg/_tls.ts` needs
 * `node:tls` over a `node:net` socket for the peer certificate channel binding uses.
 *
 * The socket is not a `node:stream` Duplex, only the part of `net.Socket` the client uses:
 * `data`/`end`/`close`/`error`/`drain` events, `write()` (false when the caller should wait for
 * `drain`), `pause()`/`resume()` (reading stops, so the server blocks in send()), `end()` (queued
 * bytes go first), `destroy()` (idempotent), `remoteAddress`.
 *
 * Runtime-specific on purpose (DESIGN.md, "The layers"): nothing is touched at import time; `Bun`
 * is looked up through `globalThis` on the first connection, and elsewhere there is no factory.
 *
 * @module
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { SocketFactory, SocketTarget } from "../transport/select.ts";
import { FreeingReceiver, RECEIVER } from "./_receive.ts";

/** At or above this many queued bytes write() returns false (net.Socket's writableHighWaterMark). */
const HIGH_WATER = 16 * 1024;

// The parts of Bun's API used here (no Bun types in a tsc build).
interface RawSocket {
  /** Sends what the kernel takes now and returns its length; Bun keeps no copy of the rest. */
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): boolean;
  setKeepAlive(on: boolean, delayMs: number): boolean;
  readonly remoteAddress: string;
}
interface RawHandlers {
  data(s: RawSocket, d: Uint8Array): void;
  drain(s: RawSocket): void;
  end(s: RawSocket): void;
  close(s: RawSocket, e?: Error): void;
  error(s: RawSocket, e: Error): void;
}
type BunConnect = (o: { hostname?: string; port?: number; unix?: string; socket: RawHandlers }) => Promise<RawSocket>;

/**
 * A connected socket over `Bun.connect` with the `net.Socket` surface the client uses. Chunks
 * are emitted as Bun hands them over: a fresh Buffer per read (measured: never reused), so the
 * client may keep views of them. Once the client attached to its {@link FreeingReceiver}, chunks
 * go there instead of to `data` listeners, and the memory of those it lent is released as soon
 * as it is done with them.
 */
export class BunSocket extends EventEmitter {
  /** @internal The receive side the client attaches to (`_receive.ts`). */
  readonly [RECEIVER]: FreeingReceiver = new FreeingReceiver();
  #raw: RawSocket | undefined;
  // Bytes Bun could not take yet (its write() takes what the kernel takes and keeps nothing),
  // in order; sent from the 'drain' callback.
  #pending: Uint8Array[] = [];
  #queued = 0; // bytes handed to write() and not yet taken by the kernel
  #needDrain = false;
  #paused = true; // like net.Socket: nothing is emitted before resume() or a 'data' listener
  #explicitPause = false;
  #early: Uint8Array[] = []; // chunks that arrived while paused (Bun delivers a read in progress)
  #ending = false; // end() called
  #eof = false;
  #destroyed = false;
  /** The peer's address (TCP), as `net.Socket.remoteAddress`. */
  remoteAddress: string | undefined;

  /** Whether destroy() was called or the socket closed. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Bytes given to write() that the kernel has not taken yet. */
  get writableLength(): number {
    return this.#queued;
  }

  /** @internal The callbacks `Bun.connect` is given: they feed this socket. */
  _handlers(): RawHandlers {
    return {
      data: (_s, d) => {
        if (this.#destroyed) return;
        if (this.#paused || this.#early.length) this.#early.push(d);
        else this.#deliver(d);
      },
      drain: (s) => this.#flush(s),
      end: () => this.#peerEnded(),
      // A close without error after the peer's FIN is the end of the stream (delivered after
      // any chunk held by pause()); with one (ECONNRESET, ...) it is a failure.
      close: (_s, e) => e ? this.destroy(e) : this.#peerEnded(),
      error: (_s, e) => this.destroy(e),
    };
  }

  /** @internal Wires the connected socket in. */
  _open(raw: RawSocket): void {
    this.#raw = raw;
  }

  #deliver(d: Uint8Array): void {
    const rx = this[RECEIVER];
    if (rx.attached) rx.deliver(d);
    else this.emit("data", d);
  }

  #flush(s: RawSocket): void {
    const p = this.#pending;
    while (p.length) {
      const b = p[0];
      const n = s.write(b);
      if (n > 0) this.#taken(n);
      if (n < b.length) {
        p[0] = b.subarray(Math.max(0, n));
        return;
      }
      p.shift();
    }
    if (this.#ending && !this.#destroyed) s.end();
  }

  #taken(n: number): void {
    this.#queued -= n;
    if (this.#needDrain && this.#queued < HIGH_WATER && !this.#destroyed) {
      this.#needDrain = false;
      this.emit("drain");
    }
  }

  #peerEnded(): void {
    if (this.#eof || this.#destroyed) return;
    this.#eof = true;
    if (!this.#paused && !this.#early.length) this.#emitEnd();
  }

  #emitEnd(): void {
    this.emit("end");
    // The client never half-closes: with the peer done, the socket closes (as net.Socket does
    // without allowHalfOpen).
    this.destroy();
  }

  /**
   * Queues bytes for the peer, in order and without a copy (the caller must not change `b`
   * afterwards, as with net.Socket). Returns false when the caller should wait for `drain`.
   * After end() or destroy() nothing more is sent and false is returned.
   */
  write(b: Uint8Array): boolean {
    if (this.#destroyed || this.#ending || !this.#raw) return false;
    if (b.length) {
      this.#queued += b.length;
      if (this.#pending.length) this.#pending.push(b);
      else {
        const n = this.#raw.write(b);
        if (n > 0) this.#queued -= n;
        if (n < b.length) this.#pending.push(b.subarray(Math.max(0, n)));
      }
    }
    if (this.#queued >= HIGH_WATER) this.#needDrain = true;
    return !this.#needDrain;
  }

  /** Sends what is queued, then closes the sending side; the socket closes at the peer's FIN. */
  end(): this {
    if (this.#ending || this.#destroyed) return this;
    this.#ending = true;
    if (!this.#pending.length) this.#raw?.end();
    return this;
  }

  /** Stops reading: the kernel's buffer fills and the peer blocks in send(). */
  pause(): this {
    this.#explicitPause = true;
    if (!this.#paused) {
      this.#paused = true;
      this.#raw?.pause();
    }
    return this;
  }

  /** Resumes reading; chunks that arrived while paused are delivered first. */
  resume(): this {
    this.#explicitPause = false;
    if (!this.#paused || this.#destroyed) return this;
    this.#paused = false;
    const early = this.#early;
    while (early.length && !this.#paused && !this.#destroyed) this.#deliver(early.shift()!);
    if (this.#paused || this.#destroyed) return this;
    if (this.#eof) this.#emitEnd();
    else this.#raw?.resume();
    return this;
  }

  /**
   * Closes now (queued bytes are dropped); emits `error` (if given), then `close` once, on a
   * later microtask as net.Socket does. Safe to call again.
   */
  destroy(e?: Error): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    this.#early = [];
    this.#pending = [];
    this.#raw?.terminate();
    queueMicrotask(() => {
      if (e) this.emit("error", e);
      this.emit("close", e !== undefined);
    });
    return this;
  }

  /** Nagle is turned off at connect; kept for the net.Socket surface. */
  setNoDelay(): this {
    return this;
  }

  /** Keepalives are set at connect; kept for the net.Socket surface. */
  setKeepAlive(): this {
    return this;
  }

  /** As on a net.Socket, a 'data' listener starts the flow unless pause() was called. */
  override on(...args: Parameters<EventEmitter["on"]>): this {
    super.on(...args);
    if (args[0] === "data" && !this.#explicitPause) this.resume();
    return this;
  }
}

/**
 * `Bun.connect` rejects with `code`/`errno`/`syscall` as node:net does, but with the message
 * "Failed to connect"; node:net says `connect ECONNREFUSED 127.0.0.1:5432`. Callers show the
 * message for codes without a libpq wording, so give the same one.
 */
function connectError(e: unknown, target: SocketTarget, host: string | undefined): unknown {
  const err = e as { code?: unknown; syscall?: unknown };
  if (!(e instanceof Error) || typeof err.code !== "string" || err.syscall !== "connect") return e;
  const where = target.kind === "unix" ? target.path : `${host}:${target.port}`;
  return Object.assign(new Error(`connect ${err.code} ${where}`, { cause: e }), {
    code: err.code,
    errno: (e as { errno?: unknown }).errno,
    syscall: "connect",
    address: target.kind === "unix" ? target.path : host,
    port: target.kind === "unix" ? undefined : target.port,
  });
}

let cached: SocketFactory | null | undefined;

/**
 * The socket factory over `Bun.connect` when running in Bun, else undefined (Deno and Node keep
 * `node:net`: Deno's own sockets read slower with a fresh buffer per chunk, and Node has no
 * layer to skip). Connected, Nagle off and keepalives on TCP as `netSocketFactory` sets them;
 * connect errors carry node:net's codes and messages. For connections that never negotiate TLS
 * only: the result cannot be wrapped by `node:tls`.
 */
export function bunSocketFactory(): SocketFactory | undefined {
  if (cached !== undefined) return cached ?? undefined;
  const connect = (globalThis as { Bun?: { connect?: BunConnect } }).Bun?.connect;
  if (typeof connect !== "function") {
    cached = null;
    return undefined;
  }
  cached = (target, { signal, keepAlive }) =>
    new Promise<Duplex>((resolve, reject) => {
      signal.throwIfAborted();
      const s = new BunSocket();
      const handlers = s._handlers();
      const host = target.kind === "tcp" ? target.hostaddr || target.host : undefined;
      // Bun.connect cannot be cancelled: an abort rejects now and closes the socket if it opens.
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const opened = target.kind === "unix" ? connect({ unix: target.path, socket: handlers }) : connect({ hostname: host, port: target.port, socket: handlers });
      opened.then((raw) => {
        signal.removeEventListener("abort", onAbort);
        s._open(raw);
        if (signal.aborted) return void s.destroy();
        if (target.kind === "tcp") {
          raw.setNoDelay(true);
          if (keepAlive) raw.setKeepAlive(true, (keepAlive.idle ?? 0) * 1000);
          s.remoteAddress = raw.remoteAddress;
        }
        // The client's contract is a Duplex; it uses only the net.Socket surface above.
        resolve(s as unknown as Duplex);
      }, (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(connectError(e, target, host));
      });
    });
  return cached;
}
