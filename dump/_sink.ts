// File output for the dumper: batches small chunks (COPY sends one message per row) into large
// writes, optionally through gzip, honours backpressure, and never leaves a file that looks
// complete after a failure (write to `<name>.partial`, rename on success).
import { closeSync, createWriteStream, fdatasync, openSync, statSync, writeSync, type WriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { once } from "node:events";
import type { Transform, Writable } from "node:stream";
import { createGzip } from "node:zlib";
import { checkCompression as checkLevel, compressionTransform } from "../compress/mod.ts";

/** Compression methods the dump can write. */
export type Compression = "none" | "gzip" | "zstd" | "lz4";

/** Checks a compression choice and its level (zstd and lz4 through compress/). */
export function checkCompression(c: unknown, level?: number): Compression {
  if (c === undefined || c === "none") return "none";
  if (c === "gzip") {
    if (level !== undefined && (!Number.isInteger(level) || level < 0 || level > 9)) throw new RangeError(`gzip compression level must be 0-9, not ${level}`);
    return "gzip";
  }
  if (c === "zstd" || c === "lz4") return checkLevel(c, level).method as Compression;
  throw new RangeError(`unknown compression ${JSON.stringify(c)}: use "none", "gzip", "lz4" or "zstd"`);
}

const BATCH = 256 * 1024;

/**
 * Bytes written to a file between two background flushes when it is written to be fsynced (see
 * {@link FileSink.open}'s `flushAhead`): a flush takes some tens of milliseconds of the disk
 * here, and what is left dirty for the final fsync stays below this.
 */
export const FLUSH_STEP = 64 * 1024 * 1024;

/**
 * Background flushes of a file written to be fsynced: once `step` bytes were written since the
 * last one, `datasync` runs (on the thread pool), one at a time. The final fsync then finds
 * little left to write, where the whole file would otherwise reach the disk only then (the page
 * cache here holds gigabytes before it writes back on its own). A failed flush is kept in
 * {@link FlushAhead.error} for the writer to throw at its next write or at the end.
 */
export class FlushAhead {
  #datasync: () => Promise<void>;
  #step: number;
  #unflushed = 0;
  #flushing: Promise<void> | undefined;
  /** The first flush that failed, if any. */
  error: Error | undefined;

  constructor(datasync: () => Promise<void>, step = FLUSH_STEP) {
    this.#datasync = datasync;
    this.#step = step;
  }

  /** Counts `n` bytes written; starts a flush once a step's worth is unflushed and none is under way. */
  wrote(n: number): void {
    if ((this.#unflushed += n) < this.#step || this.#flushing) return;
    this.#unflushed = 0;
    this.#flushing = this.#datasync().then(() => {
      this.#flushing = undefined;
    }, (e) => {
      this.error ??= e as Error;
      this.#flushing = undefined;
    });
  }

  /** Resolves once no flush is under way (never rejects: see {@link FlushAhead.error}); await it before closing the file. */
  settled(): Promise<void> {
    return this.#flushing ?? Promise.resolve();
  }
}

/**
 * A buffered byte sink over a Node Writable or a file descriptor. A descriptor is written with
 * writeSync: for a local file that is a copy into the page cache, and measured faster in all
 * three runtimes than a WriteStream's round trips through the thread pool.
 */
export class Sink {
  #out: Writable | number;
  #buf = new Uint8Array(BATCH);
  #len = 0;
  #error: Error | undefined;
  /** Bytes written (before compression). */
  bytes = 0;
  /** Background flushes of the descriptor (see {@link Sink.flushEvery}). */
  #ahead: FlushAhead | undefined;
  #descriptorClosed = false;

  constructor(out: Writable | number) {
    this.#out = out;
    if (typeof out !== "number") {
      out.on("error", (e: Error) => {
        this.#error ??= e;
      });
    }
  }

  /**
   * Queues bytes; returns a promise only when the caller must wait (backpressure). Keeps no view
   * of `chunk` once it returns (it is copied or written out), so the caller may reuse its memory.
   */
  write(chunk: Uint8Array): Promise<void> | undefined {
    this.bytes += chunk.length;
    if (chunk.length >= BATCH) {
      const p = this.#flush();
      // A stream may hold on to what it is given after write() returns: give it its own copy.
      const direct = this.#push(typeof this.#out === "number" ? chunk : chunk.slice());
      return p || direct ? Promise.all([p, direct]).then(() => {}) : undefined;
    }
    if (this.#len + chunk.length > BATCH) {
      const p = this.#flush();
      this.#buf.set(chunk, 0);
      this.#len = chunk.length;
      return p;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
    return undefined;
  }

  /** Writes a string (UTF-8). */
  text(s: string): Promise<void> | undefined {
    return this.write(new TextEncoder().encode(s));
  }

  #flush(): Promise<void> | undefined {
    if (!this.#len) return undefined;
    const out = this.#buf.subarray(0, this.#len);
    // A stream keeps a reference to the bytes it was given; a descriptor write is done at once.
    if (typeof this.#out !== "number") this.#buf = new Uint8Array(BATCH);
    this.#len = 0;
    return this.#push(out);
  }

  /** The first error of a write or of a background flush. */
  #failed(): Error | undefined {
    return this.#error ??= this.#ahead?.error;
  }

  #push(b: Uint8Array): Promise<void> | undefined {
    if (this.#failed()) return Promise.reject(this.#error);
    const out = this.#out;
    if (typeof out === "number") {
      try {
        for (let o = 0; o < b.length;) o += writeSync(out, b, o, b.length - o);
      } catch (e) {
        this.#error = e as Error;
        return Promise.reject(e);
      }
      this.#ahead?.wrote(b.length);
      return undefined;
    }
    if (out.write(b)) return undefined;
    return once(out, "drain").then(() => {
      if (this.#error) throw this.#error;
    });
  }

  /** Starts background flushes ({@link FlushAhead}) every `step` bytes written (descriptor sinks only); an error fails the next write or the end. */
  protected flushEvery(step: number): void {
    const fd = this.#out;
    if (typeof fd === "number") this.#ahead = new FlushAhead(() => new Promise((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve()))), step);
  }

  /** Closes the descriptor (once), after the background flush under way if any. */
  protected async closeDescriptor(): Promise<void> {
    const out = this.#out;
    if (typeof out !== "number" || this.#descriptorClosed) return;
    this.#descriptorClosed = true;
    await this.#ahead?.settled();
    closeSync(out);
  }

  /** Hands buffered bytes to the stream (waiting for drain when it is full). */
  async flush(): Promise<void> {
    await this.#flush();
    if (this.#failed()) throw this.#error;
  }

  /** Flushes and ends the stream; resolves when everything reached its destination. */
  async end(): Promise<void> {
    await this.flush();
    const out = this.#out;
    if (typeof out === "number") {
      await this.closeDescriptor();
      if (this.#failed()) throw this.#error;
    } else {
      out.end();
      await finished(out);
    }
  }
}

function finished(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (w.writableFinished) return resolve();
    w.once("finish", () => resolve());
    w.once("error", reject);
  });
}

/**
 * A file sink that writes `<path>.partial` and renames it to `path` on {@link FileSink.commit};
 * {@link FileSink.abort} removes the partial file. A path that already exists and is not a
 * regular file (`/dev/null`, a FIFO, a terminal) is written in place, as pg_dump -f does: a
 * `.partial` beside it would be created in /dev and renamed over the device.
 */
export class FileSink extends Sink {
  readonly path: string;
  #file: WriteStream | number;
  #gzip: Transform | undefined;
  /** The name written: `<path>.partial`, or `path` itself for a device or FIFO. */
  #target: string;

  private constructor(path: string, target: string, file: WriteStream | number, gzip: Transform | undefined) {
    super(gzip ?? file);
    this.path = path;
    this.#target = target;
    this.#file = file;
    this.#gzip = gzip;
  }

  /**
   * Opens `<path>.partial` (or a device or FIFO itself) for writing, through gzip, lz4 or zstd
   * when asked. `flushAhead`, for a file that will be fsynced: an uncompressed regular file is
   * flushed in the background every {@link FLUSH_STEP} bytes while it is written.
   */
  static async open(path: string, compression: Compression = "none", level?: number, flushAhead = false): Promise<FileSink> {
    let special = false;
    try {
      special = !statSync(path).isFile();
    } catch { /* does not exist yet */ }
    const target = special ? path : `${path}.partial`;
    if (compression === "none") {
      const sink = new FileSink(path, target, openSync(target, "w", 0o600), undefined);
      if (flushAhead && !special) sink.flushEvery(FLUSH_STEP);
      return sink;
    }
    // The compressor first: an lz4/zstd package that cannot load leaves no file behind.
    const gzip = compression === "gzip" ? createGzip(level === undefined ? {} : { level }) : await compressionTransform(compression, level);
    const file = createWriteStream(target, { flags: "w", mode: 0o600 });
    await once(file, "open");
    gzip.pipe(file);
    return new FileSink(path, target, file, gzip);
  }

  /** Finishes the file and gives it its final name. */
  async commit(): Promise<void> {
    await this.end();
    if (typeof this.#file !== "number") await finished(this.#file);
    if (this.#target !== this.path) await rename(this.#target, this.path);
  }

  /** Stops writing and removes the partial file. */
  async abort(): Promise<void> {
    this.#gzip?.destroy();
    if (typeof this.#file === "number") {
      try {
        await this.closeDescriptor();
      } catch { /* already closed */ }
    } else this.#file.destroy();
    if (this.#target !== this.path) await rm(this.#target, { force: true });
  }
}
