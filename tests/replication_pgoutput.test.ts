// Byte-level tests of the pgoutput decoder: every message type of protocol versions 1-4 built by
// hand, the version differences, and malformed or truncated input.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatLsn,
  parseLsn,
  PgoutputDecoder,
  type PgoutputEvent,
  pgTimestampToDate,
  pgValues,
  rawValues,
  type Relation,
  ReplicationDecodeError,
  UNCHANGED_TOAST,
} from "../replication/mod.ts";
import { decodeUtf8 } from "../replication/_pgoutput.ts";

/** A frame builder that reads like the protocol tables. */
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
    return this.u32(Number(BigInt.asUintN(64, n) >> 32n)).u32(Number(BigInt.asUintN(32, n)));
  }
  str(s: string): this {
    for (const b of new TextEncoder().encode(s)) this.#b.push(b);
    return this.u8(0);
  }
  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.#b.push(b[i]);
    return this;
  }
  /** TupleData from ["t", "text"] | ["b", bytes] | "n" | "u". */
  tuple(cols: ("n" | "u" | ["t", string] | ["b", number[]])[]): this {
    this.u16(cols.length);
    for (const c of cols) {
      if (c === "n" || c === "u") this.u8(c.charCodeAt(0));
      else if (c[0] === "t") {
        const bytes = new TextEncoder().encode(c[1]);
        this.u8(0x74).u32(bytes.length).bytes(bytes);
      } else this.u8(0x62).u32(c[1].length).bytes(c[1]);
    }
    return this;
  }
  get(): Uint8Array {
    return Uint8Array.from(this.#b);
  }
}

const TS = 848554977118719n; // µs since 2000-01-01
const TS_DATE = new Date(Math.floor(Number(TS) / 1000) + 946684800000);

/** Relation 16384 public.t (id int4 key, v text, big text), replica identity default. */
function relationFrame(xid?: number): Uint8Array {
  const f = new Frame("R");
  if (xid !== undefined) f.u32(xid);
  return f.u32(16384).str("public").str("t").u8(0x64).u16(3)
    .u8(1).str("id").u32(23).u32(0xffffffff)
    .u8(0).str("v").u32(25).u32(0xffffffff)
    .u8(0).str("big").u32(25).u32(0xffffffff).get();
}

function withRelation(options?: ConstructorParameters<typeof PgoutputDecoder>[0]): [PgoutputDecoder, Relation] {
  const d = new PgoutputDecoder(options);
  const ev = d.decode(relationFrame());
  assert.equal(ev.type, "relation");
  return [d, (ev as Extract<PgoutputEvent, { type: "relation" }>).relation];
}

test("formatLsn() and parseLsn() convert between bigint and X/X both ways", () => {
  assert.equal(formatLsn(0x16B3748n), "0/16B3748");
  assert.equal(formatLsn(0xFFFFFFFF_FFFFFFFFn), "FFFFFFFF/FFFFFFFF");
  assert.equal(parseLsn("0/16B3748"), 0x16B3748n);
  assert.equal(parseLsn("1a/0"), 0x1A_00000000n);
  for (const lsn of [0n, 1n, 0x1_00000000n, 0xDEADBEEF_CAFEBABEn]) assert.equal(parseLsn(formatLsn(lsn)), lsn);
});

test("parseLsn() rejects text that is not X/X hex and formatLsn() a non-64-bit value", () => {
  for (const bad of ["", "0", "0/", "/1", "0/1/2", "G/1", "123456789/0", " 0/1"]) {
    assert.throws(() => parseLsn(bad), TypeError, bad);
  }
  assert.throws(() => formatLsn(-1n), RangeError);
  assert.throws(() => formatLsn(1n << 64n), RangeError);
  assert.throws(() => formatLsn(5 as unknown as bigint), TypeError);
});

test("pgTimestampToDate() counts microseconds from 2000-01-01 UTC", () => {
  assert.equal(pgTimestampToDate(0n).toISOString(), "2000-01-01T00:00:00.000Z");
  assert.equal(pgTimestampToDate(1_500n).toISOString(), "2000-01-01T00:00:00.001Z");
  assert.equal(pgTimestampToDate(-86_400_000_000n).toISOString(), "1999-12-31T00:00:00.000Z");
});

