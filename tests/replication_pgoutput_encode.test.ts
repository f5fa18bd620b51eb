// NDJSON and MessagePack encoders of decoded pgoutput events: representation, round trips
// through EventReviver and msgpackr, reused buffers, and the stream adapters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pack, unpack } from "msgpackr";
import {
  encodeEvents,
  encodeStream,
  EventReviver,
  fromBase64,
  MsgpackEncoder,
  NdjsonEncoder,
  PgoutputDecoder,
  type PgoutputEvent,
  toBase64,
  UNCHANGED_TOAST,
} from "../replication/mod.ts";

const TS = 848554977118719n;
const te = new TextEncoder();

/** Big-endian frame bytes from a compact description. */
function frame(type: string, ...parts: (["u8" | "u16" | "u32", number] | ["u64", bigint] | ["str", string] | ["raw", number[]])[]): Uint8Array {
  const b: number[] = [type.charCodeAt(0)];
  for (const [k, v] of parts) {
    if (k === "u8") b.push(v & 255);
    else if (k === "u16") b.push((v >> 8) & 255, v & 255);
    else if (k === "u32") b.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
    else if (k === "u64") for (let s = 56n; s >= 0n; s -= 8n) b.push(Number((v >> s) & 255n));
    else if (k === "str") b.push(...te.encode(v), 0);
    else b.push(...(v as number[]));
  }
  return Uint8Array.from(b);
}
const txt = (s: string): number[] => {
  const bytes = te.encode(s);
  return [0x74, bytes.length >>> 24, (bytes.length >>> 16) & 255, (bytes.length >>> 8) & 255, bytes.length & 255, ...bytes];
};

/** A stream of events of every kind, decoded from hand-built frames. */
function sampleEvents(): PgoutputEvent[] {
  const d = new PgoutputDecoder();
  const rel = frame("R", ["u32", 16384], ["str", "public"], ["str", "t"], ["u8", 0x64], ["u16", 3],
    ["u8", 1], ["str", "id"], ["u32", 23], ["u32", 0xffffffff],
    ["u8", 0], ["str", "v"], ["u32", 25], ["u32", 0xffffffff],
    ["u8", 0], ["str", "big"], ["u32", 17], ["u32", 0xffffffff]);
  const frames = [
    frame("B", ["u64", 0x16B3748n], ["u64", TS], ["u32", 745]),
    frame("O", ["u64", 0xABCDEFn], ["str", "upstream"]),
    frame("Y", ["u32", 16390], ["str", "public"], ["str", "mood"]),
    rel,
    frame("I", ["u32", 16384], ["u8", 0x4e], ["u16", 3], ["raw", txt("1")], ["raw", txt("é \"quoted\"\n")], ["raw", [0x62, 0, 0, 0, 3, 1, 2, 255]]),
    frame("U", ["u32", 16384], ["u8", 0x4b], ["u16", 3], ["raw", txt("1")], ["u8", 0x6e], ["u8", 0x6e], ["u8", 0x4e], ["u16", 3], ["raw", txt("2")], ["u8", 0x6e], ["u8", 0x75]),
    frame("D", ["u32", 16384], ["u8", 0x4f], ["u16", 3], ["raw", txt("2")], ["raw", txt("x")], ["u8", 0x75]),
    frame("T", ["u32", 1], ["u8", 3], ["u32", 16384]),
    frame("M", ["u8", 1], ["u64", 0x2000n], ["str", "app"], ["u32", 3], ["raw", [0, 1, 2]]),
    frame("C", ["u8", 0], ["u64", 0x16B3748n], ["u64", 0x16B3790n], ["u64", TS]),
    frame("S", ["u32", 900], ["u8", 1]),
    frame("R", ["u32", 900], ["u32", 16384], ["str", "public"], ["str", "t"], ["u8", 0x66], ["u16", 3],
      ["u8", 1], ["str", "id"], ["u32", 23], ["u32", 0xffffffff],
      ["u8", 1], ["str", "v"], ["u32", 25], ["u32", 0xffffffff],
      ["u8", 1], ["str", "big"], ["u32", 17], ["u32", 0xffffffff]),
    frame("I", ["u32", 901], ["u32", 16384], ["u8", 0x4e], ["u16", 3], ["raw", txt("3")], ["u8", 0x6e], ["u8", 0x6e]),
    frame("E"),
    frame("A", ["u32", 900], ["u32", 901]),
    frame("A", ["u32", 900], ["u32", 900], ["u64", 0x5000n], ["u64", TS]),
    frame("c", ["u32", 902], ["u8", 0], ["u64", 0x6000n], ["u64", 0x6050n], ["u64", TS]),
    frame("b", ["u64", 0x10n], ["u64", 0x20n], ["u64", TS], ["u32", 77], ["str", "g1"]),
    frame("P", ["u8", 0], ["u64", 0x10n], ["u64", 0x20n], ["u64", TS], ["u32", 77], ["str", "g1"]),
    frame("K", ["u8", 0], ["u64", 0x30n], ["u64", 0x40n], ["u64", TS], ["u32", 77], ["str", "g1"]),
    frame("r", ["u8", 0], ["u64", 0x20n], ["u64", 0x50n], ["u64", TS], ["u64", TS + 5n], ["u32", 78], ["str", "g2"]),
    frame("p", ["u8", 0], ["u64", 0x10n], ["u64", 0x20n], ["u64", TS], ["u32", 79], ["str", "g3"]),
  ];
  return frames.map((f) => d.decode(f));
}

