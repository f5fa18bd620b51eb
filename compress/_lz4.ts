// LZ4 frame format (lz4 v1.6.0+ "LZ4 Frame Format Description") written and read here, with
// the block compressor of lz4-napi (Rust lz4_flex, prebuilt per platform on npm).
//
// We write ONE frame per stream: independent blocks of at most 1 MiB (BD = 6), no block
// checksums, a content checksum (XXH32) at the end, so `lz4 -d` verifies it. Memory stays
// bounded by one block whatever the stream's length.
//
// We read any standard frame stream: concatenated frames, skippable frames, block sizes 64 KiB
// to 4 MiB, uncompressed blocks, block and content checksums, content size. Independent blocks
// are decoded one by one (bounded memory); linked blocks (`lz4 -BD`) need the whole frame, which
// lz4-napi's frame decoder then decodes at once. Dictionaries (DictID) are refused.
//
// lz4-napi's block functions use lz4_flex's "size prepended" layout: a 4-byte little-endian
// uncompressed size, then the raw block. For decoding, that size is the output capacity (the
// block may decode to less), so the frame's own 4-byte block-size field in our input window is
// overwritten with the frame's block maximum and the block is decoded in place, without a copy.
import { Buffer } from "node:buffer";
import { ChunkStager, type Codec, FrameStreamDecoder } from "./_codec.ts";
import { Xxh32, xxh32 } from "./_xxh32.ts";

type Lz4Napi = typeof import("lz4-napi");

const MAGIC = 0x184d2204;
const FLG_VERSION = 0x40, FLG_INDEP = 0x20, FLG_BLOCK_SUM = 0x10, FLG_SIZE = 0x08, FLG_CONTENT_SUM = 0x04, FLG_DICT = 0x01;
const BD_1MIB = 6 << 4;
const UNCOMPRESSED = 0x80000000;

let lib: Lz4Napi | undefined;

/** Loads lz4-napi (once, on first use: users who never ask for lz4 never load it). */
export async function loadLz4(): Promise<Lz4Napi> {
  if (lib) return lib;
  try {
    const m = await import("lz4-napi") as Lz4Napi & { default?: Lz4Napi };
    lib = typeof m.compressSync === "function" ? m : m.default!;
  } catch (e) {
    throw new Error(`lz4 compression needs the npm package lz4-napi (and its prebuilt binary for this platform): ${(e as Error).message}`, { cause: e });
  }
  return lib;
}

const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

function frameHeader(): Uint8Array {
  const h = new Uint8Array(7);
  h.set([0x04, 0x22, 0x4d, 0x18, FLG_VERSION | FLG_INDEP | FLG_CONTENT_SUM, BD_1MIB]);
  h[6] = (xxh32(h.subarray(4, 6)) >>> 8) & 0xff;
  return h;
}

function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

/** LZ4 frame encoder (fast mode; lz4-napi has no HC levels). */
export class Lz4Encoder implements Codec {
  #lz4: Lz4Napi;
  #stager = new ChunkStager();
  #sum = new Xxh32();
  #started = false;

  constructor(lz4: Lz4Napi) {
    this.#lz4 = lz4;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (!this.#started) {
      this.#started = true;
      out.push(frameHeader());
    }
    this.#stager.feed(chunk, (piece) => this.#block(piece, out));
    return out;
  }

  #block(data: Uint8Array, out: Uint8Array[]): void {
    this.#sum.update(data);
    const c = this.#lz4.compressSync(asBuffer(data));
    if (c.length < 4 || c.readUInt32LE(0) !== data.length) {
      throw new Error("lz4-napi returned a block in an unexpected layout (expected a 4-byte size prefix)");
    }
    if (c.length - 4 < data.length) {
      // The block size field sits in the 4 bytes lz4-napi used for the size: one output chunk.
      c.writeUInt32LE(c.length - 4, 0);
      out.push(new Uint8Array(c.buffer, c.byteOffset, c.length));
    } else {
      out.push(le32((data.length | UNCOMPRESSED) >>> 0), data.slice());
    }
  }

  end(): Uint8Array[] {
    const out = this.push(new Uint8Array(0));
    const rest = this.#stager.takeRest();
    if (rest.length) this.#block(rest, out);
    const tail = new Uint8Array(8);
    const dv = new DataView(tail.buffer);
    dv.setUint32(0, 0, true); // EndMark
    dv.setUint32(4, this.#sum.digest(), true);
    out.push(tail);
    return out;
  }
}

interface Frame {
  flg: number;
  blockMax: number;
  /** Content size from the header, if given. */
  size: bigint | undefined;
  produced: bigint;
  sum: Xxh32 | undefined;
  /** Linked blocks: offset of the next block header not yet scanned. */
  scan: number;
}

const BLOCK_MAX = [0, 0, 0, 0, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024];

/** LZ4 frame decoder (see the module comment for what it reads). */
export class Lz4Decoder extends FrameStreamDecoder {
  #lz4: Lz4Napi;
  /** The frame being read, once its header is. */
  #frame: Frame | undefined;