test("decode() reads Begin (B) and Commit (C)", () => {
  const d = new PgoutputDecoder();
  assert.deepEqual(d.decode(new Frame("B").u64(0x1000n).u64(TS).u32(745).get()), {
    type: "begin",
    finalLsn: 0x1000n,
    commitTime: TS_DATE,
    commitTimeUs: TS,
    xid: 745,
  });
  assert.deepEqual(d.decode(new Frame("C").u8(0).u64(0x1000n).u64(0x1030n).u64(TS).get()), {
    type: "commit",
    flags: 0,
    commitLsn: 0x1000n,
    endLsn: 0x1030n,
    commitTime: TS_DATE,
    commitTimeUs: TS,
  });
});

test("decode() reads Origin (O)", () => {
  assert.deepEqual(new PgoutputDecoder().decode(new Frame("O").u64(0xABCDEFn).str("node_a").get()), {
    type: "origin",
    originLsn: 0xABCDEFn,
    name: "node_a",
  });
});

test("decode() reads Relation (R) into the cache, expanding the empty namespace to pg_catalog", () => {
  const [d, rel] = withRelation();
  assert.deepEqual(rel, {
    oid: 16384,
    schema: "public",
    name: "t",
    replicaIdentity: "default",
    columns: [
      { name: "id", typeOid: 23, typeMod: -1, key: true },
      { name: "v", typeOid: 25, typeMod: -1, key: false },
      { name: "big", typeOid: 25, typeMod: -1, key: false },
    ],
  });
  assert.equal(d.relations.get(16384), rel);
  const ev = d.decode(new Frame("R").u32(99).str("").str("pg_x").u8(0x66).u16(1).u8(1).str("c").u32(1043).u32(24).get());
  assert.equal(ev.type === "relation" && ev.relation.schema, "pg_catalog");
  assert.equal(ev.type === "relation" && ev.relation.replicaIdentity, "full");
  assert.equal(ev.type === "relation" && ev.relation.columns[0].typeMod, 24);
  // A newer Relation message for the same OID replaces the cached one.
  d.decode(new Frame("R").u32(16384).str("public").str("t").u8(0x69).u16(0).get());
  assert.equal(d.relations.get(16384)!.replicaIdentity, "index");
  assert.equal(d.relations.get(16384)!.columns.length, 0);
});

test("decode() reads Type (Y) and caches it", () => {
  const d = new PgoutputDecoder();
  assert.deepEqual(d.decode(new Frame("Y").u32(16390).str("public").str("mood").get()), {
    type: "type",
    xid: undefined,
    oid: 16390,
    schema: "public",
    name: "mood",
  });
  assert.deepEqual(d.typeInfo.get(16390), { oid: 16390, schema: "public", name: "mood" });
});

test("decode() reads Insert (I) with text, null, unchanged-TOAST and binary columns", () => {
  const [d, relation] = withRelation();
  const ev = d.decode(new Frame("I").u32(16384).u8(0x4e).tuple([["t", "1"], "n", "u"]).get());
  assert.deepEqual(ev, { type: "insert", xid: undefined, relation, new: { id: "1", v: null, big: UNCHANGED_TOAST } });
  assert.equal(ev.type === "insert" && ev.relation, relation, "the event shares the cached relation");
  const bin = d.decode(new Frame("I").u32(16384).u8(0x4e).tuple([["b", [0, 0, 0, 7]], ["t", "héllo wörld, a longer text value"], "n"]).get());
  assert.deepEqual(bin.type === "insert" && bin.new, { id: new Uint8Array([0, 0, 0, 7]), v: "héllo wörld, a longer text value", big: null });
});

test("decode() passes type OIDs and values to an injected value decoder", () => {
  const seen: unknown[] = [];
  const [d] = withRelation({
    types: {
      text: (oid, text) => (seen.push(["text", oid, text]), oid === 23 ? Number(text) : text.toUpperCase()),
      binary: (oid, bytes) => (seen.push(["binary", oid, Array.from(bytes)]), new DataView(bytes.buffer, bytes.byteOffset).getInt32(0)),
    },
  });
  const ev = d.decode(new Frame("I").u32(16384).u8(0x4e).tuple([["t", "42"], ["t", "abc"], ["b", [0, 0, 1, 0]]]).get());
  assert.deepEqual(ev.type === "insert" && ev.new, { id: 42, v: "ABC", big: 256 });
  assert.deepEqual(seen, [["text", 23, "42"], ["text", 25, "abc"], ["binary", 25, [0, 0, 1, 0]]]);
});

test("decoded binary values and message contents do not alias the input bytes", () => {
  const [d] = withRelation();
  const frame = new Frame("I").u32(16384).u8(0x4e).tuple([["b", [1, 2, 3, 4]], "n", "n"]).get();
  const ev = d.decode(frame);
  frame.fill(0);
  assert.deepEqual(ev.type === "insert" && ev.new.id, new Uint8Array([1, 2, 3, 4]));
  const msg = new Frame("M").u8(1).u64(5n).str("p").u32(2).bytes([9, 8]).get();
  const m = d.decode(msg);
  msg.fill(0);
  assert.deepEqual(m.type === "message" && m.content, new Uint8Array([9, 8]));
});

