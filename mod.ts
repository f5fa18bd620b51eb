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
export {
  connect,
  createConnection,
  createServer,
  parseWithRsocket,
  probeRsocket,
  type RsocketConnectOptions,
  type RsocketOptions,
  rsocketFactory,
  RsocketServer,
  type RsocketServerOptions,
  RsocketSocket,
  type RsocketSocketOptions,
  selectTransport,
  type SocketFactory,
  type SocketInfo,
  type SocketTarget,
  toWebSocket,
  type TransportDecision,
  type WebConnectOptions,
  type WebSocketStream,
} from "./transport/mod.ts";
export { logicalReplication, type LogicalReplicationOptions, type ReplicationBatch, ReplicationError, snapshotThenStream } from "./replication/mod.ts";
export {
  checkCompression,
  compress,
  COMPRESSION_EXTENSIONS,
  COMPRESSION_LEVELS,
  COMPRESSION_METHODS,
  CompressionError,
  type CompressionMethod,
  type CompressionSpec,
  compressionTransform,
  compressStream,
  decompress,
  decompressionTransform,
  decompressStream,
  detectCompression,
  parseCompression,
} from "./compress/mod.ts";
