/**
 * Compression for the WAL receiver and the dump: gzip (node:zlib), LZ4 (frame format, blocks by
 * the npm package lz4-napi) and zstd (the npm package @bokuweb/zstd-wasm). The output is what
 * the standard tools read (`gzip -d`, `lz4 -d`, `zstd -d`), and the decoders read theirs.
 *
 * Streams are processed in bounded pieces (1 MiB for LZ4 and zstd), so a GiB dump never sits in
 * memory. The LZ4 and zstd packages are loaded on first use (dynamic import): a program that
 * never asks for them never loads them. This module imports nothing else of pg-rdma.
 *
 * Specifications are spelled as pg_dump 16 and pg_receivewal 15 spell `--compress`:
 * `METHOD[:DETAIL]` with DETAIL a level (`zstd:9`, `gzip:level=5`), or a bare level (`-Z 5` =
 * gzip level 5, `-Z 0` = none).
 *
 * @example
 * ```ts
 * import { compress, decompress, parseCompression } from "./compress/mod.ts";
 * const { method, level } = parseCompression("zstd:9");
 * const packed = await compress(new TextEncoder().encode("hello"), method, level);
 * const back = await decompress(packed); // method detected from the magic number
 * ```
 *
 * @module
 */
import { Transform, type TransformCallback } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import type { Codec } from "./_codec.ts";
import { loadLz4, Lz4Decoder, Lz4Encoder } from "./_lz4.ts";
import { loadZstd, ZstdDecoder, ZstdEncoder } from "./_zstd.ts";

export { type Codec, CompressionError } from "./_codec.ts";
export { Xxh32, xxh32 } from "./_xxh32.ts";

/** Compression methods. */
export const COMPRESSION_METHODS = ["none", "gzip", "lz4", "zstd"] as const;
export type CompressionMethod = (typeof COMPRESSION_METHODS)[number];

/** A method and an optional level (undefined: the method's default). */
export interface CompressionSpec {
  method: CompressionMethod;
  level?: number;
}

/** File name suffix of each method, as PostgreSQL's tools name their files. */
export const COMPRESSION_EXTENSIONS = { none: "", gzip: ".gz", lz4: ".lz4", zstd: ".zst" } as const;

/**
 * Levels each method accepts and its default. lz4: lz4-napi compresses in LZ4's fast mode only
 * (no LZ4 HC), so only levels 0 and 1 (both "fast", PostgreSQL's default 0) are accepted.
 * zstd: 1-22 (negative "fast" levels are not offered). gzip: 1-9.
 */
export const COMPRESSION_LEVELS = {
  gzip: { min: 1, max: 9, default: 6 },
  lz4: { min: 0, max: 1, default: 0 },
  zstd: { min: 1, max: 22, default: 3 },
} as const;

/**
 * Checks a method and level and fills in the default level; throws RangeError naming what is
 * wrong (unknown method, level out of range or not an integer).
 *
 * @example
 * ```ts
 * checkCompression("zstd"); // { method: "zstd", level: 3 }
 * checkCompression("lz4", 9); // RangeError: lz4 level 9 ...
 * ```
 */
export function checkCompression(method: unknown, level?: unknown): Required<CompressionSpec> | { method: "none"; level?: undefined } {
  if (method === undefined || method === "none") {
    if (level !== undefined && level !== 0) throw new RangeError(`compression "none" takes no level, got ${String(level)}`);
    return { method: "none" };
  }
  if (method !== "gzip" && method !== "lz4" && method !== "zstd") {
    throw new RangeError(`unknown compression method ${JSON.stringify(method)}: use one of ${COMPRESSION_METHODS.join(", ")}`);
  }
  const range = COMPRESSION_LEVELS[method];
  if (level === undefined) return { method, level: range.default };
  if (typeof level !== "number" || !Number.isInteger(level) || level < range.min || level > range.max) {
    const why = method === "lz4" && typeof level === "number" && level > 1
      ? " (levels above 1 are LZ4 HC, which the lz4 implementation in use, lz4-napi, does not provide)"
      : "";
    throw new RangeError(`${method} compression level must be an integer ${range.min}-${range.max}, got ${String(level)}${why}`);
  }
  return { method, level };
}

/**
 * Parses a `--compress` / `-Z` value as pg_dump 16 and pg_receivewal 15 spell it: `none`,
 * `gzip`, `lz4`, `zstd`, each optionally `:N` or `:level=N`; or a bare integer (0 = none, 1-9 =
 * gzip at that level). Throws RangeError naming the bad part.
 *
 * @example
 * ```ts
 * parseCompression("zstd:level=9"); // { method: "zstd", level: 9 }
 * parseCompression("5"); // { method: "gzip", level: 5 }
 * ```
 */
