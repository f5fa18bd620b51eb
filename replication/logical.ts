/**
 * The logical replication consumer: `START_REPLICATION SLOT s LOGICAL` with pgoutput, decoded
 * into batches of events with explicit acknowledgement, reconnection, bounded memory, and the
 * standby settings of PostgreSQL's own WAL receiver.
 *
 * - **Acknowledgement.** A position is confirmed to the server only after the caller called
 *   `ack()` on the batch that ends there (`Commit.end_lsn`, `Prepare.end_lsn`, ...), in delivery
 *   order. With nothing in flight, keepalive positions are confirmed too, so a slot whose
 *   publications see no changes does not hold WAL back. write = flush = apply = the acknowledged
 *   position, so a synchronous standby setup honours remote_write, on and remote_apply alike.
 * - **At least once.** Batches delivered but not acknowledged when the connection drops are
 *   delivered again after the reconnect; acknowledged ones never are.
 * - **Bounded memory.** A transaction is delivered as chunks of at most `maxChunkEvents` events
 *   and about `maxChunkBytes` bytes;
 *   the socket is paused while the caller works, whatever the transaction's size. With
 *   `streaming` (the default where the server supports it) large transactions arrive while they
 *   run, as `stream` batches, and may end in an abort.
 * - **Temporary slots cannot survive a reconnect**: creating one together with reconnection is
 *   refused (`createSlot: { temporary: true }` needs `retryInterval: null`), since a recreated slot
 *   would silently miss what happened in between.
 *
 * @module
 */
import { connect, type ConnectOptions } from "../pg/mod.ts";
import type { Client, CopyBoth, Row as SqlRow } from "../pg/mod.ts";
import { ConnectionError, PostgresError } from "../pg/errors.ts";
import { resolveConnInfo } from "../pg/conninfo.ts";
import { boolTextBytes, decodeBinary, decodeText, defaultTypes, intTextBytes, OID, timestampTextBytes, TypeRegistry } from "../pg/types.ts";
import {
  type BeginEvent,
  type BeginPrepareEvent,
  formatLsn,
  PgoutputDecoder,
  type PgoutputEvent,
  type TextBytesParser,
  type ValueDecoder,
} from "./_pgoutput.ts";
import { decodeReplicationMessage, encodeStandbyStatus } from "./_protocol.ts";
import { parseTestDecoding, parseWal2jsonChange, type TestDecodingEvent, type Wal2jsonEvent } from "./_plugins.ts";
import { checkSlotName, createReplicationSlot, quoteIdent, quoteLiteral, ReplicationError, serverVersionNum } from "./_slots.ts";

/** Values decoded like query results (pg/types.ts): numbers, Dates, arrays, JSON, ... */
export const pgValues: ValueDecoder = { text: decodeText, binary: decodeBinary, textBytes: pgTextBytes };

// The built-in text parsers of pg/'s default registry, to tell whether a caller replaced one
// (`defaultTypes.set()`): then its own parser runs, through text().
const BUILTIN = new TypeRegistry();
const builtinTimestamp = defaultTypes.textParser(OID.timestamp);
const builtinTimestamptz = defaultTypes.textParser(OID.timestamptz);
const timestampBytes = timestampTextBytes(false);
const timestamptzBytes = timestampTextBytes(true);

/**
 * pgValues' parsers over bytes, for the types whose value is not a string: integers, booleans,
 * timestamps. Each reads the common form PostgreSQL prints and hands anything else to the
 * default registry's parser, so the result is always what `decodeText` gives.
 */
function pgTextBytes(oid: number): TextBytesParser | undefined {
  const registered = defaultTypes.textParser(oid);
  switch (oid) {
    case OID.int2:
    case OID.int4:
    case OID.oid:
    case OID.xid:
    case OID.cid:
      return registered === Number ? intTextBytes : undefined;
    case OID.bool:
      return registered === BUILTIN.textParser(OID.bool) ? boolTextBytes : undefined;
    case OID.timestamp:
      return registered === builtinTimestamp ? timestampBytes : undefined;
    case OID.timestamptz:
      return registered === builtinTimestamptz ? timestamptzBytes : undefined;
    default:
      return undefined;
  }
}