test("decode() reads Update (U) without old tuple, with old key (K) and with old row (O)", () => {
  const [d, relation] = withRelation();
  assert.deepEqual(d.decode(new Frame("U").u32(16384).u8(0x4e).tuple([["t", "1"], ["t", "b"], "u"]).get()), {
    type: "update",
    xid: undefined,
    relation,
    key: undefined,
    old: undefined,
    new: { id: "1", v: "b", big: UNCHANGED_TOAST },
  });
  // K: the server sends non-key columns as nulls that mean "not part of the key": left out.
  assert.deepEqual(d.decode(new Frame("U").u32(16384).u8(0x4b).tuple([["t", "1"], "n", "n"]).u8(0x4e).tuple([["t", "2"], ["t", "b"], "n"]).get()), {
    type: "update",
    xid: undefined,
    relation,
    key: { id: "1" },
    old: undefined,
    new: { id: "2", v: "b", big: null },
  });
  assert.deepEqual(d.decode(new Frame("U").u32(16384).u8(0x4f).tuple([["t", "1"], "n", ["t", "x"]]).u8(0x4e).tuple([["t", "1"], ["t", "c"], ["t", "x"]]).get()), {
    type: "update",
    xid: undefined,
    relation,
    key: undefined,
    old: { id: "1", v: null, big: "x" },
    new: { id: "1", v: "c", big: "x" },
  });
});

test("decode() reads Delete (D) with old key (K) or old row (O)", () => {
  const [d, relation] = withRelation();
  assert.deepEqual(d.decode(new Frame("D").u32(16384).u8(0x4b).tuple([["t", "3"], "n", "n"]).get()), {
    type: "delete",
    xid: undefined,
    relation,
    key: { id: "3" },
    old: undefined,
  });
  assert.deepEqual(d.decode(new Frame("D").u32(16384).u8(0x4f).tuple([["t", "3"], ["t", "v"], "n"]).get()), {
    type: "delete",
    xid: undefined,
    relation,
    key: undefined,
    old: { id: "3", v: "v", big: null },
  });
});

test("decode() reads Truncate (T) flags and relations", () => {
  const [d, relation] = withRelation();
  const other = d.decode(new Frame("R").u32(7).str("s").str("u").u8(0x64).u16(0).get());
  const rel2 = other.type === "relation" ? other.relation : undefined;
  assert.deepEqual(d.decode(new Frame("T").u32(2).u8(3).u32(16384).u32(7).get()), {
    type: "truncate",
    xid: undefined,
    cascade: true,
    restartIdentity: true,
    relations: [relation, rel2],
  });
  const plain = d.decode(new Frame("T").u32(1).u8(0).u32(7).get());
  assert.equal(plain.type === "truncate" && plain.cascade, false);
  assert.equal(plain.type === "truncate" && plain.restartIdentity, false);
  const restart = d.decode(new Frame("T").u32(1).u8(2).u32(7).get());
  assert.equal(restart.type === "truncate" && restart.restartIdentity && !restart.cascade, true);
});

test("decode() reads Message (M), transactional or not", () => {
  const d = new PgoutputDecoder();
  assert.deepEqual(d.decode(new Frame("M").u8(1).u64(0x2000n).str("app").u32(5).bytes([104, 101, 108, 108, 111]).get()), {
    type: "message",
    xid: undefined,
    transactional: true,
    lsn: 0x2000n,
    prefix: "app",
    content: new TextEncoder().encode("hello"),
  });
  const nt = d.decode(new Frame("M").u8(0).u64(1n).str("").u32(0).get());
  assert.equal(nt.type === "message" && nt.transactional, false);
  assert.equal(nt.type === "message" && nt.content.length, 0);
});

