/**
 * `connect()` in the WinterTC / Cloudflare sockets shape over rsockets: a
 * `{ readable, writable, opened, closed, close() }` pair of Web streams with backpressure both
 * ways and BYOB reads, built by `_web.ts`'s `toWebSocket` over an {@linkcode RsocketSocket}.
 *
 * @module
 */
import { type RsocketConnectOptions, type RsocketOptions, RsocketSocket } from "./socket.ts";
import { toWebSocket, type WebSocketStream } from "./_web.ts";

/** Where to connect: `{ hostname, port }` or `"host:port"` (`"[::1]:5432"` for IPv6). */
export type SocketAddress = { hostname: string; port: number } | string;

/** Options of {@linkcode connect}. */
export interface WebConnectOptions extends RsocketOptions {
  /** Bytes the readable side queues before it stops reading from the socket. Default 256 KiB. */
  highWaterMark?: number;
  /** Keep the readable side open after `writable.close()` (always true here: half-close). */
  allowHalfOpen?: boolean;
}

function parseAddress(address: SocketAddress): { host: string; port: number } {
  if (typeof address === "string") {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
    if (!m) throw new TypeError(`invalid socket address "${address}" (expected host:port)`);
    return { host: m[1] ?? m[2], port: Number(m[3]) };
  }
  if (typeof address !== "object" || address === null || typeof address.hostname !== "string") {
    throw new TypeError('address must be { hostname, port } or "host:port"');
  }
  return { host: address.hostname, port: address.port };
}

/**
 * Opens a Web-streams socket over rsockets (provider `rdma` by default, `kernel` for TCP).
 *
 * @example
 * ```ts
 * const sock = connect({ hostname: "127.0.0.1", port: 5432 }, { provider: "kernel" });
 * const info = await sock.opened;
 * const writer = sock.writable.getWriter();
 * await writer.write(new Uint8Array([0, 0, 0, 8, 4, 210, 22, 47])); // SSLRequest
 * const { value } = await sock.readable.getReader().read();
 * await sock.close();
 * ```
 */
export function connect(address: SocketAddress, options: WebConnectOptions = {}): WebSocketStream {
  const { host, port } = parseAddress(address);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`port must be an integer 1-65535, got ${String(port)}`);
  }
  const opts: RsocketConnectOptions = { ...options, host, port, allowHalfOpen: true };
  const s = new RsocketSocket(opts);
  const ready = new Promise<RsocketSocket>((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    s.once("error", onError);
    s.connect(opts, () => {
      s.off("error", onError);
      resolve(s);
    });
  });
  return toWebSocket(ready, { highWaterMark: options.highWaterMark });
}
