/**
 * I/O-free decoder of pgoutput, PostgreSQL's built-in logical decoding output plugin, protocol
 * versions 1-4 (PostgreSQL docs, "Logical Replication Message Formats"; server side:
 * `src/backend/replication/logical/proto.c`).
 *
 * One call to {@link PgoutputDecoder.decode} turns the payload of one XLogData message (or one
 * `data` row of `pg_logical_slot_peek_binary_changes`) into one typed event. The decoder keeps the
 * two pieces of state the protocol needs: the relation (and type) cache filled by Relation `R` and
 * Type `Y` messages, and whether a streamed block (Stream Start `S` .. Stream Stop `E`) is open,
 * because inside one every data message carries the xid of the streamed transaction.
 *
 * Representation choices:
 * - LSNs are `bigint` (exact, comparable with `<`); {@link formatLsn} / {@link parseLsn} convert
 *   to and from PostgreSQL's `X/X` text.
 * - Timestamps (µs since 2000-01-01) are a `Date` plus the raw `bigint` µs beside it
 *   (`commitTime` / `commitTimeUs`), since a `Date` keeps only milliseconds.
 * - Rows are plain objects keyed by column name. Unchanged TOASTed values (`u`, not sent by the
 *   server) are the {@link UNCHANGED_TOAST} sentinel, never a made-up value. A key tuple (`K`)
 *   holds only the replica-identity columns (the server sends the others as nulls that mean
 *   "not sent", not SQL NULL).
 *
 * @module
 */
import { decodeUtf8 } from "../pg/_codec.ts";
import type { TextBytesParser } from "../pg/types.ts";

/**
 * Marks a column whose value the server did not send because it is an unchanged TOASTed value
 * (TupleData kind `u`). The real value is whatever the subscriber last saw for that row.
 */
export const UNCHANGED_TOAST: unique symbol = Symbol.for("pg-rdma.unchangedToast");
/** The type of {@link UNCHANGED_TOAST}. */
export type UnchangedToast = typeof UNCHANGED_TOAST;

/** A decoded row: column name → value (decoded by the value decoder, null, or UNCHANGED_TOAST). */
export type Row = Record<string, unknown>;

/**
 * Turns column values into JavaScript values by type OID. `text` gets the text output of the
 * type; `binary` gets its send-function output (only with the pgoutput option `binary`). The bytes
 * given to `binary` are a view into the message and valid only during the call: copy to keep.
 */
export interface ValueDecoder {
  text(oid: number, text: string): unknown;
  binary(oid: number, bytes: Uint8Array): unknown;
  /**
   * Optional: a parser that reads a text-format value of type `oid` straight from the message
   * bytes `[start, end)`, returning exactly what `text()` would, or undefined to use `text()`.
   * Asked once per column of each Relation message. It saves building a string for values that
   * do not end as one (numbers, booleans, timestamps): that string was a third of the decoding
   * time of a typical row.
   */
  textBytes?(oid: number): TextBytesParser | undefined;
}

// A text-format value parser over message bytes (see ValueDecoder.textBytes): pg/'s type.
export type { TextBytesParser };

/**
 * A copy of `bytes[start, end)` as a plain Uint8Array, also when `bytes` is a Node Buffer (whose
 * slice() is a view into the receive buffer).
 */
function copyBytes(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end));
}

/** The default {@link ValueDecoder}: text stays a string, binary becomes a copied Uint8Array. */
export const rawValues: ValueDecoder = {
  text: (_oid, text) => text,
  binary: (_oid, bytes) => copyBytes(bytes, 0, bytes.length),
};

/** Replica identity of a relation (`pg_class.relreplident`). */
export type ReplicaIdentity = "default" | "nothing" | "full" | "index";

/** One column of a {@link Relation}, as the Relation message describes it. */
export interface RelationColumn {
  name: string;
  typeOid: number;
  /** `atttypmod`, -1 when the type has none. */
  typeMod: number;
  /** Part of the replica identity (flag bit 1). */
  key: boolean;
}