test("NdjsonEncoder writes one JSON line per event with LSNs as X/X, bigints as strings, bytes as base64", () => {
  const enc = new NdjsonEncoder();
  const events = sampleEvents();
  const lines = events.map((e) => new TextDecoder().decode(enc.encode(e)));
  for (const l of lines) {
    assert.ok(l.endsWith("\n"));
    assert.equal(l.indexOf("\n"), l.length - 1, "exactly one newline, at the end");
  }
  const objs = lines.map((l) => JSON.parse(l));
  assert.deepEqual(objs[0], { type: "begin", finalLsn: "0/16B3748", commitTime: "2026-11-21T05:42:57.118Z", commitTimeUs: String(TS), xid: 745 });
  assert.deepEqual(objs[4], {
    type: "insert",
    relation: { oid: 16384, schema: "public", name: "t" },
    new: { id: "1", v: "é \"quoted\"\n", big: toBase64(new Uint8Array([1, 2, 255])) },
  });
  assert.deepEqual(objs[5], {
    type: "update",
    relation: { oid: 16384, schema: "public", name: "t" },
    key: { id: "1" },
    new: { id: "2", v: null },
    unchangedToast: { new: ["big"] },
  });
  assert.deepEqual(objs[6].unchangedToast, { old: ["big"] });
  assert.deepEqual(objs[7], { type: "truncate", cascade: true, restartIdentity: true, relations: [{ oid: 16384, schema: "public", name: "t" }] });
  assert.deepEqual(objs[8], { type: "message", transactional: true, lsn: "0/2000", prefix: "app", content: "AAEC" });
  assert.equal(objs[3].relation.columns.length, 3, "the relation event carries the columns");
  assert.equal(objs[12].xid, 901);
  assert.equal("abortLsn" in objs[14], false);
  assert.equal(objs[15].abortLsn, "0/5000");
});

test("EventReviver restores NDJSON lines to the very events that were encoded", () => {
  const enc = new NdjsonEncoder(64); // a tiny buffer: most lines go to a fresh one
  const rev = new EventReviver("ndjson");
  const events = sampleEvents();
  const chunks = events.map((e) => enc.encode(e));
  const back = chunks.map((c) => rev.decode(c));
  // Binary column values come back as their base64 text (JSON cannot say which strings were bytes).
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    const b = back[i];
    if (e.type === "insert" && e.new.big instanceof Uint8Array) {
      assert.ok(b.type === "insert");
      assert.equal(b.new.big, toBase64(e.new.big));
      b.new.big = e.new.big;
    }
  }
  assert.deepEqual(back, events);
  const upd = back[5];
  assert.ok(upd.type === "update" && upd.new.big === UNCHANGED_TOAST);
  assert.ok(upd.type === "update" && upd.relation === (back[3] as Extract<PgoutputEvent, { type: "relation" }>).relation);
});

test("MsgpackEncoder round-trips every event through EventReviver, keeping bigint, Date and bytes", () => {
  const enc = new MsgpackEncoder();
  const rev = new EventReviver("msgpack");
  const events = sampleEvents();
  const chunks = events.map((e) => enc.encode(e));
  assert.deepEqual(chunks.map((c) => rev.decode(c)), events);
});

test("MsgpackEncoder records: a repeated row shape is written once, later rows are smaller", () => {
  const events = sampleEvents();
  const ins = events[4];
  const enc = new MsgpackEncoder();
  const first = enc.encode(ins).length;
  const second = enc.encode(ins).length;
  assert.ok(second < first, `${second} < ${first}`);
  const plain = pack({ ...ins, relation: { oid: 16384, schema: "public", name: "t" } }).length;
  assert.ok(second < plain, `record-encoded ${second} bytes vs ${plain} plain`);
});

