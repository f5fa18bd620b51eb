/**
 * Output of logical decoding plugins other than pgoutput, passed through as data:
 * `test_decoding` (contrib; one text line per change) parsed into typed events, and `wal2json`
 * parsed as JSON. Both are I/O-free: they take one output row (the `data` column of
 * `pg_logical_slot_get_changes`, or one XLogData payload) and return a value.
 *
 * @module
 */
import { decodeUtf8, ReplicationDecodeError, UNCHANGED_TOAST, type UnchangedToast } from "./_pgoutput.ts";

/**
 * A test_decoding column value: the type's text output with test_decoding's quoting removed
 * (`'it''s'` → `it's`, `B'101'` → `101`; booleans stay `true` / `false` as printed), `null`, or
 * {@link UNCHANGED_TOAST} for `unchanged-toast-datum`.
 */
export type TestDecodingValue = string | null | UnchangedToast;

/** A test_decoding tuple: column name → value, plus column name → type name as printed. */
export interface TestDecodingTuple {
  values: Record<string, TestDecodingValue>;
  types: Record<string, string>;
}

/** A qualified table name as test_decoding prints it (quotes removed). */
export interface TestDecodingTable {
  schema: string;
  table: string;
}

/** One test_decoding output row, parsed. `xid` is set when the slot prints xids (the default). */
export type TestDecodingEvent =
  | { type: "begin"; xid: number | undefined }
  | { type: "commit"; xid: number | undefined; time: string | undefined }
  | { type: "insert"; schema: string; table: string; new: TestDecodingTuple | undefined }
  | {
    type: "update";
    schema: string;
    table: string;
    /** `old-key:`: the replica identity (or the whole old row under REPLICA IDENTITY FULL). */
    key: TestDecodingTuple | undefined;
    new: TestDecodingTuple | undefined;
  }
  | { type: "delete"; schema: string; table: string; key: TestDecodingTuple | undefined }
  | { type: "truncate"; tables: TestDecodingTable[]; cascade: boolean; restartIdentity: boolean }
  | { type: "message"; transactional: boolean; prefix: string; size: number; content: string | undefined; streamed: boolean }
  | { type: "prepare" | "commitPrepared" | "rollbackPrepared"; gid: string; xid: number | undefined; time: string | undefined }
  | { type: "streamPrepare"; gid: string; xid: number | undefined; time: string | undefined }
  | { type: "streamStart" | "streamStop" | "streamAbort" | "streamChange" | "streamTruncate"; xid: number | undefined }
  | { type: "streamCommit"; xid: number | undefined; time: string | undefined };

const WHAT = "test_decoding";

/**
 * Parses one row of `test_decoding` output (a string, or its UTF-8 bytes).
 *
 * @example
 * ```ts
 * parseTestDecoding("table public.t: INSERT: id[integer]:1 v[text]:'a'");
 * // { type: "insert", schema: "public", table: "t", new: { values: { id: "1", v: "a" }, types: {...} } }
 * ```
 */
export function parseTestDecoding(row: string | Uint8Array): TestDecodingEvent {
  const s = typeof row === "string" ? row : row instanceof Uint8Array ? decodeUtf8(row, 0, row.length) : undefined;
  if (s === undefined) throw new TypeError("parseTestDecoding(): expected a string or Uint8Array");
  let m: RegExpExecArray | null;
  if ((m = /^BEGIN(?: (\d+))?$/.exec(s))) return { type: "begin", xid: num(m[1]) };
  if ((m = /^COMMIT(?: (\d+))?(?: \(at (.+)\))?$/.exec(s))) return { type: "commit", xid: num(m[1]), time: m[2] };
  if (s.startsWith("table ")) return parseTableLine(s);
  if (s.startsWith("message: ") || s.startsWith("streaming message: ")) return parseMessage(s);
  if ((m = /^(PREPARE TRANSACTION|COMMIT PREPARED|ROLLBACK PREPARED) '((?:[^']|'')*)'(?:, txid (\d+))?(?: \(at (.+)\))?$/.exec(s))) {
    const type = m[1] === "PREPARE TRANSACTION" ? "prepare" : m[1] === "COMMIT PREPARED" ? "commitPrepared" : "rollbackPrepared";
    return { type, gid: m[2].replaceAll("''", "'"), xid: num(m[3]), time: m[4] };
  }
  if ((m = /^preparing streamed transaction (?:TXN )?'((?:[^']|'')*)'(?:, txid (\d+))?(?: \(at (.+)\))?$/.exec(s))) {
    return { type: "streamPrepare", gid: m[1].replaceAll("''", "'"), xid: num(m[2]), time: m[3] };
  }
  if ((m = /^committing streamed transaction(?: TXN (\d+))?(?: \(at (.+)\))?$/.exec(s))) {
    return { type: "streamCommit", xid: num(m[1]), time: m[2] };
  }
  const streams = [
    ["opening a streamed block for transaction", "streamStart"],
    ["closing a streamed block for transaction", "streamStop"],
    ["aborting streamed (sub)transaction", "streamAbort"],
    ["streaming change for", "streamChange"],
    ["streaming truncate for", "streamTruncate"],
  ] as const;
  for (const [text, type] of streams) {
    if (s.startsWith(text)) {
      const rest = s.slice(text.length);
      if ((m = /^ TXN (\d+)$/.exec(rest)) || rest === "" || rest === " transaction") return { type, xid: num(m?.[1]) };
    }
  }
  throw new ReplicationDecodeError(WHAT, 0, `unrecognised output row ${JSON.stringify(s.slice(0, 80))}`);
}

