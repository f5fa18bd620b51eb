// I/O-free parts of the physical receiver and base backup: segment names, the tar reader and
// writer, the BASE_BACKUP command, the recovery configuration, and where an archive resumes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkSegmentSize, historyFileName, parseSegmentFileName, parseSizeSetting, segmentName, segmentNameOf } from "../replication/_wal_segment.ts";
import { TAR_END, type TarEntry, TarError, tarHeader, tarPadding, TarReader } from "../replication/_tar.ts";
import { baseBackupCommand, recoveryConfLines } from "../replication/base_backup.ts";
import { findStreamingStart, WalReceiver } from "../replication/wal_receiver.ts";

const MB16 = 16 << 20;

test("segmentName() follows XLogFileName for 16 MiB and 1 GiB segments", () => {
  assert.equal(segmentName(1, 0n, MB16), "000000010000000000000000");
  assert.equal(segmentName(1, 0x1ffn, MB16), "0000000100000001000000FF");
  assert.equal(segmentNameOf(3, 0x2_0A00_0028n, MB16), "00000003000000020000000A");
  // 1 GiB segments: four per 4 GiB.
  assert.equal(segmentNameOf(1, 0x1_C000_0000n, 1 << 30), "000000010000000100000003");
  assert.equal(historyFileName(0x1a), "0000001A.history");
});

test("parseSegmentFileName() reads complete, partial and gzip names and rejects others", () => {
  assert.deepEqual(parseSegmentFileName("0000000100000001000000FF", MB16), { tli: 1, segno: 0x1ffn, partial: false, compression: "" });
  assert.deepEqual(parseSegmentFileName("000000020000000000000003.partial", MB16), { tli: 2, segno: 3n, partial: true, compression: "" });
  assert.deepEqual(parseSegmentFileName("000000020000000000000003.gz", MB16), { tli: 2, segno: 3n, partial: false, compression: ".gz" });
  assert.equal(parseSegmentFileName("00000002.history", MB16), undefined);
  assert.equal(parseSegmentFileName("000000010000000000000100", MB16), undefined, "low part beyond 0xFF for 16 MiB");
  assert.equal(parseSegmentFileName("000000010000000000000003.tmp", MB16), undefined);
});

test("parseSizeSetting() and checkSegmentSize() read SHOW output and refuse odd sizes", () => {
  assert.equal(parseSizeSetting("16MB"), MB16);
  assert.equal(parseSizeSetting("1GB"), 1 << 30);
  assert.equal(parseSizeSetting("8192kB"), 8 << 20);
  assert.throws(() => parseSizeSetting("16 parsecs"), RangeError);
  assert.throws(() => checkSegmentSize(3 << 20), RangeError);
  assert.throws(() => checkSegmentSize(1 << 19), RangeError);
});

function collect(chunks: Uint8Array[]) {
  const out: { e: TarEntry; data: number[] }[] = [];
  const r = new TarReader({
    entry: (e) => out.push({ e, data: [] }),
    data: (b) => out[out.length - 1].data.push(...b),
    endEntry: () => {},
  });
  for (const c of chunks) r.push(c);
  r.finish();
  return { out, r };
}

function archive(): Uint8Array {
  const parts: Uint8Array[] = [];
  const file = (name: string, content: Uint8Array) => {
    parts.push(tarHeader({ type: "file", name, mode: 0o600, size: content.length, mtime: 1_700_000_000 }), content, tarPadding(content.length));
  };
  parts.push(tarHeader({ type: "directory", name: "base", mode: 0o700, size: 0, mtime: 1 }));
  file("base/1/1259", Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff));
  file("PG_VERSION", new TextEncoder().encode("15\n"));
  file("empty", new Uint8Array(0));
  parts.push(tarHeader({ type: "symlink", name: "pg_tblspc/16384", mode: 0o777, size: 0, mtime: 1, linkname: "/srv/ts1" }));
  // A name over 100 bytes goes into the ustar prefix.
  file(`${"d".repeat(80)}/${"f".repeat(60)}`, new Uint8Array([7]));
  parts.push(TAR_END);
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

test("TarReader reads what tarHeader() writes, split at every offset", () => {
  const a = archive();
  const whole = collect([a]);
  assert.deepEqual(whole.out.map((x) => [x.e.type, x.e.name, x.e.size]), [
    ["directory", "base", 0],
    ["file", "base/1/1259", 1000],
    ["file", "PG_VERSION", 3],
    ["file", "empty", 0],
    ["symlink", "pg_tblspc/16384", 0],
    ["file", `${"d".repeat(80)}/${"f".repeat(60)}`, 1],
  ]);
  assert.equal(whole.out[4].e.linkname, "/srv/ts1");
  assert.equal(whole.out[1].e.mode, 0o600);
  assert.equal(whole.out[1].data[999], 999 & 0xff);
  assert.equal(whole.r.endOffset, a.length - 1024);
  for (let cut = 1; cut < a.length; cut += 37) {
    const split = collect([a.subarray(0, cut), a.subarray(cut)]);
    assert.deepEqual(split.out, whole.out, `split at ${cut}`);
  }
});