test("MsgpackEncoder({ sequential: false }) writes self-contained messages that msgpackr's unpack() reads", () => {
  const enc = new MsgpackEncoder({ sequential: false });
  const events = sampleEvents();
  const wire = events.map((e) => unpack(enc.encode(e)));
  assert.deepEqual(wire[0], { type: "begin", finalLsn: 0x16B3748n, commitTime: new Date("2026-11-21T05:42:57.118Z"), commitTimeUs: TS, xid: 745 });
  assert.deepEqual(wire[5].unchangedToast, { new: ["big"] });
  assert.deepEqual(new Uint8Array(wire[4].new.big), new Uint8Array([1, 2, 255]));
  const rev = new EventReviver("msgpack", { sequential: false });
  assert.deepEqual(wire.map((w) => rev.revive(w)), events);
});

test("encoded chunks stay valid after later encodes (no copy needed)", () => {
  for (const enc of [new NdjsonEncoder(256), new MsgpackEncoder()]) {
    const events = sampleEvents();
    const first = enc.encode(events[4]);
    const snapshot = first.slice();
    for (let i = 0; i < 2000; i++) enc.encode(events[i % events.length]);
    assert.deepEqual(first, snapshot, enc.format);
  }
});

test("encodeStream() and encodeEvents() yield one chunk per event, decodable in order", async () => {
  const events = sampleEvents();
  for (const make of [() => new NdjsonEncoder(), () => new MsgpackEncoder()]) {
    const enc = make();
    const chunks: Uint8Array[] = [];
    const source = new ReadableStream<PgoutputEvent>({
      start(c) {
        for (const e of events) c.enqueue(e);
        c.close();
      },
    });
    const reader = source.pipeThrough(encodeStream(enc)).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const rev = new EventReviver(enc.format);
    assert.equal(chunks.length, events.length);
    const back = chunks.map((c) => rev.decode(c));
    assert.deepEqual(back.map((e) => e.type), events.map((e) => e.type));

    const gen: Uint8Array[] = [];
    const source2 = async function* () {
      yield* events;
    };
    for await (const c of encodeEvents(source2(), make())) gen.push(c);
    const rev2 = new EventReviver(enc.format);
    assert.deepEqual(gen.map((c) => rev2.decode(c).type), events.map((e) => e.type));
  }
});

test("encoders and the reviver reject bad arguments with TypeError / RangeError", () => {
  assert.throws(() => new NdjsonEncoder(8), RangeError);
  assert.throws(() => encodeStream({} as never), TypeError);
  assert.throws(() => new EventReviver("xml" as never), TypeError);
  assert.throws(() => new EventReviver("ndjson").revive({ nope: 1 }), TypeError);
  assert.throws(() => new EventReviver("msgpack").decode("x"), TypeError);
  // A row event whose relation was never described cannot be re-linked.
  assert.throws(
    () => new EventReviver("ndjson").decode('{"type":"insert","relation":{"oid":5,"schema":"s","name":"t"},"new":{}}'),
    /relation 5 \(s\.t\) has no preceding relation event/,
  );
});

test("toBase64() and fromBase64() round-trip every length and reject foreign characters", () => {
  for (let n = 0; n < 40; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
    const b64 = toBase64(bytes);
    assert.equal(b64.length, Math.ceil(n / 3) * 4);
    assert.deepEqual(fromBase64(b64), bytes);
  }
  assert.equal(toBase64(te.encode("hello")), "aGVsbG8=");
  assert.throws(() => fromBase64("aGV$"), TypeError);
});

test("MessagePack round trip holds across hundreds of distinct row shapes (record ids get reused)", () => {
  const d = new PgoutputDecoder();
  const events: PgoutputEvent[] = [];
  for (let r = 0; r < 300; r++) {
    const cols = 1 + (r % 7);
    const parts: Parameters<typeof frame>[1][] = [["u32", 1000 + r], ["str", "s"], ["str", `t${r}`], ["u8", 0x64], ["u16", cols]];
    for (let c = 0; c < cols; c++) parts.push(["u8", c === 0 ? 1 : 0], ["str", `c${r}_${c}`], ["u32", 25], ["u32", 0xffffffff]);
    events.push(d.decode(frame("R", ...parts)));
    for (let k = 0; k < 3; k++) {
      const vals: Parameters<typeof frame>[1][] = [];
      for (let c = 0; c < cols; c++) vals.push(["raw", txt(`${r}.${k}.${c}`)]);
      events.push(d.decode(frame("I", ["u32", 1000 + r], ["u8", 0x4e], ["u16", cols], ...vals)));
    }
  }
  const enc = new MsgpackEncoder();
  const rev = new EventReviver("msgpack");
  assert.deepEqual(events.map((e) => rev.decode(enc.encode(e))), events);
});