test("inside Stream Start (S) .. Stream Stop (E), data messages carry the xid; outside they do not", () => {
  const d = new PgoutputDecoder({ protoVersion: 2 });
  assert.deepEqual(d.decode(new Frame("S").u32(900).u8(1).get()), { type: "streamStart", xid: 900, firstSegment: true });
  assert.equal(d.streamingXid, 900);
  const rel = d.decode(relationFrame(900));
  assert.equal(rel.type === "relation" && rel.xid, 900);
  const relation = d.relations.get(16384)!;
  assert.deepEqual(d.decode(new Frame("Y").u32(900).u32(5).str("public").str("e").get()), {
    type: "type", xid: 900, oid: 5, schema: "public", name: "e",
  });
  // A subtransaction's changes carry the subtransaction's xid.
  assert.deepEqual(d.decode(new Frame("I").u32(901).u32(16384).u8(0x4e).tuple([["t", "1"], "n", "n"]).get()), {
    type: "insert", xid: 901, relation, new: { id: "1", v: null, big: null },
  });
  const u = d.decode(new Frame("U").u32(900).u32(16384).u8(0x4e).tuple([["t", "1"], "n", "n"]).get());
  assert.equal(u.type === "update" && u.xid, 900);
  const del = d.decode(new Frame("D").u32(900).u32(16384).u8(0x4b).tuple([["t", "1"], "n", "n"]).get());
  assert.equal(del.type === "delete" && del.xid, 900);
  const tr = d.decode(new Frame("T").u32(900).u32(1).u8(0).u32(16384).get());
  assert.equal(tr.type === "truncate" && tr.xid, 900);
  const m = d.decode(new Frame("M").u32(900).u8(1).u64(1n).str("p").u32(0).get());
  assert.equal(m.type === "message" && m.xid, 900);
  assert.deepEqual(d.decode(new Frame("E").get()), { type: "streamStop" });
  assert.equal(d.streamingXid, undefined);
  const after = d.decode(new Frame("I").u32(16384).u8(0x4e).tuple([["t", "2"], "n", "n"]).get());
  assert.equal(after.type === "insert" && after.xid, undefined);
  assert.equal(after.type === "insert" && after.new.id, "2");
  assert.deepEqual(d.decode(new Frame("S").u32(900).u8(0).get()), { type: "streamStart", xid: 900, firstSegment: false });
});

test("decode() reads Stream Commit (c)", () => {
  assert.deepEqual(new PgoutputDecoder().decode(new Frame("c").u32(900).u8(0).u64(0x3000n).u64(0x3050n).u64(TS).get()), {
    type: "streamCommit",
    xid: 900,
    flags: 0,
    commitLsn: 0x3000n,
    endLsn: 0x3050n,
    commitTime: TS_DATE,
    commitTimeUs: TS,
  });
});

test("decode() reads Stream Abort (A) without abort info (v2-v4) and with it (v4, streaming = parallel)", () => {
  const d = new PgoutputDecoder();
  assert.deepEqual(d.decode(new Frame("A").u32(900).u32(902).get()), {
    type: "streamAbort",
    xid: 900,
    subxid: 902,
    abortLsn: undefined,
    abortTime: undefined,
    abortTimeUs: undefined,
  });
  assert.deepEqual(d.decode(new Frame("A").u32(900).u32(900).u64(0x4000n).u64(TS).get()), {
    type: "streamAbort",
    xid: 900,
    subxid: 900,
    abortLsn: 0x4000n,
    abortTime: TS_DATE,
    abortTimeUs: TS,
  });
  const v3 = new PgoutputDecoder({ protoVersion: 3 });
  assert.throws(() => v3.decode(new Frame("A").u32(900).u32(900).u64(0x4000n).u64(TS).get()), /Stream Abort \(A\) message at offset 9: abort LSN and time need proto_version 4/);
  assert.throws(() => d.decode(new Frame("A").u32(900).u32(900).u64(0x4000n).get()), /Stream Abort \(A\) message at offset 17: truncated/);
});

test("decode() reads the two-phase messages b, P, K, r and p", () => {
  const d = new PgoutputDecoder({ protoVersion: 3 });
  assert.deepEqual(d.decode(new Frame("b").u64(0x10n).u64(0x20n).u64(TS).u32(77).str("gid-1").get()), {
    type: "beginPrepare", prepareLsn: 0x10n, endLsn: 0x20n, prepareTime: TS_DATE, prepareTimeUs: TS, xid: 77, gid: "gid-1",
  });
  assert.deepEqual(d.decode(new Frame("P").u8(0).u64(0x10n).u64(0x20n).u64(TS).u32(77).str("gid-1").get()), {
    type: "prepare", flags: 0, prepareLsn: 0x10n, endLsn: 0x20n, prepareTime: TS_DATE, prepareTimeUs: TS, xid: 77, gid: "gid-1",
  });
  assert.deepEqual(d.decode(new Frame("K").u8(0).u64(0x30n).u64(0x40n).u64(TS).u32(77).str("gid-1").get()), {
    type: "commitPrepared", flags: 0, commitLsn: 0x30n, endLsn: 0x40n, commitTime: TS_DATE, commitTimeUs: TS, xid: 77, gid: "gid-1",
  });
  assert.deepEqual(d.decode(new Frame("r").u8(0).u64(0x20n).u64(0x50n).u64(TS).u64(TS + 1000n).u32(77).str("gid-1").get()), {
    type: "rollbackPrepared",
    flags: 0,
    prepareEndLsn: 0x20n,
    rollbackEndLsn: 0x50n,
    prepareTime: TS_DATE,
    prepareTimeUs: TS,
    rollbackTime: new Date(TS_DATE.getTime() + 1),
    rollbackTimeUs: TS + 1000n,
    xid: 77,
    gid: "gid-1",
  });
  assert.deepEqual(d.decode(new Frame("p").u8(0).u64(0x10n).u64(0x20n).u64(TS).u32(78).str("big").get()), {
    type: "streamPrepare", flags: 0, prepareLsn: 0x10n, endLsn: 0x20n, prepareTime: TS_DATE, prepareTimeUs: TS, xid: 78, gid: "big",
  });
});

