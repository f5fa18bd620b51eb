/**
 * `RsocketServer`: accepts rsocket (or, with the `kernel` provider, TCP) connections as
 * {@linkcode RsocketSocket}s, shaped like `net.Server` (`listening`, `connection`, `close`,
 * `error` events; `listen`, `close`, `address`, `ref`/`unref`, `maxConnections`). The listening
 * descriptor parks with the provider's poller for POLLIN; each wake-up accepts until the backlog
 * is empty.
 *
 * @module
 */
import { EventEmitter } from "node:events";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import process from "node:process";
import {
  AF_INET,
  AF_INET6,
  POLLIN,
  type RsocketProvider,
  SO_REUSEADDR,
  SOCK_STREAM,
  type SockAddr,
  SOL_SOCKET,
  WOULD_BLOCK,
} from "../ffi/mod.ts";
import { pollerFor, type Watch } from "./_poller.ts";
import { type AddressInfo, resolveProvider, type RsocketOptions, RsocketSocket } from "./socket.ts";

/** Options of {@linkcode createServer}. */
export interface RsocketServerOptions extends RsocketOptions {
  /** Accepted sockets keep their writable side open after the peer ended. Default false. */
  allowHalfOpen?: boolean;
  /** Accepted sockets start paused (no reads until `resume()`). Default false. */
  pauseOnConnect?: boolean;
}

/** Options of {@linkcode RsocketServer.listen}. */
export interface RsocketListenOptions {
  port?: number;
  /** Address or name to bind (default `0.0.0.0`). */
  host?: string;
  backlog?: number;
}

/**
 * A `net.Server`-like listener over rsockets.
 *
 * @example
 * ```ts
 * const srv = createServer({ provider: "kernel" }, (s) => s.pipe(s));
 * srv.listen({ host: "127.0.0.1", port: 0 }, () => console.log(srv.address()));
 * ```
 */
export class RsocketServer extends EventEmitter {
  #p: RsocketProvider;
  #opts: RsocketServerOptions;
  #fd = -1;
  #watch: Watch;
  #ref = true;
  #connections = new Set<RsocketSocket>();
  #closing = false;
  #local: SockAddr | undefined;
  /** Connections beyond this many are closed at once (as `net.Server.maxConnections`). */
  maxConnections = Infinity;

