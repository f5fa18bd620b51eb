// What every codec of this module implements, its one error class, and the frame-stream reading
// the LZ4 and zstd decoders share.
import { ByteQueue } from "./_queue.ts";

/** Synchronous incremental codec: bytes in, zero or more output chunks out (each owned by the caller). */
export interface Codec {
  /** Feeds bytes (the codec copies what it keeps); returns the output that is ready. */
  push(chunk: Uint8Array): Uint8Array[];
  /** Ends the input; returns the rest. A decoder throws if the input stopped inside a frame. */
  end(): Uint8Array[];
}

/** Compressed input that is not valid (bad magic, bad checksum, truncated frame, corrupt block). */
export class CompressionError extends Error {
  /** The method whose data was bad. */
  readonly method: string;

  constructor(method: string, message: string, options?: { cause?: unknown }) {
    super(`${method}: ${message}`, options);
    this.name = "CompressionError";
    this.method = method;
  }
}

/** Uncompressed bytes per block (LZ4) or frame (zstd): bounds memory and event-loop stalls. */
export const CHUNK = 1024 * 1024;

/**
 * Cuts a byte stream into pieces of exactly {@link CHUNK} bytes, whatever sizes it is fed in:
 * whole pieces of the input are handed on without a copy, the rest is staged until a piece is
 * full. The encoders compress one piece per block (LZ4) or frame (zstd).
 */
export class ChunkStager {
  #stage = new Uint8Array(CHUNK);
  #staged = 0;

  /** Feeds bytes; calls `piece` for each full piece (valid only during the call). */
  feed(chunk: Uint8Array, piece: (data: Uint8Array) => void): void {
    let i = 0;
    if (this.#staged) {
      const n = Math.min(CHUNK - this.#staged, chunk.length);
      this.#stage.set(chunk.subarray(0, n), this.#staged);
      this.#staged += n;
      i = n;
      if (this.#staged < CHUNK) return;
      piece(this.#stage);
      this.#staged = 0;
    }
    for (; chunk.length - i >= CHUNK; i += CHUNK) piece(chunk.subarray(i, i + CHUNK));
    if (i < chunk.length) {
      this.#stage.set(chunk.subarray(i), 0);
      this.#staged = chunk.length - i;
    }
  }

  /** Takes what is staged (possibly nothing), leaving the stager empty. */
  takeRest(): Uint8Array {
    const rest = this.#stage.subarray(0, this.#staged);
    this.#staged = 0;
    return rest;
  }
}

/** Magic number of skippable frames (shared by LZ4 and zstd): 0x184D2A50-0x184D2A5F. */
export const isSkippableMagic = (magic: number) => (magic & 0xfffffff0) === 0x184d2a50;

/**
 * The part of the LZ4 and zstd decoders that is the same in both formats: the input queue, the
 * push loop, skippable frames (same magic range and layout), the check of each frame's magic
 * number, and the end-of-input checks. A subclass reads one frame at a time in {@link step}.
 */
export abstract class FrameStreamDecoder implements Codec {
  protected readonly q: ByteQueue = new ByteQueue();
  #skip = 0;
  #sawFrame = false;
  readonly #method: string;
  readonly #magic: number;
  /** How a frame of this format is named in errors, e.g. "an LZ4 frame". */
  readonly #frameName: string;
  /** What input without this format's magic number is called, e.g. "LZ4 frame data". */
  readonly #dataName: string;

  constructor(method: string, magic: number, frameName: string, dataName: string) {
    this.#method = method;
    this.#magic = magic;
    this.#frameName = frameName;
    this.#dataName = dataName;
  }

  protected fail(message: string, cause?: unknown): never {
    throw new CompressionError(this.#method, message, cause === undefined ? undefined : { cause });
  }

  /** Whether a frame has been started and not finished. */
  protected abstract get inFrame(): boolean;

  /**
   * Reads what it can of the stream, at the start of a frame (after {@link frameStart}) or
   * inside one; false when it needs more input.
   */
  protected abstract step(out: Uint8Array[]): boolean;

  /**
   * At a frame boundary: false when more input is needed; true after consuming a skippable
   * frame (or its start); "frame" when a frame of this format starts here (its magic number is
   * still in the queue). Throws on anything else.
   */
  protected frameStart(): boolean | "frame" {
    const q = this.q;
    if (q.length < 4) return false;
    const magic = q.u32(0);
    if (isSkippableMagic(magic)) {
      if (q.length < 8) return false;
      const n = q.u32(4);
      const here = Math.min(n, q.length - 8);
      q.consume(8 + here);
      this.#skip = n - here;
      return this.#skip === 0;
    }
    if (magic !== this.#magic) {
      this.fail(this.#sawFrame ? `data after the last frame is not ${this.#frameName}` : `not ${this.#dataName} (bad magic number)`);
    }
    return "frame";
  }

  /** Records that a frame's header was read (an input with none is an error at the end). */
  protected sawFrame(): void {
    this.#sawFrame = true;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.#skip) {
      const n = Math.min(this.#skip, chunk.length);
      this.#skip -= n;
      chunk = chunk.subarray(n);
    }
    if (chunk.length) this.q.append(chunk);
    while (this.step(out));
    return out;
  }

  end(): Uint8Array[] {
    const out = this.push(new Uint8Array(0));
    if (this.inFrame || this.q.length || this.#skip) this.fail("truncated input (the stream ends inside a frame)");
    if (!this.#sawFrame) this.fail(`empty input (no ${this.#frameName.replace(/^an? /, "")})`);
    return out;
  }
}