test("a decoder set to proto_version 1 or 2 rejects messages its version cannot carry", () => {
  const streaming = [new Frame("S").u32(1).u8(1).get(), new Frame("E").get(), new Frame("c").u32(1).u8(0).u64(1n).u64(2n).u64(TS).get(), new Frame("A").u32(1).u32(1).get()];
  const twoPhase = [
    new Frame("b").u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
    new Frame("P").u8(0).u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
    new Frame("K").u8(0).u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
    new Frame("r").u8(0).u64(1n).u64(2n).u64(TS).u64(TS).u32(1).str("g").get(),
    new Frame("p").u8(0).u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
  ];
  for (const f of [...streaming, ...twoPhase]) {
    assert.throws(() => new PgoutputDecoder({ protoVersion: 1 }).decode(f), /needs proto_version [23] or later \(decoder set to 1\)/);
  }
  for (const f of twoPhase) assert.throws(() => new PgoutputDecoder({ protoVersion: 2 }).decode(f), /needs proto_version 3/);
  assert.equal(new PgoutputDecoder({ protoVersion: 2 }).decode(streaming[0]).type, "streamStart");
  assert.equal(new PgoutputDecoder({ protoVersion: 1 }).decode(new Frame("B").u64(1n).u64(TS).u32(1).get()).type, "begin");
});

test("PgoutputDecoder rejects bad options with TypeError / RangeError", () => {
  assert.throws(() => new PgoutputDecoder({ protoVersion: 5 as 4 }), RangeError);
  assert.throws(() => new PgoutputDecoder({ types: {} as never }), TypeError);
  assert.throws(() => new PgoutputDecoder().decode("B" as unknown as Uint8Array), TypeError);
});

/** One valid frame of every type, in an order a fresh decoder accepts. */
function everyFrame(): Uint8Array[] {
  return [
    relationFrame(),
    new Frame("B").u64(1n).u64(TS).u32(1).get(),
    new Frame("C").u8(0).u64(1n).u64(2n).u64(TS).get(),
    new Frame("O").u64(1n).str("o").get(),
    new Frame("Y").u32(5).str("public").str("e").get(),
    new Frame("I").u32(16384).u8(0x4e).tuple([["t", "1"], "n", "u"]).get(),
    new Frame("U").u32(16384).u8(0x4b).tuple([["t", "1"], "n", "n"]).u8(0x4e).tuple([["t", "2"], ["b", [1]], "u"]).get(),
    new Frame("D").u32(16384).u8(0x4f).tuple([["t", "1"], "n", ["t", "x"]]).get(),
    new Frame("T").u32(1).u8(1).u32(16384).get(),
    new Frame("M").u8(1).u64(1n).str("p").u32(3).bytes([1, 2, 3]).get(),
    new Frame("S").u32(9).u8(1).get(),
    new Frame("I").u32(9).u32(16384).u8(0x4e).tuple([["t", "1"], "n", "n"]).get(),
    new Frame("E").get(),
    new Frame("c").u32(9).u8(0).u64(1n).u64(2n).u64(TS).get(),
    new Frame("A").u32(9).u32(9).u64(1n).u64(TS).get(),
    new Frame("b").u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
    new Frame("P").u8(0).u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
    new Frame("K").u8(0).u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
    new Frame("r").u8(0).u64(1n).u64(2n).u64(TS).u64(TS).u32(1).str("g").get(),
    new Frame("p").u8(0).u64(1n).u64(2n).u64(TS).u32(1).str("g").get(),
  ];
}