/** A published table as described by the most recent Relation `R` message for its OID. */
export interface Relation {
  oid: number;
  /** Schema name (the wire's empty string for pg_catalog is expanded). */
  schema: string;
  name: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}

/** A type described by a Type `Y` message (sent for non-built-in column types). */
export interface TypeInfo {
  oid: number;
  schema: string;
  name: string;
}

/** Begin `B`. */
export interface BeginEvent {
  type: "begin";
  /** LSN of the commit record (the transaction's final LSN). */
  finalLsn: bigint;
  commitTime: Date;
  commitTimeUs: bigint;
  xid: number;
}
/** Commit `C`. Confirm `endLsn` once the transaction is durable on your side. */
export interface CommitEvent {
  type: "commit";
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: Date;
  commitTimeUs: bigint;
}
/** Origin `O`: the transaction was replayed from another node's replication origin. */
export interface OriginEvent {
  type: "origin";
  originLsn: bigint;
  name: string;
}
/** Relation `R`; the decoder has already cached it. `xid` is set only inside a streamed block. */
export interface RelationEvent {
  type: "relation";
  xid: number | undefined;
  relation: Relation;
}
/** Type `Y`. */
export interface TypeEvent {
  type: "type";
  xid: number | undefined;
  oid: number;
  schema: string;
  name: string;
}
/** Insert `I`. */
export interface InsertEvent {
  type: "insert";
  xid: number | undefined;
  relation: Relation;
  new: Row;
}
/**
 * Update `U`. `key` (old replica-identity columns, `K`) is present when the key changed under
 * REPLICA IDENTITY DEFAULT / USING INDEX; `old` (the whole old row, `O`) under REPLICA IDENTITY
 * FULL. Neither is present when the key did not change.
 */
export interface UpdateEvent {
  type: "update";
  xid: number | undefined;
  relation: Relation;
  key: Row | undefined;
  old: Row | undefined;
  new: Row;
}
/** Delete `D`: exactly one of `key` (`K`) and `old` (`O`, REPLICA IDENTITY FULL) is set. */
export interface DeleteEvent {
  type: "delete";
  xid: number | undefined;
  relation: Relation;
  key: Row | undefined;
  old: Row | undefined;
}
/** Truncate `T`. */
export interface TruncateEvent {
  type: "truncate";
  xid: number | undefined;
  cascade: boolean;
  restartIdentity: boolean;
  relations: Relation[];
}
/** Message `M` (`pg_logical_emit_message`, sent with the pgoutput option `messages`). */
export interface MessageEvent {
  type: "message";
  xid: number | undefined;
  transactional: boolean;
  lsn: bigint;
  prefix: string;
  content: Uint8Array;
}
/** Stream Start `S` (v2+). */
export interface StreamStartEvent {
  type: "streamStart";
  xid: number;
  firstSegment: boolean;
}
/** Stream Stop `E` (v2+). */
export interface StreamStopEvent {
  type: "streamStop";
}
/** Stream Commit `c` (v2+). */
export interface StreamCommitEvent {
  type: "streamCommit";
  xid: number;
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: Date;
  commitTimeUs: bigint;
}
/**
 * Stream Abort `A` (v2+). `subxid` equals `xid` when the whole transaction aborted. `abortLsn` and
 * `abortTime` are sent only with proto_version 4 and streaming = parallel.
 */
export interface StreamAbortEvent {
  type: "streamAbort";
  xid: number;
  subxid: number;
  abortLsn: bigint | undefined;
  abortTime: Date | undefined;
  abortTimeUs: bigint | undefined;
}
/** Begin Prepare `b` (v3+, two_phase). */
export interface BeginPrepareEvent {
  type: "beginPrepare";
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: Date;
  prepareTimeUs: bigint;
  xid: number;
  gid: string;
}
/** Prepare `P` (v3+). */
export interface PrepareEvent {
  type: "prepare";
  flags: number;
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: Date;
  prepareTimeUs: bigint;
  xid: number;
  gid: string;
}
/** Stream Prepare `p` (v3+): Prepare of a streamed transaction (same fields). */
export interface StreamPrepareEvent {
  type: "streamPrepare";
  flags: number;
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: Date;
  prepareTimeUs: bigint;
  xid: number;
  gid: string;
}
/** Commit Prepared `K` (v3+). */
export interface CommitPreparedEvent {
  type: "commitPrepared";
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: Date;
  commitTimeUs: bigint;
  xid: number;
  gid: string;
}
/** Rollback Prepared `r` (v3+). */
export interface RollbackPreparedEvent {
  type: "rollbackPrepared";
  flags: number;
  prepareEndLsn: bigint;
  rollbackEndLsn: bigint;
  prepareTime: Date;
  prepareTimeUs: bigint;
  rollbackTime: Date;
  rollbackTimeUs: bigint;
  xid: number;
  gid: string;
}