export function parseCompression(text: string): CompressionSpec {
  if (typeof text !== "string") throw new TypeError("a compression specification must be a string");
  const s = text.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n === 0) return { method: "none" };
    if (n > 9) throw new RangeError(`compression level ${n} is out of range for gzip (1-9); name the method for others, e.g. "zstd:${n}"`);
    return { method: "gzip", level: n };
  }
  const m = /^([a-z0-9]+)(?::(.*))?$/i.exec(s);
  if (!m) throw new RangeError(`invalid compression specification "${text}": expected METHOD[:DETAIL]`);
  const method = m[1].toLowerCase();
  if (!(COMPRESSION_METHODS as readonly string[]).includes(method)) {
    throw new RangeError(`invalid compression method "${m[1]}": use one of ${COMPRESSION_METHODS.join(", ")}`);
  }
  if (m[2] === undefined) return method === "none" ? { method: "none" } : { method: method as CompressionMethod };
  const d = /^(?:level=)?(-?\d+)$/i.exec(m[2].trim());
  if (!d) {
    const key = m[2].split("=")[0];
    throw new RangeError(`invalid compression detail "${m[2]}" for ${method}: only a level is supported (e.g. ${method}:5 or ${method}:level=5)${key === "workers" || key === "long" ? `; "${key}" is not supported` : ""}`);
  }
  const level = Number(d[1]);
  if (method === "none") {
    if (level !== 0) throw new RangeError(`compression method "none" takes no level, got ${level}`);
    return { method: "none" };
  }
  return checkCompression(method, level);
}

/** The method whose magic number starts `head` (gzip, LZ4 frame, zstd frame), else undefined. */
export function detectCompression(head: Uint8Array): Exclude<CompressionMethod, "none"> | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length < 4) return undefined;
  const magic = (head[0] | (head[1] << 8) | (head[2] << 16) | (head[3] << 24)) >>> 0;
  if (magic === 0x184d2204) return "lz4";
  if (magic === 0xfd2fb528) return "zstd";
  return undefined;
}

/**
 * A synchronous incremental encoder for lz4 or zstd (loads the package on first use). gzip has
 * no synchronous incremental form here: use {@link compressStream} or {@link compressionTransform}.
 */
export async function createEncoder(method: "lz4" | "zstd", level?: number): Promise<Codec> {
  const spec = checkCompression(method, level);
  if (spec.method === "lz4") return new Lz4Encoder(await loadLz4());
  if (spec.method === "zstd") return new ZstdEncoder(await loadZstd(), spec.level);
  throw new RangeError(`createEncoder() takes "lz4" or "zstd", got ${JSON.stringify(method)}`);
}

/** A synchronous incremental decoder for lz4 or zstd (see {@link createEncoder}). */
export async function createDecoder(method: "lz4" | "zstd"): Promise<Codec> {
  if (method === "lz4") return new Lz4Decoder(await loadLz4());
  if (method === "zstd") return new ZstdDecoder(await loadZstd());
  throw new RangeError(`createDecoder() takes "lz4" or "zstd", got ${JSON.stringify(method)}`);
}

/** Lets timers and I/O run between pieces of a long synchronous job. */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Feeds `data` to a codec in 1 MiB pieces, yielding to the event loop between them. */
async function* pieces(codec: Codec, data: Uint8Array): AsyncGenerator<Uint8Array> {
  const STEP = 1024 * 1024;
  for (let i = 0; i < data.length; i += STEP) {
    yield* codec.push(data.subarray(i, i + STEP));
    await breathe();
  }
}

async function* viaZlib(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, z: Transform): AsyncGenerator<Uint8Array> {
  (async () => {
    try {
      for await (const chunk of source) if (!z.write(chunk)) await new Promise((r) => z.once("drain", r));
      z.end();
    } catch (e) {
      z.destroy(e as Error);
    }
  })();
  for await (const chunk of z) yield new Uint8Array((chunk as Uint8Array).buffer, (chunk as Uint8Array).byteOffset, (chunk as Uint8Array).length);
}

/**
 * Compresses a stream of chunks; yields compressed chunks that together form one standard
 * gzip / LZ4 / zstd stream. `none` passes the chunks through.
 *
 * @example
 * ```ts
 * for await (const c of compressStream(rows, "zstd", 3)) await file.write(c);
 * ```
 */
