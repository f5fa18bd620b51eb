/**
 * `pg-rdma tunnel`: a byte-transparent relay between TCP and rsockets, so programs that only
 * speak TCP (psql, pg_dump, JDBC, a standby's walreceiver) reach PostgreSQL over RDMA.
 *
 * ```
 * client side:  pg-rdma tunnel --listen tcp://127.0.0.1:6432 --connect rdma://db-host:5432
 * server side:  pg-rdma tunnel --listen rdma://0.0.0.0:5432 --connect tcp://127.0.0.1:5432
 * ```
 *
 * Each accepted connection gets its own upstream connection; bytes flow both ways with
 * backpressure (a side whose `write()` returns false pauses the other until `drain`), half-close
 * is kept (one side's end ends the other's writing side only), and an error on either side
 * closes both. Log lines on stderr follow PostgreSQL's `log_connections` /
 * `log_disconnections` wording (`connection received: host=... port=...`, with
 * `with_rsocket=true` for an rsocket client; `disconnection: session time: 0:00:01.234 ...`);
 * `-q` silences them. SIGINT / SIGTERM stop accepting, give open connections `--grace` seconds to
 * finish, then close what is left.
 *
 * @module
 */
import { createConnection as netConnect, createServer as netServer, isIP } from "node:net";
import type { Duplex } from "node:stream";
import { UsageError } from "./_args.ts";
import type { CommandContext } from "./_commands.ts";

/** One end of the tunnel: `tcp://host:port` or `rdma://host:port`. */
export interface Endpoint {
  scheme: "tcp" | "rdma";
  host: string;
  port: number;
}

/**
 * Parses `tcp://HOST:PORT`, `rdma://HOST:PORT`, `HOST:PORT` or `PORT` (scheme `tcp`, host
 * `defaultHost`); IPv6 addresses in brackets. Throws a TypeError naming what is wrong.
 *
 * @example
 * ```ts
 * parseEndpoint("rdma://[fe80::1]:5432", "127.0.0.1"); // { scheme: "rdma", host: "fe80::1", port: 5432 }
 * ```
 */
export function parseEndpoint(text: string, defaultHost: string): Endpoint {
  if (typeof text !== "string") throw new TypeError("endpoint must be a string");
  const m = /^(?:([a-z]+):\/\/)?(?:\[([^\]]+)\]|([^:/\[\]]*))?(?::(\d+))?$/i.exec(text.trim());
  const bare = /^\d+$/.test(text.trim());
  if (!m) throw new TypeError(`invalid endpoint "${text}" (expected tcp://HOST:PORT or rdma://HOST:PORT)`);
  const scheme = (m[1] ?? "tcp").toLowerCase();
  if (scheme !== "tcp" && scheme !== "rdma") {
    throw new TypeError(`invalid endpoint "${text}": unknown scheme "${m[1]}" (expected tcp or rdma)`);
  }
  const host = bare ? defaultHost : (m[2] ?? m[3] ?? "") || defaultHost;
  const portText = bare ? text.trim() : m[4];
  if (portText === undefined) throw new TypeError(`invalid endpoint "${text}": no port`);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`invalid endpoint "${text}": port must be 0-65535`);
  }
  if (m[2] !== undefined && isIP(m[2]) !== 6) {
    throw new TypeError(`invalid endpoint "${text}": "${m[2]}" is not an IPv6 address`);
  }
  return { scheme, host, port };
}

const show = (e: Endpoint) => `${e.scheme}://${isIP(e.host) === 6 ? `[${e.host}]` : e.host}:${e.port}`;