/** Every event the decoder yields, discriminated by `type`. */
export type PgoutputEvent =
  | BeginEvent
  | CommitEvent
  | OriginEvent
  | RelationEvent
  | TypeEvent
  | InsertEvent
  | UpdateEvent
  | DeleteEvent
  | TruncateEvent
  | MessageEvent
  | StreamStartEvent
  | StreamStopEvent
  | StreamCommitEvent
  | StreamAbortEvent
  | BeginPrepareEvent
  | PrepareEvent
  | StreamPrepareEvent
  | CommitPreparedEvent
  | RollbackPreparedEvent;

/**
 * Bytes that do not form a valid message (of pgoutput, or another plugin's output): names the
 * message type and the byte offset where decoding failed.
 */
export class ReplicationDecodeError extends Error {
  /** The message type letter (pgoutput) or a plugin-specific name, e.g. "Insert (I)". */
  readonly messageType: string;
  /** Offset into the message where decoding failed. */
  readonly offset: number;
  constructor(messageType: string, offset: number, detail: string, options?: ErrorOptions) {
    super(`${messageType} message at offset ${offset}: ${detail}`, options);
    this.name = "ReplicationDecodeError";
    this.messageType = messageType;
    this.offset = offset;
  }
}

/** Options of {@link PgoutputDecoder}. */
export interface PgoutputDecoderOptions {
  /** Decodes column values; defaults to {@link rawValues}. */
  types?: ValueDecoder;
  /**
   * The proto_version the stream was started with. When given, messages that version cannot
   * carry (streaming before 2, two-phase before 3, Stream Abort with abort LSN before 4) are
   * rejected. Default: accept every version's messages.
   */
  protoVersion?: 1 | 2 | 3 | 4;
}

const LSN_HALF = 0x1_0000_0000n;
/** Milliseconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch. */
const PG_EPOCH_MS = 946_684_800_000;

/**
 * `X/X` text form of an LSN, as PostgreSQL prints it (upper-case hex, no padding).
 *
 * @example
 * ```ts
 * formatLsn(0x16B3748n); // "0/16B3748"
 * ```
 */
export function formatLsn(lsn: bigint): string {
  if (typeof lsn !== "bigint") throw new TypeError(`formatLsn(): expected a bigint, got ${typeof lsn}`);
  if (lsn < 0n || lsn >= 1n << 64n) throw new RangeError(`formatLsn(): ${lsn} is not a 64-bit LSN`);
  return `${(lsn / LSN_HALF).toString(16).toUpperCase()}/${(lsn % LSN_HALF).toString(16).toUpperCase()}`;
}

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/**
 * Parses PostgreSQL's `X/X` LSN text into a bigint.
 *
 * @example
 * ```ts
 * parseLsn("0/16B3748"); // 23803720n
 * ```
 */
export function parseLsn(text: string): bigint {
  if (typeof text !== "string") throw new TypeError(`parseLsn(): expected a string, got ${typeof text}`);
  const m = LSN_RE.exec(text);
  if (!m) throw new TypeError(`parseLsn(): ${JSON.stringify(text)} is not an LSN of the form X/X (hex)`);
  return BigInt(`0x${m[1]}`) * LSN_HALF + BigInt(`0x${m[2]}`);
}