function num(s: string | undefined): number | undefined {
  return s === undefined ? undefined : Number(s);
}

function parseMessage(s: string): TestDecodingEvent {
  const m = /^(streaming )?message: transactional: ([01]) prefix: ([^]*?), sz: (\d+)( content:)?/.exec(s);
  if (!m) throw new ReplicationDecodeError(WHAT, 0, "malformed message row");
  const content = m[5] ? s.slice(m[0].length) : undefined;
  return { type: "message", transactional: m[2] === "1", prefix: m[3], size: Number(m[4]), content, streamed: !!m[1] };
}

/** A cursor over one `table ...` row. */
class Cursor {
  pos = 0;
  readonly s: string;
  constructor(s: string) {
    this.s = s;
  }
  fail(detail: string): never {
    throw new ReplicationDecodeError(WHAT, this.pos, detail);
  }
  eat(text: string): boolean {
    if (!this.s.startsWith(text, this.pos)) return false;
    this.pos += text.length;
    return true;
  }
  expect(text: string): void {
    if (!this.eat(text)) this.fail(`expected ${JSON.stringify(text)}`);
  }
  /** An identifier as quote_identifier() prints it. */
  ident(): string {
    const s = this.s;
    if (s[this.pos] === '"') {
      let out = "";
      let i = this.pos + 1;
      for (;;) {
        const q = s.indexOf('"', i);
        if (q < 0) this.fail("unterminated quoted identifier");
        out += s.slice(i, q);
        if (s[q + 1] === '"') {
          out += '"';
          i = q + 2;
        } else {
          this.pos = q + 1;
          return out;
        }
      }
    }
    const m = /^[a-z_0-9$\u0080-\uffff]+/.exec(s.slice(this.pos, this.pos + 200));
    if (!m) this.fail("expected an identifier");
    this.pos += m[0].length;
    return m[0];
  }
}

function parseTableLine(s: string): TestDecodingEvent {
  const c = new Cursor(s);
  c.expect("table ");
  const tables: TestDecodingTable[] = [];
  do {
    const schema = c.ident();
    c.expect(".");
    tables.push({ schema, table: c.ident() });
  } while (c.eat(", "));
  c.expect(":");
  const { schema, table } = tables[0];
  if (c.eat(" TRUNCATE:")) {
    const flags = s.slice(c.pos);
    if (!/^( \(no-flags\)|( restart_seqs)?( cascade)?)$/.test(flags) || flags === "") c.fail("malformed TRUNCATE flags");
    return { type: "truncate", tables, cascade: flags.includes(" cascade"), restartIdentity: flags.includes(" restart_seqs") };
  }
  if (tables.length !== 1) c.fail("several tables outside TRUNCATE");
  if (c.eat(" INSERT:")) return { type: "insert", schema, table, new: tuple(c, false) };
  if (c.eat(" DELETE:")) return { type: "delete", schema, table, key: tuple(c, false) };
  if (c.eat(" UPDATE:")) {
    let key: TestDecodingTuple | undefined;
    if (c.eat(" old-key:")) {
      key = tuple(c, true);
      c.expect(" new-tuple:");
    }
    return { type: "update", schema, table, key, new: tuple(c, false) };
  }
  return c.fail("expected INSERT, UPDATE, DELETE or TRUNCATE");
}

