/**
 * Pipeline encoders for decoded pgoutput events: NDJSON (one JSON object per line) and
 * MessagePack (msgpackr with its record extension), plus the reviver that turns either back into
 * events, and stream adapters.
 *
 * Both formats write the same shape ("wire form") of an event:
 * - every field of the event, except that a row event's `relation` (and a truncate's
 *   `relations`) is a reference `{ oid, schema, name }`; the full column list travels once, in the
 *   preceding `relation` event;
 * - fields that are `undefined` (e.g. `xid` outside a streamed block) are left out;
 * - an {@link UNCHANGED_TOAST} value is left out of its row and its column named in
 *   `unchangedToast: { new?: string[], old?: string[], key?: string[] }` (present only when some
 *   value was unchanged). Any in-band marker could collide with a real value (a json column
 *   decoded to an object, a text column holding the marker), so it goes out of band.
 *
 * Scalars differ by format:
 *
 * | value | NDJSON | MessagePack |
 * |---|---|---|
 * | LSN (`bigint`, fields named `…Lsn` / `lsn`) | `"X/X"` string | int64 |
 * | other `bigint` (`…TimeUs`, column values) | decimal string | int64 |
 * | `Date` | ISO 8601 string (ms) | timestamp extension |
 * | `Uint8Array` (message content, binary values) | base64 string | bin |
 *
 * {@link EventReviver} restores every event field exactly (in NDJSON, column values that were
 * bigint or bytes come back as their strings: JSON cannot say which strings were which).
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";
import {
  formatLsn,
  parseLsn,
  type PgoutputEvent,
  type Relation,
  type Row,
  UNCHANGED_TOAST,
} from "./_pgoutput.ts";

/** Output format of an encoder. */
export type EventFormat = "ndjson" | "msgpack";

/** Something that turns one event into bytes. */
export interface EventEncoder {
  readonly format: EventFormat;
  /**
   * Encodes one event. The bytes are a view into a buffer the encoder fills front to back and
   * replaces when full, so they stay valid after later calls: no copy is needed to keep them.
   */
  encode(event: PgoutputEvent): Uint8Array;
}

const TUPLES = ["key", "old", "new"] as const;

/** Wire form of a row: values without UNCHANGED_TOAST, plus the names of the unchanged columns. */
function wireRow(row: Row, scalar: (v: unknown) => unknown): { row: Record<string, unknown>; unchanged: string[] | undefined } {
  const out: Record<string, unknown> = {};
  let unchanged: string[] | undefined;
  for (const name in row) {
    const v = row[name];
    if (v === UNCHANGED_TOAST) (unchanged ??= []).push(name);
    else if (name === "__proto__") Object.defineProperty(out, name, { value: scalar(v), enumerable: true, writable: true, configurable: true });
    else out[name] = scalar(v);
  }
  return { row: out, unchanged };
}

const relationRef = (r: Relation) => ({ oid: r.oid, schema: r.schema, name: r.name });