/** `H:MM:SS.mmm`, as PostgreSQL's `disconnection: session time:`. */
export function sessionTime(ms: number): string {
  const t = Math.max(0, Math.round(ms));
  const h = Math.floor(t / 3_600_000);
  const m = Math.floor((t % 3_600_000) / 60_000);
  const s = Math.floor((t % 60_000) / 1000);
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}.${String(t % 1000).padStart(3, "0")}`;
}

/** What a relay needs from a socket: a Duplex with net.Socket's address getters. */
type Sock = Duplex & {
  remoteAddress?: string;
  remotePort?: number;
  setNoDelay?(on?: boolean): unknown;
};

interface ServerLike {
  listen(options: { host: string; port: number }, cb: () => void): unknown;
  close(cb?: (err?: Error) => void): unknown;
  address(): unknown;
  on(event: "connection", cb: (s: Sock) => void): unknown;
  on(event: "error", cb: (e: Error) => void): unknown;
  maxConnections: number;
}

/**
 * Copies `from` into `to` with backpressure and half-close: `to.write()` returning false pauses
 * `from` until `to` drains; `from`'s end ends `to`'s writing side.
 */
function pump(from: Sock, to: Sock): void {
  from.on("data", (chunk: Uint8Array) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on("drain", () => from.resume());
  from.on("end", () => to.end());
}

function positive(ctx: CommandContext, name: string, fallback: number, integer: boolean): number {
  const raw = ctx.args.values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(n >= 0) || (integer && !Number.isInteger(n)) || String(raw).trim() === "") {
    throw new UsageError(`invalid value "${String(raw)}" for option --${name}`, { command: "tunnel" });
  }
  return n;
}

/** Runs `pg-rdma tunnel` until SIGINT / SIGTERM; resolves to the exit status. */
export async function tunnelCommand(ctx: CommandContext): Promise<number> {
  const v = ctx.args.values;
  let listen: Endpoint;
  let upstream: Endpoint;
  try {
    listen = parseEndpoint(String(v.listen), "127.0.0.1");
    upstream = parseEndpoint(String(v.connect), "127.0.0.1");
  } catch (e) {
    throw new UsageError((e as Error).message, { command: "tunnel" });
  }
  if (upstream.port === 0) {
    throw new UsageError(`--connect needs a port other than 0 ("${v.connect}")`, { command: "tunnel" });
  }
  const provider = (v.provider as "rdma" | "kernel" | undefined) ?? "rdma";
  const maxConnections = positive(ctx, "max-connections", 1000, true);
  const graceMs = positive(ctx, "grace", 10, false) * 1000;
  const transport = listen.scheme === "rdma" || upstream.scheme === "rdma"
    ? await import("../transport/mod.ts")
    : undefined;

  if (transport && upstream.scheme === "rdma" && provider === "rdma") {
    // Fail now rather than on every client: without a device no upstream connection can work.
    const probe = transport.probeRsocket();
    if (!probe.ok) throw new Error(`cannot reach ${show(upstream)}: ${probe.error.message}`, { cause: probe.error });
  }
  const open = new Set<{ a: Sock; b: Sock }>();
  let closedAll: (() => void) | undefined;

  const dial = (): Sock => {
    if (upstream.scheme === "tcp") {
      return netConnect({ host: upstream.host, port: upstream.port, allowHalfOpen: true }) as Sock;
    }
    return transport!.createConnection({
      host: upstream.host,
      port: upstream.port,
      provider,
      allowHalfOpen: true,
      noDelay: true,
    }) as unknown as Sock;
  };

  const onConnection = (a: Sock) => {
    const started = performance.now();
    const who = `host=${a.remoteAddress ?? "?"} port=${a.remotePort ?? "?"}`;
    ctx.info(`connection received: ${who}${listen.scheme === "rdma" ? " with_rsocket=true" : ""}`);
    // Hold the client's bytes until the upstream connection is up.
    a.pause();
    a.setNoDelay?.(true);
    let b: Sock;
    try {
      b = dial();
    } catch (e) {
      ctx.info(`could not connect to ${show(upstream)}: ${(e as Error).message}`);
      a.destroy();
      return;
    }
    const pair = { a, b };
    open.add(pair);
    let up = false;
    let closed = 0;
    const onClose = () => {
      if (++closed < 2) return;
      open.delete(pair);
      ctx.info(`disconnection: session time: ${sessionTime(performance.now() - started)} ${who}`);
      // For benchmarks: the poller's counters so far (parks and wake-ups per message).
      if (transport && ctx.verbose) {
        ctx.debug(`poller stats: ${JSON.stringify(transport.pollerStats(provider))}`);
      }
      if (open.size === 0) closedAll?.();
    };
    const fail = (side: string) => (e: Error) => {
      if (side === "upstream" && !up) {
        ctx.info(`could not connect to ${show(upstream)}: ${e.message}`);
      } else ctx.debug(`${side} ${who}: ${e.message}`);
      a.destroy();
      b.destroy();
    };
    a.on("error", fail("client"));
    b.on("error", fail("upstream"));
    a.on("close", onClose);
    b.on("close", onClose);
    // Once both directions have ended and flushed, each socket closes itself (autoDestroy):
    // destroying them here could drop bytes still queued for the other side.
    b.once("connect", () => {
      up = true;
      b.setNoDelay?.(true);
      pump(a, b);
      pump(b, a);
      a.resume();
    });
  };

  let server: ServerLike;
  if (listen.scheme === "tcp") {
    server = netServer({ allowHalfOpen: true, pauseOnConnect: true }) as unknown as ServerLike;
  } else {
    server = transport!.createServer({
      provider,
      allowHalfOpen: true,
      pauseOnConnect: true,
    }) as unknown as ServerLike;
  }
  server.maxConnections = maxConnections;
  server.on("connection", onConnection);

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(new Error(`could not listen on ${show(listen)}: ${e.message}`, { cause: e }));
    server.on("error", onError);
    server.listen({ host: listen.host, port: listen.port }, () => resolve());
  });
  server.on("error", (e: Error) => ctx.info(`accept failed: ${e.message}`));
  const bound = server.address() as { port: number } | null;
  const actual = { ...listen, port: bound?.port ?? listen.port };
  ctx.info(
    `listening on ${show(actual)}, forwarding to ${show(upstream)}` +
      (transport ? ` (rsockets provider ${provider})` : ""),
  );

  // Run until told to stop.
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  server.close();
  if (open.size > 0) {
    ctx.info(`shutting down: waiting up to ${graceMs / 1000} s for ${open.size} open connection(s)`);
    const allClosed = new Promise<void>((r) => (closedAll = r));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
    await Promise.race([allClosed, late]);
    clearTimeout(timer);
    if (open.size > 0) {
      ctx.info(`closing ${open.size} connection(s) still open`);
      const left = new Promise<void>((r) => (closedAll = r));
      for (const { a, b } of open) {
        a.destroy();
        b.destroy();
      }
      await left;
    }
  }
  return 0;
}
