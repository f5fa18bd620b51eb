// A window over incoming compressed bytes for the frame decoders: chunks are appended, the
// decoder looks at `bytes` from `start`, consumes what it has decoded, and the window compacts or
// grows only when an append does not fit (so a frame split over many reads is joined once).

/** Growable byte window; the decoders own (and may overwrite) what is inside it. */
export class ByteQueue {
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  /** Bytes available. */
  get length(): number {
    return this.#end - this.#start;
  }

  /** The underlying buffer; valid bytes are `[start, start + length)` until the next append. */
  get bytes(): Uint8Array {
    return this.#buf;
  }

  get start(): number {
    return this.#start;
  }

  /** Copies `chunk` in (the caller may reuse it afterwards). */
  append(chunk: Uint8Array): void {
    if (this.#end + chunk.length > this.#buf.length) {
      const len = this.length;
      if (len + chunk.length <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        let size = this.#buf.length;
        while (size < len + chunk.length) size *= 2;
        const next = new Uint8Array(size);
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = len;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /** Unsigned little-endian 32-bit value at `offset` from the front. */
  u32(offset: number): number {
    const b = this.#buf, i = this.#start + offset;
    return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
  }

  /** Byte at `offset` from the front. */
  u8(offset: number): number {
    return this.#buf[this.#start + offset];
  }

  /** A view of `n` bytes at `offset` from the front (valid until the next append). */
  view(offset: number, n: number): Uint8Array {
    return this.#buf.subarray(this.#start + offset, this.#start + offset + n);
  }
}
