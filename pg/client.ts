/**
 * The libpq-style PostgreSQL client: connecting (hosts in order or shuffled, `connect_timeout`,
 * TLS, every password method, `target_session_attrs`), simple and extended queries with
 * pipelining, prepared statements, row streaming with backpressure, COPY in and out, notices,
 * LISTEN/NOTIFY, cancel, transactions.
 *
 * Sockets come from a {@link SocketFactory}: by default the runtime's `node:net` (TCP and unix
 * sockets), which Deno, Bun and Node all provide (in Bun, connections that never negotiate TLS
 * use `Bun.connect` instead: `_bun_socket.ts`); the transport layer hands in an rsocket
 * factory instead. This module imports neither `ffi/` nor `transport/`.
 *
 * Pipelining: every call writes its messages at once (batched per microtask into one socket
 * write) and queues a handler; responses are matched in order. Each extended query ends with its
 * own Sync, so one failing query does not abort the ones pipelined behind it.
 *
 * Backpressure: row streams and COPY TO pause the socket when the consumer falls behind, so the
 * server blocks in send() and memory stays bounded by one socket read.
 *
 * @module
 */
import { EventEmitter } from "node:events";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { userInfo } from "node:os";
import type { Duplex } from "node:stream";
import { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import {
  BodyReader,
  cancelRequest,
  COPY_DONE,
  copyDataHeader,
  copyFail,
  encodeQuery,
  type FieldDescription,
  type Frame,
  FrameReader,
  parseCommandComplete,
  PIECE_FIRST,
  PIECE_LAST,
  parseFields,
  parseParameterDescription,
  parseRowDescription,
  startupMessage,
  SYNC,
  TERMINATE,
  utf8,
  type WireParam,
  writeBind,
  writeClose,
  writeDescribe,
  writeExecute,
  writeParse,
  Writer,
  writeQuery,
} from "./_codec.ts";
import { AuthError, Authenticator, parseAuthPolicy } from "./_auth.ts";
import { bunSocketFactory } from "./_bun_socket.ts";
import { type Lease, RECEIVER, type ReceiveSource, type ReceiveStats, Receiver, unlease } from "./_receive.ts";
import { serverEndPointHash } from "./_scram.ts";
import { peerCertificateDer, planTls, startTls, TlsError, type TlsPlan } from "./_tls.ts";
import { ConnectionError, ERROR_FIELDS, type ErrorFields, PostgresError, ProtocolError } from "./errors.ts";
import { boolTextBytes, defaultTypes, encodeText, intTextBytes, OID, type TypeRegistry } from "./types.ts";

export type { FieldDescription } from "./_codec.ts";

// The socket contract is the transport layer's; a type-only import loads nothing (no FFI).
import type { SocketFactory, SocketTarget } from "../transport/select.ts";
export type { SocketFactory, SocketTarget };

/** Which transport a client connected over, and why (see `with_rsocket`). */
export interface TransportChoice {
  /** `custom`: the caller supplied the socket factory. */
  transport: "tcp" | "rsocket" | "custom";
  /** For rsockets: the provider (`rdma`, or `kernel` on machines without RDMA). */
  provider?: "rdma" | "kernel";
  /** One sentence: why this transport. */
  reason: string;
}

/** One host to try (the shape of conninfo's `HostSpec`). */
export interface HostTarget {
  host: string;
  hostaddr?: string;
  port: number;
  kind: "tcp" | "unix";
}

/** Resolved connection settings (the shape of conninfo's `ConnInfo`). */
export interface ResolvedConnInfo {
  readonly options: Readonly<Record<string, string | undefined>>;
  readonly hosts: readonly HostTarget[];
}

/** Options of {@link connectWith} that are not libpq keywords. */
export interface ClientOptions {
  /** Password, or a function asked only when the server wants one. Overrides `password`. */
  password?: string | (() => string | undefined | Promise<string | undefined>);
  /** Socket factory (default: `node:net`). */
  socketFactory?: SocketFactory;
  /** Type decoders (default: {@link defaultTypes}). */
  types?: TypeRegistry;
  /** Called for every NoticeResponse (also emitted as the `notice` event). */
  onNotice?: (notice: Notice) => void;
  /**
   * Keep each query's SQL prepared on the server (named statements, up to 500, least recently
   * created evicted) so repeated queries skip parsing and planning, and send only Bind, Execute
   * and Sync (the result columns are described once, with the Parse); per-query
   * `QueryOptions.prepare` overrides. Default false, as in libpq: named statements break
   * transaction-pooling proxies, and a `SELECT *` statement fails once with 0A000 "cached plan
   * must not change result type" after its table changes (it is then prepared afresh).
   */
  prepare?: boolean;
  /** Called for every NotificationResponse (also emitted as the `notification` event). */
  onNotification?: (n: Notification) => void;
  /** Home directory for libpq's default TLS files (`~/.postgresql/root.crt`, ...); default the OS's. */
  homeDir?: string;
  /** Looks up a password (.pgpass) for a host when none was given. */
  lookupPassword?: (host: HostTarget) => string | undefined;
}

/** A NoticeResponse: the same fields as an error. */
export type Notice = ErrorFields & { severity: string; message: string };

/** A NotificationResponse (LISTEN/NOTIFY). */
export interface Notification {
  processId: number;
  channel: string;
  payload: string;
}

/** A row: column name → value, or values in column order with `rowMode: "array"`. */
export type Row = Record<string, unknown>;

/** Result of one statement. */
export interface QueryResult<R = Row> {
  /** CommandComplete tag, e.g. `"SELECT 3"`, `"INSERT 0 1"`. */
  command: string;
  /** Rows affected or returned, when the tag says (null for e.g. `CREATE TABLE`). */
  rowCount: number | null;
  fields: FieldDescription[];
  rows: R[];
}

/** Options of one query. */
export interface QueryOptions {
  /** Rows as arrays instead of objects. */
  rowMode?: "array";
  /** Ask for results in binary format (decoded by type OID; unknown types stay bytes). */
  binary?: boolean;
  /** Parameter type OIDs (0 or missing: let the server infer). */
  types?: readonly number[];
  /** Use (and keep) a cached named statement for this SQL; see {@link ClientOptions.prepare}. */
  prepare?: boolean;
  /**
   * Use the extended protocol even without parameters. It runs exactly one statement and
   * refuses `a; b` (42601), a guard where SQL text is assembled from input; without it a
   * parameterless `query()` sends a simple Query. Ignored by {@link Client.stream} (always extended).
   */
  extended?: boolean;
}

/** Options of {@link Client.stream}. */
export interface StreamOptions extends QueryOptions {
  /** Rows buffered before the socket is paused (default 1000). */
  highWaterMark?: number;
}

const SOCKET_EOF = "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.";

// ---------------------------------------------------------------------------------------------
// Handlers of in-flight requests

interface Handler {
  /** A backend message for this request (not N/A/S, which the client handles). */
  message(f: Frame): void;
  /** Fast path for DataRow `D`: the body is `bytes[start, end)`, no frame object made. */
  row?(bytes: Uint8Array, start: number, end: number): void;
  /**
   * Fast path for CopyData `d`: the payload is `bytes[start, end)`, no frame object made.
   * `bytes` is the received chunk (or a frame joined across chunks); the transports never reuse
   * a chunk they emitted, so a view of it may be kept (except by a request that {@link lends}:
   * its views of a lent chunk are valid while it holds the lease). On a socket the client opened itself the
   * chunk is the client's alone, so its bytes before `end` (frames already taken) may also be
   * overwritten (COPY TO compacts payloads in place); never on a caller's socket.
   */
  copyData?(bytes: Uint8Array, start: number, end: number): void;
  /**
   * Opt-in instead of {@link copyData}: CopyData payloads in pieces as they arrive, a message
   * spanning received chunks not joined. `piece` holds `PIECE_FIRST` when the piece starts its
   * message and `PIECE_LAST` when it ends it (both: a whole message). Views as in copyData.
   */
  copyDataPiece?(bytes: Uint8Array, start: number, end: number, piece: number): void;
  /** Every complete frame of the received chunk has been handed over (a batch may be flushed). */
  chunkEnd?(): void;
  /**
   * True while this request may be handed lent chunks (`_receive.ts`): it keeps views of them only
   * as {@link Client._lease} holds, and releases those once its consumer is done.
   */
  readonly lends?: boolean;
  /** ReadyForQuery: the request is complete. */
  ready(): void;
  /** The connection failed; reject. */
  fail(e: Error): void;
}

type Decoder = (bytes: Uint8Array, start: number, end: number) => unknown;

const textString: Decoder = (b, s, e) => utf8(b, s, e);
// The built-in parser objects, recognised by identity (captured before any caller changes them).
const STR_TEXT = defaultTypes.textParser(OID.text);
const BOOL_TEXT = defaultTypes.textParser(OID.bool);
const INT_OIDS = new Set<number>([OID.int2, OID.int4, OID.oid, OID.xid, OID.cid]);

/**
 * One decoder per column. The built-in text decoders of strings, integers and bool read the
 * bytes directly (the registry's own parser objects are recognised, so a type the caller
 * re-registered keeps its decoder).
 */
function makeDecoders(fields: FieldDescription[], types: TypeRegistry): Decoder[] {
  return fields.map((f): Decoder => {
    if (f.format === 1) {
      const p = types.binaryParser(f.typeOid);
      return (b, s, e) => p(b.subarray(s, e));
    }
    const p = types.textParser(f.typeOid);
    if (p === undefined || p === STR_TEXT) return textString;
    if (p === Number && INT_OIDS.has(f.typeOid)) return intTextBytes;
    if (p === BOOL_TEXT) return boolTextBytes;
    return (b, s, e) => p(utf8(b, s, e));
  });
}

/** Decodes DataRow `D` (body `b[start, end)`) into an object or array. */
function decodeRow(b: Uint8Array, start: number, fields: FieldDescription[], decoders: Decoder[], asArray: boolean): Row | unknown[] {
  const n = (b[start] << 8) | b[start + 1];
  if (n !== decoders.length) throw new ProtocolError(`DataRow has ${n} columns, RowDescription ${decoders.length}`);
  let p = start + 2;
  const out: Row | unknown[] = asArray ? new Array(n) : {};
  for (let i = 0; i < n; i++) {
    const len = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
    p += 4;
    let v: unknown = null;
    if (len >= 0) {
      v = decoders[i](b, p, p + len);
      p += len;
    }
    if (asArray) (out as unknown[])[i] = v;
    else (out as Row)[fields[i].name] = v;
  }
  return out;
}

const T = {
  parseComplete: 0x31, // 1
  bindComplete: 0x32, // 2
  closeComplete: 0x33, // 3
  commandComplete: 0x43, // C
  copyData: 0x64, // d
  copyDone: 0x63, // c
  copyInResponse: 0x47, // G
  copyOutResponse: 0x48, // H
  copyBothResponse: 0x57, // W
  dataRow: 0x44, // D
  emptyQuery: 0x49, // I
  error: 0x45, // E
  noData: 0x6e, // n
  notice: 0x4e, // N
  notification: 0x41, // A
  parameterDescription: 0x74, // t
  parameterStatus: 0x53, // S
  portalSuspended: 0x73, // s
  ready: 0x5a, // Z
  rowDescription: 0x54, // T
  auth: 0x52, // R
  backendKey: 0x4b, // K
  negotiateVersion: 0x76, // v
} as const;

/**
 * Frames whose handling keeps no view of their bytes (decoded to strings and numbers): they may
 * come from a lent chunk. Any other frame from one gives its buffer away for good.
 */
const KEEPS_NO_VIEW = new Set<number>([
  T.commandComplete, T.ready, T.error, T.notice, T.notification, T.parameterStatus, T.rowDescription, T.noData,
  T.parseComplete, T.bindComplete, T.closeComplete, T.portalSuspended, T.emptyQuery, T.copyInResponse,
  T.copyOutResponse, T.copyBothResponse, T.copyDone, T.parameterDescription,
]);

function errorFromBody(body: Uint8Array): PostgresError {
  return new PostgresError(fieldsOf(body));
}

function fieldsOf(body: Uint8Array): ErrorFields {
  const raw = parseFields(body);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    const name = ERROR_FIELDS[k as keyof typeof ERROR_FIELDS];
    if (name) out[name] = v;
  }
  return out as ErrorFields;
}