test("every truncation of every message type fails with ReplicationDecodeError naming the type and offset", () => {
  const frames = everyFrame();
  let checked = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    for (let cut = 0; cut < f.length; cut++) {
      // Replay the frames before this one so the decoder is in the state this frame expects.
      const d = new PgoutputDecoder();
      for (const prev of frames.slice(0, i)) d.decode(prev);
      const part = f.subarray(0, cut);
      // Stream Abort (A) is complete at 9 bytes (abort info is optional).
      if (f[0] === 0x41 && cut === 9) continue;
      assert.throws(() => d.decode(part), (e: unknown) => {
        assert.ok(e instanceof ReplicationDecodeError, `frame ${String.fromCharCode(f[0])} cut at ${cut}: ${e}`);
        assert.ok(e.offset >= 0 && e.offset <= cut, `offset ${e.offset} for cut ${cut}`);
        if (cut > 0) assert.match(e.message, new RegExp(`\\(${String.fromCharCode(f[0])}\\) message at offset ${e.offset}: `));
        return true;
      });
      checked++;
    }
    // And the whole frame decodes.
    const d = new PgoutputDecoder();
    for (const prev of frames.slice(0, i)) d.decode(prev);
    d.decode(f);
  }
  assert.ok(checked > 300);
});

test("decode() rejects trailing bytes, unknown types, unknown relations and inconsistent tuples", () => {
  const [d] = withRelation();
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /pgoutput message at offset 0: empty message/],
    [new Frame("Z").get(), /pgoutput message at offset 0: unknown message type 'Z' \(0x5a\)/],
    [new Uint8Array([0x01]), /unknown message type 0x01/],
    [new Frame("B").u64(1n).u64(TS).u32(1).u8(0).get(), /Begin \(B\) message at offset 21: 1 unexpected trailing bytes/],
    [new Frame("I").u32(4242).u8(0x4e).tuple([]).get(), /Insert \(I\) message at offset 1: relation 4242 is unknown/],
    [new Frame("I").u32(16384).u8(0x4f).tuple([]).get(), /Insert \(I\) message at offset 5: expected 'N' \(new tuple\), got 'O'/],
    [new Frame("I").u32(16384).u8(0x4e).tuple([["t", "1"]]).get(), /Insert \(I\) message at offset 6: tuple has 1 columns but relation public.t has 3/],
    [new Frame("I").u32(16384).u8(0x4e).tuple([["t", "1"], "n", "n"]).get().map((b, i) => (i === 14 ? 0x78 : b)), /Insert \(I\) message at offset 14: column v: unknown TupleData kind 'x'/],
    [new Frame("U").u32(16384).u8(0x58).get(), /Update \(U\) message at offset 5: expected 'K', 'O' or 'N', got 'X'/],
    [new Frame("U").u32(16384).u8(0x4b).tuple([["t", "1"], "n", "n"]).get(), /Update \(U\) message at offset 16: truncated/],
    [new Frame("D").u32(16384).u8(0x4e).tuple([["t", "1"], "n", "n"]).get(), /Delete \(D\) message at offset 5: expected 'K' or 'O', got 'N'/],
    [new Frame("R").u32(1).str("s").str("t").u8(0x71).u16(0).get(), /Relation \(R\) message at offset 9: unknown replica identity 113/],
    [new Frame("T").u32(0x7fffffff).u8(0).get(), /Truncate \(T\) message at offset 6: truncated: needs 8589934588 more bytes/],
    [new Frame("M").u8(0).u64(1n).str("p").u32(0xffffffff).get(), /Message \(M\) message at offset 16: truncated: needs 4294967295 more bytes, 0 left/],
    [new Frame("O").u64(1n).bytes([0x61, 0x62]).get(), /Origin \(O\) message at offset 9: truncated: string has no terminating NUL/],
    [new Frame("E").get(), /Stream Stop \(E\) message at offset 0: no stream is open/],
  ];
  for (const [frame, re] of cases) assert.throws(() => d.decode(frame), (e: unknown) => e instanceof ReplicationDecodeError && re.test(e.message), re.source);
  d.decode(new Frame("S").u32(1).u8(1).get());
  assert.throws(() => d.decode(new Frame("S").u32(2).u8(1).get()), /Stream Start \(S\) message at offset 0: stream of xid 1 is still open/);
});

