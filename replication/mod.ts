/**
 * Logical replication, I/O-free part: the pgoutput decoder (protocol versions 1-4) with its
 * relation cache, the passthrough of other plugins' output (test_decoding, wal2json), and
 * NDJSON / MessagePack encoders of the decoded events for pipelines.
 *
 * LSNs are `bigint` ({@link formatLsn} / {@link parseLsn} convert to and from `X/X`);
 * timestamps are a `Date` plus the raw µs since 2000-01-01 as `bigint`; unchanged TOASTed
 * values are {@link UNCHANGED_TOAST}.
 *
 * @example
 * ```ts
 * import { PgoutputDecoder, NdjsonEncoder } from "pg-rdma";
 * const decoder = new PgoutputDecoder();
 * const ndjson = new NdjsonEncoder();
 * for (const payload of payloads) out.write(ndjson.encode(decoder.decode(payload)));
 * ```
 *
 * @example Exhaustive handling of the events with ts-pattern
 * ```ts
 * import { match, P } from "ts-pattern";
 * const line = match(decoder.decode(payload))
 *   .with({ type: P.union("insert", "update") }, (e) => `upsert ${e.relation.name} ${JSON.stringify(e.new)}`)
 *   .with({ type: "delete" }, (e) => `delete ${e.relation.name} ${JSON.stringify(e.key ?? e.old)}`)
 *   .with({ type: P.union("commit", "streamCommit", "commitPrepared") }, (e) => `confirm ${formatLsn(e.endLsn)}`)
 *   .otherwise(() => undefined);
 * ```
 *
 * @module
 */
export {
  type BeginEvent,
  type BeginPrepareEvent,
  type CommitEvent,
  type CommitPreparedEvent,
  type DeleteEvent,
  formatLsn,
  type InsertEvent,
  type MessageEvent,
  type OriginEvent,
  parseLsn,
  PgoutputDecoder,
  type PgoutputDecoderOptions,
  type PgoutputEvent,
  pgTimestampToDate,
  type PrepareEvent,
  rawValues,
  type Relation,
  type RelationColumn,
  type RelationEvent,
  type ReplicaIdentity,
  ReplicationDecodeError,
  type RollbackPreparedEvent,
  type Row,
  type StreamAbortEvent,
  type StreamCommitEvent,
  type StreamPrepareEvent,
  type StreamStartEvent,
  type StreamStopEvent,
  type TextBytesParser,
  type TruncateEvent,
  type TypeEvent,
  type TypeInfo,
  UNCHANGED_TOAST,
  type UnchangedToast,
  type UpdateEvent,
  type ValueDecoder,
} from "./_pgoutput.ts";
export {
  parseTestDecoding,
  parseWal2json,
  parseWal2jsonChange,
  type TestDecodingEvent,
  type TestDecodingTable,
  type TestDecodingTuple,
  type TestDecodingValue,
  type Wal2jsonEvent,
} from "./_plugins.ts";
export {
  encodeEvents,
  encodeStream,
  type EventEncoder,
  type EventFormat,
  EventReviver,
  fromBase64,
  MsgpackEncoder,
  type MsgpackOptions,
  NdjsonEncoder,
  toBase64,
} from "./encode.ts";
export {
  decodeReplicationMessage,
  encodeHotStandbyFeedback,
  encodeStandbyStatus,
  type HotStandbyFeedback,
  type Keepalive,
  pgNow,
  type StandbyStatus,
  type XLogData,
} from "./_protocol.ts";
export {
  checkSlotName,
  createReplicationSlot,
  type CreatedSlot,
  type CreateSlotOptions,
  dropReplicationSlot,
  identifySystem,
  listReplicationSlots,
  readReplicationSlot,
  ReplicationError,
  serverVersionNum,
  type SlotInfo,
  type SlotPosition,
  type SystemIdentity,
  timelineHistory,
} from "./_slots.ts";
export {
  type BatchKind,
  logicalReplication,
  type LogicalReplicationOptions,
  LogicalReplicationStream,
  pgValues,
  type ReplicationBatch,
  type ReplicationStats,
  snapshotThenStream,
  type SnapshotRows,
  type SnapshotThenStreamOptions,
} from "./logical.ts";
export {
  findStreamingStart,
  type PhysicalStreamOptions,
  streamWal,
  type StreamWalOptions,
  type WalChunk,
  WalReceiver,
  type WalCompressionMethod,
  type WalReceiverOptions,
  type WalReceiverResult,
  WalStream,
} from "./wal_receiver.ts";
export { type BackupCompressionMethod, baseBackup, type BaseBackupOptions, type BaseBackupResult, recoveryConfLines } from "./base_backup.ts";
export { historyFileName, parseSegmentFileName, type SegmentFile, segmentName, segmentNameOf } from "./_wal_segment.ts";
export { TarError } from "./_tar.ts";
