// compress/: round trips, the zstd and lz4 command-line tools as oracles both ways, corrupt and
// truncated input, and the pg_dump/pg_receivewal spelling of --compress.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkCompression,
  compress,
  compressionOfFileName,
  CompressionError,
  compressStream,
  decompress,
  decompressStream,
  detectCompression,
  parseCompression,
  xxh32,
  Xxh32,
} from "../compress/mod.ts";
import { moduleCommand } from "./_fixture/runtime.ts";

const enc = new TextEncoder();
const hasTool = (name: string) => spawnSync(name, ["--version"]).status === 0;
const noZstd = hasTool("zstd") ? undefined : "the zstd command is not installed (apt-get install zstd)";
const noLz4 = hasTool("lz4") ? undefined : "the lz4 command is not installed (apt-get install lz4)";

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
function random(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Compressible bytes with structure, like WAL or COPY text: repeated records with counters. */
function compressible(n: number): Uint8Array {
  const b = new Uint8Array(n);
  let o = 0, i = 0;
  while (o < n) {
    const rec = enc.encode(`${i}\torder-${i % 977}\t${(i * 7919) % 100000}\tsome text that repeats\t\\N\n`);
    b.set(rec.subarray(0, n - o), o);
    o += rec.length;
    i++;
  }
  return b;
}

/** Splits bytes into chunks of varying sizes (1 byte up to `max`). */
function* split(b: Uint8Array, max: number): Generator<Uint8Array> {
  let o = 0, k = 7;
  while (o < b.length) {
    k = (k * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (k % max);
    yield b.subarray(o, o + n);
    o += n;
  }
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c.slice());
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Runs `cmd args < input > output` through files (a pipe both ways can deadlock in spawnSync). */
function tool(cmd: string, args: string[], input: Uint8Array): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-compress-"));
  try {
    writeFileSync(join(dir, "in"), input);
    const r = spawnSync("sh", ["-c", `"$0" "$@" < in > out`, cmd, ...args], { cwd: dir });
    assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed: ${r.stderr}`);
    return new Uint8Array(readFileSync(join(dir, "out")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const SIZES = [0, 1, 100, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12345];

test("xxh32() matches the reference values and is the same fed in pieces", () => {
  assert.equal(xxh32(new Uint8Array(0)), 0x02cc5d05);
  assert.equal(xxh32(enc.encode("abc")), 0x32d153ff);
  assert.equal(xxh32(enc.encode("Nobody inspects the spammish repetition")), 0xe2293b2f);
  const data = random(100_003);
  const whole = xxh32(data);
  const h = new Xxh32();
  for (const c of split(data, 37)) h.update(c);
  assert.equal(h.digest(), whole);
});

for (const method of ["lz4", "zstd", "gzip"] as const) {
  test(`compress()/decompress() round-trip random and compressible data of every size around the 1 MiB piece (${method})`, async () => {
    for (const n of SIZES) {
      for (const data of [random(n, n + 1), compressible(n)]) {
        const packed = await compress(data, method);
        assert.equal(detectCompression(packed), method);
        assert.deepEqual(await decompress(packed), data, `${method}, ${n} bytes`);
        assert.deepEqual(await decompress(packed, method), data);
      }
    }
  });

  test(`compressStream()/decompressStream() give the same bytes for any chunking (${method})`, async () => {
    const data = compressible(2_500_000);
    const packed = await collect(compressStream(split(data, 300_000), method, method === "lz4" ? 0 : 5));
    assert.ok(packed.length < data.length / 3, `${method} compresses text (${packed.length} of ${data.length})`);
    assert.deepEqual(await collect(decompressStream(split(packed, 5000))), data);
    assert.deepEqual(await collect(decompressStream(split(packed, 64), method)), data);
  });
}

test("zstd levels change the output and all decode to the input", async () => {
  // Words drawn at random from a small vocabulary: higher levels find more.
  const words = ["alpha", "beta", "gamma", "delta", "insert", "update", "order", "customer", "\t", "\n", "42", "2024-01-01"];
  const r = random(300_000, 11);
  const data = enc.encode(Array.from(r, (x) => words[x % words.length]).join(" "));
  const fast = await compress(data, "zstd", 1);
  const strong = await compress(data, "zstd", 19);
  assert.ok(strong.length < fast.length, `level 19 (${strong.length}) smaller than level 1 (${fast.length})`);
  assert.deepEqual(await decompress(strong), data);
});

test("our zstd output is decoded byte-identically by the zstd command, and ours reads the zstd command's", { skip: noZstd }, async () => {
  for (const data of [compressible(3_000_000), random(1_500_000, 9), new Uint8Array(0)]) {
    const ours = await compress(data, "zstd", 3);
    assert.deepEqual(tool("zstd", ["-d", "-c", "-q"], ours), data);
    // Theirs: a file (content size in the header), a pipe (no content size), a high level,
    // no checksum, and two frames written one after the other.
    const theirs = [
      tool("zstd", ["-c", "-q", "-3"], data),
      tool("zstd", ["-c", "-q", "-12", "--no-check"], data),
      tool("sh", ["-c", "cat | zstd -c -q"], data),
    ];
    for (const t of theirs) {
      assert.equal(detectCompression(t), "zstd");
      assert.deepEqual(await decompress(t), data);
      assert.deepEqual(await collect(decompressStream(split(t, 4096), "zstd")), data);
    }
    const two = new Uint8Array(theirs[0].length * 2);
    two.set(theirs[0]);
    two.set(theirs[0], theirs[0].length);
    const both = new Uint8Array(data.length * 2);
    both.set(data);
    both.set(data, data.length);
    assert.deepEqual(await decompress(two), both);
  }
});

test("our lz4 output is decoded byte-identically by the lz4 command, and ours reads every lz4 frame option", { skip: noLz4 }, async () => {
  for (const data of [compressible(5_000_000), random(1_500_000, 5), new Uint8Array(0)]) {
    const ours = await compress(data, "lz4");
    assert.deepEqual(tool("lz4", ["-d", "-c", "-q"], ours), data);
    // Default (4 MiB independent blocks, content checksum), 64 KiB blocks with block checksums,
    // content size in the header, linked blocks, HC level 9, no checksum at all.
    const variants = [[], ["-B4", "-BX"], ["--content-size"], ["-BD"], ["-9"], ["--no-frame-crc"]];
    for (const v of variants) {
      const t = tool("lz4", ["-c", "-q", ...v], data);
      assert.deepEqual(await decompress(t), data, `lz4 ${v.join(" ")}`);
      assert.deepEqual(await collect(decompressStream(split(t, 7777), "lz4")), data, `lz4 ${v.join(" ")} in pieces`);
    }
  }
  // Two frames one after the other decode as one stream, as `lz4 -d` does.
  const a = compressible(300_000), b = random(200_000, 3);
  const cat = new Uint8Array([...await compress(a, "lz4"), ...tool("lz4", ["-c", "-q"], b)]);
  assert.deepEqual(await decompress(cat), new Uint8Array([...a, ...b]));
  assert.deepEqual(tool("lz4", ["-d", "-c", "-q"], cat), new Uint8Array([...a, ...b]));
});

test("corrupt, truncated and foreign input give a CompressionError naming the method", async () => {
  const data = compressible(2_000_000);
  for (const method of ["lz4", "zstd"] as const) {
    const packed = await compress(data, method);
    await assert.rejects(decompress(packed.subarray(0, packed.length - 10), method), (e: Error) => e instanceof CompressionError && /truncated/.test(e.message) && e.message.startsWith(method));
    const bad = packed.slice();
    bad[4] ^= method === "lz4" ? 0x02 : 0x08; // a reserved bit of the frame descriptor
    await assert.rejects(decompress(bad, method), (e: Error) => e instanceof CompressionError && /reserved/.test(e.message));
    // Garbage after a complete stream is reported, not silently dropped.
    await assert.rejects(decompress(new Uint8Array([...packed, 1, 2, 3, 4, 5]), method), /after the last frame/);
    await assert.rejects(decompress(enc.encode("plain text, not compressed"), method), (e: Error) => e instanceof CompressionError && /magic/.test(e.message));
    await assert.rejects(decompress(new Uint8Array(0), method), CompressionError);
  }
  // The LZ4 content checksum catches a changed byte, whether or not the block still decodes.
  const lz = await compress(data, "lz4");
  for (const at of [20, 5000, Math.floor(lz.length / 2)]) {
    const b = lz.slice();
    b[at] ^= 0x21;
    await assert.rejects(decompress(b), /lz4: (content checksum mismatch|corrupt block|block of)/);
  }
  // Unknown data passes through when the method is detected (nothing to decompress).
  assert.deepEqual(await decompress(enc.encode("plain")), enc.encode("plain"));
});

test("parseCompression() reads pg_dump's and pg_receivewal's --compress spellings", () => {
  assert.deepEqual(parseCompression("none"), { method: "none" });
  assert.deepEqual(parseCompression("0"), { method: "none" });
  assert.deepEqual(parseCompression("5"), { method: "gzip", level: 5 });
  assert.deepEqual(parseCompression("gzip"), { method: "gzip" });
  assert.deepEqual(parseCompression("gzip:9"), { method: "gzip", level: 9 });
  assert.deepEqual(parseCompression("zstd"), { method: "zstd" });
  assert.deepEqual(parseCompression("zstd:level=19"), { method: "zstd", level: 19 });
  assert.deepEqual(parseCompression("ZSTD:7"), { method: "zstd", level: 7 });
  assert.deepEqual(parseCompression("lz4"), { method: "lz4" });
  assert.deepEqual(parseCompression("lz4:1"), { method: "lz4", level: 1 });
  assert.throws(() => parseCompression("zstd:23"), /zstd compression level must be an integer 1-22, got 23/);
  assert.throws(() => parseCompression("zstd:0"), /zstd compression level must be an integer 1-22, got 0/);
  assert.throws(() => parseCompression("gzip:10"), /gzip compression level must be an integer 1-9, got 10/);
  assert.throws(() => parseCompression("lz4:9"), /lz4 compression level must be an integer 0-1, got 9 \(levels above 1 are LZ4 HC/);
  assert.throws(() => parseCompression("12"), RangeError);
  assert.throws(() => parseCompression("brotli"), /invalid compression method "brotli"/);
  assert.throws(() => parseCompression("zstd:workers=4"), /only a level is supported.*"workers" is not supported/);
  assert.throws(() => parseCompression("zstd:level=x"), /invalid compression detail "level=x"/);
  assert.throws(() => parseCompression("none:3"), /takes no level/);
  assert.throws(() => parseCompression(""), RangeError);
});

test("checkCompression() fills in default levels and names bad arguments", () => {
  assert.deepEqual(checkCompression("zstd"), { method: "zstd", level: 3 });
  assert.deepEqual(checkCompression("lz4"), { method: "lz4", level: 0 });
  assert.deepEqual(checkCompression("gzip"), { method: "gzip", level: 6 });
  assert.deepEqual(checkCompression(undefined), { method: "none" });
  assert.throws(() => checkCompression("zstd", 2.5), /integer 1-22, got 2.5/);
  assert.throws(() => checkCompression("xz"), /unknown compression method "xz"/);
  assert.equal(compressionOfFileName("000000010000000000000003.zst"), "zstd");
  assert.equal(compressionOfFileName("000000010000000000000003.lz4.partial"), "lz4");
  assert.equal(compressionOfFileName("3.dat.gz"), "gzip");
  assert.equal(compressionOfFileName("3.dat"), "none");
});

test("a compressed file written by the zstd and lz4 tools to disk round-trips through our decoder", { skip: noZstd ?? noLz4 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-compress-"));
  try {
    const data = compressible(16 * 1024 * 1024);
    writeFileSync(join(dir, "seg"), data);
    assert.equal(spawnSync("zstd", ["-q", "-k", join(dir, "seg")]).status, 0);
    assert.equal(spawnSync("lz4", ["-q", "-k", join(dir, "seg"), join(dir, "seg.lz4")]).status, 0);
    assert.deepEqual(await decompress(readFileSync(join(dir, "seg.zst"))), data);
    assert.deepEqual(await decompress(readFileSync(join(dir, "seg.lz4"))), data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("importing pg-rdma loads neither lz4-napi nor the zstd WebAssembly until that method is asked for", () => {
  const [cmd, args] = moduleCommand("./_compress_lazy.ts", import.meta.url);
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const [atImport, afterLz4, afterZstd] = JSON.parse(r.stdout.trim().split("\n").pop()!) as number[];
  assert.equal(atImport, 0, "nothing loaded by the import");
  assert.ok(afterLz4 > 0, "lz4-napi loaded by the first lz4 call");
  assert.ok(afterZstd > afterLz4, "the zstd package loaded by the first zstd call");
});