const NO_PARAMS: readonly unknown[] = Object.freeze([]);
const NO_OPTIONS: QueryOptions = Object.freeze({});
const EMPTY_RESULT = (): QueryResult<never> => ({ command: "", rowCount: null, fields: [], rows: [] });

/** A statement kept prepared for `prepare: true`: its server-side name and result columns. */
interface CachedStatement {
  name: string;
  /** Columns as the statement's Describe gave them (format 0); null: no rows; undefined: not yet described. */
  fields?: readonly FieldDescription[] | null;
  /** The same columns marked binary (`binary: true`), made on first use. */
  binaryFields?: FieldDescription[];
}

/** A cached statement's result columns in the format Bind asked for (shared: never changed). */
function resultFields(stmt: CachedStatement, format: number): FieldDescription[] {
  const fields = stmt.fields as FieldDescription[];
  if (format === 0) return fields;
  return stmt.binaryFields ??= Object.freeze(fields.map((c) => Object.freeze({ ...c, format: 1 }))) as FieldDescription[];
}

/**
 * Collects the results of a simple or extended query: every result ({@link promise}), or with
 * `lastOnly` only the last one ({@link last}; earlier results are dropped as they complete).
 */
class QueryHandler<R> implements Handler {
  results: QueryResult<R>[] = [];
  #fields: FieldDescription[] = [];
  #decoders: Decoder[] = [];
  #rows: R[] = [];
  #error: Error | undefined;
  #types: TypeRegistry;
  #asArray: boolean;
  #lastOnly: boolean;
  #resolve!: (r: QueryResult<R>[] | QueryResult<R>) => void;
  #reject!: (e: Error) => void;
  #client: Client;
  readonly #promise: Promise<QueryResult<R>[] | QueryResult<R>>;