  constructor(lz4: Lz4Napi) {
    super("lz4", MAGIC, "an LZ4 frame", "LZ4 frame data");
    this.#lz4 = lz4;
  }

  protected get inFrame(): boolean {
    return this.#frame !== undefined;
  }

  /** Decodes what it can; false when it needs more input. */
  protected step(out: Uint8Array[]): boolean {
    const q = this.q;
    if (!this.#frame) {
      const start = this.frameStart();
      if (start !== "frame") return start;
      if (q.length < 7) return false;
      const flg = q.u8(4), bd = q.u8(5);
      if ((flg & 0xc0) !== FLG_VERSION) this.fail(`unsupported frame version ${(flg >> 6) & 3}`);
      if (flg & FLG_DICT) this.fail("frames with a dictionary are not supported");
      if ((flg & 0x02) || (bd & 0x8f)) this.fail("reserved bits set in the frame descriptor");
      const blockMax = BLOCK_MAX[(bd >> 4) & 7];
      if (!blockMax) this.fail(`invalid block maximum size code ${(bd >> 4) & 7}`);
      const headerLen = 7 + (flg & FLG_SIZE ? 8 : 0);
      if (q.length < headerLen) return false;
      if (((xxh32(q.view(4, headerLen - 5)) >>> 8) & 0xff) !== q.u8(headerLen - 1)) this.fail("frame header checksum mismatch");
      const size = flg & FLG_SIZE ? BigInt(q.u32(6)) | (BigInt(q.u32(10)) << 32n) : undefined;
      this.#frame = { flg, blockMax, size, produced: 0n, sum: flg & FLG_CONTENT_SUM ? new Xxh32() : undefined, scan: headerLen };
      this.sawFrame();
      if (flg & FLG_INDEP) q.consume(headerLen);
      return true;
    }
    const f = this.#frame;
    return f.flg & FLG_INDEP ? this.#independent(f, out) : this.#linked(f, out);
  }

  #independent(f: Frame, out: Uint8Array[]): boolean {
    const q = this.q;
    if (q.length < 4) return false;
    const word = q.u32(0);
    if (word === 0) {
      const need = 4 + (f.sum ? 4 : 0);
      if (q.length < need) return false;
      if (f.sum && f.sum.digest() !== q.u32(4)) this.fail("content checksum mismatch");
      if (f.size !== undefined && f.size !== f.produced) this.fail(`frame content size says ${f.size} bytes, the blocks hold ${f.produced}`);
      q.consume(need);
      this.#frame = undefined;
      return true;
    }
    const n = word & 0x7fffffff;
    if (n > f.blockMax) this.fail(`block of ${n} bytes exceeds the frame's block maximum ${f.blockMax}`);
    const bsum = f.flg & FLG_BLOCK_SUM ? 4 : 0;
    if (q.length < 4 + n + bsum) return false;
    const data = q.view(4, n);
    if (bsum && xxh32(data) !== q.u32(4 + n)) this.fail("block checksum mismatch");
    let plain: Uint8Array;
    if (word & UNCOMPRESSED) plain = data.slice();
    else {
      // Decode in place: the size field becomes lz4_flex's output capacity (see the module comment).
      const at = q.view(0, 4 + n);
      new DataView(at.buffer, at.byteOffset, 4).setUint32(0, f.blockMax, true);
      try {
        const d = this.#lz4.uncompressSync(asBuffer(at));
        plain = new Uint8Array(d.buffer, d.byteOffset, d.length);
      } catch (e) {
        this.fail(`corrupt block: ${(e as Error).message}`, e);
      }
    }
    f.sum?.update(plain);
    f.produced += BigInt(plain.length);
    if (plain.length) out.push(plain);
    q.consume(4 + n + bsum);
    return true;
  }

  /** Linked blocks: find the end of the frame, then decode the whole frame at once. */
  #linked(f: Frame, out: Uint8Array[]): boolean {
    const q = this.q;
    for (;;) {
      if (q.length < f.scan + 4) return false;
      const word = q.u32(f.scan);
      if (word === 0) {
        const end = f.scan + 4 + (f.sum ? 4 : 0);
        if (q.length < end) return false;
        let d: Uint8Array;
        try {
          d = this.#lz4.decompressFrameSync(asBuffer(q.view(0, end)));
        } catch (e) {
          this.fail(`corrupt frame: ${(e as Error).message}`, e);
        }
        if (f.size !== undefined && f.size !== BigInt(d.length)) this.fail(`frame content size says ${f.size} bytes, the blocks hold ${d.length}`);
        if (d.length) out.push(new Uint8Array(d.buffer, d.byteOffset, d.length));
        q.consume(end);
        this.#frame = undefined;
        return true;
      }
      const n = word & 0x7fffffff;
      if (n > f.blockMax) this.fail(`block of ${n} bytes exceeds the frame's block maximum ${f.blockMax}`);
      f.scan += 4 + n + (f.flg & FLG_BLOCK_SUM ? 4 : 0);
    }
  }
}
