// Zstandard (RFC 8878) through @bokuweb/zstd-wasm: zstd 1.5 compiled to WebAssembly, shipped
// inside the npm package (no native binary, no download), same code in Deno, Bun and Node.
//
// That package exposes zstd's one-shot API only (ZSTD_compress / ZSTD_decompress), no streaming
// context. So a stream is written as a sequence of complete frames, one per 1 MiB of input (each
// with its content size). RFC 8878 §3: "Zstandard compressed data is made of one or more
// frames", and `zstd -d` decodes such a file as one stream; the ratio lost at frame boundaries is
// small at 1 MiB (level 3's window is 2 MiB at most).
//
// Reading: the frame headers and block headers are parsed here to find where each frame ends
// (RFC 8878 §3.1.1), then the whole frame is decoded at once with an output bound from its
// content size or, when the header has none, from its blocks (each at most 128 KiB). Memory is
// bounded by one frame: ours are 1 MiB; a file the zstd CLI wrote holds one frame for the whole
// input, which is then decoded in one piece. Skippable frames are skipped; dictionaries refused.
import { ChunkStager, type Codec, FrameStreamDecoder } from "./_codec.ts";

type ZstdWasm = typeof import("@bokuweb/zstd-wasm");

const MAGIC = 0xfd2fb528;
const BLOCK_MAX = 128 * 1024;

let lib: Promise<ZstdWasm> | undefined;

/** Loads and instantiates the zstd WebAssembly module (once, on first use). */
export function loadZstd(): Promise<ZstdWasm> {
  lib ??= (async () => {
    try {
      const m = await import("@bokuweb/zstd-wasm") as ZstdWasm & { default?: ZstdWasm };
      const z = typeof m.compress === "function" ? m : m.default!;
      await z.init();
      return z;
    } catch (e) {
      lib = undefined;
      throw new Error(`zstd compression needs the npm package @bokuweb/zstd-wasm: ${(e as Error).message}`, { cause: e });
    }
  })();
  return lib;
}

/** zstd encoder: one frame per 1 MiB of input at the given level. */
export class ZstdEncoder implements Codec {
  #z: ZstdWasm;
  #level: number;
  #stager = new ChunkStager();
  #frames = 0;

  constructor(z: ZstdWasm, level: number) {
    this.#z = z;
    this.#level = level;
  }

  #frame(data: Uint8Array, out: Uint8Array[]): void {
    out.push(this.#z.compress(data, this.#level));
    this.#frames++;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.#stager.feed(chunk, (piece) => this.#frame(piece, out));
    return out;
  }

  end(): Uint8Array[] {
    const out: Uint8Array[] = [];
    // An empty input still gets one (empty) frame, so the output is a valid zstd file.
    const rest = this.#stager.takeRest();
    if (rest.length || !this.#frames) this.#frame(rest, out);
    return out;
  }
}

/** zstd decoder for a sequence of frames (see the module comment). */
export class ZstdDecoder extends FrameStreamDecoder {
  #z: ZstdWasm;
  /** Scan state of the frame at the front of the queue. */
  #scan: { pos: number; bound: number; contentSize: number | undefined; checksum: boolean } | undefined;

  constructor(z: ZstdWasm) {
    super("zstd", MAGIC, "a zstd frame", "zstd data");
    this.#z = z;
  }

  protected get inFrame(): boolean {
    return this.#scan !== undefined;
  }

  /** Decodes what it can; false when it needs more input. */
  protected step(out: Uint8Array[]): boolean {
    const q = this.q;
    if (!this.#scan) {
      const start = this.frameStart();
      if (start !== "frame") return start;
      if (q.length < 5) return false;
      // Frame_Header_Descriptor: FCS flag (2 bits), Single_Segment, unused, reserved, Checksum, Dict_ID flag (2 bits).
      const fhd = q.u8(4);
      const fcsFlag = fhd >> 6, single = (fhd >> 5) & 1, dictFlag = fhd & 3;
      if (fhd & 0x08) this.fail("reserved bit set in the frame header");
      if (dictFlag) this.fail("frames that need a dictionary are not supported");
      const fcsLen = [single, 2, 4, 8][fcsFlag];
      const headerLen = 5 + (single ? 0 : 1) + fcsLen;
      if (q.length < headerLen) return false;
      let contentSize: number | undefined;
      const at = 5 + (single ? 0 : 1);
      if (fcsLen === 1) contentSize = q.u8(at);
      else if (fcsLen === 2) contentSize = (q.u8(at) | (q.u8(at + 1) << 8)) + 256;
      else if (fcsLen === 4) contentSize = q.u32(at);
      else if (fcsLen === 8) contentSize = q.u32(at) + q.u32(at + 4) * 2 ** 32;
      this.#scan = { pos: headerLen, bound: 0, contentSize, checksum: !!(fhd & 0x04) };
      this.sawFrame();
      return true;
    }
    // Block_Header: Last_Block (1 bit), Block_Type (2 bits), Block_Size (21 bits), little-endian.
    const s = this.#scan;
    for (;;) {
      if (q.length < s.pos + 3) return false;
      const h = q.u8(s.pos) | (q.u8(s.pos + 1) << 8) | (q.u8(s.pos + 2) << 16);
      const last = h & 1, type = (h >> 1) & 3, size = h >>> 3;
      if (type === 3) this.fail("reserved block type (corrupt data)");
      if (size > BLOCK_MAX) this.fail(`block of ${size} bytes exceeds the 128 KiB maximum (corrupt data)`);
      const stored = type === 1 ? 1 : size; // RLE: one byte repeated `size` times
      const next = s.pos + 3 + stored;
      if (q.length < next) return false;
      s.bound += type === 2 ? BLOCK_MAX : size;
      s.pos = next;
      if (last) break;
    }
    const end = s.pos + (s.checksum ? 4 : 0);
    if (q.length < end) return false;
    const bound = s.contentSize ?? s.bound;
    let d: Uint8Array;
    try {
      d = this.#z.decompress(q.view(0, end), { defaultHeapSize: Math.max(bound, 1) });
    } catch (e) {
      this.fail(`corrupt frame: ${(e as Error).message}`, e);
    }
    if (s.contentSize !== undefined && d.length !== s.contentSize) this.fail(`frame content size says ${s.contentSize} bytes, it decoded to ${d.length}`);
    if (d.length) out.push(d);
    q.consume(end);
    this.#scan = undefined;
    return true;
  }
}