function toWire(event: PgoutputEvent, scalar: (key: string, v: unknown) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let unchangedToast: Record<string, string[]> | undefined;
  for (const key in event) {
    const v = (event as unknown as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (key === "relation" && event.type !== "relation") out.relation = relationRef(v as Relation);
    else if (key === "relations") out.relations = (v as Relation[]).map(relationRef);
    else if (key === "relation") out.relation = v; // the Relation event carries the full description
    else if ((key === "new" || key === "old" || key === "key") && event.type !== "relation") {
      const { row, unchanged } = wireRow(v as Row, (x) => scalar("", x));
      out[key] = row;
      if (unchanged) (unchangedToast ??= {})[key] = unchanged;
    } else out[key] = scalar(key, v);
  }
  if (unchangedToast) out.unchangedToast = unchangedToast;
  return out;
}

const isLsnField = (key: string) => key === "lsn" || key.endsWith("Lsn");

// Base64 without Node's Buffer (not in every runtime's globals the same way) and without
// btoa's string building per byte for large values.
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** Base64 of bytes (standard alphabet, padded). */
export function toBase64(bytes: Uint8Array): string {
  let out = "";
  const n = bytes.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const x = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[x >> 18] + B64[(x >> 12) & 63] + B64[(x >> 6) & 63] + B64[x & 63];
  }
  if (i < n) {
    const x = (bytes[i] << 16) | ((i + 1 < n ? bytes[i + 1] : 0) << 8);
    out += B64[x >> 18] + B64[(x >> 12) & 63] + (i + 1 < n ? B64[(x >> 6) & 63] : "=") + "=";
  }
  return out;
}
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;
/** Bytes of a base64 string; throws TypeError on characters outside the alphabet. */
export function fromBase64(text: string): Uint8Array {
  const clean = text.replace(/=+$/, "");
  const out = new Uint8Array((clean.length * 3) >> 2);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? B64_INDEX[c] : -1;
    if (v < 0) throw new TypeError(`fromBase64(): invalid character at ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

function ndjsonScalar(key: string, v: unknown): unknown {
  if (typeof v === "bigint") return isLsnField(key) ? formatLsn(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return toBase64(v);
  return v;
}

/** Grows or replaces a byte buffer filled front to back; handed-out views stay valid. */
class Arena {
  #buf: Uint8Array;
  #pos = 0;
  #size: number;
  constructor(size: number) {
    this.#size = size;
    this.#buf = new Uint8Array(size);
  }
  /** Writes `text` as UTF-8 followed by `suffix` (an ASCII code, or -1 for none). */
  write(text: string, suffix: number): Uint8Array {
    const max = text.length * 3 + 1;
    if (this.#buf.length - this.#pos < max) {
      this.#buf = new Uint8Array(Math.max(this.#size, max));
      this.#pos = 0;
    }
    const start = this.#pos;
    let end = start + utf8.encodeInto(text, this.#buf.subarray(start)).written;
    if (suffix >= 0) this.#buf[end++] = suffix;
    this.#pos = end;
    return this.#buf.subarray(start, end);
  }
}
const utf8 = new TextEncoder();

/**
 * NDJSON encoder: one JSON object per event, each ending in `\n` (see the module doc for the
 * representation of bigint, Date, bytes and unchanged TOAST values).
 *
 * @example
 * ```ts
 * const enc = new NdjsonEncoder();
 * out.write(enc.encode(event)); // {"type":"insert","relation":{...},"new":{...}}\n
 * ```
 */
export class NdjsonEncoder implements EventEncoder {
  readonly format = "ndjson" as const;
  #arena: Arena;
  /** @param bufferSize bytes per buffer the lines are written into (default 64 KiB). */
  constructor(bufferSize = 65536) {
    if (!Number.isInteger(bufferSize) || bufferSize < 64) throw new RangeError("NdjsonEncoder: bufferSize must be an integer >= 64");
    this.#arena = new Arena(bufferSize);
  }
  /** The event as one JSON line without the newline. */
  encodeString(event: PgoutputEvent): string {
    return JSON.stringify(toWire(event, ndjsonScalar));
  }
  encode(event: PgoutputEvent): Uint8Array {
    return this.#arena.write(this.encodeString(event), 0x0a);
  }
}

const identity = (_key: string, v: unknown) => v;

/** Options shared by {@link MsgpackEncoder} and {@link EventReviver} for MessagePack. */
export interface MsgpackOptions {
  /**
   * Record definitions are written once per stream and referenced afterwards, so the decoder
   * must read every message of the stream in order (msgpackr's `sequential`). Default true; set
   * false to make every message self-contained (bigger).
   */
  sequential?: boolean;
}

/** msgpackr options for both ends; `useRecords` keeps repeated row shapes compact. */
function packrOptions(o: MsgpackOptions) {
  return { useRecords: true, sequential: o.sequential ?? true };
}

/**
 * MessagePack encoder (msgpackr `Packr` with the record extension). LSNs and other bigints are
 * int64, Dates the timestamp extension, bytes `bin`.
 *
 * @example
 * ```ts
 * const enc = new MsgpackEncoder();
 * socket.write(enc.encode(event));
 * ```
 */
export class MsgpackEncoder implements EventEncoder {
  readonly format = "msgpack" as const;
  #packr: Packr;
  constructor(options: MsgpackOptions = {}) {
    this.#packr = new Packr(packrOptions(options));
  }
  encode(event: PgoutputEvent): Uint8Array {
    return this.#packr.pack(toWire(event, identity));
  }
}

/**
 * Turns wire-form objects (parsed NDJSON lines or unpacked MessagePack) back into events,
 * re-linking row events to the relations described by earlier `relation` events.
 */
export class EventReviver {
  readonly format: EventFormat;
  #relations = new Map<number, Relation>();
  #unpackr: Unpackr | undefined;
  constructor(format: EventFormat, options: MsgpackOptions = {}) {
    if (format !== "ndjson" && format !== "msgpack") throw new TypeError(`EventReviver: unknown format ${String(format)}`);
    this.format = format;
    if (format === "msgpack") this.#unpackr = new Unpackr(packrOptions(options));
  }

  /** Decodes one encoded event: an NDJSON line (string or bytes) or one MessagePack message. */
  decode(bytes: Uint8Array | string): PgoutputEvent {
    if (this.#unpackr) {
      if (!(bytes instanceof Uint8Array)) throw new TypeError("EventReviver.decode(): MessagePack input must be a Uint8Array");
      return this.revive(this.#unpackr.unpack(bytes));
    }
    return this.revive(JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes)));
  }

  /** Restores an event from its wire form. */
  revive(wire: unknown): PgoutputEvent {
    if (wire === null || typeof wire !== "object" || typeof (wire as { type?: unknown }).type !== "string") {
      throw new TypeError("EventReviver.revive(): not an encoded event (no type field)");
    }
    const w = wire as Record<string, unknown>;
    const nd = this.format === "ndjson";
    const ev: Record<string, unknown> = {};
    for (const key in w) {
      if (key === "unchangedToast") continue;
      let v = w[key];
      if (nd && typeof v === "string") {
        if (isLsnField(key)) v = parseLsn(v);
        else if (key.endsWith("TimeUs")) v = BigInt(v);
        else if (key.endsWith("Time")) v = new Date(v);
        else if (key === "content") v = fromBase64(v);
      } else if (v instanceof Uint8Array && v.constructor !== Uint8Array) {
        v = new Uint8Array(v.buffer, v.byteOffset, v.byteLength); // a Node Buffer from msgpackr
      }
      ev[key] = v;
    }
    const type = ev.type as PgoutputEvent["type"];
    if (type === "relation") {
      const rel = ev.relation as Relation;
      this.#relations.set(rel.oid, rel);
    } else if ("relation" in ev) {
      ev.relation = this.#relation(ev.relation as Relation);
    }
    if (Array.isArray(ev.relations)) ev.relations = ev.relations.map((r: Relation) => this.#relation(r));
    const unchanged = w.unchangedToast as Record<string, string[]> | undefined;
    for (const t of TUPLES) {
      const row = ev[t] as Row | undefined;
      if (!row) continue;
      if (!nd) for (const k in row) if (row[k] instanceof Uint8Array && (row[k] as Uint8Array).constructor !== Uint8Array) {
        const b = row[k] as Uint8Array;
        row[k] = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      }
      for (const name of unchanged?.[t] ?? []) row[name] = UNCHANGED_TOAST;
    }
    for (const f of OPTIONAL[type] ?? []) if (!(f in ev)) ev[f] = undefined;
    return ev as unknown as PgoutputEvent;
  }

  #relation(ref: { oid: number; schema: string; name: string }): Relation {
    const rel = this.#relations.get(ref.oid);
    if (!rel) throw new TypeError(`EventReviver: relation ${ref.oid} (${ref.schema}.${ref.name}) has no preceding relation event`);
    return rel;
  }
}

/** Fields an event always has but which the wire form drops when undefined. */
const OPTIONAL: Partial<Record<PgoutputEvent["type"], string[]>> = {
  relation: ["xid"],
  type: ["xid"],
  insert: ["xid"],
  update: ["xid", "key", "old"],
  delete: ["xid", "key", "old"],
  truncate: ["xid"],
  message: ["xid"],
  streamAbort: ["abortLsn", "abortTime", "abortTimeUs"],
};

/**
 * A TransformStream from events to encoded chunks (one chunk per event).
 *
 * @example
 * ```ts
 * await events.pipeThrough(encodeStream(new NdjsonEncoder())).pipeTo(Writable.toWeb(process.stdout));
 * ```
 */
export function encodeStream(encoder: EventEncoder): TransformStream<PgoutputEvent, Uint8Array> {
  if (typeof encoder?.encode !== "function") throw new TypeError("encodeStream(): expected an EventEncoder");
  return new TransformStream({ transform: (event, controller) => controller.enqueue(encoder.encode(event)) });
}

/**
 * Encodes events from any (async) iterable, one chunk per event.
 *
 * @example
 * ```ts
 * for await (const chunk of encodeEvents(events, new MsgpackEncoder())) out.write(chunk);
 * ```
 */
export async function* encodeEvents(
  events: AsyncIterable<PgoutputEvent> | Iterable<PgoutputEvent>,
  encoder: EventEncoder,
): AsyncGenerator<Uint8Array> {
  if (typeof encoder?.encode !== "function") throw new TypeError("encodeEvents(): expected an EventEncoder");
  for await (const event of events) yield encoder.encode(event);
}
