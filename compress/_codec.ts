// What every codec of this module implements, and its one error class.

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

/** Magic number of skippable frames (shared by LZ4 and zstd): 0x184D2A50-0x184D2A5F. */
export const isSkippableMagic = (magic: number) => (magic & 0xfffffff0) === 0x184d2a50;
