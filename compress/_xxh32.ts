// XXH32, the checksum of the LZ4 frame format (header check byte, block and content checksums).
// Written from the algorithm's description (xxHash spec, "XXH32 algorithm description"):
// four accumulators over 16-byte stripes, then the 4-byte and 1-byte tails, then an avalanche.

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));
const u32le = (b: Uint8Array, i: number) => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

/** Streaming XXH32 (seed 0 by default): `update()` any number of times, then `digest()`. */
export class Xxh32 {
  #v1: number;
  #v2: number;
  #v3: number;
  #v4: number;
  #seed: number;
  #total = 0;
  #tail = new Uint8Array(16);
  #tailLen = 0;

  constructor(seed = 0) {
    this.#seed = seed >>> 0;
    this.#v1 = (this.#seed + P1 + P2) >>> 0;
    this.#v2 = (this.#seed + P2) >>> 0;
    this.#v3 = this.#seed;
    this.#v4 = (this.#seed - P1) >>> 0;
  }

  /** Adds bytes to the hash. */
  update(b: Uint8Array): this {
    this.#total += b.length;
    let i = 0;
    if (this.#tailLen) {
      const n = Math.min(16 - this.#tailLen, b.length);
      this.#tail.set(b.subarray(0, n), this.#tailLen);
      this.#tailLen += n;
      i = n;
      if (this.#tailLen < 16) return this;
      this.#stripes(this.#tail, 0, 16);
      this.#tailLen = 0;
    }
    const end = i + ((b.length - i) & ~15);
    if (end > i) this.#stripes(b, i, end);
    if (end < b.length) {
      this.#tail.set(b.subarray(end), 0);
      this.#tailLen = b.length - end;
    }
    return this;
  }

  #stripes(b: Uint8Array, i: number, end: number): void {
    let v1 = this.#v1, v2 = this.#v2, v3 = this.#v3, v4 = this.#v4;
    for (; i < end; i += 16) {
      v1 = Math.imul(rotl((v1 + Math.imul(u32le(b, i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(u32le(b, i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(u32le(b, i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(u32le(b, i + 12), P2)) | 0, 13), P1);
    }
    this.#v1 = v1;
    this.#v2 = v2;
    this.#v3 = v3;
    this.#v4 = v4;
  }

  /** The hash of everything added so far, as an unsigned 32-bit number. */
  digest(): number {
    let acc = this.#total >= 16
      ? (rotl(this.#v1, 1) + rotl(this.#v2, 7) + rotl(this.#v3, 12) + rotl(this.#v4, 18)) | 0
      : (this.#seed + P5) | 0;
    acc = (acc + this.#total) | 0;
    const t = this.#tail;
    let i = 0;
    for (; i + 4 <= this.#tailLen; i += 4) acc = Math.imul(rotl((acc + Math.imul(u32le(t, i), P3)) | 0, 17), P4);
    for (; i < this.#tailLen; i++) acc = Math.imul(rotl((acc + Math.imul(t[i], P5)) | 0, 11), P1);
    acc ^= acc >>> 15;
    acc = Math.imul(acc, P2);
    acc ^= acc >>> 13;
    acc = Math.imul(acc, P3);
    acc ^= acc >>> 16;
    return acc >>> 0;
  }
}

/** XXH32 of one buffer. */
export function xxh32(b: Uint8Array, seed = 0): number {
  return new Xxh32(seed).update(b).digest();
}
