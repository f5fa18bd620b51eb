/**
 * A minimal streaming tar reader and writer, I/O-free: what a base backup needs (POSIX ustar as
 * PostgreSQL's server writes it, plus pax `x` and GNU `L`/`K` long names, and base-256 sizes,
 * which other tars produce). Regular files, directories and symbolic links; anything else
 * (hard links, devices, FIFOs) is refused with a {@link TarError}.
 *
 * The reader is push-based: {@link TarReader.push} takes chunks of any size and calls the sink
 * with each entry's header, views of its data (no copies), and the entry's end.
 *
 * @module
 */

const BLOCK = 512;

/** The archive is not a tar this reader understands, or is cut short. */
export class TarError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TarError";
  }
}

/** One archive member. */
export interface TarEntry {
  type: "file" | "directory" | "symlink";
  /** Path inside the archive (no trailing slash for directories). */
  name: string;
  /** Permission bits (`0o600`). */
  mode: number;
  size: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  /** Target of a symbolic link; "" otherwise. */
  linkname: string;
}

/** Receives what a {@link TarReader} finds, in order. */
export interface TarSink {
  entry(e: TarEntry): void;
  /** A view of the current entry's data, valid only during the call. */
  data(bytes: Uint8Array): void;
  /** The current entry's data is complete. */
  endEntry(e: TarEntry): void;
}

const dec = new TextDecoder();

function cstr(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return dec.decode(b.subarray(off, end));
}