  constructor(client: Client, types: TypeRegistry, asArray: boolean, lastOnly = false) {
    this.#client = client;
    this.#types = types;
    this.#asArray = asArray;
    this.#lastOnly = lastOnly;
    this.#promise = new Promise((a, b) => {
      this.#resolve = a;
      this.#reject = b;
    });
  }

  /** Every result (without `lastOnly`). */
  get promise(): Promise<QueryResult<R>[]> {
    return this.#promise as Promise<QueryResult<R>[]>;
  }

  /** The last result (with `lastOnly`). */
  get last(): Promise<QueryResult<R>> {
    return this.#promise as Promise<QueryResult<R>>;
  }

  /** Called with each statement's result as it completes (simpleQuery's `onResult`). */
  onResult: ((r: QueryResult<R>) => void) | undefined;

  #push(r: QueryResult<R>): void {
    if (this.#lastOnly) this.results[0] = r;
    else this.results.push(r);
    if (this.onResult) {
      try {
        this.onResult(r);
      } catch (e) {
        this.#error ??= e as Error; // the caller's callback failed: reject once the server is done
      }
    }
  }

  /**
   * For `prepare: true`: the cached statement this query executes. Its result columns come
   * from the statement's Describe (sent once, with its Parse) instead of a Describe per query;
   * `format` is what Bind asked for (Describe of a statement reports every column as text).
   */
  cached: { stmt: CachedStatement; format: number } | undefined;
  #described = false;

  message(f: Frame): void {
    switch (f.type) {
      case T.rowDescription:
        this.#fields = parseRowDescription(f.body);
        if (this.cached) {
          // The statement's own Describe, sent with its Parse: kept for every later execution.
          this.cached.stmt.fields = Object.freeze(this.#fields.map((c) => Object.freeze(c)));
          this.#fields = resultFields(this.cached.stmt, this.cached.format);
          this.#described = true;
        }
        this.#decoders = makeDecoders(this.#fields, this.#types);
        this.#rows = [];
        break;
      case T.noData:
        if (this.cached) {
          this.cached.stmt.fields = null;
          this.#described = true;
        }
        break;
      case T.bindComplete:
        // A cached statement executed without a Describe of its own: its columns are known by
        // now, from the Describe sent with its Parse, which the server answered earlier.
        if (this.cached && !this.#described) {
          const fields = this.cached.stmt.fields;
          if (fields === undefined) this.#error ??= new ProtocolError(`the result columns of prepared statement "${this.cached.stmt.name}" are unknown (its Describe failed)`);
          else if (fields !== null) {
            this.#fields = resultFields(this.cached.stmt, this.cached.format);
            this.#decoders = makeDecoders(this.#fields, this.#types);
          }
          this.#rows = [];
        }
        break;
      case T.dataRow:
        this.row(f.body, 0);
        break;
      case T.commandComplete: {
        const { command, rowCount } = parseCommandComplete(f.body);
        this.#push({ command, rowCount, fields: this.#fields, rows: this.#rows });
        this.#fields = [];
        this.#rows = [];
        break;
      }
      case T.emptyQuery:
        this.#push(EMPTY_RESULT());
        break;
      case T.error:
        this.#error ??= errorFromBody(f.body);
        break;
      case T.copyInResponse:
        // A COPY FROM STDIN sent through query(): refuse it cleanly.
        this.#client._sendNow(copyFail("COPY FROM STDIN is not supported by query(); use copyFrom()"));
        break;
      case T.copyOutResponse:
      case T.copyData:
      case T.copyDone:
        this.#error ??= new TypeError("COPY TO STDOUT is not supported by query(); use copyTo()");
        break;
      case T.parseComplete:
        this.parsed = true;
        break;
      default:
        break; // 2 3 n t s: acknowledgements
    }
  }

  /** Whether ParseComplete arrived (a cached statement now exists on the server). */
  parsed = false;

  /** The first error so far (server error or a row that failed to decode). */
  get error(): Error | undefined {
    return this.#error;
  }

  row(bytes: Uint8Array, start: number): void {
    try {
      this.#rows.push(decodeRow(bytes, start, this.#fields, this.#decoders, this.#asArray) as R);
    } catch (e) {
      this.#error ??= e as Error; // a decoder failed: report it, keep the connection in sync
    }
  }

  ready(): void {
    if (this.#error) this.#reject(this.#error);
    else this.#resolve(this.#lastOnly ? this.results[0] ?? EMPTY_RESULT() : this.results);
  }

  fail(e: Error): void {
    this.#reject(this.#error instanceof PostgresError ? this.#error : e);
  }
}

/** Parse + Describe statement: parameter and result types of a prepared statement. */
class DescribeHandler implements Handler {
  params: number[] = [];
  fields: FieldDescription[] = [];
  #error: Error | undefined;
  #resolve!: () => void;
  #reject!: (e: Error) => void;
  readonly promise = new Promise<void>((a, b) => {
    this.#resolve = a;
    this.#reject = b;
  });
  message(f: Frame): void {
    if (f.type === T.parameterDescription) this.params = parseParameterDescription(f.body);
    else if (f.type === T.rowDescription) this.fields = parseRowDescription(f.body);
    else if (f.type === T.error) this.#error ??= errorFromBody(f.body);
  }
  ready(): void {
    if (this.#error) this.#reject(this.#error);
    else this.#resolve();
  }
  fail(e: Error): void {
    this.#reject(this.#error ?? e);
  }
}

/** Bytes a row stream or COPY TO buffers before it pauses the socket, whatever the item count. */
const FLOW_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Shared machinery of row streams and COPY TO: items are buffered; the socket is paused while
 * the buffer holds `highWaterMark` items or {@link FLOW_MAX_BYTES} bytes, and resumed once the
 * consumer has taken half of either.
 */
class Flow<T> implements AsyncIterableIterator<T> {
  #buf: T[] = [];
  /** Byte size of each buffered item, parallel to #buf (0 when the producer does not say). */
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;
  #done = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #paused = false;
  #discard = false;
  #hwm: number;
  #maxBytes: number;
  #client: Client;

  constructor(client: Client, hwm: number, maxBytes = FLOW_MAX_BYTES) {
    this.#client = client;
    this.#hwm = hwm;
    this.#maxBytes = maxBytes;
  }

  /**
   * Buffers one item of `bytes` bytes. Reading pauses at `hwm` items or `maxBytes` bytes,
   * whichever comes first: a count alone lets memory grow with the row size (256 CopyData
   * messages of 16 MiB would be 4 GiB).
   */
  push(item: T, bytes = 0): void {
    if (this.#discard) return;
    this.#buf.push(item);
    this.#sizes.push(bytes);
    this.#bytes += bytes;
    if (!this.#paused && (this.#buf.length - this.#head >= this.#hwm || this.#bytes >= this.#maxBytes)) {
      this.#paused = true;
      this.#client._pauseReading();
    }
    this.#signal();
  }

  end(error?: Error): void {
    this.#done = true;
    this.#error ??= error;
    if (this.#paused) {
      this.#paused = false;
      this.#client._resumeReading();
    }
    this.#signal();
  }

  #signal(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Removes and returns the oldest buffered item (the caller checked there is one). */
  #shift(): T {
    const v = this.#buf[this.#head];
    this.#bytes -= this.#sizes[this.#head];
    (this.#buf as unknown[])[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#buf.length) {
      this.#buf = this.#buf.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
    // Resume with room for half a window again, by count and by bytes.
    if (this.#paused && this.#buf.length - this.#head <= this.#hwm >> 1 && this.#bytes <= this.#maxBytes / 2) {
      this.#paused = false;
      this.#client._resumeReading();
    }
    return v;
  }

  /**
   * Moves the items already buffered into `into`, oldest first, while their byte sizes add up
   * to at most `maxBytes`; returns the bytes moved. For readers that coalesce small items
   * (one CopyData per row) into one step instead of one promise per item.
   */
  takeBuffered(into: T[], maxBytes: number): number {
    let taken = 0;
    while (this.#head < this.#buf.length && taken + this.#sizes[this.#head] <= maxBytes) {
      taken += this.#sizes[this.#head];
      into.push(this.#shift());
    }
    return taken;
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.#head < this.#buf.length) return { value: this.#shift(), done: false };
      if (this.#done) {
        if (this.#error) {
          const e = this.#error;
          this.#error = undefined;
          throw e;
        }
        return { value: undefined, done: true };
      }
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  /** The consumer stopped early: drop what remains (the connection stays usable). */
  return(): Promise<IteratorResult<T>> {
    this.#discard = true;
    this.#buf = [];
    this.#sizes = [];
    this.#bytes = 0;
    this.#head = 0;
    if (this.#paused) {
      this.#paused = false;
      this.#client._resumeReading();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Rows of a query as an async iterator, with backpressure. */
class StreamHandler implements Handler {
  #fields: FieldDescription[] = [];
  #decoders: Decoder[] = [];
  #error: Error | undefined;
  #types: TypeRegistry;
  #asArray: boolean;
  readonly flow: Flow<Row | unknown[]>;
  constructor(client: Client, types: TypeRegistry, asArray: boolean, hwm: number) {
    this.#types = types;
    this.#asArray = asArray;
    this.flow = new Flow(client, hwm);
  }
  message(f: Frame): void {
    if (f.type === T.rowDescription) {
      this.#fields = parseRowDescription(f.body);
      this.#decoders = makeDecoders(this.#fields, this.#types);
    } else if (f.type === T.dataRow) this.row(f.body, 0);
    else if (f.type === T.error) this.#error ??= errorFromBody(f.body);
  }
  row(bytes: Uint8Array, start: number, end = bytes.length): void {
    try {
      this.flow.push(decodeRow(bytes, start, this.#fields, this.#decoders, this.#asArray), end - start);
    } catch (e) {
      this.#error ??= e as Error;
    }
  }
  ready(): void {
    this.flow.end(this.#error);
  }
  fail(e: Error): void {
    this.flow.end(this.#error ?? e);
  }
}

/** COPY ... TO STDOUT: CopyData payloads as an async iterator, with backpressure. */
class CopyOutHandler implements Handler {
  #error: Error | undefined;
  result: { command: string; rowCount: number | null } | undefined;
  readonly flow: Flow<Uint8Array>;
  #client: Client;
  #coalesce: boolean;
  // Coalescing: payloads are copied into #batch as they are framed; [#mark, #fill) is not yet
  // pushed. One push per received chunk instead of a frame, a view and a flow item per row.
  #batch: Uint8Array | undefined;
  #mark = 0;
  #fill = 0;
  // Coalescing: the CopyData messages in [#mark, #fill), and per pushed piece its message count,
  // oldest first from #countHead (the reader takes one per piece, in push order).
  #rows = 0;
  #counts: number[] = [];
  #countHead = 0;
  /** Pieces pushed so far. */
  #pushed = 0;
  // Batches this handler moved on from, each with the number of pieces pushed once its last
  // piece was (a reader that has taken that many is past it), and batches free for reuse: only
  // when the reader promised to be done with a chunk once it asks for the next (reuse).
  #retired: { batch: Uint8Array; pieces: number }[] = [];
  #spare: Uint8Array[] = [];
  #reuse = false;
  // Coalescing in place: the received chunk whose payloads are being compacted, [#mark, #fill)
  // of it holding them back to back. Only on a socket the client opened itself (see copyData).
  #inPlace: boolean;
  #cur: Uint8Array | undefined;
  // With reuse, lent chunks too (`_receive.ts`): the leases the pushed pieces lie in, each with
  // the number of pieces pushed once its last piece was.
  #held: { lease: Lease; upto: number }[] = [];
  constructor(client: Client, hwm: number, coalesce: boolean) {
    this.#client = client;
    this.#coalesce = coalesce;
    this.#inPlace = coalesce && client.transport.transport !== "custom";
    this.flow = new Flow(client, hwm);
  }
  /**
   * Coalescing copies each payload to join the previous ones (COPY sends a 5-byte header per
   * row). On a socket the client opened itself (native TCP/unix, TLS, rsocket) the received
   * chunk is ours alone: the transports never reuse or touch a chunk once emitted, and the
   * client is its only reader. So payloads are moved down over the headers inside the chunk
   * (`copyWithin`: measured 20-45 ns per row in V8 and JSC, against 60-120 ns for
   * `set(subarray)` into a batch) and the compacted run is handed out as a view; no batch is
   * allocated. Only bytes of frames already framed and consumed are overwritten: the frame
   * reader keeps nothing of the chunk before its position, and a non-CopyData frame between
   * (a notice) was decoded before the next payload moves over it. A caller's socket
   * (`socketFactory`) may hand over memory it still owns, or the same chunk to other readers:
   * its chunks are never written, and payloads are copied into batches instead.
   */
  copyData(bytes: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (this.#inPlace) {
      if (bytes === this.#cur && n <= COALESCE_MAX >> 2 && this.#fill - this.#mark + n <= COALESCE_MAX) {
        let o = this.#fill;
        if (n <= 16) {
          for (let i = start; i < end; i++) bytes[o++] = bytes[i];
        } else {
          bytes.copyWithin(o, start, end);
          o += n;
        }
        this.#fill = o;
        this.#rows++;
        return;
      }
      // The first payload of a chunk (or of a frame joined across chunks, a fresh buffer, or
      // the first past COALESCE_MAX) stays where it is and starts a run; a large one goes alone.
      this.chunkEnd();
      if (n > COALESCE_MAX >> 2) return this.#push(bytes.subarray(start, end), n, 1);
      this.#cur = bytes;
      this.#mark = start;
      this.#fill = end;
      this.#rows = 1;
      return;
    }
    if (!this.#coalesce || n > COALESCE_MAX >> 2) {
      this.chunkEnd();
      // A view, as without coalescing: the transports never reuse a chunk they emitted.
      this.#push(bytes.subarray(start, end), n, 1);
      return;
    }
    let b = this.#batch;
    if (b === undefined || this.#fill + n > b.length) {
      this.chunkEnd();
      if (b !== undefined && this.#reuse) this.#retired.push({ batch: b, pieces: this.#pushed });
      b = this.#batch = this.#spare.pop() ?? new Uint8Array(COALESCE_MAX);
      this.#mark = this.#fill = 0;
    }
    let o = this.#fill;
    if (n <= 48) {
      // A short row: a loop is cheaper than making a view for set().
      for (let i = start; i < end; i++) b[o++] = bytes[i];
    } else {
      b.set(bytes.subarray(start, end), o);
      o += n;
    }
    this.#fill = o;
    this.#rows++;
  }
  chunkEnd(): void {
    if (this.#inPlace) {
      const c = this.#cur;
      if (c === undefined) return;
      this.#cur = undefined;
      this.#push(c.subarray(this.#mark, this.#fill), this.#fill - this.#mark, this.#rows);
      this.#mark = this.#fill = this.#rows = 0;
      return;
    }
    if (this.#fill > this.#mark) {
      this.#push(this.#batch!.subarray(this.#mark, this.#fill), this.#fill - this.#mark, this.#rows);
      this.#mark = this.#fill;
      this.#rows = 0;
    }
  }
  /** Lent reads may carry this copy's rows: in place, with a reader that reuses. */
  get lends(): boolean {
    return this.#reuse && this.#inPlace;
  }
  /** The reader will be done with each chunk once it asks for the next (reusing()): its batches and lent reads may be reused. */
  reuse(): void {
    this.#reuse = true;
  }
  #push(piece: Uint8Array, n: number, rows: number): void {
    if (this.#coalesce) this.#counts.push(rows);
    this.#pushed++;
    const l = this.#reuse ? this.#client._lease() : undefined;
    if (l !== undefined) {
      const last = this.#held[this.#held.length - 1];
      if (last?.lease === l) last.upto = this.#pushed;
      else {
        l.refs++;
        this.#held.push({ lease: l, upto: this.#pushed });
      }
    }
    this.flow.push(piece, n);
  }
  /** Coalescing: the message count of the oldest piece the reader has not accounted for. */
  takeCount(): number {
    const n = this.#counts[this.#countHead++] ?? 0;
    if (this.#countHead > 1024 && this.#countHead * 2 > this.#counts.length) {
      this.#counts = this.#counts.slice(this.#countHead);
      this.#countHead = 0;
    }
    return n;
  }
  /** The reader is done with its first `pieces` pieces: the batches they lived in may be reused. */
  release(pieces: number): void {
    const held = this.#held;
    while (held.length > 0 && held[0].upto <= pieces) unlease(held.shift()!.lease);
    const r = this.#retired;
    while (r.length > 0 && r[0].pieces <= pieces) {
      const { batch } = r.shift()!;
      // As many as the flow may hold before it pauses reading: enough that a reader that lags
      // behind still gets every batch back, no more memory than the flow's window.
      if (this.#spare.length <= FLOW_MAX_BYTES / COALESCE_MAX) this.#spare.push(batch);
    }
  }
  /** The reader stopped early: nothing counts or reuses any more. */
  stop(): void {
    this.#coalesce = false;
    this.#inPlace = false;
    this.#reuse = false;
    for (const { lease } of this.#held) unlease(lease);
    this.#held = [];
    this.#counts = [];
    this.#retired = [];
    this.#spare = [];
  }
  message(f: Frame): void {
    this.chunkEnd();
    switch (f.type) {
      case T.copyData: // only when not framed by the fast path
        this.#push(f.body, f.body.length, 1);
        break;
      case T.commandComplete:
        this.result = parseCommandComplete(f.body);
        break;
      case T.error:
        this.#error ??= errorFromBody(f.body);
        break;
      case T.copyInResponse:
        this.#client._sendNow(copyFail("copyTo() was given a COPY FROM statement"));
        break;
      default:
        break; // H, c
    }
  }
  ready(): void {
    this.chunkEnd();
    if (!this.#error && !this.result) this.#error = new TypeError("copyTo() was given a statement that is not COPY ... TO STDOUT");
    this.flow.end(this.#error);
  }
  fail(e: Error): void {
    this.chunkEnd();
    this.flow.end(this.#error ?? e);
  }
}

/** Most bytes one coalesced COPY chunk gathers from what is already buffered. */
const COALESCE_MAX = 256 * 1024;

/**
 * The CopyData payloads of `h`, each step joining those already received (up to
 * {@link COALESCE_MAX} bytes) into one chunk: COPY text sends a message per row, and a
 * promise and a consumer step per row cost more than the row's own bytes. A chunk is a view of
 * the pieces that lie next to each other in one batch (no copy); a piece in another buffer
 * starts the next chunk. `rows` learns the message count of each chunk before it is handed out.
 * With `reuse`, a chunk's batch goes back to the handler once the consumer asks for the next.
 */
async function* coalesced(h: CopyOutHandler, rows: { n: number }, reuse: boolean): AsyncGenerator<Uint8Array> {
  const flow = h.flow;
  // Pieces taken from the flow and not yet handed out, from `head`.
  const parts: Uint8Array[] = [];
  let head = 0;
  let handed = 0;
  try {
    for (;;) {
      if (head === parts.length) {
        parts.length = 0;
        head = 0;
        const r = await flow.next();
        if (r.done) return;
        parts.push(r.value);
        flow.takeBuffered(parts, COALESCE_MAX - r.value.length);
      }
      // The run of pieces lying next to each other in one buffer, as one view.
      const first = parts[head++];
      let n = h.takeCount();
      let end = first.byteOffset + first.length;
      while (head < parts.length && parts[head].buffer === first.buffer && parts[head].byteOffset === end) {
        end += parts[head++].length;
        n += h.takeCount();
        handed++;
      }
      handed++;
      const out = end === first.byteOffset + first.length ? first : new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
      rows.n += n;
      yield out;
      if (reuse) h.release(handed);
    }
  } finally {
    h.stop();
    await flow.return();
  }
}

/** `copyBoth(sql, { batched: true, reuse: true })`'s batches: each released when the next is asked for. */
async function* reusedBatches(h: CopyBothHandler, flow: Flow<CopyDataBatch>): AsyncGenerator<CopyDataBatch> {
  try {
    for (;;) {
      const r = await flow.next();
      if (r.done) return;
      yield r.value;
      h.releaseBatch();
    }
  } finally {
    h.stopLending();
    await flow.return();
  }
}

/** COPY ... FROM STDIN: waits for CopyInResponse, then the client pumps the data. */
class CopyInHandler implements Handler {
  #error: Error | undefined;
  result: { command: string; rowCount: number | null } | undefined;
  /** Resolves when the server is ready for data (true) or refused the COPY (false). */
  readonly started: Promise<boolean>;
  #start!: (ok: boolean) => void;
  #resolve!: (r: { command: string; rowCount: number | null }) => void;
  #reject!: (e: Error) => void;
  /** Set when the server reported an error during the copy: stop sending. */
  serverFailed = false;
  readonly promise = new Promise<{ command: string; rowCount: number | null }>((a, b) => {
    this.#resolve = a;
    this.#reject = b;
  });
  constructor() {
    this.started = new Promise((r) => (this.#start = r));
    // The connection can fail while the source is still being pumped, before #runCopy awaits
    // this promise: it is surfaced there, so it must not count as unhandled meanwhile.
    this.promise.catch(() => {});
  }
  /** An error of the data source (reported instead of the server's echo of our CopyFail). */
  sourceError: Error | undefined;
  message(f: Frame): void {
    switch (f.type) {
      case T.copyInResponse:
        this.#start(true);
        break;
      case T.commandComplete:
        this.result = parseCommandComplete(f.body);
        break;
      case T.error:
        this.#error ??= errorFromBody(f.body);
        this.serverFailed = true;
        this.#start(false);
        break;
      case T.copyOutResponse:
        this.#error ??= new TypeError("copyFrom() was given a COPY TO statement; use copyTo()");
        break;
      default:
        break;
    }
  }
  ready(): void {
    this.#start(false);
    const err = this.sourceError ?? this.#error ?? (this.result ? undefined : new TypeError("copyFrom() was given a statement that is not COPY ... FROM STDIN"));
    if (err) this.#reject(err);
    else this.#resolve(this.result!);
  }
  fail(e: Error): void {
    this.serverFailed = true;
    this.#start(false);
    this.#reject(this.sourceError ?? this.#error ?? e);
  }
}

/**
 * A replication command's COPY: CopyBoth (`START_REPLICATION`) or CopyOut (`BASE_BACKUP`), with
 * the result sets the server sends before the copy (BASE_BACKUP's start position and
 * tablespaces) and after it (BASE_BACKUP's end position, the end-of-timeline result).
 */
class CopyBothHandler implements Handler {
  readonly flow: Flow<Uint8Array>;
  /** Result sets before the copy; filled when the copy starts. */
  before: QueryResult[] = [];
  /** "both" or "out" once the server entered copy mode; false if it never did. */
  readonly started: Promise<"both" | "out" | false>;
  readonly done: Promise<{ before: QueryResult[]; after: QueryResult[] }>;
  /** The server ended its side of the copy (CopyDone). */
  serverDone = false;
  /** We ended our side (CopyDone sent). */
  clientDone = false;
  mode: "both" | "out" | undefined;
  #start!: (m: "both" | "out" | false) => void;
  #resolve!: (r: { before: QueryResult[]; after: QueryResult[] }) => void;
  #reject!: (e: Error) => void;
  // The result sets around the copy are collected by the same code as a query's results.
  #sets: QueryHandler<Row>;
  #error: Error | undefined;
  #client: Client;
  /** With `batched`: the CopyData messages of one received chunk, one flow item per chunk. */
  readonly batches: Flow<CopyDataBatch> | undefined;
  #batch: CopyDataBatch | undefined;
  #batchBytes = 0;
  /** With `pieces`: the payloads in pieces (see {@link CopyDataBatch.continued}). */
  copyDataPiece: ((bytes: Uint8Array, start: number, end: number, piece: number) => void) | undefined;
  // With `reuse`: the lease each pushed batch's bytes lie in (or undefined), oldest first.
  #lend: boolean;
  #held: (Lease | undefined)[] = [];
  constructor(client: Client, types: TypeRegistry, hwm: number, batched = false, pieces = false, reuse = false) {
    this.#client = client;
    this.#sets = new QueryHandler<Row>(client, types, false);
    this.flow = new Flow(client, hwm);
    if (batched) this.batches = new Flow(client, hwm);
    if (pieces) this.copyDataPiece = this.#piece;
    this.#lend = reuse && batched;
    this.started = new Promise((r) => (this.#start = r));
    this.done = new Promise((a, b) => {
      this.#resolve = a;
      this.#reject = b;
    });
    this.done.catch(() => {}); // surfaced through the iterator or by whoever awaits done
  }
  copyData(bytes: Uint8Array, start: number, end: number): void {
    if (this.batches === undefined) {
      // A view: the transports never reuse a chunk they emitted.
      this.flow.push(bytes.subarray(start, end), end - start);
      return;
    }
    // A replication stream is mostly short messages (the walsender flushes each one): one flow
    // item and one promise per received chunk instead of per message.
    const b = this.#batch ??= { bytes: [], offsets: [] };
    b.bytes.push(bytes);
    b.offsets.push(start, end);
    this.#batchBytes += end - start;
  }
  // Bulk streams (BASE_BACKUP's 32 KiB messages in 64 KiB reads): a message spanning two chunks
  // is handed on as its two parts instead of being joined (a copy into fresh memory).
  #piece = (bytes: Uint8Array, start: number, end: number, piece: number): void => {
    this.#batch ??= { bytes: [], offsets: [], continued: (piece & PIECE_FIRST) === 0, unfinished: false };
    this.copyData(bytes, start, end); // appended to that batch (pieces implies batched)
    this.#batch.unfinished = (piece & PIECE_LAST) === 0;
  };
  chunkEnd(): void {
    const b = this.#batch;
    if (b === undefined) return;
    this.#batch = undefined;
    if (this.#lend) {
      const l = this.#client._lease();
      if (l !== undefined) l.refs++;
      this.#held.push(l);
    }
    this.batches!.push(b, this.#batchBytes);
    this.#batchBytes = 0;
  }
  /** With `reuse`: lent reads may carry this copy's messages. */
  get lends(): boolean {
    return this.#lend;
  }
  /** With `reuse`: the reader is done with the oldest batch it was handed. */
  releaseBatch(): void {
    const l = this.#held.shift();
    if (l !== undefined) unlease(l);
  }
  /** With `reuse`: the reader stopped; nothing is lent any more. */
  stopLending(): void {
    this.#lend = false;
    for (const l of this.#held) if (l !== undefined) unlease(l);
    this.#held = [];
  }
  #end(error?: Error): void {
    this.chunkEnd();
    this.flow.end(error);
    this.batches?.end(error);
  }
  message(f: Frame): void {
    this.chunkEnd();
    switch (f.type) {
      case T.copyBothResponse:
      case T.copyOutResponse:
        this.mode = f.type === T.copyBothResponse ? "both" : "out";
        this.before = this.#sets.results.slice();
        this.#start(this.mode);
        break;
      case T.copyData: // only when not framed by the fast path
        this.copyData(f.body, 0, f.body.length);
        this.chunkEnd();
        break;
      case T.copyDone:
        this.serverDone = true;
        this.#end();
        break;
      case T.rowDescription:
      case T.dataRow:
      case T.commandComplete:
        this.#sets.message(f);
        break;
      case T.error:
        this.#error ??= errorFromBody(f.body);
        break;
      case T.copyInResponse:
        this.#client._sendNow(copyFail("copyBoth() was given a COPY FROM statement; use copyFrom()"));
        break;
      default:
        break;
    }
  }
  row(bytes: Uint8Array, start: number): void {
    this.#sets.row(bytes, start);
  }
  #results(): { before: QueryResult[]; after: QueryResult[] } {
    const all = this.#sets.results;
    return this.mode ? { before: this.before, after: all.slice(this.before.length) } : { before: all, after: [] };
  }
  ready(): void {
    this.#start(false);
    const err = this.#error ?? this.#sets.error;
    this.#end(err);
    if (err) this.#reject(err);
    else this.#resolve(this.#results());
  }
  fail(e: Error): void {
    const err = this.#error instanceof PostgresError ? this.#error : e;
    this.#start(false);
    this.#end(err);
    this.#reject(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Sockets

/**
 * The default socket factory: `node:net` TCP or unix socket, connected, no Nagle, keepalives.
 * (In Bun the client uses `Bun.connect` instead where TLS is never negotiated: {@link attemptFactory}.)
 */
export const netSocketFactory: SocketFactory = (target, options) => netSocket(target, options, undefined);

/**
 * @internal The client's own `node:net` socket for an attempt that never negotiates TLS: reads
 * go through a {@link Receiver} (`onread`), so COPY data can land in reused memory (`_receive.ts`).
 * TLS attempts keep {@link netSocketFactory}: `node:tls` takes over the socket's reading.
 */
export const receivingNetSocketFactory: SocketFactory = (target, options) => netSocket(target, options, new Receiver());

function netSocket(target: SocketTarget, { signal, keepAlive }: Parameters<SocketFactory>[1], rx: Receiver | undefined): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    const onread = rx ? { onread: { buffer: rx.buffer, callback: rx.callback } } : {};
    const s: Socket = target.kind === "unix"
      ? netConnect({ path: target.path, ...onread })
      : netConnect({ host: target.hostaddr || target.host, port: target.port, ...onread });
    if (rx) (s as Socket & { [RECEIVER]?: Receiver })[RECEIVER] = rx;
    const onAbort = () => {
      s.destroy();
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    s.once("error", (e) => {
      signal.removeEventListener("abort", onAbort);
      reject(e);
    });
    s.once("connect", () => {
      signal.removeEventListener("abort", onAbort);
      if (target.kind === "tcp") {
        s.setNoDelay(true);
        if (keepAlive) s.setKeepAlive(true, (keepAlive.idle ?? 0) * 1000);
      }
      resolve(s);
    });
  });
}

/**
 * @internal The factory for one connection attempt (or cancel request): the caller's if given,
 * else {@link netSocketFactory}, except for a plain attempt, which can never negotiate TLS: in
 * Bun it goes over `Bun.connect` (see `_bun_socket.ts`: 4-7% more round trips than Bun's
 * `node:net`), elsewhere over {@link receivingNetSocketFactory} (reads into reused memory).
 */
export function attemptFactory(given: SocketFactory | undefined, mode: "tls" | "plain"): SocketFactory {
  return given ?? (mode === "plain" ? bunSocketFactory() ?? receivingNetSocketFactory : netSocketFactory);
}

function socketTarget(h: HostTarget): SocketTarget {
  if (h.kind === "tcp") return { kind: "tcp", host: h.host, port: h.port, hostaddr: h.hostaddr };
  // libpq: a host starting with "@" names a directory in Linux's abstract socket namespace.
  const dir = h.host.startsWith("@") ? "\0" + h.host.slice(1) : h.host;
  return { kind: "unix", path: `${dir}/.s.PGSQL.${h.port}` };
}

/** libpq's prefix of a per-host connection failure. */
function describeHost(h: HostTarget, remote?: string): string {
  if (h.kind === "unix") return `connection to server on socket "${h.host}/.s.PGSQL.${h.port}" failed`;
  const addr = h.hostaddr && h.hostaddr !== h.host ? h.hostaddr : !isIP(h.host) && remote ? remote : undefined;
  return `connection to server at "${h.host}"${addr ? ` (${addr})` : ""}, port ${h.port} failed`;
}

function socketErrorText(e: unknown, h: HostTarget): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case "ECONNREFUSED":
      return h.kind === "unix"
        ? "Connection refused\n\tIs the server running locally and accepting connections on that socket?"
        : "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?";
    case "ENOENT":
      return "No such file or directory\n\tIs the server running locally and accepting connections on that socket?";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `could not translate host name "${h.host}" to address: ${err.code === "ENOTFOUND" ? "Name or service not known" : "Temporary failure in name resolution"}`;
    case "ECONNRESET":
    case "EPIPE":
      return SOCKET_EOF;
    default:
      return err instanceof Error ? err.message : String(e);
  }
}

// ---------------------------------------------------------------------------------------------
// The client

/** What a failed attempt means for the host walk. */
class AttemptError extends Error {
  /** Stop trying other hosts (authentication failed, as in libpq). */
  final: boolean;
  /** Retry this host without/with TLS (sslmode prefer/allow). */
  retryOtherTls: boolean;
  code?: string;
  constructor(message: string, cause: unknown, final: boolean, retryOtherTls = false, code?: string) {
    super(message, { cause });
    this.final = final;
    this.retryOtherTls = retryOtherTls;
    this.code = code;
  }
}

/**
 * A connection to PostgreSQL. Make one with {@link connect} (from `mod.ts`) or
 * {@link connectWith}. Events: `notice` (Notice), `notification` (Notification),
 * `parameter` (name, value), `end` (error or undefined) when the connection is gone.
 */
export class Client extends EventEmitter {
  #socket!: Duplex;
  #raw: Duplex | undefined; // the socket under TLS, destroyed with it
  #reader = new FrameReader();
  #queue: Handler[] = [];
  #qhead = 0;
  #out: Uint8Array[] = [];
  #flushScheduled = false;
  #held: (Uint8Array | { copy: Uint8Array })[] | undefined; // writes held back while a COPY FROM owns the wire
  #closed: Error | undefined;
  #ending = false;
  #closedPromise!: Promise<void>;
  #fatal: PostgresError | undefined;
  #types: TypeRegistry;
  #factory: SocketFactory;
  #host!: HostTarget;
  #onNotice?: (n: Notice) => void;
  #onNotification?: (n: Notification) => void;
  #stmtCounter = 0;
  #pauses = 0;
  #lease: Lease | undefined; // of the chunk being framed, while it is lent
  #startup: { frames: Frame[]; wake?: () => void; error?: Error } | undefined;
  #prepare: boolean;
  // SQL (+ parameter types) → statement kept prepared on the server, for `prepare: true`; oldest first.
  #stmtCache = new Map<string, CachedStatement>();
  // Builder reused by every extended query (its bytes are copied out by take()).
  #w = new Writer(1024);

  /** ParameterStatus values reported by the server (server_version, TimeZone, in_hot_standby, ...). */
  readonly parameters: Map<string, string> = new Map();
  /** BackendKeyData: the backend's process id (0 until connected). */
  processId = 0;
  /** BackendKeyData: the cancel secret. */
  secretKey: Uint8Array = new Uint8Array(0);
  /** Transaction status from the last ReadyForQuery: `I` idle, `T` in a transaction, `E` failed. */
  transactionStatus = "I";
  /** Whether the connection uses TLS. */
  tls = false;
  /** The authentication method used ("trust", "password", "md5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"). */
  authMethod = "";
  /** Whether SCRAM channel binding was used and verified. */
  channelBound = false;
  /** Protocol version in use: "3.0", or "3.2" with `max_protocol_version=3.2` on PostgreSQL 18+. */
  protocolVersion = "3.0";
  /** The transport this connection runs over and why (set by `connect()`; `custom` for a caller's factory). */
  transport: TransportChoice = { transport: "custom", reason: "connected through connectWith()" };

  /** @internal Use {@link connectWith}. */
  constructor(types: TypeRegistry, factory: SocketFactory, opts: ClientOptions) {
    super();
    this.#types = types;
    this.#factory = factory;
    this.#onNotice = opts.onNotice;
    this.#onNotification = opts.onNotification;
    this.#prepare = opts.prepare === true;
  }

  /** The host this client is connected to. */
  get host(): HostTarget {
    return this.#host;
  }

  /** Whether the connection is gone. */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  // --- socket plumbing ---------------------------------------------------------------------

  /** @internal Attaches the socket after TLS negotiation; starts reading frames. */
  _attach(socket: Duplex, host: HostTarget, raw: Duplex = socket): void {
    this.#socket = socket;
    this.#raw = raw;
    this.#host = host;
    this.#startup = { frames: [] };
    let closedResolve!: () => void;
    this.#closedPromise = new Promise((r) => (closedResolve = r));
    const rx = (raw as Duplex & { [RECEIVER]?: ReceiveSource })[RECEIVER];
    if (rx !== undefined && raw === socket) rx.attach((chunk, lease) => this.#onData(chunk, lease), () => this.#lends());
    else socket.on("data", (chunk: Uint8Array) => this.#onData(chunk, undefined));
    socket.on("error", (e: Error) => this.#teardown(e));
    socket.on("close", () => {
      this.#teardown(undefined);
      closedResolve();
    });
    socket.on("end", () => this.#teardown(undefined));
    socket.resume();
  }

  /**
   * A received chunk. With a `lease` it is lent (`_receive.ts`): its buffer is read into again
   * once every holder let go, so only a request that {@link Handler.lends} may keep views of it
   * (taking {@link _lease} holds); anything else that may keep a view gives the buffer away.
   */
  #onData(chunk: Uint8Array, lease: Lease | undefined): void {
    if (lease !== undefined && !this.#lends()) lease = this.#giveAway(lease);
    this.#lease = lease;
    try {
      const r = this.#reader;
      r.pieceType = this.#pieceType();
      r.push(chunk);
      while (r.advance()) {
        const t = r.type;
        if ((t === T.dataRow || t === T.copyData) && !this.#startup) {
          const h = this.#queue[this.#qhead];
          if (t === T.dataRow) {
            if (h?.row) {
              if (lease !== undefined) lease = this.#giveAway(lease);
              h.row(r.bytes, r.start, r.end);
              continue;
            }
          } else if (h?.copyDataPiece) {
            if (lease !== undefined && h.lends !== true) lease = this.#giveAway(lease);
            h.copyDataPiece(r.bytes, r.start, r.end, r.piece);
            continue;
          } else if (h?.copyData) {
            if (lease !== undefined && h.lends !== true) lease = this.#giveAway(lease);
            h.copyData(r.bytes, r.start, r.end);
            continue;
          }
        }
        if (lease !== undefined && (this.#startup || !KEEPS_NO_VIEW.has(t))) lease = this.#giveAway(lease);
        this.#dispatch({ type: t, body: r.bytes.subarray(r.start, r.end) });
        r.pieceType = this.#pieceType(); // the request at the head may have changed
      }
      this.#queue[this.#qhead]?.chunkEnd?.();
      // A frame cut at the chunk's end waits in the reader: in its own memory, as the buffer is
      // read into again once the holders let go.
      if (lease !== undefined) r.detach();
    } catch (e) {
      this.#teardown(e instanceof Error ? e : new ProtocolError(String(e)));
      this.#socket.destroy();
    } finally {
      this.#lease = undefined;
    }
  }

  /** Whether the next read may be lent: a request that lends is at the head. */
  #lends(): boolean {
    return this.#startup === undefined && this.#queue[this.#qhead]?.lends === true;
  }

  /** The lent chunk's bytes may be kept by something that takes no holds: never reuse it. */
  #giveAway(lease: Lease): undefined {
    lease.given = true;
    this.#lease = undefined;
    return undefined;
  }

  /**
   * @internal For a request that {@link Handler.lends}: the lease of the chunk being framed, or
   * undefined when the chunk is owned. A request that keeps views of it takes a hold
   * (`refs++`) and lets go with `unlease` once its consumer is done with them.
   */
  _lease(): Lease | undefined {
    return this.#lease;
  }

  /**
   * @internal Busy-polling after bulk reads (`_receive.ts`, `keepHot`): after each lent read the
   * event loop keeps polling for `ms` before it may sleep. Only on the client's own plain socket;
   * returns whether it took effect.
   */
  _busyPoll(ms: number): boolean {
    const rx = this.#receiveSource();
    if (rx === undefined) return false;
    rx.busyPollMs = ms;
    return true;
  }

  /** @internal The receive counters of the client's own plain socket (`_receive.ts`), if it has one. */
  _receiveStats(): ReceiveStats | undefined {
    return this.#receiveSource()?.stats;
  }

  /** The receive side of the client's own plain socket, if it has one. */
  #receiveSource(): ReceiveSource | undefined {
    return (this.#raw as (Duplex & { [RECEIVER]?: ReceiveSource }) | undefined)?.[RECEIVER];
  }

  /** CopyData frames are cut into pieces only for a request that asked for them. */
  #pieceType(): number {
    return !this.#startup && this.#queue[this.#qhead]?.copyDataPiece ? T.copyData : 0;
  }

  #dispatch(f: Frame): void {
    switch (f.type) {
      case T.notice: {
        const n = fieldsOf(f.body) as Notice;
        this.#user(() => {
          this.#onNotice?.(n);
          this.emit("notice", n);
        });
        return;
      }
      case T.notification: {
        const r = new BodyReader(f.body);
        const n: Notification = { processId: r.i32(), channel: r.cstr(), payload: r.cstr() };
        this.#user(() => {
          this.#onNotification?.(n);
          this.emit("notification", n);
        });
        return;
      }
      case T.parameterStatus: {
        const r = new BodyReader(f.body);
        const name = r.cstr();
        const value = r.cstr();
        this.parameters.set(name, value);
        this.#user(() => this.emit("parameter", name, value));
        return;
      }
    }
    if (this.#startup) {
      this.#startup.frames.push(f);
      const w = this.#startup.wake;
      this.#startup.wake = undefined;
      w?.();
      return;
    }
    const h = this.#queue[this.#qhead];
    if (f.type === T.error) {
      const e = errorFromBody(f.body);
      if (e.severity === "FATAL" || e.severity === "PANIC") this.#fatal = e;
      if (!h) {
        this.#teardown(e);
        return;
      }
    }
    if (!h) throw new ProtocolError(`unexpected message from server while idle: '${String.fromCharCode(f.type)}'`);
    if (f.type === T.ready) {
      this.transactionStatus = String.fromCharCode(f.body[0]);
      this.#queue[this.#qhead++] = undefined as unknown as Handler;
      if (this.#qhead > 256 && this.#qhead * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#qhead);
        this.#qhead = 0;
      }
      h.ready();
      return;
    }
    h.message(f);
  }

  /**
   * Runs user callbacks. One that throws must not be taken for a protocol error and kill the
   * connection; its error is rethrown outside our stack, as Node does for event listeners.
   */
  #user(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  #teardown(e: Error | undefined): void {
    if (this.#closed) return;
    const cause = e ?? this.#fatal;
    const err = this.#ending
      ? new ConnectionError("connection is closed", { cause })
      : cause instanceof PostgresError
      ? cause
      : new ConnectionError(cause instanceof ProtocolError ? cause.message : cause ? `${SOCKET_EOF}\n(${cause.message})` : SOCKET_EOF, { cause });
    this.#closed = err;
    if (this.#startup) {
      this.#startup.error = err;
      this.#startup.wake?.();
    }
    const pending = this.#queue.slice(this.#qhead);
    this.#queue = [];
    this.#qhead = 0;
    for (const h of pending) h.fail(err);
    this.#socket.destroy();
    if (this.#raw !== this.#socket) this.#raw?.destroy();
    this.#user(() => this.emit("end", this.#ending ? undefined : err));
  }

  /** @internal Sends bytes now, ahead of batched writes (CopyFail). */
  _sendNow(b: Uint8Array): void {
    this.#flush();
    if (!this.#closed) this.#socket.write(b);
  }

  /** @internal Pauses reading (a consumer is behind). Nested: resumed when every pauser resumes. */
  _pauseReading(): void {
    if (this.#pauses++ === 0) this.#socket.pause();
  }

  /** @internal Undoes one {@link _pauseReading}. */
  _resumeReading(): void {
    if (this.#pauses > 0 && --this.#pauses === 0) this.#socket.resume();
  }

  #send(b: Uint8Array): void {
    if (this.#held) {
      this.#held.push(b);
      return;
    }
    this.#out.push(b);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#out.length === 0 || this.#closed) {
      this.#out = [];
      return;
    }
    const parts = this.#out;
    this.#out = [];
    if (parts.length === 1) {
      this.#socket.write(parts[0]);
      return;
    }
    let n = 0;
    for (const p of parts) n += p.length;
    const all = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    this.#socket.write(all);
  }

  #enqueue<H extends Handler>(h: H, bytes: Uint8Array): H {
    if (this.#closed) {
      h.fail(this.#closed instanceof ConnectionError ? this.#closed : new ConnectionError("connection is closed", { cause: this.#closed }));
      return h;
    }
    this.#queue.push(h);
    this.#send(bytes);
    return h;
  }

  // --- startup -----------------------------------------------------------------------------

  async #nextStartupFrame(signal: AbortSignal): Promise<Frame> {
    const st = this.#startup!;
    for (;;) {
      if (st.frames.length) return st.frames.shift()!;
      if (st.error) throw st.error;
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((r) => {
        st.wake = r;
        signal.addEventListener("abort", () => r(), { once: true });
      });
    }
  }

  /** @internal Runs StartupMessage → authentication → ReadyForQuery. */
  async _startup(params: Record<string, string>, auth: Authenticator, signal: AbortSignal, minor = 0): Promise<void> {
    this.protocolVersion = `3.${minor}`;
    this.#socket.write(startupMessage(params, 196608 + minor));
    for (;;) {
      const f = await this.#nextStartupFrame(signal);
      switch (f.type) {
        case T.auth: {
          const r = new BodyReader(f.body);
          const code = r.i32();
          const reply = await auth.handle(code, r.rest());
          if (reply instanceof Uint8Array) this.#socket.write(reply);
          break;
        }
        case T.backendKey: {
          const r = new BodyReader(f.body);
          this.processId = r.i32();
          // A copy: a Buffer's slice() would alias the receive buffer.
          this.secretKey = new Uint8Array(r.rest());
          break;
        }
        case T.negotiateVersion: {
          // The server speaks an older minor version (e.g. 3.0 when we asked for 3.2).
          const newest = new BodyReader(f.body).i32() & 0xffff;
          this.protocolVersion = `3.${newest}`;
          break;
        }
        case T.error:
          throw errorFromBody(f.body);
        case T.ready:
          this.transactionStatus = String.fromCharCode(f.body[0]);
          this.authMethod = auth.method;
          this.channelBound = auth.channelBound;
          this.#startup = undefined;
          return;
        default:
          throw new ProtocolError(`unexpected message from server during startup: '${String.fromCharCode(f.type)}'`);
      }
    }
  }

  /** @internal Closes the socket of a failed attempt. */
  _abandon(): void {
    this.#ending = true;
    this.#socket?.destroy();
    this.#raw?.destroy();
  }

  // --- queries -----------------------------------------------------------------------------

  #encodeParams(params: readonly unknown[]): WireParam[] {
    return params.map((p) => (p instanceof Uint8Array ? p : encodeText(p)));
  }

  /**
   * Runs SQL and returns its result. With parameters (`$1..$n`), `binary`, `types` or `prepare`
   * it uses the extended protocol (one statement, unnamed unless prepared). Without them it
   * sends one simple Query message (as libpq's `PQexec` and node-postgres do): one message
   * instead of five, fewer protocol steps on the server, and the same decoded result for one
   * statement (types decode by OID from text in both). Errors are the same too, except that a
   * `$1` with no parameters fails in the parser (42P02 "there is no parameter $1") rather than
   * at Bind (08P01).
   *
   * Several statements separated by `;` (simple path only; the extended protocol refuses them)
   * follow `PQexec`: they run in one implicit transaction unless they contain transaction
   * control, the result is the LAST statement's, and the first failing statement throws its
   * error, the statements after it are not run and those before it are rolled back (unless
   * committed by their own COMMIT). {@link simpleQuery} returns every statement's result.
   *
   * @example
   * ```ts
   * const { rows } = await client.query("SELECT $1::int + 1 AS n", [41]);
   * rows[0].n; // 42
   * (await client.query("SET search_path = app; SELECT current_schema() AS s")).rows; // [{ s: "app" }]
   * ```
   */
  query<R = Row>(sql: string, params: readonly unknown[] = NO_PARAMS, options: QueryOptions = NO_OPTIONS): Promise<QueryResult<R>> {
    if (typeof sql !== "string") return Promise.reject(new TypeError("query text must be a string"));
    if (!Array.isArray(params)) return Promise.reject(new TypeError("query parameters must be an array"));
    if (params.length === 0 && options.extended !== true && options.binary !== true && !options.types?.length && !(options.prepare ?? this.#prepare)) {
      // Simple Query `Q`: the hot path of parameterless text queries (no async frame, one handler).
      let bytes: Uint8Array;
      try {
        bytes = encodeQuery(sql);
      } catch (e) {
        return Promise.reject(e);
      }
      return this.#enqueue(new QueryHandler<R>(this, this.#types, options.rowMode === "array", true), bytes).last;
    }
    return this.#extended(sql, params, options);
  }

  async #extended<R>(sql: string, params: readonly unknown[], options: QueryOptions): Promise<QueryResult<R>> {
    const wire = this.#encodeParams(params);
    if (wire.length > 65535) throw new RangeError(`too many query parameters: ${wire.length} (the protocol allows 65535)`);
    const w = this.#w;
    const types = options.types ?? [];
    let cached: CachedStatement | undefined;
    let key = ""; // of the statement cache, with prepare
    let fresh = false; // the statement is parsed by this call
    try {
      if (options.prepare ?? this.#prepare) {
        key = types.length ? `${sql}\0${types.join(",")}` : sql;
        cached = this.#stmtCache.get(key);
        if (!cached) {
          // Parse and Describe the statement once; later executions send only Bind and Execute
          // (the server refuses to run a cached plan whose result columns changed: 0A000).
          cached = { name: `pgrdma_q${++this.#stmtCounter}` };
          fresh = true;
          this.#stmtCache.set(key, cached);
          writeParse(w, cached.name, sql, types);
          writeDescribe(w, "S", cached.name);
          if (this.#stmtCache.size > 500) {
            const [oldKey, old] = this.#stmtCache.entries().next().value as [string, CachedStatement];
            this.#stmtCache.delete(oldKey);
            writeClose(w, "S", old.name);
          }
        }
        writeBind(w, "", cached.name, wire, options.binary ? [1] : []);
      } else {
        writeParse(w, "", sql, types);
        writeBind(w, "", "", wire, options.binary ? [1] : []);
        writeDescribe(w, "P", "");
      }
      writeExecute(w, "", 0);
      w.bytes(SYNC);
    } catch (e) {
      w.take(); // drop what was half written (a NUL in the text, a bad parameter)
      if (fresh) this.#stmtCache.delete(key);
      throw e;
    }
    const qh = new QueryHandler<R>(this, this.#types, options.rowMode === "array", true);
    if (cached) qh.cached = { stmt: cached, format: options.binary ? 1 : 0 };
    const h = this.#enqueue(qh, this.#take(w));
    try {
      return await h.last;
    } catch (e) {
      // The statement never came to exist: forget it, so the next call parses again.
      if (fresh && !h.parsed && this.#stmtCache.get(key) === cached) this.#stmtCache.delete(key);
      // A cached statement whose result columns changed (ALTER TABLE, ...) fails with 0A000
      // ("cached plan must not change result type") every time: drop it, prepare afresh next
      // time (another 0A000 is as harmless: the next call just parses again).
      if (cached && !fresh && (e as PostgresError).code === "0A000" && this.#stmtCache.get(key) === cached) {
        this.#stmtCache.delete(key);
        this._closeStatement(cached.name).catch(() => {});
      }
      throw e;
    }
  }

  /** The bytes of the reused builder; one that grew past 64 KiB is let go rather than kept. */
  #take(w: Writer): Uint8Array {
    const b = w.take();
    if (b.length > 65536) this.#w = new Writer(1024);
    return b;
  }

  /**
   * Runs SQL with the simple query protocol: several statements separated by `;`, no
   * parameters, text results. Returns one result per statement. The only protocol replication
   * connections accept.
   *
   * When a statement fails the promise rejects with its error and the results of the statements
   * before it are not returned; `onResult` sees each result as its statement completes, so a
   * caller can show those (as psql does for `-c "a; b; c"`). An error thrown by `onResult`
   * rejects the call once the server has finished the query.
   *
   * @example
   * ```ts
   * const [a, b] = await client.simpleQuery("SELECT 1 AS a; SELECT 2 AS b");
   * await client.simpleQuery("SELECT 1; SELECT 1/0", { onResult: (r) => console.log(r.rows) }); // logs [{ "?column?": 1 }], then rejects
   * ```
   */
  async simpleQuery<R = Row>(sql: string, options: Pick<QueryOptions, "rowMode"> & { onResult?: (result: QueryResult<R>) => void } = {}): Promise<QueryResult<R>[]> {
    if (typeof sql !== "string") throw new TypeError("query text must be a string");
    if (options.onResult !== undefined && typeof options.onResult !== "function") throw new TypeError("onResult must be a function");
    const h = new QueryHandler<R>(this, this.#types, options.rowMode === "array");
    h.onResult = options.onResult;
    return await this.#enqueue(h, writeQuery(new Writer(16 + sql.length), sql).take()).promise;
  }

  /**
   * Prepares a named statement (Parse + Describe) and returns it for repeated execution.
   *
   * @example
   * ```ts
   * const st = await client.prepare("SELECT $1::text AS t");
   * (await st.execute(["a"])).rows; // [{ t: "a" }]
   * await st.close();
   * ```
   */
  async prepare(sql: string, options: { name?: string; types?: readonly number[] } = {}): Promise<PreparedStatement> {
    const name = options.name ?? `pgrdma_${++this.#stmtCounter}`;
    const w = new Writer(64 + sql.length);
    writeParse(w, name, sql, options.types ?? []);
    writeDescribe(w, "S", name);
    w.bytes(SYNC);
    const h = this.#enqueue(new DescribeHandler(), w.take());
    await h.promise;
    return new PreparedStatement(this, name, h.params, h.fields);
  }

  /** @internal Executes a prepared statement. */
  async _execute<R>(name: string, params: readonly unknown[], options: QueryOptions): Promise<QueryResult<R>> {
    const w = this.#w;
    try {
      writeBind(w, "", name, this.#encodeParams(params), options.binary ? [1] : []);
      writeDescribe(w, "P", "");
      writeExecute(w, "", 0);
      w.bytes(SYNC);
    } catch (e) {
      w.take(); // drop what was half written
      throw e;
    }
    const h = this.#enqueue(new QueryHandler<R>(this, this.#types, options.rowMode === "array", true), this.#take(w));
    return await h.last;
  }

  /** @internal Closes a prepared statement. */
  async _closeStatement(name: string): Promise<void> {
    const w = new Writer(32);
    writeClose(w, "S", name);
    w.bytes(SYNC);
    await this.#enqueue(new QueryHandler(this, this.#types, false), w.take()).promise;
  }

  /**
   * Streams the rows of a query as an async iterator. The socket is paused while
   * `highWaterMark` rows (default 1000) or 4 MiB of row data wait, so memory stays bounded
   * however large the result or its rows. While a stream
   * is unconsumed, later requests on this client wait behind it: consume (or `break` out of) the
   * stream before awaiting another query on the same client.
   *
   * @example
   * ```ts
   * for await (const row of client.stream("SELECT * FROM generate_series(1, 1e7) AS g")) { ... }
   * ```
   */
  stream<R = Row>(sql: string, params: readonly unknown[] = [], options: StreamOptions = {}): AsyncIterableIterator<R> {
    const w = new Writer(64 + sql.length);
    writeParse(w, "", sql, options.types ?? []);
    writeBind(w, "", "", this.#encodeParams(params), options.binary ? [1] : []);
    writeDescribe(w, "P", "");
    writeExecute(w, "", 0);
    w.bytes(SYNC);
    const hwm = options.highWaterMark ?? 1000;
    if (!Number.isInteger(hwm) || hwm < 1) throw new RangeError(`highWaterMark must be a positive integer, not ${hwm}`);
    const h = this.#enqueue(new StreamHandler(this, this.#types, options.rowMode === "array", hwm), w.take());
    return h.flow as unknown as AsyncIterableIterator<R>;
  }

  /**
   * Runs `COPY ... TO STDOUT` and returns its data as a {@link CopyOut}: an async iterator of
   * byte chunks (one per CopyData message) that also converts to a Node or Web stream. The
   * socket is paused while `highWaterMark` messages (default 256) or 4 MiB wait. With
   * `coalesce: true` the iterator joins the messages already received into one chunk of up to
   * 256 KiB per step (for consumers of the byte stream: a text COPY sends one message per row,
   * so rows no longer map to chunks; count `\n` or read {@link CopyOut.result}).
   */
  copyTo(sql: string, options: { highWaterMark?: number; coalesce?: boolean } = {}): CopyOut {
    const coalesce = options.coalesce === true;
    const h = this.#enqueue(new CopyOutHandler(this, options.highWaterMark ?? 256, coalesce), writeQuery(new Writer(16 + sql.length), sql).take());
    return new CopyOut(h, coalesce);
  }

  /**
   * Runs a replication command that answers with a COPY: `START_REPLICATION` (CopyBoth) or
   * `BASE_BACKUP` (CopyOut). Returns a {@link CopyBoth}: iterate it for the server's CopyData
   * payloads; `write()` sends CopyData (standby status updates, feedback), `end()` sends
   * CopyDone. Result sets before the copy arrive in `before()` when the copy starts; all of them
   * in `done` once the command completed. While it runs, other requests on
   * this connection wait (the server reads only copy messages until the copy ends).
   * With `batched: true`, read the payloads with {@link CopyBoth.batches} instead (one
   * {@link CopyDataBatch} per received chunk; `highWaterMark` then counts batches). With
   * `pieces: true` as well, a message that spans received chunks comes in pieces, one per
   * chunk, instead of joined ({@link CopyDataBatch.continued}): for bulk consumers that take
   * their bytes in any split (a base backup's archives). With `reuse: true` (and `batched`), a
   * batch's bytes are valid only until the next batch is asked for (write out or copy what you
   * keep before that): on the client's own plain `node:net` socket (Node, Deno) they are then
   * read into the same few buffers over and over instead of fresh memory per read.
   */
  copyBoth(sql: string, options: { highWaterMark?: number; batched?: boolean; pieces?: boolean; reuse?: boolean } = {}): CopyBoth {
    if (typeof sql !== "string") throw new TypeError("copyBoth() needs the command text as a string");
    if (options.pieces === true && options.batched !== true) throw new TypeError("copyBoth() option pieces: true needs batched: true");
    if (options.reuse === true && options.batched !== true) throw new TypeError("copyBoth() option reuse: true needs batched: true");
    const h = new CopyBothHandler(this, this.#types, options.highWaterMark ?? 256, options.batched === true, options.pieces === true, options.reuse === true);
    const q = writeQuery(new Writer(16 + sql.length), sql).take();
    if (this.#closed) {
      this.#enqueue(h, q); // fails it
    } else {
      this.#queue.push(h);
      if (this.#held) this.#held.push({ copy: q });
      else {
        this.#send(q);
        this.#flush();
        this.#held = [];
      }
      h.done.then(() => this.#releaseWire(), () => this.#releaseWire());
    }
    return new CopyBoth(h, {
      write: (b) => {
        if (this.#closed || h.clientDone) return false;
        this.#socket.write(copyDataHeader(b.length));
        return this.#socket.write(b);
      },
      end: () => {
        if (this.#closed || h.clientDone) return;
        h.clientDone = true;
        this.#socket.write(COPY_DONE);
      },
      drain: () => this.#drain(),
    });
  }

  /**
   * Runs `COPY ... FROM STDIN` with data from `source`: an async or sync iterable of chunks
   * (Uint8Array or string), a Node Readable or a Web ReadableStream. Honours the socket's
   * backpressure. If the source throws, the COPY is aborted (CopyFail) and that error is thrown.
   */
  copyFrom(sql: string, source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | ReadableStream<Uint8Array | string>): Promise<{ command: string; rowCount: number | null }> {
    if (source === null || typeof source !== "object") {
      return Promise.reject(new TypeError("copyFrom() needs a source: an iterable, a Node Readable or a ReadableStream"));
    }
    const h = new CopyInHandler();
    const q = writeQuery(new Writer(16 + sql.length), sql).take();
    if (this.#closed) {
      this.#enqueue(h, q); // fails it
      return h.promise;
    }
    this.#queue.push(h);
    if (this.#held) {
      // Another COPY FROM owns the wire: this one's Query waits in line and takes the wire then.
      this.#held.push({ copy: q });
    } else {
      this.#send(q);
      this.#flush();
      this.#held = []; // later requests wait: the server must see only copy messages until CopyDone
    }
    return this.#runCopy(h, source);
  }

  async #runCopy(h: CopyInHandler, source: unknown): Promise<{ command: string; rowCount: number | null }> {
    try {
      if (await h.started) {
        try {
          await this.#pump(source, h);
          if (!h.serverFailed && !this.#closed) this.#socket.write(COPY_DONE);
        } catch (e) {
          h.sourceError = e instanceof Error ? e : new Error(String(e));
          if (!this.#closed) this.#socket.write(copyFail(`COPY source failed: ${h.sourceError.message}`.slice(0, 1000)));
        }
      }
    } finally {
      this.#releaseWire();
    }
    return await h.promise;
  }

  /** A COPY FROM is done with the wire: send what waited, up to and including the next COPY's Query. */
  #releaseWire(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    while (held.length) {
      const item = held.shift()!;
      if (item instanceof Uint8Array) this.#send(item);
      else {
        this.#send(item.copy);
        this.#flush();
        this.#held = held;
        return;
      }
    }
  }

  async #pump(source: unknown, h: CopyInHandler): Promise<void> {
    const enc = new TextEncoder();
    const it: AsyncIterable<unknown> | Iterable<unknown> =
      typeof (source as ReadableStream)?.getReader === "function" && !(Symbol.asyncIterator in (source as object))
        ? readerIterable(source as ReadableStream)
        : source as AsyncIterable<unknown>;
    if (!(Symbol.asyncIterator in (it as object)) && !(Symbol.iterator in (it as object))) {
      throw new TypeError("copyFrom() source is not iterable");
    }
    for await (const chunk of it) {
      if (h.serverFailed || this.#closed) return;
      const bytes = typeof chunk === "string" ? enc.encode(chunk) : chunk;
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`copyFrom() source yielded a ${typeof chunk}, not a Uint8Array or string`);
      if (bytes.length === 0) continue;
      // Large chunks are split below PostgreSQL's message limit.
      for (let o = 0; o < bytes.length; o += 1 << 20) {
        const part = bytes.subarray(o, Math.min(bytes.length, o + (1 << 20)));
        this.#socket.write(copyDataHeader(part.length));
        if (!this.#socket.write(part)) await this.#drain();
      }
    }
  }

  #drain(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off("drain", done);
        this.#socket.off("close", done);
        resolve();
      };
      this.#socket.once("drain", done);
      this.#socket.once("close", done);
    });
  }

  /**
   * Runs `fn` in a transaction: BEGIN, then COMMIT if it resolves or ROLLBACK if it throws.
   * `mode` is appended to BEGIN (e.g. `"ISOLATION LEVEL SERIALIZABLE"`).
   *
   * @example
   * ```ts
   * await client.begin(async (tx) => { await tx.query("INSERT INTO t VALUES (1)"); });
   * ```
   */
  async begin<T>(fn: (client: this) => Promise<T> | T, mode = ""): Promise<T> {
    await this.simpleQuery(mode ? `BEGIN ${mode}` : "BEGIN");
    let out: T;
    try {
      out = await fn(this);
    } catch (e) {
      if (!this.#closed) await this.simpleQuery("ROLLBACK").catch(() => {});
      throw e;
    }
    const [r] = await this.simpleQuery("COMMIT");
    if (r?.command === "ROLLBACK") {
      throw new PostgresError({ severity: "ERROR", code: "25P02", message: "COMMIT rolled the transaction back: a statement in it failed" });
    }
    return out;
  }

  /**
   * Asks the server to cancel the running query: opens a new connection through the same socket
   * factory and sends CancelRequest with this connection's BackendKeyData. Resolves once the
   * request was delivered; whether anything was cancelled shows in the query's error (57014).
   */
  async cancel(): Promise<void> {
    if (!this.processId) throw new ConnectionError("cannot cancel: no backend key data (not connected)");
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new ConnectionError("cancel request timed out")), 10_000);
    try {
      const s = await this.#factory(socketTarget(this.#host), { signal: ac.signal });
      await new Promise<void>((resolve) => {
        s.on("error", () => resolve());
        s.on("close", () => resolve());
        s.on("end", () => resolve());
        s.on("data", () => {});
        s.write(cancelRequest(this.processId, this.secretKey));
        ac.signal.addEventListener("abort", () => {
          s.destroy();
          resolve();
        }, { once: true });
      });
      s.destroy();
    } catch (e) {
      throw new ConnectionError(`could not send cancel request: ${(e as Error).message}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends Terminate and closes the socket; pending requests fail. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) {
      await this.#closedPromise;
      return;
    }
    this.#ending = true;
    this.#flush();
    this.#socket.write(TERMINATE);
    this.#socket.end();
    // Requests in flight would keep the server from reading Terminate: fail them and go now.
    if (this.#queue.length > this.#qhead) this.#teardown(undefined);
    const timer = setTimeout(() => this.#socket.destroy(), 2000);
    await this.#closedPromise;
    clearTimeout(timer);
  }

  /** Closes the connection (`await using client = await connect(...)`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal The types of this client. */
  get _types(): TypeRegistry {
    return this.#types;
  }
}

function readerIterable<T>(rs: ReadableStream<T>): AsyncIterable<T> {
  return {
    async *[Symbol.asyncIterator]() {
      const r = rs.getReader();
      try {
        for (;;) {
          const { value, done } = await r.read();
          if (done) return;
          yield value;
        }
      } finally {
        r.releaseLock();
      }
    },
  };
}

/** A named prepared statement. */
export class PreparedStatement {
  readonly name: string;
  /** Parameter type OIDs as the server resolved them. */
  readonly paramTypes: readonly number[];
  /** Result columns (text format), empty when the statement returns no rows. */
  readonly fields: readonly FieldDescription[];
  #client: Client;
  constructor(client: Client, name: string, paramTypes: number[], fields: FieldDescription[]) {
    this.#client = client;
    this.name = name;
    this.paramTypes = paramTypes;
    this.fields = fields;
  }
  /** Binds parameters and executes. */
  execute<R = Row>(params: readonly unknown[] = [], options: QueryOptions = {}): Promise<QueryResult<R>> {
    if (params.length !== this.paramTypes.length) {
      return Promise.reject(new RangeError(`prepared statement "${this.name}" takes ${this.paramTypes.length} parameters, got ${params.length}`));
    }
    return this.#client._execute<R>(this.name, params, options);
  }
  /** Deallocates the statement on the server. */
  close(): Promise<void> {
    return this.#client._closeStatement(this.name);
  }
}

/**
 * The CopyData payloads of one received chunk ({@link CopyBoth.batches}): message `i` is
 * `bytes[i]` from `offsets[2 * i]` to `offsets[2 * i + 1]`. The arrays hold views of received
 * chunks, which are never reused: they stay valid as long as the batch is kept.
 *
 * With `copyBoth(sql, { batched: true, pieces: true })` the first and the last entry may be
 * parts of messages: a message spanning chunks comes as one non-empty piece per chunk, in order.
 */
export interface CopyDataBatch {
  bytes: Uint8Array[];
  offsets: number[];
  /** With `pieces`: entry 0 continues the message the previous batch left unfinished. */
  continued?: boolean;
  /** With `pieces`: the last entry's message goes on in the next batch. */
  unfinished?: boolean;
}

/**
 * A replication command's copy (see {@link Client.copyBoth}). Iterate for the server's CopyData
 * payloads (XLogData `w`, keepalive `k`, BASE_BACKUP's `n`/`d`/`p`/`m`); the iteration ends at
 * the server's CopyDone and throws the server's error if the command failed.
 */
export class CopyBoth implements AsyncIterable<Uint8Array> {
  #h: CopyBothHandler;
  #io: { write(b: Uint8Array): boolean; end(): void; drain(): Promise<void> };
  constructor(h: CopyBothHandler, io: { write(b: Uint8Array): boolean; end(): void; drain(): Promise<void> }) {
    this.#h = h;
    this.#io = io;
  }
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#h.batches) throw new TypeError("this copy was started with batched: true: iterate batches()");
    return this.#h.flow;
  }
  /**
   * With `copyBoth(sql, { batched: true })`: the server's CopyData payloads, one
   * {@link CopyDataBatch} per received chunk (no object or promise per message); the iteration
   * ends and fails like the per-message one.
   *
   * @example
   * ```ts
   * for await (const { bytes, offsets } of copy.batches()) {
   *   for (let i = 0; i < bytes.length; i++) handle(bytes[i].subarray(offsets[2 * i], offsets[2 * i + 1]));
   * }
   * ```
   */
  batches(): AsyncIterator<CopyDataBatch> & AsyncIterable<CopyDataBatch> {
    if (!this.#h.batches) throw new TypeError("batches() needs copyBoth(sql, { batched: true })");
    if (!this.#h.lends) return this.#h.batches;
    return this.#reused ??= reusedBatches(this.#h, this.#h.batches);
  }
  #reused: AsyncGenerator<CopyDataBatch> | undefined;
  /** Resolves with "both" or "out" once the server entered copy mode; rejects if the command failed first. */
  async started(): Promise<"both" | "out"> {
    const m = await this.#h.started;
    if (m) return m;
    await this.#h.done; // throws the server's error
    throw new ProtocolError("the command did not start a COPY");
  }
  /**
   * The result sets the server sent before the copy (BASE_BACKUP: start position and timeline,
   * then the tablespaces), as soon as the copy starts; rejects like {@link started}.
   */
  async before(): Promise<QueryResult[]> {
    await this.started();
    return this.#h.before;
  }
  /** Result sets before and after the copy, once the command completed (ReadyForQuery). */
  get done(): Promise<{ before: QueryResult[]; after: QueryResult[] }> {
    return this.#h.done;
  }
  /** Sends one CopyData message; false when the socket's buffer is full (await {@link drain}). */
  write(payload: Uint8Array): boolean {
    if (!(payload instanceof Uint8Array)) throw new TypeError("copyBoth write() takes a Uint8Array");
    return this.#io.write(payload);
  }
  /** Resolves when the socket can take more. */
  drain(): Promise<void> {
    return this.#io.drain();
  }
  /** Ends our side of the copy (CopyDone). Idempotent. */
  end(): void {
    this.#io.end();
  }
  /** Whether the server ended its side (CopyDone received). */
  get serverDone(): boolean {
    return this.#h.serverDone;
  }
}

/**
 * The data of a `COPY ... TO STDOUT`: iterate it (`for await`), or convert it once with
 * {@link CopyOut.toNodeStream} / {@link CopyOut.toWebStream}. `result` resolves to the
 * CommandComplete after the last chunk was consumed.
 */
export class CopyOut implements AsyncIterable<Uint8Array> {
  #h: CopyOutHandler;
  #coalesce: boolean;
  #rows = { n: 0 };
  constructor(h: CopyOutHandler, coalesce = false) {
    this.#h = h;
    this.#coalesce = coalesce;
  }
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#coalesce ? coalesced(this.#h, this.#rows, false) : this.#h.flow;
  }
  /**
   * The coalesced chunks (`copyTo(sql, { coalesce: true })`) in memory that is reused: a chunk
   * is valid only until the next one is asked for (copy or write out what you keep before
   * that). With a caller's socket (`socketFactory`), saves allocating, zeroing and collecting a
   * 256 KiB batch per 256 KiB received; on the client's own socket the rows are compacted
   * inside the received chunks and no batch exists. Iterate either this or the CopyOut itself,
   * once.
   */
  reusing(): AsyncIterable<Uint8Array> {
    if (!this.#coalesce) throw new TypeError("CopyOut.reusing() needs copyTo(sql, { coalesce: true })");
    this.#h.reuse();
    return { [Symbol.asyncIterator]: () => coalesced(this.#h, this.#rows, true) };
  }
  /**
   * With `coalesce`: the CopyData messages in the chunks handed out so far, counted as they were
   * framed (in a text or CSV COPY, one per row), so a byte consumer need not count newlines.
   * 0 without coalescing (each chunk is one message).
   */
  get rows(): number {
    return this.#rows.n;
  }
  /** CommandComplete of the COPY (row count), once the data has been consumed. */
  get result(): { command: string; rowCount: number | null } | undefined {
    return this.#h.result;
  }
  /** A Node Readable of the data (backpressure preserved). */
  toNodeStream(): Readable {
    return Readable.from(this.#h.flow, { objectMode: false });
  }
  /** A Web ReadableStream of the data (backpressure preserved). */
  toWebStream(): ReadableStream<Uint8Array> {
    const it = this.#h.flow;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await it.next();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      async cancel() {
        await it.return();
      },
    });
  }
  /** Reads everything into one byte array (for small COPYs). */
  async bytes(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let n = 0;
    for await (const p of this) {
      parts.push(p);
      n += p.length;
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Connecting

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const TSA = ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"] as const;
type Tsa = (typeof TSA)[number];

/** Checks target_session_attrs on a fresh connection; returns the reason it does not fit. */
async function sessionMismatch(c: Client, want: Tsa): Promise<string | undefined> {
  if (want === "any") return undefined;
  if (want === "read-write" || want === "read-only") {
    let ro: boolean;
    const hs = c.parameters.get("in_hot_standby");
    const dtro = c.parameters.get("default_transaction_read_only");
    if (hs !== undefined && dtro !== undefined) ro = hs === "on" || dtro === "on";
    else ro = (await c.simpleQuery<string[]>("SHOW transaction_read_only", { rowMode: "array" }))[0]?.rows[0]?.[0] === "on";
    if (want === "read-write" && ro) return "session is read-only";
    if (want === "read-only" && !ro) return "session is not read-only";
    return undefined;
  }
  let standby: boolean;
  const hs = c.parameters.get("in_hot_standby");
  if (hs !== undefined) standby = hs === "on";
  else {
    const v = (await c.simpleQuery<unknown[]>("SELECT pg_is_in_recovery()", { rowMode: "array" }))[0]?.rows[0]?.[0];
    standby = v === true || v === "t";
  }
  if (want === "primary" && standby) return "server is in hot standby mode";
  if ((want === "standby" || want === "prefer-standby") && !standby) return "server is not in hot standby mode";
  return undefined;
}

function startupParams(o: Readonly<Record<string, string | undefined>>, user: string): Record<string, string> {
  const p: Record<string, string> = { user, database: o.dbname || user };
  const app = o.application_name || o.fallback_application_name;
  if (app) p.application_name = app;
  if (o.options) p.options = o.options;
  if (o.replication !== undefined && o.replication !== "") {
    const r = o.replication.toLowerCase();
    const v = ["true", "on", "yes", "1"].includes(r) ? "true" : ["false", "off", "no", "0"].includes(r) ? "false" : r === "database" ? "database" : undefined;
    if (v === undefined) throw new ConnectionError(`invalid replication value: "${o.replication}"`);
    if (v !== "false") p.replication = v;
  }
  // Formats our decoders expect; set at startup so no extra round trip is needed.
  p.client_encoding = "UTF8";
  p.DateStyle = "ISO, MDY";
  p.IntervalStyle = "postgres";
  return p;
}

/**
 * Connects with already-resolved settings (a conninfo `ConnInfo`, or any object with `options`
 * and `hosts`): tries the hosts in order (shuffled with `load_balance_hosts=random`), each within
 * `connect_timeout`, with the TLS attempts `sslmode` implies; an authentication failure stops
 * the walk, as in libpq. Rejects with a {@link ConnectionError} whose message lists every host's
 * failure in libpq's words.
 */
export async function connectWith(info: ResolvedConnInfo, options: ClientOptions = {}): Promise<Client> {
  if (!info || typeof info !== "object" || !info.options || !Array.isArray(info.hosts)) {
    throw new TypeError("connectWith() needs resolved connection info: { options, hosts }");
  }
  const o = info.options;
  if (o.with_rsocket === "true" && !options.socketFactory) {
    // Never fall back to TCP silently when RDMA was required: that is the transport's decision.
    throw new ConnectionError("with_rsocket=true needs an rsocket socket factory (from transport/); pass socketFactory, or use with_rsocket=prefer");
  }
  const types = options.types ?? defaultTypes;
  const tsa = (o.target_session_attrs ?? "any") as Tsa;
  if (!TSA.includes(tsa)) throw new ConnectionError(`invalid target_session_attrs value: "${tsa}"`);
  const lb = o.load_balance_hosts ?? "disable";
  if (lb !== "disable" && lb !== "random") throw new ConnectionError(`invalid load_balance_hosts value: "${lb}"`);
  let policy;
  try {
    policy = parseAuthPolicy(o.require_auth, o.channel_binding);
  } catch (e) {
    throw new ConnectionError((e as Error).message, { cause: e });
  }
  const timeoutS = o.connect_timeout ? Number(o.connect_timeout) : 0;
  if (!Number.isFinite(timeoutS)) throw new ConnectionError(`invalid integer value "${o.connect_timeout}" for connection option "connect_timeout"`);
  const timeoutMs = timeoutS > 0 ? Math.max(2, Math.floor(timeoutS)) * 1000 : 0;
  const user = o.user || safeUser();
  const params = startupParams(o, user);
  const keepAlive = o.keepalives === "0" ? undefined : { idle: o.keepalives_idle ? Number(o.keepalives_idle) : undefined };
  const sni = o.sslsni !== "0";
  // libpq 18: max_protocol_version 3.0 (default) | 3.2 | latest; only 3.0 and 3.2 exist.
  const maxProto = o.max_protocol_version ?? "3.0";
  if (!["3.0", "3.2", "latest"].includes(maxProto)) throw new ConnectionError(`invalid max_protocol_version value: "${maxProto}"`);
  const minor = maxProto === "3.0" ? 0 : 2;

  const hosts = lb === "random" ? shuffle([...info.hosts]) : [...info.hosts];
  if (hosts.length === 0) throw new ConnectionError("no host to connect to");
  const errors: string[] = [];
  let lastCause: unknown;
  let lastCode: string | undefined;
  // prefer-standby: first look for a standby, then take any server.
  const passes: Tsa[] = tsa === "prefer-standby" ? ["standby", "any"] : [tsa];
  for (const want of passes) {
    for (const h of hosts) {
      let plan: TlsPlan;
      try {
        plan = planTls(o, h.kind === "unix", options.homeDir);
      } catch (e) {
        throw new ConnectionError((e as Error).message, { cause: e });
      }
      for (let i = 0; i < plan.attempts.length; i++) {
        try {
          const c = await attempt(h, plan, plan.attempts[i], { o, options, types, params, keepAlive, sni, policy, user, timeoutMs, minor });
          const why = await sessionMismatch(c, want).catch((e) => `could not check the session: ${(e as Error).message}`);
          if (why) {
            await c.close().catch(() => {});
            errors.push(`${describeHost(h)}: ${why}`);
            break;
          }
          return c;
        } catch (e) {
          const ae = e as AttemptError;
          lastCause = ae.cause ?? e;
          lastCode = ae.code;
          if (ae.retryOtherTls && i + 1 < plan.attempts.length) continue;
          errors.push(ae.message);
          if (ae.final) throw new ConnectionError(errors.join("\n"), { cause: lastCause, code: lastCode });
          break;
        }
      }
    }
  }
  throw new ConnectionError(errors.join("\n"), { cause: lastCause, code: lastCode });
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    throw new ConnectionError("could not determine the user name: set user in the connection string or PGUSER");
  }
}

interface AttemptCtx {
  o: Readonly<Record<string, string | undefined>>;
  options: ClientOptions;
  types: TypeRegistry;
  params: Record<string, string>;
  keepAlive: { idle?: number } | undefined;
  sni: boolean;
  policy: ReturnType<typeof parseAuthPolicy>;
  user: string;
  timeoutMs: number;
  /** Protocol minor version to ask for. */
  minor: number;
}

/** One connection attempt to one host, with or without TLS. */
async function attempt(h: HostTarget, plan: TlsPlan, mode: "tls" | "plain", ctx: AttemptCtx): Promise<Client> {
  const ac = new AbortController();
  const timer = ctx.timeoutMs ? setTimeout(() => ac.abort(new ConnectionError("timeout expired")), ctx.timeoutMs) : undefined;
  let socket: Duplex | undefined;
  let client: Client | undefined;
  let stage: "connect" | "tls" | "startup" = "connect";
  try {
    // A factory that ignores the signal must not outlive connect_timeout either.
    const made = Promise.resolve(attemptFactory(ctx.options.socketFactory, mode)(socketTarget(h), { signal: ac.signal, keepAlive: h.kind === "tcp" ? ctx.keepAlive : undefined }));
    const raw = await new Promise<Duplex>((resolve, reject) => {
      const onAbort = () => {
        made.then((s) => s.destroy(), () => {});
        reject(ac.signal.reason);
      };
      if (ac.signal.aborted) return onAbort();
      ac.signal.addEventListener("abort", onAbort, { once: true });
      made.then((s) => {
        ac.signal.removeEventListener("abort", onAbort);
        if (!s || typeof s.write !== "function" || typeof s.on !== "function") reject(new TypeError("the socket factory did not return a Duplex"));
        else resolve(s);
      }, (e) => {
        ac.signal.removeEventListener("abort", onAbort);
        reject(e);
      });
    });
    socket = raw;
    // An error on the raw socket while TLS or the client owns it must not go unhandled (a
    // crash); the owner sees it as its own error or close.
    raw.on("error", () => {});
    let tls: TLSSocket | undefined;
    if (mode === "tls") {
      stage = "tls";
      tls = await startTls(socket, plan, h.host, ctx.sni, ac.signal);
      if (!tls && plan.attempts.includes("plain")) mode = "plain";
    }
    stage = "startup";
    client = new Client(ctx.types, attemptFactory(ctx.options.socketFactory, "plain"), ctx.options);
    client.tls = tls !== undefined;
    client._attach(tls ?? socket, h, socket);
    const pw = ctx.options.password;
    const auth = new Authenticator(ctx.policy, {
      user: ctx.user,
      tls: tls !== undefined,
      password: async () => (typeof pw === "function" ? await pw() : pw) ?? ctx.o.password ?? ctx.options.lookupPassword?.(h),
      tlsEndPoint: () => {
        const der = tls ? peerCertificateDer(tls) : undefined;
        return der ? serverEndPointHash(der) : undefined;
      },
    });
    await client._startup(ctx.params, auth, ac.signal, ctx.minor);
    return client;
  } catch (e) {
    client?._abandon();
    if (!client) socket?.destroy();
    const remote = (socket as Partial<Socket> | undefined)?.remoteAddress;
    const prefix = describeHost(h, remote);
    if (e instanceof PostgresError) {
      // libpq: an authentication failure ends the walk; sslmode allow retries with TLS when
      // the server refused us in the clear, prefer retries in the clear after a TLS failure.
      const retry = (plan.mode === "allow" && mode === "plain") || (plan.mode === "prefer" && mode === "tls" && e.code === "28000");
      const authFailed = e.code === "28P01" || e.code === "28000";
      return Promise.reject(new AttemptError(`${prefix}: ${e.severity}:  ${e.message}`, e, authFailed && !retry, retry, e.code));
    }
    if (e instanceof AuthError) return Promise.reject(new AttemptError(`${prefix}: ${e.message}`, e, true));
    if (e instanceof TlsError) return Promise.reject(new AttemptError(`${prefix}: ${e.message}`, e, false, plan.mode === "prefer" && stage === "tls"));
    if (e instanceof ConnectionError && e.message === "timeout expired") return Promise.reject(new AttemptError(`${prefix}: timeout expired`, e, false));
    if (e instanceof ProtocolError) return Promise.reject(new AttemptError(`${prefix}: ${e.message}`, e, false));
    const text = e instanceof ConnectionError ? (e.cause instanceof ProtocolError ? e.cause.message : e.message) : socketErrorText(e, h);
    return Promise.reject(new AttemptError(`${prefix}: ${text}`, e, false, plan.mode === "prefer" && stage === "tls"));
  } finally {
    if (timer) clearTimeout(timer);
  }
}