test("TarReader takes pax paths and sizes, GNU long names and base-256 sizes", () => {
  const enc = new TextEncoder();
  const long = "x/".repeat(120) + "file";
  const rec = (k: string, v: string) => {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return `${len}${body}`;
  };
  const pax = enc.encode(rec("path", long));
  const gnu = enc.encode("gnu/" + "y".repeat(150) + "\0");
  const hdrPax = tarHeader({ type: "file", name: "PaxHeader", mode: 0o644, size: pax.length, mtime: 0 });
  hdrPax[156] = 0x78; // x
  const fixSum = (h: Uint8Array) => {
    h.fill(0x20, 148, 156);
    let s = 0;
    for (const b of h) s += b;
    h.set(enc.encode(s.toString(8).padStart(6, "0") + "\0 "), 148);
    return h;
  };
  fixSum(hdrPax);
  const hdrGnu = fixSum((() => {
    const h = tarHeader({ type: "file", name: "././@LongLink", mode: 0o644, size: gnu.length, mtime: 0 });
    h[156] = 0x4c; // L
    return h;
  })());
  const big = tarHeader({ type: "file", name: "big", mode: 0o600, size: 3, mtime: 0 });
  big.fill(0, 124, 136);
  big[124] = 0x80; // base-256 size 3
  big[135] = 3;
  fixSum(big);
  const parts = [
    hdrPax, pax, tarPadding(pax.length), tarHeader({ type: "file", name: "short", mode: 0o600, size: 1, mtime: 0 }), new Uint8Array([1]), tarPadding(1),
    hdrGnu, gnu, tarPadding(gnu.length), tarHeader({ type: "file", name: "short2", mode: 0o600, size: 0, mtime: 0 }),
    big, new Uint8Array([1, 2, 3]), tarPadding(3), TAR_END,
  ];
  const a = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    a.set(p, o);
    o += p.length;
  }
  const { out } = collect([a]);
  assert.deepEqual(out.map((x) => [x.e.name, x.e.size]), [[long, 1], ["gnu/" + "y".repeat(150), 0], ["big", 3]]);
  assert.deepEqual(out[2].data, [1, 2, 3]);
});

test("TarReader rejects a bad checksum, hard links and an archive cut short", () => {
  const a = archive();
  const bad = a.slice();
  bad[0] ^= 1;
  assert.throws(() => collect([bad]), TarError);
  const link = tarHeader({ type: "file", name: "h", mode: 0o600, size: 0, mtime: 0 });
  link[156] = 0x31; // '1' hard link
  link.fill(0x20, 148, 156);
  let s = 0;
  for (const b of link) s += b;
  link.set(new TextEncoder().encode(s.toString(8).padStart(6, "0") + "\0 "), 148);
  assert.throws(() => collect([link]), /type '1'/);
  assert.throws(() => collect([a.subarray(0, 700)]), /cut short/);
});

test("baseBackupCommand() builds the PostgreSQL 15+ options and checks them", () => {
  assert.equal(
    baseBackupCommand({ label: "it's", checkpoint: "fast", wal: "fetch", maxRate: 32, progress: true }),
    "BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'fast', WAL, WAIT, MAX_RATE 32, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')",
  );
  assert.equal(baseBackupCommand({ manifest: false }), "BASE_BACKUP (LABEL 'pg-rdma base backup', WAIT, MANIFEST 'no')");
  assert.throws(() => baseBackupCommand({ maxRate: 31 }), RangeError);
  assert.throws(() => baseBackupCommand({ checkpoint: "slow" as "fast" }), TypeError);
  assert.throws(() => baseBackupCommand({ manifestChecksums: "MD5" as "NONE" }), TypeError);
});

test("recoveryConfLines() quotes primary_conninfo and adds with_rsocket and the slot", () => {
  const s = recoveryConfLines({ host: "10.0.0.2", port: "5432", user: "repl", password: "it's a \\pw", dbname: "x" }, { slot: "s1", withRsocket: true });
  assert.match(s, /^primary_conninfo = 'user=repl password=''it\\\\''s a \\\\\\\\pw'' host=10\.0\.0\.2 port=5432 with_rsocket=true'$/m);
  assert.match(s, /^primary_slot_name = 's1'$/m);
  assert.doesNotMatch(s, /dbname/);
});

test("findStreamingStart() resumes after the last complete segment or at a .partial's start", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-wal-"));
  assert.equal(findStreamingStart(dir, MB16), undefined);
  writeFileSync(join(dir, "000000010000000000000003"), "");
  writeFileSync(join(dir, "00000002.history"), "");
  assert.deepEqual(findStreamingStart(dir, MB16), { lsn: 4n * BigInt(MB16), timeline: 1 });
  writeFileSync(join(dir, "000000010000000000000004.partial"), "");
  assert.deepEqual(findStreamingStart(dir, MB16), { lsn: 4n * BigInt(MB16), timeline: 1 });
  writeFileSync(join(dir, "000000020000000000000004.gz"), "");
  assert.deepEqual(findStreamingStart(dir, MB16), { lsn: 5n * BigInt(MB16), timeline: 2 });
});

test("WalReceiver refuses bad options with TypeError/RangeError", () => {
  const base = { connection: "host=/nowhere", directory: "/tmp/x" };
  assert.throws(() => new WalReceiver({ ...base, directory: "" }), TypeError);
  assert.throws(() => new WalReceiver({ ...base, endpos: 5 as unknown as bigint }), TypeError);
  assert.throws(() => new WalReceiver({ ...base, compression: "brotli" as "gzip" }), /compression must be "none", "gzip", "lz4", "zstd"/);
  assert.doesNotThrow(() => new WalReceiver({ ...base, compression: { method: "zstd", level: 3 } }));
  assert.throws(() => new WalReceiver({ ...base, compression: { method: "gzip", level: 12 } }), RangeError);
  assert.throws(() => new WalReceiver({ ...base, statusInterval: -1 }), RangeError);
  assert.throws(() => new WalReceiver({ ...base, slot: "a", createTempSlot: true }), TypeError);
});
