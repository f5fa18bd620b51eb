/**
 * The transport layer: sockets over rsockets that behave like the runtime's own.
 *
 * - {@linkcode RsocketSocket} / {@linkcode createConnection}: a `net.Socket`-compatible Duplex
 *   (node-postgres `stream`, postgres.js `socket`, `tls.connect({ socket })` take it).
 * - {@linkcode createServer}: a `net.Server`-like listener accepting the same sockets.
 * - {@linkcode connect}: a WinterTC / Cloudflare-style Web-streams socket.
 * - {@linkcode selectTransport}, {@linkcode probeRsocket}, {@linkcode rsocketFactory}: the
 *   `with_rsocket` policy and a socket factory for the pg/ client.
 *
 * Every socket of a provider parks with one poller (`rpoll` on a helper thread over all parked
 * descriptors plus a wake-up eventfd); {@linkcode pollerFor} exposes it for diagnostics.
 *
 * @example
 * ```ts
 * import { createConnection } from "./transport/mod.ts";
 * const s = createConnection({ host: "10.0.0.2", port: 5432, provider: "rdma" });
 * s.on("connect", () => s.end());
 * ```
 *
 * @module
 */
export {
  type AddressInfo,
  checkRsocketOptions,
  createConnection,
  type RsocketConnectOptions,
  type RsocketOptions,
  RsocketSocket,
  type RsocketSocketOptions,
  TURN_BYTES,
} from "./socket.ts";
export {
  createServer,
  type RsocketListenOptions,
  RsocketServer,
  type RsocketServerOptions,
} from "./server.ts";
export { connect, type SocketAddress, type WebConnectOptions } from "./web.ts";
export {
  type SocketInfo,
  toWebSocket,
  type WebSocketOptions,
  type WebSocketStream,
} from "./_web.ts";
export {
  IDLE_TICK_MS,
  Poller,
  pollerFor,
  type PollerStats,
  pollerStats,
  type Watch,
} from "./_poller.ts";
export {
  parseWithRsocket,
  probeRsocket,
  rsocketFactory,
  type RsocketProbe,
  selectTransport,
  type SocketFactory,
  type SocketTarget,
  type TransportDecision,
  type WithRsocket,
} from "./select.ts";