test("decode(bytes, start, end) reads a message in place inside a larger buffer: same events, offsets relative to start", () => {
  const frames = everyFrame();
  const whole = new PgoutputDecoder();
  const inPlace = new PgoutputDecoder();
  for (const f of frames) {
    // As in an XLogData frame: a 25-byte header before, other bytes after.
    const buf = new Uint8Array(25 + f.length + 7).fill(0x77);
    buf.set(f, 25);
    assert.deepEqual(inPlace.decode(buf, 25, 25 + f.length), whole.decode(f));
  }
  const [d] = withRelation();
  const bad = new Frame("I").u32(16384).u8(0x4f).tuple([]).get();
  const buf = new Uint8Array(40);
  buf.set(bad, 25);
  assert.throws(() => d.decode(buf, 25, 25 + bad.length), /Insert \(I\) message at offset 5: expected 'N' \(new tuple\), got 'O'/);
  assert.throws(() => d.decode(buf, 25, 25), /pgoutput message at offset 0: empty message/);
  assert.throws(() => d.decode(buf, 30, 20), RangeError);
  assert.throws(() => d.decode(buf, 0, 41), RangeError);
  assert.throws(() => d.decode(buf, 1.5, 20), RangeError);
});

test("random corruption of valid frames never escapes as anything but ReplicationDecodeError", () => {
  const frames = everyFrame();
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  let errors = 0;
  for (let round = 0; round < 3000; round++) {
    const i = Math.floor(rand() * frames.length);
    const d = new PgoutputDecoder();
    for (const prev of frames.slice(0, i)) d.decode(prev);
    const f = frames[i].slice();
    const flips = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < flips; k++) f[Math.floor(rand() * f.length)] = Math.floor(rand() * 256);
    try {
      d.decode(f);
    } catch (e) {
      assert.ok(e instanceof ReplicationDecodeError, String(e));
      errors++;
    }
  }
  assert.ok(errors > 500, `only ${errors} of 3000 corrupted frames were rejected`);
});

test("a column named __proto__ becomes an own property, not the row's prototype", () => {
  const d = new PgoutputDecoder();
  d.decode(new Frame("R").u32(1).str("public").str("odd").u8(0x64).u16(2).u8(1).str("__proto__").u32(25).u32(0xffffffff).u8(0).str("x").u32(25).u32(0xffffffff).get());
  const ev = d.decode(new Frame("I").u32(1).u8(0x4e).tuple([["t", "p"], ["t", "q"]]).get());
  assert.ok(ev.type === "insert");
  assert.equal(Object.getPrototypeOf(ev.new), Object.prototype);
  assert.deepEqual(Object.keys(ev.new), ["__proto__", "x"]);
  assert.equal(Object.getOwnPropertyDescriptor(ev.new, "__proto__")?.value, "p");
});

test("a rejected message leaves the decoder's relation cache and stream state unchanged", () => {
  const [d, relation] = withRelation();
  const bad = new Frame("R").u32(16384).str("public").str("t").u8(0x66).u16(0).u8(0).get(); // trailing byte
  assert.throws(() => d.decode(bad), /Relation \(R\) message at offset \d+: 1 unexpected trailing bytes/);
  assert.equal(d.relations.get(16384), relation);
  assert.throws(() => d.decode(new Frame("Y").u32(5).str("public").str("e").u8(1).get()), ReplicationDecodeError);
  assert.equal(d.typeInfo.size, 0);
  assert.throws(() => d.decode(new Frame("S").u32(9).u8(1).u8(0).get()), ReplicationDecodeError);
  assert.equal(d.streamingXid, undefined);
  d.decode(new Frame("S").u32(9).u8(1).get());
  assert.throws(() => d.decode(new Frame("E").u8(0).get()), ReplicationDecodeError);
  assert.equal(d.streamingXid, 9);
});

test("decode() reads messages that are views into a larger buffer at any offset", () => {
  const frames = everyFrame();
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 3));
  let at = 3; // odd start: no alignment assumptions
  const views = frames.map((f) => {
    all.set(f, at);
    return all.subarray(at, at += f.length);
  });
  const a = new PgoutputDecoder();
  const b = new PgoutputDecoder();
  assert.deepEqual(views.map((v) => a.decode(v)), frames.map((f) => b.decode(f)));
});

test("rawValues.binary copies even a Node Buffer view, so values never alias the receive buffer", () => {
  const wire = Buffer.from([1, 2, 3, 4, 5]);
  const value = rawValues.binary(17, wire.subarray(1, 4)) as Uint8Array;
  wire.fill(0);
  assert.deepEqual([...value], [2, 3, 4]);
  assert.equal(Buffer.isBuffer(value), false);
});