/** A numeric header field: octal text, or base-256 when the top bit is set (GNU, PostgreSQL). */
function num(b: Uint8Array, off: number, len: number, what: string): number {
  if (b[off] & 0x80) {
    let v = b[off] & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const t = cstr(b, off, len).trim();
  if (t === "") return 0;
  if (!/^[0-7]+$/.test(t)) throw new TarError(`bad ${what} field ${JSON.stringify(t)} in a tar header`);
  return parseInt(t, 8);
}

function checksumOk(h: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  return sum === num(h, 148, 8, "checksum");
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parses pax extended header records (`<len> key=value\n`). */
function parsePax(b: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < b.length) {
    let sp = p;
    while (sp < b.length && b[sp] !== 0x20) sp++;
    const len = parseInt(dec.decode(b.subarray(p, sp)), 10);
    if (!(len > 0) || p + len > b.length) throw new TarError("bad pax extended header record");
    const rec = dec.decode(b.subarray(sp + 1, p + len - 1));
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    p += len;
  }
  return out;
}

/**
 * Streaming tar reader. Feed it with {@link push}; call {@link finish} at the end of the stream
 * (it throws if the stream stopped inside a member). {@link endOffset} is where the
 * end-of-archive marker starts, once seen (for appending members to a copy of the archive).
 */
export class TarReader {
  #sink: TarSink;
  #hdr = new Uint8Array(BLOCK);
  #hdrLen = 0;
  /** Data bytes left in the current member, then padding to skip. */
  #left = 0;
  #pad = 0;
  #cur: TarEntry | undefined;
  /** Metadata member (pax / GNU long name) being collected. */
  #meta: { kind: number; buf: Uint8Array; len: number } | undefined;
  #pax = new Map<string, string>();
  #longName: string | undefined;
  #longLink: string | undefined;
  #offset = 0;
  #ended = false;
  /** Byte offset of the end-of-archive marker, or -1 until seen. */
  endOffset = -1;

  constructor(sink: TarSink) {
    this.#sink = sink;
  }

  /** Feeds the next bytes of the archive. */
  push(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.#ended) {
        this.#offset += chunk.length - p;
        return; // bytes after the marker (more zero blocks): ignored, as tar does
      }
      if (this.#left > 0) {
        const n = Math.min(this.#left, chunk.length - p);
        const view = chunk.subarray(p, p + n);
        if (this.#meta) {
          this.#meta.buf.set(view, this.#meta.len);
          this.#meta.len += n;
        } else this.#sink.data(view);
        this.#left -= n;
        p += n;
        this.#offset += n;
        if (this.#left === 0) this.#endMember();
        continue;
      }
      if (this.#pad > 0) {
        const n = Math.min(this.#pad, chunk.length - p);
        this.#pad -= n;
        p += n;
        this.#offset += n;
        continue;
      }
      const n = Math.min(BLOCK - this.#hdrLen, chunk.length - p);
      this.#hdr.set(chunk.subarray(p, p + n), this.#hdrLen);
      this.#hdrLen += n;
      p += n;
      this.#offset += n;
      if (this.#hdrLen === BLOCK) {
        this.#hdrLen = 0;
        this.#header(this.#hdr);
      }
    }
  }

  /** The stream ended: throws if it ended inside a member or header. */
  finish(): void {
    if (this.#left > 0 || this.#hdrLen > 0 || this.#meta) {
      throw new TarError(`tar archive cut short at byte ${this.#offset}${this.#cur ? ` inside ${this.#cur.name}` : ""}`);
    }
  }

  #header(h: Uint8Array): void {
    if (isZero(h)) {
      this.endOffset = this.#offset - BLOCK;
      this.#ended = true;
      return;
    }
    if (!checksumOk(h)) throw new TarError(`bad tar header checksum at byte ${this.#offset - BLOCK}`);
    const flag = h[156];
    const size = num(h, 124, 12, "size");
    const padTo = (s: number) => (BLOCK - (s % BLOCK)) % BLOCK;
    // x: pax header for the next member; g: pax global (ignored); L/K: GNU long name/link.
    if (flag === 0x78 || flag === 0x67 || flag === 0x4c || flag === 0x4b) {
      if (size > 16 << 20) throw new TarError(`tar metadata member of ${size} bytes is too large`);
      this.#meta = { kind: flag, buf: new Uint8Array(size), len: 0 };
      this.#left = size;
      this.#pad = padTo(size);
      if (size === 0) this.#endMember();
      return;
    }
    let name = cstr(h, 0, 100);
    const magic = cstr(h, 257, 6);
    if (magic === "ustar") {
      const prefix = cstr(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    let linkname = cstr(h, 157, 100);
    let realSize = size;
    if (this.#longName !== undefined) name = this.#longName;
    if (this.#longLink !== undefined) linkname = this.#longLink;
    if (this.#pax.has("path")) name = this.#pax.get("path")!;
    if (this.#pax.has("linkpath")) linkname = this.#pax.get("linkpath")!;
    if (this.#pax.has("size")) realSize = Number(this.#pax.get("size"));
    this.#pax = new Map();
    this.#longName = this.#longLink = undefined;

    let type: TarEntry["type"];
    if (flag === 0x30 || flag === 0 || flag === 0x37) type = "file";
    else if (flag === 0x35) type = "directory";
    else if (flag === 0x32) type = "symlink";
    else {
      throw new TarError(`tar member ${JSON.stringify(name)} has type '${String.fromCharCode(flag)}', which is not supported (regular files, directories and symlinks only)`);
    }
    if (type === "file" && name.endsWith("/")) type = "directory"; // old tars mark directories this way
    const e: TarEntry = {
      type,
      name: name.replace(/\/+$/, ""),
      mode: num(h, 100, 8, "mode") & 0o7777,
      size: type === "file" ? realSize : 0,
      mtime: num(h, 136, 12, "mtime"),
      linkname,
    };
    this.#cur = e;
    this.#sink.entry(e);
    this.#left = e.size;
    this.#pad = padTo(e.size);
    if (e.size === 0) this.#endMember();
  }

  #endMember(): void {
    const meta = this.#meta;
    if (meta) {
      this.#meta = undefined;
      if (meta.kind === 0x78) this.#pax = parsePax(meta.buf);
      else if (meta.kind === 0x4c) this.#longName = cstr(meta.buf, 0, meta.buf.length);
      else if (meta.kind === 0x4b) this.#longLink = cstr(meta.buf, 0, meta.buf.length);
      return;
    }
    const e = this.#cur!;
    this.#cur = undefined;
    this.#sink.endEntry(e);
  }
}

const enc = new TextEncoder();

function putOctal(h: Uint8Array, off: number, len: number, v: number): void {
  if (v >= 8 ** (len - 1)) {
    // base-256, as GNU tar and PostgreSQL write sizes of 8 GiB and more
    h[off] = 0x80;
    for (let i = len - 1; i > 0; i--) {
      h[off + i] = v % 256;
      v = Math.floor(v / 256);
    }
    return;
  }
  h.set(enc.encode(v.toString(8).padStart(len - 1, "0")), off);
  h[off + len - 1] = 0;
}

/**
 * A ustar header block for a regular file, directory or symlink. Names longer than 100 bytes
 * are split into prefix/name at a slash (up to 255 bytes); a TarError otherwise.
 */
export function tarHeader(e: Pick<TarEntry, "type" | "name" | "mode" | "size" | "mtime"> & { linkname?: string }): Uint8Array {
  const h = new Uint8Array(BLOCK);
  let name = e.type === "directory" ? `${e.name}/` : e.name;
  let prefix = "";
  if (enc.encode(name).length > 100) {
    const cut = name.lastIndexOf("/", name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (cut < 0 || enc.encode(name).length > 100 || enc.encode(prefix).length > 155) {
      throw new TarError(`file name too long for tar format: ${e.name}`);
    }
  }
  const link = enc.encode(e.linkname ?? "");
  if (link.length > 100) throw new TarError(`symbolic link target too long for tar format: ${e.linkname}`);
  h.set(enc.encode(name), 0);
  putOctal(h, 100, 8, e.mode & 0o7777);
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  putOctal(h, 124, 12, e.type === "file" ? e.size : 0);
  putOctal(h, 136, 12, Math.floor(e.mtime));
  h[156] = e.type === "file" ? 0x30 : e.type === "directory" ? 0x35 : 0x32;
  h.set(link, 157);
  h.set(enc.encode("ustar\x0000"), 257);
  h.set(enc.encode(prefix), 345);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}

/** Zero bytes padding `size` bytes of member data to a whole block. */
export function tarPadding(size: number): Uint8Array {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end-of-archive marker: two zero blocks. */
export const TAR_END: Uint8Array = new Uint8Array(2 * BLOCK);
