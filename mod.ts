/**
 * pg-rdma: PostgreSQL over RDMA (librdmacm rsockets) for Deno, Node and Bun, with a clean
 * fallback to TCP.
 *
 * @module
 */
export { VERSION } from "./version.ts";
export { openProvider, PollSet, type ProviderKind, RsocketError, RsocketProvider, type SockAddr, type WakeUp, WOULD_BLOCK } from "./ffi/mod.ts";
export {
  encodeEvents,
  encodeStream,
  EventReviver,
  formatLsn,
  MsgpackEncoder,
  NdjsonEncoder,
  parseLsn,
  parseTestDecoding,
  parseWal2json,
  PgoutputDecoder,
  type PgoutputEvent,
  ReplicationDecodeError,
  UNCHANGED_TOAST,
} from "./replication/mod.ts";
export { parseWithRsocket, selectTransport, type TransportDecision } from "./transport/select.ts";
export { type SocketInfo, toWebSocket, type WebSocketStream } from "./transport/_web.ts";