test("pgValues reads integers, booleans and timestamps from the bytes exactly as decodeText reads their text", () => {
  const cases: [number, string[]][] = [
    [21, ["0", "7", "-1", "-0", "32767", "-32768", "007"]],
    [23, ["0", "42", "-2147483648", "2147483647", "+5", "", "1e3", " 1", "12a", "-", "123456789012345", "1234567890123456789"]],
    [26, ["0", "4294967295"]],
    [16, ["t", "f", "true", "false", "x"]],
    [1114, [
      "2025-01-12 13:46:40", "2025-01-12 13:46:40.5", "2000-02-29 23:59:59.999999", "2025-01-12 13:46:40.0123", "infinity",
      "-infinity", "0099-01-01 00:00:00", "0001-01-01 00:00:00 BC", "12345-01-01 00:00:00", "2025-01-12 13:46:40+02",
    ]],
    [1184, [
      "2025-01-12 13:46:40+00", "2025-01-12 13:46:40.123456+05:30", "1970-01-01 00:00:00-08", "2025-01-12 13:46:40.5-03:30",
      "1901-12-13 20:45:52+00:09:21", "infinity", "-infinity", "0500-06-30 12:00:00+00", "0050-06-30 12:00:00+00",
      "2025-01-12 13:46:40.1234567+00", "2025-01-12 13:46:40 +00",
    ]],
  ];
  const plain = { text: pgValues.text, binary: pgValues.binary };
  for (const [oid, values] of cases) {
    assert.equal(typeof pgValues.textBytes?.(oid), "function", `pgValues has a byte parser for type ${oid}`);
    const relation = new Frame("R").u32(1).str("public").str("x").u8(0x64).u16(1).u8(1).str("v").u32(oid).u32(0xffffffff).get();
    const fast = new PgoutputDecoder({ types: pgValues });
    const slow = new PgoutputDecoder({ types: plain });
    fast.decode(relation);
    slow.decode(relation);
    for (const v of values) {
      const insert = new Frame("I").u32(1).u8(0x4e).tuple([["t", v]]).get();
      let want: unknown;
      try {
        want = slow.decode(insert);
      } catch (e) {
        assert.throws(() => fast.decode(insert), (e as Error).constructor as typeof Error, `type ${oid}, ${JSON.stringify(v)}`);
        continue;
      }
      assert.deepEqual(fast.decode(insert), want, `type ${oid}, ${JSON.stringify(v)}`);
    }
  }
});

test("a value decoder's textBytes parser reads text columns from the bytes; binary columns still go to binary()", () => {
  const asked: number[] = [];
  const [d] = withRelation({
    types: {
      text: (_oid, text) => `text:${text}`,
      binary: (_oid, bytes) => bytes.length,
      textBytes: (oid) => {
        asked.push(oid);
        return oid === 23 ? (b, start, end) => `bytes:${end - start}:${b[start]}` : undefined;
      },
    },
  });
  assert.deepEqual(asked, [23, 25, 25], "asked once per column, when the Relation arrives");
  const ev = d.decode(new Frame("I").u32(16384).u8(0x4e).tuple([["t", "42"], ["t", "abc"], ["b", [1, 2]]]).get());
  assert.deepEqual(ev.type === "insert" && ev.new, { id: "bytes:2:52", v: "text:abc", big: 2 });
  const bin = d.decode(new Frame("I").u32(16384).u8(0x4e).tuple([["b", [0, 0, 0, 1]], "n", "u"]).get());
  assert.deepEqual(bin.type === "insert" && bin.new, { id: 4, v: null, big: UNCHANGED_TOAST });
  assert.deepEqual(asked, [23, 25, 25], "not asked again per row");
  assert.throws(() => new PgoutputDecoder({ types: { ...rawValues, textBytes: 1 as never } }), TypeError);
});

test("decodeUtf8() gives TextDecoder's string for every length 0-40, ASCII or not, at any offset", () => {
  const te = new TextEncoder();
  const td = new TextDecoder();
  for (let len = 0; len <= 40; len++) {
    const ascii = Array.from({ length: len }, (_, i) => String.fromCharCode(0x20 + ((i * 7 + len) % 95))).join("");
    // The same length with a two-byte character at the start, the middle or the end.
    const texts = [ascii, ...(len >= 2 ? [0, len >> 1, len - 2].map((at) => ascii.slice(0, at) + "é" + ascii.slice(at + 2)) : [])];
    for (const text of texts) {
      const bytes = te.encode(text);
      for (const pad of [0, 5]) {
        const buf = new Uint8Array(bytes.length + 2 * pad).fill(0x41);
        buf.set(bytes, pad);
        const got = decodeUtf8(buf, pad, pad + bytes.length);
        assert.equal(got, td.decode(bytes), `length ${bytes.length}, offset ${pad}`);
      }
    }
  }
});