  /** Creates a server; `connectionListener` is added for `connection`. */
  constructor(options: RsocketServerOptions = {}, connectionListener?: (s: RsocketSocket) => void) {
    super();
    if (typeof options !== "object" || options === null) {
      throw new TypeError("options must be an object");
    }
    this.#p = resolveProvider(options);
    this.#opts = options;
    if (connectionListener !== undefined) {
      if (typeof connectionListener !== "function") {
        throw new TypeError("connectionListener must be a function");
      }
      this.on("connection", connectionListener);
    }
    this.#watch = {
      fd: -1,
      events: 0,
      ref: true,
      pollingTime: options.pollingTime ?? 0,
      ready: (revents, error) => this.#accept(revents, error),
    };
  }

  /** True while listening. */
  get listening(): boolean {
    return this.#fd >= 0;
  }

  /** Listens: `listen(port?, host?, backlog?, cb?)` or `listen({ port, host, backlog }, cb?)`. */
  listen(port?: number, host?: string, backlog?: number, cb?: () => void): this;
  listen(port: number, cb: () => void): this;
  listen(options: RsocketListenOptions, cb?: () => void): this;
  listen(...args: unknown[]): this {
    const cb = typeof args[args.length - 1] === "function" ? args.pop() as () => void : undefined;
    const o: RsocketListenOptions = typeof args[0] === "object" && args[0] !== null
      ? args[0] as RsocketListenOptions
      : { port: args[0] as number, host: args[1] as string, backlog: args[2] as number };
    const port = o.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(`port must be an integer 0-65535, got ${String(o.port)}`);
    }
    if ("path" in (o as object)) {
      throw new TypeError("rsockets have no unix-domain sockets: listen on a host and port");
    }
    if (this.#fd >= 0) throw new Error("server is already listening");
    if (cb) this.once("listening", cb);
    void this.#listen(o.host ?? "0.0.0.0", port, o.backlog ?? 511);
    return this;
  }

  async #listen(host: string, port: number, backlog: number): Promise<void> {
    const p = this.#p;
    let fd = -1;
    try {
      const address = isIP(host) ? host : (await lookup(host)).address;
      const family = isIP(address) === 6 ? "IPv6" : "IPv4";
      fd = p.socket(family === "IPv6" ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
      p.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      p.bind(fd, { family, address, port });
      p.listen(fd, backlog);
      p.setNonBlocking(fd);
      this.#local = p.getsockname(fd);
    } catch (e) {
      if (fd >= 0) p.close(fd);
      process.nextTick(() => this.emit("error", e));
      return;
    }
    this.#fd = fd;
    this.#closing = false;
    this.#watch = { ...this.#watch, fd, events: POLLIN, ref: this.#ref };
    pollerFor(p).update(this.#watch);
    // Always asynchronously, as net.Server, so listeners added after listen() hear it.
    process.nextTick(() => this.emit("listening"));
  }

  #accept(revents: number, error?: unknown): void {
    if (this.#fd < 0) return;
    if (revents < 0) {
      this.emit("error", error);
      return void this.close();
    }
    for (;;) {
      let fd: number;
      try {
        fd = this.#p.accept(this.#fd);
      } catch (e) {
        // ECONNABORTED, EMFILE...: report and keep listening.
        this.emit("error", e);
        break;
      }
      if (fd === WOULD_BLOCK) break;
      if (this.#connections.size >= this.maxConnections) {
        this.#p.close(fd);
        this.emit("drop", { localAddress: this.#local?.address, localPort: this.#local?.port });
        continue;
      }
      const s = new RsocketSocket({
        provider: this.#p,
        fd,
        allowHalfOpen: this.#opts.allowHalfOpen,
        pollingTime: this.#opts.pollingTime,
      });
      this.#connections.add(s);
      s.once("close", () => {
        this.#connections.delete(s);
        this.#maybeClosed();
      });
      if (this.#opts.pauseOnConnect) s.pause();
      this.emit("connection", s);
      if (this.#fd < 0) return;
    }
    this.#watch.events = POLLIN;
    pollerFor(this.#p).update(this.#watch);
  }

  /** The bound address (null when not listening), as `net.Server.address()`. */
  address(): AddressInfo | null {
    const l = this.#local;
    return this.#fd >= 0 && l ? { address: l.address, family: l.family, port: l.port } : null;
  }

  /** Calls back with the number of open connections. */
  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(cb, null, this.#connections.size);
    return this;
  }

  /**
   * Stops accepting; `close` is emitted once every accepted connection has closed too. `cb`
   * gets an error if the server was not listening.
   */
  close(cb?: (err?: Error) => void): this {
    if (this.#fd < 0) {
      if (cb) {
        const e = Object.assign(new Error("Server is not running."), {
          code: "ERR_SERVER_NOT_RUNNING",
        });
        process.nextTick(cb, e);
      }
      return this;
    }
    if (cb) this.once("close", () => cb());
    this.#watch.events = 0;
    pollerFor(this.#p).close(this.#fd);
    this.#fd = -1;
    this.#closing = true;
    this.#maybeClosed();
    return this;
  }

  #maybeClosed(): void {
    if (this.#closing && this.#connections.size === 0) {
      this.#closing = false;
      process.nextTick(() => this.emit("close"));
    }
  }

  /** Lets the process exit while the server waits for connections. */
  unref(): this {
    this.#ref = false;
    this.#watch.ref = false;
    if (this.#watch.events) pollerFor(this.#p).update(this.#watch);
    return this;
  }

  /** Undoes `unref()`. */
  ref(): this {
    this.#ref = true;
    this.#watch.ref = true;
    if (this.#watch.events) pollerFor(this.#p).update(this.#watch);
    return this;
  }

  /** `close()` for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#fd >= 0) await new Promise<void>((resolve) => this.close(() => resolve()));
  }
}

/**
 * Creates an {@linkcode RsocketServer}, like `net.createServer`.
 *
 * @example
 * ```ts
 * const srv = createServer({ provider: "kernel" }, (s) => s.end("hello\n"));
 * srv.listen(0, "127.0.0.1");
 * ```
 */
export function createServer(
  options?: RsocketServerOptions | ((s: RsocketSocket) => void),
  connectionListener?: (s: RsocketSocket) => void,
): RsocketServer {
  if (typeof options === "function") return new RsocketServer({}, options);
  return new RsocketServer(options ?? {}, connectionListener);
}