/** Options of {@link logicalReplication}. Times are milliseconds. */
export interface LogicalReplicationOptions {
  /** Connection string, URI or keyword record; `replication=database` is added. */
  connection: string | Record<string, string | undefined>;
  /** Passed to pg/'s `connect` (socketFactory, password, env, homeDir, ...). */
  connectOptions?: ConnectOptions;
  /** The slot to stream from (`primary_slot_name`). */
  slot: string;
  /** Create the slot first if it does not exist (with `plugin`). `temporary` needs `retryInterval: null`. */
  createSlot?: boolean | { temporary?: boolean; twoPhase?: boolean; failover?: boolean };
  /**
   * The slot's output plugin (a slot decodes with the plugin it was created with; a mismatch is
   * refused when connecting). Default `"pgoutput"`, whose options are the ones below. Others:
   * - `"test_decoding"`: events are {@link TestDecodingEvent}s (one text row each, parsed);
   * - `"wal2json"`: events are {@link Wal2jsonEvent}s; streamed with `format-version` 2 (one
   *   JSON document per change, so transactions of any size arrive in bounded chunks).
   *
   * With either, a final batch's `endLsn` is the position of its commit (or prepare) as the
   * walsender reports it, and `applyDelay` and pgoutput's options are refused.
   */
  plugin?: "pgoutput" | "test_decoding" | "wal2json";
  /** Options passed to a plugin other than pgoutput, e.g. `{ "include-timestamp": "1" }`. */
  pluginOptions?: Record<string, string>;
  /** pgoutput `publication_names` (required with pgoutput, refused with other plugins). */
  publications?: readonly string[];
  /** pgoutput `proto_version`; default by server version: 14 → 2, 15 → 3, 16+ → 4. */
  protoVersion?: 1 | 2 | 3 | 4;
  /** pgoutput `binary`: values in binary format (decoded by `types`). */
  binary?: boolean;
  /** pgoutput `messages`: pass `pg_logical_emit_message` messages. */
  messages?: boolean;
  /**
   * pgoutput `streaming`: large in-progress transactions arrive while they run. Default `"on"`
   * where the protocol version allows (2+), else off. `"parallel"` needs version 4.
   */
  streaming?: "off" | "on" | "parallel";
  /** pgoutput `two_phase`: prepared transactions arrive at PREPARE (version 3+, slot with twoPhase). */
  twoPhase?: boolean;
  /** pgoutput `origin` (16+): `"none"` skips changes replicated from elsewhere. */
  origin?: "none" | "any";
  /** Where to start; default (0) the slot's confirmed position. */
  startLsn?: bigint;
  /** Column value decoding; default {@link pgValues}. */
  types?: ValueDecoder;
  /** Most events per delivered batch (default 10 000). */
  maxChunkEvents?: number;
  /**
   * A batch is cut once its events' wire size reaches this (default 1 MiB). Small batches keep
   * memory flat: their rows die young in the garbage collector instead of piling up in the old
   * generation (measured: 1 GiB transaction, 1 KiB rows, Node peak RSS 262 MiB with 10 000-event
   * batches, 98 MiB with 1 MiB ones, at the same speed).
   */
  maxChunkBytes?: number;
  /** `wal_receiver_status_interval`: status updates at least this often (default 10 000; 0 = only when needed). */
  statusInterval?: number;
  /** `wal_receiver_timeout`: give the connection up after this long without a message (default 60 000; 0 = never). */
  receiverTimeout?: number;
  /**
   * `wal_retrieve_retry_interval`: wait before reconnecting after a dropped connection or server
   * restart, doubling per failed attempt up to 60 s (default 5 000). `null`: do not reconnect.
   */
  retryInterval?: number | null;
  /** Give up after this many failed reconnects in a row (default Infinity). */
  maxRetries?: number;
  /** `recovery_min_apply_delay`: deliver a transaction no earlier than its commit time plus this. */
  applyDelay?: number;
  /** `application_name` (match it in the primary's `synchronous_standby_names`). */
  applicationName?: string;
  /** Stops the stream (the iteration ends). */
  signal?: AbortSignal;
}

/**
 * What a {@link ReplicationBatch} holds:
 * - `transaction`: Begin .. Commit (one or more chunks);
 * - `prepare`: Begin Prepare .. Prepare (two_phase);
 * - `stream`: part of a streamed in-progress transaction (Stream Start .. Stop blocks, then its
 *   Stream Commit, Stream Prepare or Stream Abort);
 * - `commitPrepared`, `rollbackPrepared`: the second phase of a prepared transaction;
 * - `message`: a non-transactional logical message.
 */
export type BatchKind = "transaction" | "prepare" | "stream" | "commitPrepared" | "rollbackPrepared" | "message";

/**
 * One delivered piece of the change stream. Call `ack()` once it is durably handled. `E` is the
 * event type of the slot's plugin: {@link PgoutputEvent} (default), {@link TestDecodingEvent} or
 * {@link Wal2jsonEvent}.
 */
export interface ReplicationBatch<E = PgoutputEvent> {
  kind: BatchKind;
  /** The transaction's xid (undefined for a non-transactional message). */
  xid: number | undefined;
  /**
   * The decoded events in order, including the bracketing ones (begin/commit, stream
   * start/stop/commit, ...), ready for the encoders of replication/encode.ts.
   */
  events: E[];
  /** Whether this chunk ends its transaction (or two-phase step). */
  final: boolean;
  /** What `ack()` confirms when `final`: Commit/Prepare `end_lsn`; undefined when nothing. */
  endLsn: bigint | undefined;
  /** Commit (or prepare) time when known (from Begin, or the final event). */
  commitTime: Date | undefined;
  /** Connection generation this batch arrived on (acks of older generations are ignored). */
  generation: number;
  /**
   * Marks the batch handled. The position is confirmed to the server once every earlier batch is
   * acknowledged too. Idempotent; a no-op on non-final chunks.
   */
  ack(): void;
}

/** Counters of a {@link LogicalReplicationStream}. */
export interface ReplicationStats {
  /** XLogData messages received. */
  messages: number;
  /** Payload bytes received. */
  bytes: number;
  /** Decoded data events (insert/update/delete/truncate/message). */
  changes: number;
  /** Connections made (1 + reconnects). */
  connections: number;
  /** Status updates sent. */
  statusUpdates: number;
}