export async function* compressStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  method: CompressionMethod,
  level?: number,
): AsyncGenerator<Uint8Array> {
  const spec = checkCompression(method, level);
  if (spec.method === "none") return yield* source;
  if (spec.method === "gzip") return yield* viaZlib(source, createGzip({ level: spec.level }));
  const enc = await createEncoder(spec.method, spec.level);
  for await (const chunk of source) {
    yield* chunk.length > 1024 * 1024 ? pieces(enc, chunk) : enc.push(chunk);
  }
  yield* enc.end();
}

/**
 * Decompresses a stream of chunks. Without `method`, the method is read from the first bytes'
 * magic number (data with none passes through unchanged). Throws {@link CompressionError} on
 * corrupt or truncated input.
 */
export async function* decompressStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  method?: CompressionMethod,
): AsyncGenerator<Uint8Array> {
  if (method !== undefined) checkCompression(method);
  let it: AsyncIterable<Uint8Array> | Iterable<Uint8Array> = source;
  if (method === undefined) {
    const peeked = await peek(source);
    method = detectCompression(peeked.head) ?? "none";
    it = peeked.rest;
  }
  if (method === "none") return yield* it;
  if (method === "gzip") return yield* viaZlib(it, createGunzip());
  const dec = await createDecoder(method);
  for await (const chunk of it) yield* chunk.length > 1024 * 1024 ? pieces(dec, chunk) : dec.push(chunk);
  yield* dec.end();
}

/** Reads until at least 4 bytes (or the end) are seen; returns them and the whole stream again. */
async function peek(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ head: Uint8Array; rest: AsyncIterable<Uint8Array> }> {
  const iter = (Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()) as AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  const seen: Uint8Array[] = [];
  let n = 0;
  let done = false;
  while (n < 4) {
    const r = await iter.next();
    if (r.done) {
      done = true;
      break;
    }
    seen.push(r.value);
    n += r.value.length;
  }
  const head = new Uint8Array(Math.min(n, 4));
  let o = 0;
  for (const s of seen) {
    if (o >= head.length) break;
    const take = s.subarray(0, head.length - o);
    head.set(take, o);
    o += take.length;
  }
  async function* rest(): AsyncGenerator<Uint8Array> {
    yield* seen;
    if (done) return;
    for (;;) {
      const r = await iter.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head, rest: rest() };
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of chunks) {
    parts.push(c);
    n += c.length;
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Compresses one buffer (in 1 MiB pieces with event-loop breaks between them, so a 16 MiB WAL
 * segment does not stall timers).
 */
export function compress(data: Uint8Array, method: CompressionMethod, level?: number): Promise<Uint8Array> {
  if (!(data instanceof Uint8Array)) throw new TypeError("compress() takes a Uint8Array");
  return collect(compressStream([data], method, level));
}

/** Decompresses one buffer; without `method` it is detected from the magic number. */
export function decompress(data: Uint8Array, method?: CompressionMethod): Promise<Uint8Array> {
  if (!(data instanceof Uint8Array)) throw new TypeError("decompress() takes a Uint8Array");
  return collect(decompressStream([data], method));
}

/** A Node Transform over a synchronous codec (outputs are handed on as Buffers). */
class CodecTransform extends Transform {
  #codec: Codec;

  constructor(codec: Codec) {
    super({ highWaterMark: 1024 * 1024 });
    this.#codec = codec;
  }

  override _transform(chunk: Uint8Array, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      for (const out of this.#codec.push(chunk)) this.push(out);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      for (const out of this.#codec.end()) this.push(out);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}

/** A Node Transform stream that compresses (for piping into a file); `none` is not accepted. */
export async function compressionTransform(method: Exclude<CompressionMethod, "none">, level?: number): Promise<Transform> {
  const spec = checkCompression(method, level);
  if (spec.method === "gzip") return createGzip({ level: spec.level });
  if (spec.method === "none") throw new RangeError(`compressionTransform() needs a method other than "none"`);
  return new CodecTransform(await createEncoder(spec.method, spec.level));
}

/** A Node Transform stream that decompresses `method` (for piping out of a file). */
export async function decompressionTransform(method: Exclude<CompressionMethod, "none">): Promise<Transform> {
  checkCompression(method);
  if (method === "gzip") return createGunzip();
  return new CodecTransform(await createDecoder(method));
}

/** The method a file name's suffix says (`.gz`, `.lz4`, `.zst`, also before `.partial`), else "none". */
export function compressionOfFileName(name: string): CompressionMethod {
  const base = name.endsWith(".partial") ? name.slice(0, -".partial".length) : name;
  for (const m of ["gzip", "lz4", "zstd"] as const) if (base.endsWith(COMPRESSION_EXTENSIONS[m])) return m;
  return "none";
}