/** ` name[type]:value` repeated, or ` (no-tuple-data)`. */
function tuple(c: Cursor, beforeNew: boolean): TestDecodingTuple | undefined {
  if (c.eat(" (no-tuple-data)")) return undefined;
  const values: Record<string, TestDecodingValue> = {};
  const types: Record<string, string> = {};
  const s = c.s;
  while (c.pos < s.length) {
    if (beforeNew && s.startsWith(" new-tuple:", c.pos)) break;
    c.expect(" ");
    const name = c.ident();
    c.expect("[");
    const close = s.indexOf("]:", c.pos);
    if (close < 0) c.fail(`column ${name}: unterminated type`);
    const type = s.slice(c.pos, close);
    c.pos = close + 2;
    let value: TestDecodingValue;
    if (s[c.pos] === "'" || s.startsWith("B'", c.pos)) {
      c.pos += s[c.pos] === "B" ? 2 : 1;
      let out = "";
      for (;;) {
        const q = s.indexOf("'", c.pos);
        if (q < 0) c.fail(`column ${name}: unterminated quoted value`);
        out += s.slice(c.pos, q);
        c.pos = q + 1;
        if (s[c.pos] !== "'") break;
        out += "'";
        c.pos++;
      }
      value = out;
    } else {
      const sp = s.indexOf(" ", c.pos);
      const end = sp < 0 ? s.length : sp;
      const token = s.slice(c.pos, end);
      if (token === "") c.fail(`column ${name}: missing value`);
      c.pos = end;
      value = token === "null" ? null : token === "unchanged-toast-datum" ? UNCHANGED_TOAST : token;
    }
    Object.defineProperty(values, name, { value, enumerable: true, writable: true, configurable: true });
    Object.defineProperty(types, name, { value: type, enumerable: true, writable: true, configurable: true });
  }
  return { values, types };
}

/**
 * Parses one row of `wal2json` output (format-version 1: one JSON document per transaction;
 * format-version 2: one per change) into its JSON value. Note that wal2json prints bigint
 * columns as JSON numbers, which lose precision above 2^53 once parsed.
 *
 * @example
 * ```ts
 * parseWal2json('{"action":"I","schema":"public","table":"t","columns":[]}').action; // "I"
 * ```
 */
export function parseWal2json(row: string | Uint8Array): unknown {
  const s = typeof row === "string" ? row : row instanceof Uint8Array ? decodeUtf8(row, 0, row.length) : undefined;
  if (s === undefined) throw new TypeError("parseWal2json(): expected a string or Uint8Array");
  try {
    return JSON.parse(s);
  } catch (e) {
    const at = /position (\d+)/.exec(String((e as Error).message));
    throw new ReplicationDecodeError("wal2json", at ? Number(at[1]) : 0, `invalid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * One change of `wal2json` format-version 2 (one JSON document per change), as the consumer
 * delivers it with `plugin: "wal2json"`. Only `action` is always present; the other fields depend
 * on the action and on wal2json's options (`include-xids`, `include-timestamp`, `include-lsn`, ...).
 */
export interface Wal2jsonEvent {
  /** B begin, C commit, I insert, U update, D delete, T truncate, M logical message. */
  action: "B" | "C" | "I" | "U" | "D" | "T" | "M";
  xid?: number;
  timestamp?: string;
  lsn?: string;
  nextlsn?: string;
  schema?: string;
  table?: string;
  columns?: { name: string; type: string; value: unknown }[];
  identity?: { name: string; type: string; value: unknown }[];
  /** M: whether the message was emitted inside a transaction. */
  transactional?: boolean;
  prefix?: string;
  content?: string;
  [field: string]: unknown;
}

const WAL2JSON_ACTIONS = new Set(["B", "C", "I", "U", "D", "T", "M"]);

/** {@link parseWal2json} of a format-version 2 row, checked to be one change object. */
export function parseWal2jsonChange(row: string | Uint8Array): Wal2jsonEvent {
  const v = parseWal2json(row) as Wal2jsonEvent | null;
  if (v === null || typeof v !== "object" || Array.isArray(v) || !WAL2JSON_ACTIONS.has(v.action)) {
    const what = v !== null && typeof v === "object" && !Array.isArray(v) ? `action ${JSON.stringify(v.action)}` : typeof v;
    throw new ReplicationDecodeError("wal2json", 0, `expected a format-version 2 change object, got ${what}`);
  }
  return v;
}