/**
 * A PostgreSQL timestamp (µs since 2000-01-01 UTC) as a `Date` (milliseconds, rounded down).
 *
 * @example
 * ```ts
 * pgTimestampToDate(0n).toISOString(); // "2000-01-01T00:00:00.000Z"
 * ```
 */
export function pgTimestampToDate(us: bigint): Date {
  return new Date(Math.floor(Number(us) / 1000) + PG_EPOCH_MS);
}

/** Names of the message letters, for error messages. */
const NAMES: Record<number, string> = {
  0x42: "Begin (B)",
  0x43: "Commit (C)",
  0x4f: "Origin (O)",
  0x52: "Relation (R)",
  0x59: "Type (Y)",
  0x49: "Insert (I)",
  0x55: "Update (U)",
  0x44: "Delete (D)",
  0x54: "Truncate (T)",
  0x4d: "Message (M)",
  0x53: "Stream Start (S)",
  0x45: "Stream Stop (E)",
  0x63: "Stream Commit (c)",
  0x41: "Stream Abort (A)",
  0x62: "Begin Prepare (b)",
  0x50: "Prepare (P)",
  0x4b: "Commit Prepared (K)",
  0x72: "Rollback Prepared (r)",
  0x70: "Stream Prepare (p)",
};

const IDENTITY: Record<number, ReplicaIdentity> = { 0x64: "default", 0x6e: "nothing", 0x66: "full", 0x69: "index" };

/**
 * Stateful pgoutput decoder: feed it every message of one replication stream, in order.
 *
 * @example
 * ```ts
 * const decoder = new PgoutputDecoder();
 * for (const payload of xlogDataPayloads) {
 *   const event = decoder.decode(payload);
 *   if (event.type === "insert") console.log(event.relation.name, event.new);
 * }
 * ```
 */
export class PgoutputDecoder {
  #values: ValueDecoder;
  #proto: number;
  #relations = new Map<number, Relation>();
  /** Per relation (as decoded), the `textBytes` parser of each column, where the value decoder has one. */
  #parsers = new WeakMap<Relation, (TextBytesParser | undefined)[]>();
  #types = new Map<number, TypeInfo>();
  #streamXid: number | undefined = undefined;
  // Per-message cursor: kept on the instance so that decoding allocates no reader object.
  #bytes: Uint8Array = new Uint8Array(0);
  /**
   * A DataView over `#bytes`, made only when a message has 64-bit fields (Begin, Commit, ...):
   * row messages read their 16- and 32-bit fields from the bytes. Asking a receive chunk for its
   * `.buffer` is not free on JavaScriptCore (a small typed array gets its ArrayBuffer made, and
   * its bytes moved, on first access): per chunk of 3-4 messages that was as much as decoding a row.
   */
  #view: DataView | undefined = undefined;
  /** Where the message starts in `#bytes` (#pos and #end are absolute; errors report relative offsets). */
  #start = 0;
  #pos = 0;
  #end = 0;
  #kind = 0;

  constructor(options: PgoutputDecoderOptions = {}) {
    if (options === null || typeof options !== "object") throw new TypeError("PgoutputDecoder: options must be an object");
    const { types = rawValues, protoVersion } = options;
    if (typeof types?.text !== "function" || typeof types?.binary !== "function") {
      throw new TypeError("PgoutputDecoder: options.types needs text() and binary() functions");
    }
    if (types.textBytes !== undefined && typeof types.textBytes !== "function") {
      throw new TypeError("PgoutputDecoder: options.types.textBytes must be a function when given");
    }
    if (protoVersion !== undefined && ![1, 2, 3, 4].includes(protoVersion)) {
      throw new RangeError(`PgoutputDecoder: protoVersion must be 1, 2, 3 or 4, got ${protoVersion}`);
    }
    this.#values = types;
    this.#proto = protoVersion ?? 4;
  }

  /** Relations seen so far, by OID (the most recent Relation message for each). */
  get relations(): ReadonlyMap<number, Relation> {
    return this.#relations;
  }

  /** Types seen so far (Type messages), by OID. */
  get typeInfo(): ReadonlyMap<number, TypeInfo> {
    return this.#types;
  }