/** Output plugins the consumer understands. */
const PLUGINS = ["pgoutput", "test_decoding", "wal2json"] as const;
/** What a plugin event means for batching (the pgoutput path switches on the event type itself). */
type Role = "begin" | "commit" | "change" | "message" | "streamStart" | "streamStop" | "streamEnd" | "streamAbort";
const RETRYABLE_SQLSTATE = /^(08|57P0[123]|55006|53300|53400)/;
/** The `cause` of a receiver timeout (retryable). */
const RECEIVER_TIMEOUT = "receiverTimeout";
/** The `cause` of a copy the server ended (retryable: it shut down, or was told to stop). */
const SERVER_ENDED = "serverEnded";

interface Pending {
  end: bigint;
  acked: boolean;
}

/**
 * A running logical replication stream; async-iterate it for {@link ReplicationBatch}es.
 * Iterating once only. Stop with {@link LogicalReplicationStream.close}, `signal`, or `break`.
 */
export class LogicalReplicationStream<E = PgoutputEvent> implements AsyncIterable<ReplicationBatch<E>> {
  #o: Resolved;
  #client: Client | undefined;
  #copy: CopyBoth | undefined;
  #generation = 0;
  #pending: Pending[] = [];
  #pendingHead = 0;
  /** The confirmed (acknowledged) position: write = flush = apply. */
  #acked = 0n;
  #sentAcked = -1n;
  #statusTimer: ReturnType<typeof setInterval> | undefined;
  /** The receiver-timeout watchdog of the current connection (cleared by close() too: a caller
   * that stops iterating leaves the generator suspended, and its finally never runs). */
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #statusQueued = false;
  #closed = false;
  #started = false;
  #wake: (() => void) | undefined;
  #versionNum = 0;
  readonly stats: ReplicationStats = { messages: 0, bytes: 0, changes: 0, connections: 0, statusUpdates: 0 };

  /** @internal Use {@link logicalReplication}. */
  constructor(options: LogicalReplicationOptions) {
    this.#o = validate(options);
    this.#acked = options.startLsn ?? 0n;
    options.signal?.addEventListener("abort", () => void this.close(), { once: true });
  }

  /** The position confirmed to the server (or to be, with the next status update). */
  get acknowledged(): bigint {
    return this.#acked;
  }

  /** The server's `server_version_num` once connected (0 before). */
  get serverVersion(): number {
    return this.#versionNum;
  }

