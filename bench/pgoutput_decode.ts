/**
 * Micro-benchmark of the I/O-free replication code: decodes synthetic pgoutput messages (a
 * realistic mix: Begin, 10 Inserts and 2 Updates of a 6-column row, Commit), and, as a peer
 * measured in the same run, parses the test_decoding rows of the same changes. Then encodes the
 * decoded events as NDJSON and MessagePack. Prints messages/s and MB/s.
 *
 * Run: `deno run -A bench/pgoutput_decode.ts`, `bun bench/pgoutput_decode.ts`,
 * `node dist/bench/pgoutput_decode.js` (after `npm run build`). Optional argument: seconds per
 * measurement (default 1).
 *
 * @module
 */
import {
  MsgpackEncoder,
  NdjsonEncoder,
  parseTestDecoding,
  PgoutputDecoder,
  type PgoutputEvent,
} from "../replication/mod.ts";

const te = new TextEncoder();

class Frame {
  #b: number[] = [];
  constructor(type: string) {
    this.#b.push(type.charCodeAt(0));
  }
  u8(n: number): this {
    this.#b.push(n & 0xff);
    return this;
  }
  u16(n: number): this {
    return this.u8(n >> 8).u8(n);
  }
  u32(n: number): this {
    return this.u8(n >>> 24).u8(n >>> 16).u8(n >>> 8).u8(n);
  }
  u64(n: bigint): this {
    return this.u32(Number(n >> 32n)).u32(Number(n & 0xffffffffn));
  }
  str(s: string): this {
    this.#b.push(...te.encode(s), 0);
    return this;
  }
  text(s: string | null): this {
    if (s === null) return this.u8(0x6e);
    const b = te.encode(s);
    this.u8(0x74).u32(b.length);
    this.#b.push(...b);
    return this;
  }
  get(): Uint8Array {
    return Uint8Array.from(this.#b);
  }
}

const COLS: [string, number, string][] = [
  ["id", 23, "integer"],
  ["account", 20, "bigint"],
  ["status", 25, "text"],
  ["note", 25, "text"],
  ["created_at", 1184, "timestamp with time zone"],
  ["deleted_at", 1184, "timestamp with time zone"],
];

function row(i: number): (string | null)[] {
  return [String(i), String(1_000_000 + (i % 977)), i % 3 ? "active" : "closed", `order ${i} for customer ${i * 7 % 1000}, priority normal`, "2026-11-21 05:42:57.118719+00", null];
}

/** One transaction: its pgoutput frames and its test_decoding rows. */
function transaction(t: number): { frames: Uint8Array[]; rows: string[] } {
  const frames: Uint8Array[] = [new Frame("B").u64(BigInt(0x1000000 + t * 4096)).u64(848554977118719n).u32(1000 + t).get()];
  const rows = [`BEGIN ${1000 + t}`];
  const lit = (v: string | null, k: number) => (v === null ? "null" : COLS[k][1] === 23 || COLS[k][1] === 20 ? v : `'${v}'`);
  const tuple = (vals: (string | null)[]) => vals.map((v, k) => ` ${COLS[k][0]}[${COLS[k][2]}]:${lit(v, k)}`).join("");
  for (let i = 0; i < 12; i++) {
    const vals = row(t * 12 + i);
    const f = new Frame(i < 10 ? "I" : "U").u32(16384).u8(0x4e).u16(COLS.length);
    for (const v of vals) f.text(v);
    frames.push(f.get());
    rows.push(`table public.orders: ${i < 10 ? "INSERT" : "UPDATE"}:${tuple(vals)}`);
  }
  frames.push(new Frame("C").u8(0).u64(BigInt(0x1000000 + t * 4096)).u64(BigInt(0x1000000 + t * 4096 + 48)).u64(848554977118719n).get());
  rows.push(`COMMIT ${1000 + t}`);
  return { frames, rows };
}

function relationFrame(): Uint8Array {
  const f = new Frame("R").u32(16384).str("public").str("orders").u8(0x64).u16(COLS.length);
  for (const [name, oid] of COLS) f.u8(name === "id" ? 1 : 0).str(name).u32(oid).u32(0xffffffff);
  return f.get();
}

/** Runs `fn(i)` for about `seconds`; returns calls per second. */
function rate(seconds: number, fn: (i: number) => void): number {
  for (let i = 0; i < 20_000; i++) fn(i); // warm-up
  let n = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  let now = start;
  while (now < until) {
    for (let k = 0; k < 1000; k++) fn(n++);
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const seconds = Number(globalThis.process?.argv?.[2] ?? 1) || 1;

const txs = Array.from({ length: 200 }, (_, t) => transaction(t));
// As received: every message a view into one buffer, like XLogData payloads in a read chunk.
const frames = (() => {
  const list = txs.flatMap((t) => t.frames);
  const all = new Uint8Array(list.reduce((n, f) => n + f.length, 0));
  let at = 0;
  return list.map((f) => {
    all.set(f, at);
    return all.subarray(at, at += f.length);
  });
})();
const rows = txs.flatMap((t) => t.rows);
const bytes = frames.reduce((s, f) => s + f.length, 0) / frames.length;

const decoder = new PgoutputDecoder();
decoder.decode(relationFrame());
const decodeRate = rate(seconds, (i) => decoder.decode(frames[i % frames.length]));
const tdRate = rate(seconds, (i) => parseTestDecoding(rows[i % rows.length]));
const events: PgoutputEvent[] = frames.map((f) => decoder.decode(f));
const nd = new NdjsonEncoder();
const ndRate = rate(seconds, (i) => nd.encode(events[i % events.length]));
const mp = new MsgpackEncoder();
const mpRate = rate(seconds, (i) => mp.encode(events[i % events.length]));

const f = (n: number) => Math.round(n).toLocaleString("en-US");
const lines = [
  `pgoutput decode (${runtime}): ${f(decodeRate)} messages/s (${(decodeRate * bytes / 1e6).toFixed(1)} MB/s, ${bytes.toFixed(0)} B/message)`,
  `  peer, test_decoding parse of the same changes: ${f(tdRate)} rows/s (pgoutput ${(decodeRate / tdRate).toFixed(2)}x)`,
  `NDJSON encode: ${f(ndRate)} events/s; MessagePack encode: ${f(mpRate)} events/s (${(mpRate / ndRate).toFixed(2)}x NDJSON)`,
];
// A benchmark's output is its result.
// deno-lint-ignore no-console
console.log(lines.join("\n"));