  /** The xid of the open streamed block, or undefined outside Stream Start .. Stream Stop. */
  get streamingXid(): number | undefined {
    return this.#streamXid;
  }

  /**
   * Decodes one pgoutput message: `message[start, end)` (default: all of it), so that a caller
   * holding a whole XLogData frame need not make a view of its payload first. Throws
   * {@link ReplicationDecodeError} (offsets relative to `start`) for malformed or truncated input;
   * the decoder's state is then unchanged except for what earlier messages set.
   */
  decode(message: Uint8Array, start = 0, end: number = message?.length): PgoutputEvent {
    if (!(message instanceof Uint8Array)) throw new TypeError("PgoutputDecoder.decode(): expected a Uint8Array");
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= message.length)) {
      throw new RangeError(`PgoutputDecoder.decode(): [${start}, ${end}) is not a range of the ${message.length}-byte message`);
    }
    if (message !== this.#bytes) {
      this.#bytes = message;
      this.#view = undefined;
    }
    this.#start = start;
    this.#pos = start + 1;
    this.#end = end;
    if (end === start) throw new ReplicationDecodeError("pgoutput", 0, "empty message");
    const kind = this.#kind = message[start];
    let ev: PgoutputEvent;
    try {
      ev = this.#dispatch(kind);
    } catch (e) {
      if (e instanceof ReplicationDecodeError) throw e;
      throw new ReplicationDecodeError(this.#name(), this.#pos - start, e instanceof Error ? e.message : String(e), { cause: e });
    }
    if (this.#pos !== this.#end) this.#fail(`${this.#end - this.#pos} unexpected trailing bytes`);
    // State changes only once the whole message proved valid.
    switch (ev.type) {
      case "relation":
        this.#relations.set(ev.relation.oid, ev.relation);
        if (this.#values.textBytes) this.#parsers.set(ev.relation, ev.relation.columns.map((c) => this.#values.textBytes!(c.typeOid)));
        break;
      case "type":
        this.#types.set(ev.oid, { oid: ev.oid, schema: ev.schema, name: ev.name });
        break;
      case "streamStart":
        this.#streamXid = ev.xid;
        break;
      case "streamStop":
        this.#streamXid = undefined;
    }
    return ev;
  }

  #dispatch(kind: number): PgoutputEvent {
    switch (kind) {
      case 0x42: { // B: Int64 final_lsn, Int64 commit_ts, Int32 xid
        const finalLsn = this.#u64();
        const us = this.#i64();
        return { type: "begin", finalLsn, commitTime: pgTimestampToDate(us), commitTimeUs: us, xid: this.#u32() };
      }
      case 0x43: { // C: Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 commit_ts
        const flags = this.#u8();
        const commitLsn = this.#u64();
        const endLsn = this.#u64();
        const us = this.#i64();
        return { type: "commit", flags, commitLsn, endLsn, commitTime: pgTimestampToDate(us), commitTimeUs: us };
      }
      case 0x4f: { // O: Int64 origin_lsn, String name
        const originLsn = this.#u64();
        return { type: "origin", originLsn, name: this.#str() };
      }
      case 0x52: { // R: [xid] Int32 oid, String nsp, String name, Int8 replident, Int16 natts, atts
        const xid = this.#xid();
        const oid = this.#u32();
        const schema = this.#str() || "pg_catalog";
        const name = this.#str();
        const identAt = this.#pos;
        const replicaIdentity = IDENTITY[this.#u8()];
        if (replicaIdentity === undefined) this.#fail(`unknown replica identity ${this.#bytes[identAt]}`, identAt);
        const n = this.#u16();
        const columns: RelationColumn[] = new Array(n);
        for (let i = 0; i < n; i++) {
          const flags = this.#u8();
          const cname = this.#str();
          const typeOid = this.#u32();
          columns[i] = { name: cname, typeOid, typeMod: this.#i32(), key: (flags & 1) !== 0 };
        }
        const relation: Relation = { oid, schema, name, replicaIdentity, columns };
        return { type: "relation", xid, relation };
      }
      case 0x59: { // Y: [xid] Int32 oid, String nsp, String name
        const xid = this.#xid();
        const oid = this.#u32();
        const schema = this.#str() || "pg_catalog";
        const name = this.#str();
        return { type: "type", xid, oid, schema, name };
      }
      case 0x49: { // I: [xid] Int32 oid, 'N' TupleData
        const xid = this.#xid();
        const relation = this.#relation();
        this.#expect(0x4e, "'N' (new tuple)");
        return { type: "insert", xid, relation, new: this.#tuple(relation, false) };
      }
      case 0x55: { // U: [xid] Int32 oid, ['K'|'O' TupleData], 'N' TupleData
        const xid = this.#xid();
        const relation = this.#relation();
        let key: Row | undefined;
        let old: Row | undefined;
        const at = this.#pos;
        const t = this.#u8();
        if (t === 0x4b) key = this.#tuple(relation, true);
        else if (t === 0x4f) old = this.#tuple(relation, false);
        else if (t !== 0x4e) this.#fail(`expected 'K', 'O' or 'N', got ${charName(t)}`, at);
        if (t !== 0x4e) this.#expect(0x4e, "'N' (new tuple)");
        return { type: "update", xid, relation, key, old, new: this.#tuple(relation, false) };
      }
      case 0x44: { // D: [xid] Int32 oid, 'K'|'O' TupleData
        const xid = this.#xid();
        const relation = this.#relation();
        const at = this.#pos;
        const t = this.#u8();
        if (t === 0x4b) return { type: "delete", xid, relation, key: this.#tuple(relation, true), old: undefined };
        if (t === 0x4f) return { type: "delete", xid, relation, key: undefined, old: this.#tuple(relation, false) };
        return this.#fail(`expected 'K' or 'O', got ${charName(t)}`, at);
      }
      case 0x54: { // T: [xid] Int32 nrels, Int8 flags, nrels × Int32 oid
        const xid = this.#xid();
        const n = this.#u32();
        const flags = this.#u8();
        this.#need(n * 4);
        const relations: Relation[] = new Array(n);
        for (let i = 0; i < n; i++) relations[i] = this.#relation();
        return { type: "truncate", xid, cascade: (flags & 1) !== 0, restartIdentity: (flags & 2) !== 0, relations };
      }
      case 0x4d: { // M: [xid] Int8 flags, Int64 lsn, String prefix, Int32 length, bytes
        const xid = this.#xid();
        const flags = this.#u8();
        const lsn = this.#u64();
        const prefix = this.#str();
        const len = this.#u32();
        this.#need(len);
        const content = copyBytes(this.#bytes, this.#pos, this.#pos += len);
        return { type: "message", xid, transactional: (flags & 1) !== 0, lsn, prefix, content };
      }
      case 0x53: { // S: Int32 xid, Int8 first_segment
        this.#since(2);
        if (this.#streamXid !== undefined) this.#fail(`stream of xid ${this.#streamXid} is still open`, this.#start);
        const xid = this.#u32();
        const firstSegment = this.#u8() === 1;
        return { type: "streamStart", xid, firstSegment };
      }
      case 0x45: // E: no fields
        this.#since(2);
        if (this.#streamXid === undefined) this.#fail("no stream is open", this.#start);
        return { type: "streamStop" };
      case 0x63: { // c: Int32 xid, Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 commit_ts
        this.#since(2);
        const xid = this.#u32();
        const flags = this.#u8();
        const commitLsn = this.#u64();
        const endLsn = this.#u64();
        const us = this.#i64();
        return { type: "streamCommit", xid, flags, commitLsn, endLsn, commitTime: pgTimestampToDate(us), commitTimeUs: us };
      }
      case 0x41: { // A: Int32 xid, Int32 subxid, [Int64 abort_lsn, Int64 abort_ts] (v4, parallel)
        this.#since(2);
        const xid = this.#u32();
        const subxid = this.#u32();
        // The abort info is present or not depending on the streaming option, which the bytes do
        // not repeat: the message length tells.
        if (this.#end - this.#pos === 0) {
          return { type: "streamAbort", xid, subxid, abortLsn: undefined, abortTime: undefined, abortTimeUs: undefined };
        }
        if (this.#proto < 4) this.#fail("abort LSN and time need proto_version 4", this.#pos);
        const abortLsn = this.#u64();
        const us = this.#i64();
        return { type: "streamAbort", xid, subxid, abortLsn, abortTime: pgTimestampToDate(us), abortTimeUs: us };
      }
      case 0x62: { // b: Int64 prepare_lsn, Int64 end_lsn, Int64 prepare_ts, Int32 xid, String gid
        this.#since(3);
        const prepareLsn = this.#u64();
        const endLsn = this.#u64();
        const us = this.#i64();
        const xid = this.#u32();
        const gid = this.#str();
        return { type: "beginPrepare", prepareLsn, endLsn, prepareTime: pgTimestampToDate(us), prepareTimeUs: us, xid, gid };
      }
      case 0x50: // P: Int8 flags, Int64 prepare_lsn, Int64 end_lsn, Int64 prepare_ts, Int32 xid, String gid
      case 0x70: { // p: the same, for a streamed transaction
        this.#since(3);
        const flags = this.#u8();
        const prepareLsn = this.#u64();
        const endLsn = this.#u64();
        const us = this.#i64();
        const xid = this.#u32();
        const gid = this.#str();
        return {
          type: kind === 0x50 ? "prepare" as const : "streamPrepare" as const,
          flags,
          prepareLsn,
          endLsn,
          prepareTime: pgTimestampToDate(us),
          prepareTimeUs: us,
          xid,
          gid,
        };
      }
      case 0x4b: { // K: Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 commit_ts, Int32 xid, String gid
        this.#since(3);
        const flags = this.#u8();
        const commitLsn = this.#u64();
        const endLsn = this.#u64();
        const us = this.#i64();
        const xid = this.#u32();
        const gid = this.#str();
        return { type: "commitPrepared", flags, commitLsn, endLsn, commitTime: pgTimestampToDate(us), commitTimeUs: us, xid, gid };
      }
      case 0x72: { // r: Int8 flags, Int64 prepare_end_lsn, Int64 rollback_end_lsn, Int64 prepare_ts, Int64 rollback_ts, Int32 xid, String gid
        this.#since(3);
        const flags = this.#u8();
        const prepareEndLsn = this.#u64();
        const rollbackEndLsn = this.#u64();
        const pus = this.#i64();
        const rus = this.#i64();
        const xid = this.#u32();
        const gid = this.#str();
        return {
          type: "rollbackPrepared",
          flags,
          prepareEndLsn,
          rollbackEndLsn,
          prepareTime: pgTimestampToDate(pus),
          prepareTimeUs: pus,
          rollbackTime: pgTimestampToDate(rus),
          rollbackTimeUs: rus,
          xid,
          gid,
        };
      }
      default:
        throw new ReplicationDecodeError("pgoutput", 0, `unknown message type ${charName(kind)}`);
    }
  }

  /** TupleData: Int16 ncols, then per column 'n' | 'u' | 't' Int32 len bytes | 'b' Int32 len bytes. */
  #tuple(relation: Relation, keyOnly: boolean): Row {
    const at = this.#pos;
    const n = this.#u16();
    const columns = relation.columns;
    if (n !== columns.length) {
      this.#fail(`tuple has ${n} columns but relation ${relation.schema}.${relation.name} has ${columns.length}`, at);
    }
    // The per-column loop is the hot path: cursor in locals, bounds checked inline.
    const bytes = this.#bytes;
    const end = this.#end;
    const values = this.#values;
    const parsers = this.#parsers.get(relation);
    const row: Row = {};
    let pos = this.#pos;
    for (let i = 0; i < n; i++) {
      const col = columns[i];
      if (pos >= end) this.#truncated(pos, 1);
      const kind = bytes[pos++];
      let value: unknown;
      if (kind === 0x74 || kind === 0x62) { // t: text, b: binary; Int32 length, bytes
        if (end - pos < 4) this.#truncated(pos, 4);
        const len = ((bytes[pos] << 24) | (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]) >>> 0;
        pos += 4;
        if (end - pos < len) this.#truncated(pos, len);
        const start = pos;
        pos += len;
        const parse = kind === 0x74 ? parsers?.[i] : undefined;
        value = parse !== undefined
          ? parse(bytes, start, pos)
          : kind === 0x74
          ? values.text(col.typeOid, decodeUtf8(bytes, start, pos))
          : values.binary(col.typeOid, new Uint8Array(bytes.buffer, bytes.byteOffset + start, len));
      } else if (kind === 0x6e) { // n
        // In a key tuple, nulls in non-key columns only mean "not part of the key".
        if (keyOnly && !col.key) continue;
        value = null;
      } else if (kind === 0x75) { // u
        value = UNCHANGED_TOAST;
      } else {
        this.#fail(`column ${col.name}: unknown TupleData kind ${charName(kind)}`, pos - 1);
      }
      if (col.name === "__proto__") Object.defineProperty(row, col.name, { value, enumerable: true, writable: true, configurable: true });
      else row[col.name] = value;
    }
    this.#pos = pos;
    return row;
  }

  #truncated(pos: number, n: number): never {
    this.#pos = pos;
    return this.#fail(`truncated: needs ${n} more bytes, ${this.#end - pos} left`);
  }

  #relation(): Relation {
    const at = this.#pos;
    const oid = this.#u32();
    const rel = this.#relations.get(oid);
    if (rel === undefined) this.#fail(`relation ${oid} is unknown (no Relation message for it yet)`, at);
    return rel;
  }

  #xid(): number | undefined {
    return this.#streamXid === undefined ? undefined : this.#u32();
  }

  #since(version: number): void {
    if (this.#proto < version) this.#fail(`needs proto_version ${version} or later (decoder set to ${this.#proto})`, this.#start);
  }

  #expect(byte: number, what: string): void {
    const at = this.#pos;
    const got = this.#u8();
    if (got !== byte) this.#fail(`expected ${what}, got ${charName(got)}`, at);
  }

  #need(n: number): void {
    if (this.#end - this.#pos < n) this.#fail(`truncated: needs ${n} more bytes, ${this.#end - this.#pos} left`);
  }

  #u8(): number {
    this.#need(1);
    return this.#bytes[this.#pos++];
  }
  #u16(): number {
    this.#need(2);
    const b = this.#bytes;
    const p = this.#pos;
    this.#pos = p + 2;
    return (b[p] << 8) | b[p + 1];
  }
  #u32(): number {
    this.#need(4);
    const b = this.#bytes;
    const p = this.#pos;
    this.#pos = p + 4;
    return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
  }
  #i32(): number {
    this.#need(4);
    const b = this.#bytes;
    const p = this.#pos;
    this.#pos = p + 4;
    return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
  }
  #u64(): bigint {
    this.#need(8);
    const v = this.#dataView().getBigUint64(this.#pos);
    this.#pos += 8;
    return v;
  }
  #i64(): bigint {
    this.#need(8);
    const v = this.#dataView().getBigInt64(this.#pos);
    this.#pos += 8;
    return v;
  }
  #dataView(): DataView {
    const b = this.#bytes;
    return this.#view ??= new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  /** NUL-terminated string. */
  #str(): string {
    const start = this.#pos;
    const nul = this.#bytes.indexOf(0, start);
    if (nul < 0 || nul >= this.#end) this.#fail("truncated: string has no terminating NUL", start);
    this.#pos = nul + 1;
    return decodeUtf8(this.#bytes, start, nul);
  }

  #name(): string {
    return NAMES[this.#kind] ?? `pgoutput ${charName(this.#kind)}`;
  }

  #fail(detail: string, offset = this.#pos): never {
    throw new ReplicationDecodeError(this.#name(), offset - this.#start, detail);
  }
}

function charName(b: number): string {
  return b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}' (0x${b.toString(16)})` : `0x${b.toString(16).padStart(2, "0")}`;
}

// UTF-8 bytes → string: shared with the client's decoder (short ASCII values in one call).
export { decodeUtf8 };