  [Symbol.asyncIterator](): AsyncIterator<ReplicationBatch<E>> {
    if (this.#started) throw new TypeError("a LogicalReplicationStream can be iterated only once");
    this.#started = true;
    return this.#run() as AsyncGenerator<ReplicationBatch<E>>;
  }

  /** Stops streaming: sends a last status update and closes the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sendStatus(false);
    clearInterval(this.#statusTimer);
    clearInterval(this.#watchdog);
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    const c = this.#client;
    this.#client = undefined;
    this.#copy = undefined;
    await c?.close().catch(() => {});
  }

  /** Sends a status update with the acknowledged position now (e.g. before a planned stop). */
  flush(): void {
    this.#sendStatus(false, true);
  }

  #ack(generation: number, p: Pending): void {
    if (p.acked || generation !== this.#generation) return;
    p.acked = true;
    let advanced = false;
    while (this.#pendingHead < this.#pending.length && this.#pending[this.#pendingHead].acked) {
      const e = this.#pending[this.#pendingHead++].end;
      if (e > this.#acked) {
        this.#acked = e;
        advanced = true;
      }
    }
    if (this.#pendingHead > 256 && this.#pendingHead * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
    // Report at once (coalesced per tick): a synchronous primary is waiting for it.
    if (advanced && !this.#statusQueued) {
      this.#statusQueued = true;
      queueMicrotask(() => {
        this.#statusQueued = false;
        this.#sendStatus(false);
      });
    }
  }

  get #inFlight(): boolean {
    return this.#pendingHead < this.#pending.length;
  }

  #sendStatus(replyRequested: boolean, force = false): void {
    const copy = this.#copy;
    if (!copy || copy.serverDone) return;
    if (!force && !replyRequested && this.#acked === this.#sentAcked) return;
    const pos = this.#acked;
    copy.write(encodeStandbyStatus({ write: pos, flush: pos, apply: pos }));
    this.#sentAcked = pos;
    this.stats.statusUpdates++;
  }

  async #connect(): Promise<CopyBoth> {
    const o = this.#o;
    const info = resolveConnInfo(o.connection, { env: o.connectOptions?.env, homeDir: o.connectOptions?.homeDir });
    const options: Record<string, string> = { ...info.options, replication: "database" };
    if (o.applicationName !== undefined) options.application_name = o.applicationName;
    const client = await connect({ options, hosts: info.hosts, toString: () => info.toString() } as Parameters<typeof connect>[0], o.connectOptions);
    this.#client = client;
    this.stats.connections++;
    try {
      if (this.#closed) throw new ReplicationError("closed");
      this.#versionNum = serverVersionNum(client);
      if (o.origin && this.#versionNum < 160000) {
        throw new RangeError(`options.origin needs PostgreSQL 16 or later (pgoutput has no origin option before 16; the server is ${this.#versionNum})`);
      }
      const slotRow = await client.simpleQuery(`SELECT plugin FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(o.slot)}`);
      const slotPlugin = slotRow[0].rows[0]?.plugin as string | null | undefined;
      if (slotPlugin !== undefined && slotPlugin !== o.plugin) {
        // The slot decides the plugin: its output would not parse as what the caller expects.
        throw new ReplicationError(`slot ${o.slot} decodes with ${slotPlugin ?? "no plugin (physical slot)"}, not ${o.plugin}: pass plugin: ${JSON.stringify(slotPlugin)}`);
      }
      if (o.createSlot) {
        if (slotPlugin === undefined) {
          const cs = typeof o.createSlot === "object" ? o.createSlot : {};
          const created = await createReplicationSlot(client, o.slot, {
            kind: "logical",
            plugin: o.plugin,
            snapshot: "nothing",
            temporary: cs.temporary,
            twoPhase: cs.twoPhase,
            failover: cs.failover,
          });
          if (this.#acked === 0n) this.#acked = created.consistentPoint;
        }
      }
      if (o.plugin !== "pgoutput") {
        const pluginOpts: Record<string, string> = { ...(o.plugin === "wal2json" ? { "include-xids": "1" } : {}), ...o.pluginOptions };
        // One document per change: format-version 1 makes a transaction one unbounded document.
        if (o.plugin === "wal2json") pluginOpts["format-version"] = "2";
        const list = Object.entries(pluginOpts).map(([k, v]) => `${quoteIdent(k)} ${quoteLiteral(v)}`).join(", ");
        const copy = client.copyBoth(`START_REPLICATION SLOT ${quoteIdent(o.slot)} LOGICAL ${formatLsn(this.#acked)}${list ? ` (${list})` : ""}`, {
          highWaterMark: 64,
          batched: true,
        });
        await copy.started();
        return copy;
      }
      const proto = o.protoVersion ?? (this.#versionNum >= 160000 ? 4 : this.#versionNum >= 150000 ? 3 : this.#versionNum >= 140000 ? 2 : 1);
      const streaming = o.streaming ?? (proto >= 4 ? "parallel" : proto >= 2 ? "on" : "off");
      if (streaming === "parallel" && proto < 4) throw new RangeError('streaming: "parallel" needs protoVersion 4 (PostgreSQL 16+)');
      if (streaming === "on" && proto < 2) throw new RangeError("streaming needs protoVersion 2 or later");
      if (o.twoPhase && proto < 3) throw new RangeError("twoPhase needs protoVersion 3 or later (PostgreSQL 15+)");
      const opts = [
        `proto_version '${proto}'`,
        `publication_names ${quoteLiteral(o.publications!.map(quoteIdent).join(","))}`,
      ];
      if (o.binary) opts.push("binary 'true'");
      if (o.messages) opts.push("messages 'true'");
      // "parallel" only changes what Stream Abort carries; the consumer treats both alike.
      if (streaming !== "off") opts.push(`streaming '${streaming}'`);
      if (o.twoPhase) opts.push("two_phase 'true'");
      if (o.origin) opts.push(`origin ${quoteLiteral(o.origin)}`);
      const copy = client.copyBoth(`START_REPLICATION SLOT ${quoteIdent(o.slot)} LOGICAL ${formatLsn(this.#acked)} (${opts.join(", ")})`, {
        highWaterMark: 64,
        batched: true,
      });
      await copy.started();
      this.#protoVersion = proto;
      return copy;
    } catch (e) {
      this.#client = undefined;
      await client.close().catch(() => {});
      throw e;
    }
  }

  #protoVersion: 1 | 2 | 3 | 4 = 4;

  #retryable(e: unknown): boolean {
    if (e instanceof PostgresError) return RETRYABLE_SQLSTATE.test(e.code ?? "");
    return e instanceof ConnectionError || (e instanceof ReplicationError && (e.cause === RECEIVER_TIMEOUT || e.cause === SERVER_ENDED));
  }

  async #sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.#closed) return;
    await new Promise<void>((r) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        r();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        r();
      };
    });
  }

  async *#run(): AsyncGenerator<ReplicationBatch<unknown>> {
    const o = this.#o;
    let failures = 0;
    try {
      while (!this.#closed) {
        let copy: CopyBoth;
        try {
          copy = await this.#connect();
        } catch (e) {
          if (this.#closed) return;
          if (o.retryInterval === null || !this.#retryable(e) || ++failures > o.maxRetries) {
            throw e instanceof ReplicationError || e instanceof RangeError || e instanceof TypeError ? e : wrap(e, o.slot);
          }
          await this.#sleep(Math.min((o.retryInterval ?? 0) * 2 ** (failures - 1), 60_000));
          continue;
        }
        this.#generation++;
        // Batches delivered on the previous connection and not acknowledged will come again.
        this.#pending = [];
        this.#pendingHead = 0;
        this.#copy = copy;
        this.#sentAcked = -1n;
        clearInterval(this.#statusTimer);
        if (o.statusInterval > 0) this.#statusTimer = setInterval(() => this.#sendStatus(false, true), o.statusInterval);
        this.#sendStatus(false, true);
        try {
          yield* this.#consume(copy, () => (failures = 0));
          if (this.#closed) return;
          // A walsender ends the copy when the server shuts down: reconnect like after a drop.
          throw new ReplicationError(`the server ended replication from slot ${o.slot}`, { cause: SERVER_ENDED });
        } catch (e) {
          clearInterval(this.#statusTimer);
          this.#copy = undefined;
          const client = this.#client;
          this.#client = undefined;
          await client?.close().catch(() => {});
          if (this.#closed) return;
          if (o.retryInterval === null || !this.#retryable(e) || ++failures > o.maxRetries) {
            throw e instanceof ReplicationError || e instanceof RangeError || e instanceof TypeError ? e : wrap(e, o.slot);
          }
          await this.#sleep(Math.min((o.retryInterval ?? 0) * 2 ** (failures - 1), 60_000));
        }
      }
    } finally {
      await this.close();
    }
  }

  /** Reads one connection's stream and yields batches; returns when the server ends the copy. */
  async *#consume(copy: CopyBoth, onData: () => void): AsyncGenerator<ReplicationBatch<unknown>> {
    const o = this.#o;
    const pgoutput = o.plugin === "pgoutput";
    const decoder = new PgoutputDecoder({ types: o.types, protoVersion: this.#protoVersion });
    const parse = o.plugin === "wal2json" ? parseWal2jsonChange : parseTestDecoding;
    const generation = this.#generation;
    // One batch per received chunk: no flow item or promise per message.
    const it = copy.batches();
    const max = o.maxChunkEvents;
    const maxBytes = o.maxChunkBytes;
    let size = 0; // wire bytes of the events in the open chunk
    // The open unit: a transaction (non-streamed) or a streamed block.
    let events: unknown[] = [];
    let kind: BatchKind | undefined;
    let xid: number | undefined;
    let commitTime: Date | undefined;
    let openTx = false; // Begin seen, Commit not yet: keepalive positions must not be confirmed
    let streamXid: number | undefined;
    let delayed = false; // applyDelay already waited for this transaction

    const make = (final: boolean, endLsn: bigint | undefined): ReplicationBatch<unknown> => {
      const p: Pending | undefined = final && endLsn !== undefined ? { end: endLsn, acked: false } : undefined;
      if (p) this.#pending.push(p);
      const batch: ReplicationBatch<unknown> = {
        kind: kind!,
        xid,
        events,
        final,
        endLsn: final ? endLsn : undefined,
        commitTime,
        generation,
        ack: () => {
          if (p) this.#ack(generation, p);
        },
      };
      events = [];
      size = 0;
      return batch;
    };
    const delay = async () => {
      if (o.applyDelay > 0 && commitTime && !delayed) {
        delayed = true;
        await this.#sleep(commitTime.getTime() + o.applyDelay - Date.now());
      }
    };

    // wal_receiver_timeout: one watchdog per connection rather than a timer per message. It
    // counts only time spent waiting for the server (not time the caller spends on a batch), and
    // fires between one and one and a half timeouts after the last message.
    let received = 0;
    let waiting = false;
    let idleTicks = 0;
    let timedOut = false;
    let lastSeen = 0;
    const tick = Math.max(10, o.receiverTimeout / 2);
    clearInterval(this.#watchdog);
    const watchdog = this.#watchdog = o.receiverTimeout > 0
      ? setInterval(() => {
        if (!waiting || received !== lastSeen) {
          lastSeen = received;
          idleTicks = 0;
          return;
        }
        if (++idleTicks >= 2) {
          timedOut = true;
          void this.#client?.close();
        }
      }, tick)
      : undefined;
    try {
      // The current batch: message m is parts[m] from offs[2m] to offs[2m + 1].
      let parts: Uint8Array[] = [];
      let offs: number[] = [];
      let m = 0;
      for (;;) {
        if (m >= parts.length) {
          waiting = true;
          const r = await it.next();
          waiting = false;
          received++;
          if (timedOut) throw new ReplicationError(`receiver timeout: no message from the server in ${o.receiverTimeout} ms`, { cause: RECEIVER_TIMEOUT });
          if (r.done) return;
          parts = r.value.bytes;
          offs = r.value.offsets;
          m = 0;
        }
        if (this.#closed) return;
        const raw = parts[m];
        const at0 = offs[2 * m];
        const end = offs[2 * m + 1];
        m++;
        if (raw[at0] !== 0x77 /* w */) {
          const msg = decodeReplicationMessage(raw.subarray(at0, end)); // keepalive k (or an error for anything else)
          if (msg.type !== "keepalive") continue;
          if (!openTx && streamXid === undefined && !this.#inFlight && events.length === 0 && msg.walEnd > this.#acked) {
            this.#acked = msg.walEnd;
          }
          if (msg.replyRequested) this.#sendStatus(false, true);
          else this.#sendStatus(false);
          continue;
        }
        if (end - at0 < 25) decodeReplicationMessage(raw.subarray(at0, end)); // throws: XLogData shorter than its header
        onData();
        // XLogData w: 25-byte header, then one message of the plugin. The decoder reads the
        // payload in place (no view, no copy) and copies whatever it keeps.
        const length = end - at0 - 25;
        this.stats.messages++;
        this.stats.bytes += length;
        size += length;
        if (!pgoutput) {
          // Other plugins: the header's dataStart is the record's position as the walsender
          // reports it; for a commit (or prepare) it is the transaction's end_lsn, the position to
          // confirm (what pg_recvlogical confirms too).
          const at = new DataView(raw.buffer, raw.byteOffset + at0 + 1, 8).getBigUint64(0);
          const ev = parse(new Uint8Array(raw.buffer, raw.byteOffset + at0 + 25, length));
          const role = pluginRole(ev);
          if (role === "change" || role === "message") this.stats.changes++;
          switch (role) {
            case "begin":
              kind = "transaction";
              xid = pluginXid(ev);
              commitTime = undefined;
              openTx = true;
              events.push(ev);
              break;
            case "commit":
              // COMMIT PREPARED / ROLLBACK PREPARED come without a BEGIN.
              kind = pluginKind(ev);
              if (!openTx) xid = pluginXid(ev);
              events.push(ev);
              openTx = false;
              yield make(true, at);
              break;
            case "streamStart":
              kind = "stream";
              xid = pluginXid(ev);
              streamXid = xid ?? -1;
              events.push(ev);
              break;
            case "streamStop":
              events.push(ev);
              streamXid = undefined;
              yield make(false, undefined);
              break;
            case "streamEnd":
            case "streamAbort":
              kind = "stream";
              xid = pluginXid(ev);
              events.push(ev);
              yield make(role === "streamEnd", role === "streamEnd" ? at : undefined);
              break;
            case "message":
              if (!openTx && streamXid === undefined) {
                kind = "message";
                xid = undefined;
                events.push(ev);
                yield make(true, at + 1n); // confirming past it keeps it from coming again
                break;
              }
              events.push(ev);
              if (events.length >= max || size >= maxBytes) yield make(false, undefined);
              break;
            default:
              events.push(ev);
              if (events.length >= max || size >= maxBytes) yield make(false, undefined);
          }
          continue;
        }
        const e = decoder.decode(raw, at0 + 25, end);
        switch (e.type) {
          case "begin":
          case "beginPrepare":
            kind = e.type === "begin" ? "transaction" : "prepare";
            xid = e.xid;
            commitTime = e.type === "begin" ? (e as BeginEvent).commitTime : (e as BeginPrepareEvent).prepareTime;
            openTx = true;
            delayed = false;
            events.push(e);
            break;
          case "commit":
          case "prepare":
            events.push(e);
            openTx = false;
            await delay();
            yield make(true, e.endLsn);
            break;
          case "streamStart":
            kind = "stream";
            xid = e.xid;
            commitTime = undefined;
            streamXid = e.xid;
            events.push(e);
            break;
          case "streamStop":
            events.push(e);
            streamXid = undefined;
            yield make(false, undefined);
            break;
          case "streamCommit":
          case "streamPrepare":
          case "streamAbort":
            kind = "stream";
            xid = e.xid;
            commitTime = e.type === "streamCommit" ? e.commitTime : e.type === "streamPrepare" ? e.prepareTime : e.abortTime;
            events.push(e);
            delayed = false;
            if (e.type !== "streamAbort") await delay();
            yield make(e.type !== "streamAbort" || e.subxid === e.xid, e.type === "streamAbort" ? undefined : e.endLsn);
            break;
          case "commitPrepared":
          case "rollbackPrepared":
            kind = e.type;
            xid = e.xid;
            commitTime = e.type === "commitPrepared" ? e.commitTime : e.rollbackTime;
            events.push(e);
            delayed = false;
            await delay();
            yield make(true, e.type === "commitPrepared" ? e.endLsn : e.rollbackEndLsn);
            break;
          case "message":
            if (!openTx && streamXid === undefined) {
              // Non-transactional: confirming its LSN + 1 keeps it from coming again.
              kind = "message";
              xid = undefined;
              commitTime = undefined;
              this.stats.changes++;
              events.push(e);
              yield make(true, e.lsn + 1n);
              break;
            }
            this.stats.changes++;
            events.push(e);
            if (events.length >= max || size >= maxBytes) yield make(false, undefined);
            break;
          default:
            if (e.type === "insert" || e.type === "update" || e.type === "delete" || e.type === "truncate") this.stats.changes++;
            events.push(e);
            if (events.length >= max || size >= maxBytes) {
              if (openTx) await delay();
              yield make(false, undefined);
            }
        }
      }
    } finally {
      clearInterval(watchdog);
    }
  }
}

/** What a test_decoding or wal2json (format-version 2) event means for batching. */
function pluginRole(ev: unknown): Role {
  const w = ev as { action?: string; type?: string };
  if (w.action !== undefined) {
    return w.action === "B" ? "begin" : w.action === "C" ? "commit" : w.action === "M" ? "message" : "change";
  }
  switch (w.type) {
    case "begin":
      return "begin";
    case "commit":
    case "prepare":
    case "commitPrepared":
    case "rollbackPrepared":
      return "commit";
    case "message":
      return "message";
    case "streamStart":
      return "streamStart";
    case "streamStop":
      return "streamStop";
    case "streamCommit":
    case "streamPrepare":
      return "streamEnd";
    case "streamAbort":
      return "streamAbort";
    default:
      return "change";
  }
}

/** The batch kind a plugin event of role "commit" ends. */
function pluginKind(ev: unknown): BatchKind {
  const t = (ev as { type?: string }).type;
  return t === "prepare" || t === "commitPrepared" || t === "rollbackPrepared" ? t : "transaction";
}

function pluginXid(ev: unknown): number | undefined {
  const x = (ev as { xid?: unknown }).xid;
  return typeof x === "number" ? x : undefined;
}

function wrap(e: unknown, slot: string): Error {
  return e instanceof PostgresError ? e : new ReplicationError(`logical replication from slot ${slot} failed: ${(e as Error)?.message ?? e}`, { cause: e });
}

/** Options with defaults applied (retryInterval null = no reconnect). */
type Resolved = LogicalReplicationOptions & {
  plugin: (typeof PLUGINS)[number];
  types: ValueDecoder;
  maxChunkEvents: number;
  maxChunkBytes: number;
  statusInterval: number;
  receiverTimeout: number;
  retryInterval: number | null;
  maxRetries: number;
  applyDelay: number;
};

function validate(options: LogicalReplicationOptions): Resolved {
  if (options === null || typeof options !== "object") throw new TypeError("logicalReplication() needs an options object");
  const o = options;
  if (typeof o.connection !== "string" && (o.connection === null || typeof o.connection !== "object")) {
    throw new TypeError("options.connection must be a connection string or a keyword record");
  }
  checkSlotName(o.slot, "options.slot");
  const plugin = o.plugin ?? "pgoutput";
  if (!PLUGINS.includes(plugin)) throw new TypeError(`options.plugin must be one of ${PLUGINS.join(", ")}, got ${JSON.stringify(plugin)}`);
  if (plugin === "pgoutput") {
    if (!Array.isArray(o.publications) || o.publications.length === 0 || o.publications.some((p) => typeof p !== "string" || p === "")) {
      throw new TypeError("options.publications must be a non-empty array of publication names");
    }
    if (o.pluginOptions !== undefined) throw new TypeError("options.pluginOptions is for plugins other than pgoutput (pgoutput's options have their own fields)");
  } else {
    const pgoutputOnly = (["publications", "protoVersion", "binary", "messages", "streaming", "twoPhase", "origin", "types"] as const).filter((k) => o[k] !== undefined);
    if (pgoutputOnly.length) throw new TypeError(`options.${pgoutputOnly[0]} is a pgoutput option; plugin ${plugin} takes pluginOptions`);
    if (o.applyDelay) throw new TypeError(`options.applyDelay needs pgoutput (plugin ${plugin} does not always report commit times)`);
    const po = o.pluginOptions;
    if (po !== undefined && (po === null || typeof po !== "object" || Object.values(po).some((v) => typeof v !== "string"))) {
      throw new TypeError("options.pluginOptions must be a record of string values");
    }
    if (plugin === "wal2json" && po?.["format-version"] !== undefined && po["format-version"] !== "2") {
      throw new RangeError("wal2json is streamed with format-version 2 (one document per change); format-version 1 makes a transaction one unbounded document");
    }
    if (plugin === "wal2json" && po?.["include-transaction"] !== undefined && !/^(1|t|true|on|y|yes)$/i.test(po["include-transaction"])) {
      throw new RangeError("wal2json needs include-transaction: its begin and commit documents are what batches end at");
    }
  }
  const ms = (name: keyof LogicalReplicationOptions, def: number) => {
    const v = o[name] ?? def;
    if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) {
      throw new RangeError(`options.${name} must be a non-negative number of milliseconds, got ${String(v)}`);
    }
    return v;
  };
  const retryInterval = o.retryInterval === null ? null : ms("retryInterval", 5000);
  const temporary = typeof o.createSlot === "object" && o.createSlot?.temporary;
  if (temporary && retryInterval !== null) {
    throw new TypeError("a temporary slot is lost with its connection: createSlot { temporary: true } needs retryInterval: null (no reconnect)");
  }
  if (o.protoVersion !== undefined && ![1, 2, 3, 4].includes(o.protoVersion)) throw new RangeError(`options.protoVersion must be 1-4, got ${o.protoVersion}`);
  if (o.streaming !== undefined && !["off", "on", "parallel"].includes(o.streaming)) throw new TypeError(`options.streaming must be "off", "on" or "parallel"`);
  if (o.origin !== undefined && o.origin !== "none" && o.origin !== "any") throw new TypeError(`options.origin must be "none" or "any"`);
  if (o.startLsn !== undefined && (typeof o.startLsn !== "bigint" || o.startLsn < 0n)) throw new TypeError("options.startLsn must be a non-negative bigint");
  const maxChunkEvents = o.maxChunkEvents ?? 10_000;
  if (!Number.isInteger(maxChunkEvents) || maxChunkEvents < 1) throw new RangeError(`options.maxChunkEvents must be a positive integer, got ${maxChunkEvents}`);
  const maxChunkBytes = o.maxChunkBytes ?? 1 << 20;
  if (!Number.isInteger(maxChunkBytes) || maxChunkBytes < 1) throw new RangeError(`options.maxChunkBytes must be a positive integer, got ${maxChunkBytes}`);
  const maxRetries = o.maxRetries ?? Infinity;
  if (!(maxRetries >= 0)) throw new RangeError("options.maxRetries must be >= 0");
  return {
    ...o,
    plugin,
    types: o.types ?? pgValues,
    maxChunkEvents,
    maxChunkBytes,
    statusInterval: ms("statusInterval", 10_000),
    receiverTimeout: ms("receiverTimeout", 60_000),
    retryInterval,
    maxRetries,
    applyDelay: ms("applyDelay", 0),
  };
}

/**
 * Starts consuming a logical replication slot: pgoutput (decoded, typed values), or with
 * `plugin` test_decoding or wal2json (their output parsed). Nothing happens until iteration
 * starts; the iteration reconnects by itself and throws only for errors it cannot retry
 * (missing slot or publication, authentication, bad options) or after `maxRetries`.
 *
 * @example
 * ```ts
 * const stream = logicalReplication({ connection: "host=db dbname=app user=repl", slot: "app_sub", publications: ["app_pub"] });
 * for await (const batch of stream) {
 *   for (const e of batch.events) if (e.type === "insert") await sink.insert(e.relation.name, e.new);
 *   await sink.commit();
 *   batch.ack(); // only now may the server forget this transaction
 * }
 * ```
 */
export function logicalReplication(options: LogicalReplicationOptions & { plugin: "test_decoding" }): LogicalReplicationStream<TestDecodingEvent>;
export function logicalReplication(options: LogicalReplicationOptions & { plugin: "wal2json" }): LogicalReplicationStream<Wal2jsonEvent>;
export function logicalReplication(options: LogicalReplicationOptions & { plugin?: "pgoutput" }): LogicalReplicationStream<PgoutputEvent>;
export function logicalReplication(options: LogicalReplicationOptions): LogicalReplicationStream<PgoutputEvent | TestDecodingEvent | Wal2jsonEvent>;
export function logicalReplication(options: LogicalReplicationOptions): LogicalReplicationStream<PgoutputEvent | TestDecodingEvent | Wal2jsonEvent> {
  return new LogicalReplicationStream(options);
}

/** One chunk of existing rows, read under the slot's exported snapshot. */
export interface SnapshotRows {
  kind: "snapshot";
  /** The table as given in `tables`. */
  table: string;
  rows: SqlRow[];
  /** Last chunk of this table. */
  final: boolean;
}

/** Options of {@link snapshotThenStream}. */
export interface SnapshotThenStreamOptions extends Omit<LogicalReplicationOptions, "createSlot" | "startLsn" | "plugin" | "pluginOptions"> {
  /** Tables to copy (schema-qualified or not; quoted as identifiers, `schema.table` split at the dot). */
  tables: readonly string[];
  /** Rows per snapshot chunk (default 10 000). */
  snapshotChunkRows?: number;
}

/**
 * Creates a logical slot with an exported snapshot, reads the listed tables under exactly that
 * snapshot on a second (ordinary) connection, then streams the slot from its consistent point:
 * every row is either in the copy or in a change after it, never both, never neither.
 * Yields {@link SnapshotRows} chunks first, then the stream's {@link ReplicationBatch}es. The
 * slot is permanent (drop it when done: {@link dropReplicationSlot}); it fails if it exists.
 * Snapshot rows are decoded with the query client's types, like `pgValues` decodes changes.
 *
 * @example
 * ```ts
 * for await (const item of snapshotThenStream({ connection, slot: "copy_sub", publications: ["pub"], tables: ["public.t"] })) {
 *   if (item.kind === "snapshot") await sink.load(item.table, item.rows);
 *   else { await sink.apply(item.events); item.ack(); }
 * }
 * ```
 */
export async function* snapshotThenStream(options: SnapshotThenStreamOptions): AsyncGenerator<SnapshotRows | ReplicationBatch> {
  if (!Array.isArray(options?.tables) || options.tables.some((t) => typeof t !== "string" || t === "")) {
    throw new TypeError("options.tables must be an array of table names");
  }
  validate(options);
  const chunk = options.snapshotChunkRows ?? 10_000;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError("options.snapshotChunkRows must be a positive integer");
  const info = resolveConnInfo(options.connection, { env: options.connectOptions?.env, homeDir: options.connectOptions?.homeDir });
  const withOpts = (extra: Record<string, string>, drop?: string) => {
    const o: Record<string, string> = { ...info.options, ...extra };
    if (drop) delete o[drop];
    return { options: o, hosts: info.hosts, toString: () => info.toString() } as Parameters<typeof connect>[0];
  };
  const repl = await connect(withOpts({ replication: "database" }), options.connectOptions);
  let consistentPoint: bigint;
  const sql = await connect(withOpts({}, "replication"), options.connectOptions).catch(async (e) => {
    await repl.close();
    throw e;
  });
  try {
    try {
      const slot = await createReplicationSlot(repl, options.slot, { kind: "logical", plugin: "pgoutput", snapshot: "export", twoPhase: options.twoPhase });
      consistentPoint = slot.consistentPoint;
      // The snapshot lives until the next command on `repl`: import it before anything else.
      await sql.simpleQuery(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(slot.snapshotName!)}`);
    } finally {
      await repl.close();
    }
    for (const table of options.tables) {
      const name = table.split(".").map(quoteIdent).join(".");
      let rows: SqlRow[] = [];
      for await (const row of sql.stream(`SELECT * FROM ${name}`, [], { highWaterMark: Math.min(chunk, 10_000) })) {
        rows.push(row);
        if (rows.length >= chunk) {
          yield { kind: "snapshot", table, rows, final: false };
          rows = [];
        }
      }
      yield { kind: "snapshot", table, rows, final: true };
    }
    await sql.simpleQuery("COMMIT");
  } finally {
    await sql.close();
  }
  yield* logicalReplication({ ...options, plugin: "pgoutput", startLsn: consistentPoint });
}
