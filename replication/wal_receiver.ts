/**
 * The physical WAL receiver: what `pg_receivewal` does, as a library ({@link WalReceiver}), and
 * the same stream as WAL chunks for callers that ship WAL elsewhere ({@link streamWal}).
 *
 * The receiver writes PostgreSQL's segment files (`TTTTTTTTXXXXXXXXYYYYYYYY`, the server's
 * `wal_segment_size`) into a directory, as `.partial` until complete, then renamed; each file and
 * the directory are fsynced. It resumes from the highest segment on disk (re-fetching a
 * `.partial` from its start), else the slot's `restart_lsn`, else the server's position; it follows
 * timeline switches (writing the `.history` file) and reconnects after failures.
 *
 * @module
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { gzip } from "node:zlib";
import { checkCompression, compress, COMPRESSION_EXTENSIONS } from "../compress/mod.ts";
import { formatLsn } from "./_pgoutput.ts";
import { PhysicalStream, type PhysicalStreamOptions, type StartContext } from "./_wal_stream.ts";
import { ReplicationError } from "./_slots.ts";
import { parseSegmentFileName, segmentName } from "./_wal_segment.ts";
import { fsyncPath } from "./_fsync.ts";

export type { PhysicalStreamOptions } from "./_wal_stream.ts";

/** Options of {@link WalReceiver} (pg_receivewal's, with PostgreSQL's setting names). */
export interface WalReceiverOptions extends PhysicalStreamOptions {
  /** The archive directory (created if missing). */
  directory: string;
  /** Where to start when the directory holds no WAL (rounded down to its segment's start). */
  startLsn?: bigint;
  /** Timeline to start on with {@link startLsn} (default the server's). */
  timeline?: number;
  /** Stop once WAL up to this position is written (pg_receivewal `-E`). */
  endpos?: bigint;
  /**
   * fsync as soon as WAL arrives and report the flush position at once, so a primary that
   * names {@link applicationName} in `synchronous_standby_names` waits for this archive
   * (pg_receivewal `--synchronous`).
   */
  synchronous?: boolean;
  /**
   * Compress completed segments into `<name>.gz` (gzip level 1-9, default 6), `<name>.lz4` (LZ4
   * frame, levels 0-1: fast mode only) or `<name>.zst` (zstd level 1-22, default 3), as
   * pg_receivewal `--compress`; `gunzip`, `lz4 -d` and `zstd -d` restore the segment.
   */
  compression?: "none" | WalCompressionMethod | { method: WalCompressionMethod; level?: number };
  /** Suffix of segments being written; "" writes them under their final name (as base backups do). Default ".partial". */
  partialSuffix?: string;
  /** fsync files and the directory (default true; false is pg_receivewal `--no-sync`). */
  sync?: boolean;
  /** Called after each segment is complete (renamed, compressed) on disk. */
  onSegment?: (segment: { name: string; timeline: number; startLsn: bigint }) => void;
  /** Called when streaming starts (on every connection) with the start position. */
  onStart?: (position: { lsn: bigint; timeline: number }) => void;
}

/** Compression methods of completed segments. */
export type WalCompressionMethod = "gzip" | "lz4" | "zstd";

/** How a {@link WalReceiver.run} ended. */
export interface WalReceiverResult {
  /** End of the WAL written. */
  lsn: bigint;
  timeline: number;
  /** Complete segments written by this run. */
  segments: number;
}

/**
 * Where an archive directory resumes, as pg_receivewal's FindStreamingStart: after the highest
 * complete segment, or at the start of the highest `.partial` one; undefined when there is none.
 */
export function findStreamingStart(dir: string, segmentSize: number): { lsn: bigint; timeline: number } | undefined {
  if (!existsSync(dir)) return undefined;
  let best: { segno: bigint; tli: number; partial: boolean } | undefined;
  for (const name of readdirSync(dir)) {
    const f = parseSegmentFileName(name, segmentSize);
    if (!f) continue;
    if (
      !best || f.segno > best.segno || (f.segno === best.segno && f.tli > best.tli) ||
      (f.segno === best.segno && f.tli === best.tli && best.partial && !f.partial)
    ) best = { segno: f.segno, tli: f.tli, partial: f.partial };
  }
  if (!best) return undefined;
  const seg = best.partial ? best.segno : best.segno + 1n;
  return { lsn: seg * BigInt(segmentSize), timeline: best.tli };
}

const gzipAsync = (data: Uint8Array, level: number) =>
  new Promise<Uint8Array>((resolve, reject) => gzip(data, { level }, (e, r) => (e ? reject(e) : resolve(r))));

/** Writes WAL into segment files. */
class SegmentWriter {
  #dir: string;
  #segSize: number;
  #suffix: string;
  #sync: boolean;
  #compression: { method: WalCompressionMethod; level: number } | undefined;
  #fd: number | undefined;
  #name = "";
  #tli = 0;
  #segno = -1n;
  written = 0n;
  flushed = 0n;
  completed = 0;
  onSegment: WalReceiverOptions["onSegment"];

  constructor(dir: string, segSize: number, suffix: string, sync: boolean, compression: { method: WalCompressionMethod; level: number } | undefined) {
    this.#dir = dir;
    this.#segSize = segSize;
    this.#suffix = suffix;
    this.#sync = sync;
    this.#compression = compression;
  }

  get open(): boolean {
    return this.#fd !== undefined;
  }

  #openSegment(tli: number, segno: bigint): void {
    const name = segmentName(tli, segno, this.#segSize);
    const path = join(this.#dir, name + this.#suffix);
    let fd: number;
    if (existsSync(path)) {
      fd = openSync(path, "r+");
      // A pre-padded file of the right size is overwritten in place, as pg_receivewal does.
      if (fstatSync(fd).size !== this.#segSize) ftruncateSync(fd, this.#segSize);
    } else {
      fd = openSync(path, "w", 0o600);
      // Full size from the start (zeros), so a crash never leaves a short segment.
      ftruncateSync(fd, this.#segSize);
      if (this.#sync) {
        fsyncSync(fd);
        fsyncPath(this.#dir);
      }
    }
    this.#fd = fd;
    this.#name = name;
    this.#tli = tli;
    this.#segno = segno;
  }

  /** Writes WAL starting at `lsn` on `tli`; completes segments it fills. */
  async write(tli: number, lsn: bigint, data: Uint8Array): Promise<void> {
    const size = BigInt(this.#segSize);
    let p = 0;
    while (p < data.length) {
      const segno = lsn / size;
      const off = Number(lsn % size);
      if (this.#fd !== undefined && (segno !== this.#segno || tli !== this.#tli)) this.close();
      if (this.#fd === undefined) {
        if (off !== 0 && !existsSync(join(this.#dir, segmentName(tli, segno, this.#segSize) + this.#suffix))) {
          throw new ReplicationError(`received WAL at ${formatLsn(lsn)}, inside segment ${segmentName(tli, segno, this.#segSize)} that has no file`);
        }
        this.#openSegment(tli, segno);
      }
      const n = Math.min(data.length - p, this.#segSize - off);
      let w = 0;
      while (w < n) w += writeSync(this.#fd!, data, p + w, n - w, off + w);
      p += n;
      lsn += BigInt(n);
      this.written = lsn;
      if (off + n === this.#segSize) await this.#complete();
    }
  }

  /** fsyncs the open segment; everything written is then durable. */
  flush(): void {
    if (this.#fd !== undefined && this.#sync) fsyncSync(this.#fd);
    this.flushed = this.written;
  }

  async #complete(): Promise<void> {
    const fd = this.#fd!;
    this.#fd = undefined;
    if (this.#sync) fsyncSync(fd);
    closeSync(fd);
    const from = join(this.#dir, this.#name + this.#suffix);
    const to = join(this.#dir, this.#name);
    const z = this.#compression;
    if (z !== undefined) {
      // gzip runs on zlib's thread pool; lz4/zstd run here in 1 MiB pieces between which
      // the event loop turns (status updates and keepalives go on).
      const raw = readFileSync(from);
      const gz = z.method === "gzip" ? await gzipAsync(raw, z.level) : await compress(raw, z.method, z.level);
      const ext = COMPRESSION_EXTENSIONS[z.method];
      const tmp = `${to}${ext}.partial`;
      writeFileSync(tmp, gz, { mode: 0o600 });
      if (this.#sync) {
        const f = openSync(tmp, "r+");
        fsyncSync(f);
        closeSync(f);
      }
      renameSync(tmp, `${to}${ext}`);
      unlinkSync(from);
    } else if (from !== to) renameSync(from, to);
    if (this.#sync) fsyncPath(this.#dir);
    this.flushed = this.written;
    this.completed++;
    this.onSegment?.({ name: this.#name, timeline: this.#tli, startLsn: this.#segno * BigInt(this.#segSize) });
  }

  /** Closes the open segment without completing it (it stays `.partial`), durably. */
  close(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    if (this.#sync) fsyncSync(fd);
    closeSync(fd);
    this.flushed = this.written;
  }

  /** Writes a timeline history file (via `.tmp` and rename) unless it is there already. */
  writeHistory(filename: string, content: Uint8Array): void {
    const path = join(this.#dir, filename);
    if (existsSync(path)) return;
    writeFileSync(`${path}.tmp`, content, { mode: 0o600 });
    if (this.#sync) {
      const f = openSync(`${path}.tmp`, "r+");
      fsyncSync(f);
      closeSync(f);
    }
    renameSync(`${path}.tmp`, path);
    if (this.#sync) fsyncPath(this.#dir);
  }
}

/**
 * The `compression` option of the WAL receiver and of base backups, checked (compress/'s levels):
 * the method and its level, or undefined for none.
 */
export function compressionOf(c: WalReceiverOptions["compression"]): { method: WalCompressionMethod; level: number } | undefined {
  if (c === undefined || c === "none") return undefined;
  const [method, level] = typeof c === "object" && c ? [c.method, c.level] : [c, undefined];
  if (method !== "gzip" && method !== "lz4" && method !== "zstd") {
    throw new TypeError(`compression must be "none", "gzip", "lz4", "zstd" or { method, level }, got ${JSON.stringify(c)}`);
  }
  const spec = checkCompression(method, level);
  return spec.method === "none" ? undefined : { method, level: spec.level };
}

function checkLsn(v: unknown, name: string): bigint | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "bigint" || v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new TypeError(`${name} must be an LSN as a bigint (parseLsn("0/16B3748")), got ${String(v)}`);
  return v;
}

/**
 * Streams WAL from a server into an archive directory, as `pg_receivewal -D dir`.
 *
 * Flush is reported to the server only with a slot or {@link WalReceiverOptions.synchronous}
 * (as pg_receivewal does), and apply as 0. Without `synchronous`, files are fsynced when a
 * segment is complete and when the receiver stops.
 *
 * @example
 * ```ts
 * const rx = new WalReceiver({ connection: "host=db user=repl", directory: "/archive", slot: "archive", createSlot: true });
 * setTimeout(() => rx.stop(), 60_000);
 * const { lsn, timeline } = await rx.run();
 * ```
 */
export class WalReceiver {
  #o: WalReceiverOptions;
  #stream: PhysicalStream;
  #compression: { method: WalCompressionMethod; level: number } | undefined;
  #endpos: bigint | undefined;
  #running = false;

  constructor(options: WalReceiverOptions) {
    if (!options || typeof options !== "object") throw new TypeError("WalReceiver needs options");
    if (typeof options.directory !== "string" || options.directory === "") throw new TypeError("directory must be a path");
    this.#compression = compressionOf(options.compression);
    this.#endpos = checkLsn(options.endpos, "endpos");
    checkLsn(options.startLsn, "startLsn");
    if (options.partialSuffix !== undefined && (typeof options.partialSuffix !== "string" || options.partialSuffix.includes("/"))) {
      throw new TypeError("partialSuffix must be a file name suffix");
    }
    this.#o = options;
    this.#stream = new PhysicalStream(options, options.slot !== undefined || !!options.synchronous || !!options.createTempSlot);
  }

  /** Asks the receiver to stop: the current write finishes, files are flushed, run() resolves. */
  stop(): void {
    this.#stream.stop();
  }

  /** Sets (or moves) the end position while running; stops at once if it is already written. */
  stopAt(lsn: bigint): void {
    this.#endpos = checkLsn(lsn, "endpos");
    if (this.#written >= lsn) this.#stream.stop();
  }

  /** End of the WAL written so far. */
  get written(): bigint {
    return this.#written;
  }
  #written = 0n;

  /** Receives until {@link stop}, `endpos`, the signal, or a failure that is not retried. */
  async run(): Promise<WalReceiverResult> {
    if (this.#running) throw new Error("WalReceiver.run() is already running");
    this.#running = true;
    const o = this.#o;
    mkdirSync(o.directory, { recursive: true, mode: 0o700 });
    const stream = this.#stream;
    let writer: SegmentWriter | undefined;
    let timeline = 0;
    let syncScheduled = false;
    let syncError: unknown;
    const start = (ctx: StartContext) => {
      writer?.close(); // a reconnect: the open segment stays .partial and is re-fetched
      writer ??= new SegmentWriter(o.directory, ctx.segmentSize, o.partialSuffix ?? ".partial", o.sync ?? true, this.#compression);
      writer.onSegment = o.onSegment;
      const seg = BigInt(ctx.segmentSize);
      const found = findStreamingStart(o.directory, ctx.segmentSize);
      let pos: { lsn: bigint; timeline: number };
      if (found) pos = found;
      else if (o.startLsn !== undefined) pos = { lsn: o.startLsn, timeline: o.timeline ?? ctx.identity.timeline };
      else if (ctx.slotRestart) pos = { lsn: ctx.slotRestart.lsn, timeline: ctx.slotRestart.timeline ?? ctx.identity.timeline };
      else pos = { lsn: ctx.identity.xlogpos, timeline: ctx.identity.timeline };
      pos.lsn -= pos.lsn % seg;
      writer.written = writer.flushed = this.#written = pos.lsn;
      stream.written = stream.flushed = pos.lsn;
      timeline = pos.timeline;
      if (this.#endpos !== undefined && pos.lsn >= this.#endpos) stream.stop();
      o.onStart?.(pos);
      return pos;
    };
    try {
      for await (const ev of stream.events(start)) {
        if (syncError) throw syncError;
        const w = writer!;
        if (ev.type === "timeline") {
          w.close();
          w.writeHistory(ev.history.filename, ev.history.content);
          timeline = ev.timeline;
          continue;
        }
        let data = ev.data;
        if (this.#endpos !== undefined && ev.startLsn + BigInt(data.length) > this.#endpos) {
          // Write what arrived up to the end of its page, as pg_receivewal does; then stop.
          stream.stop();
        }
        if (stream.stopping && this.#endpos !== undefined && ev.startLsn >= this.#endpos) data = data.subarray(0, 0);
        await w.write(ev.timeline, ev.startLsn, data);
        timeline = ev.timeline;
        stream.written = this.#written = w.written;
        stream.flushed = w.flushed;
        if (o.synchronous && !syncScheduled) {
          // Batch: flush once the messages that arrived together are written.
          syncScheduled = true;
          setImmediate(() => {
            syncScheduled = false;
            try {
              w.flush();
              stream.flushed = w.flushed;
              stream.sendStatus();
            } catch (e) {
              syncError = e;
            }
          });
        }
        if (this.#endpos !== undefined && w.written >= this.#endpos) stream.stop();
      }
      if (syncError) throw syncError;
    } finally {
      writer?.close();
      this.#running = false;
    }
    return { lsn: writer?.written ?? 0n, timeline, segments: writer?.completed ?? 0 };
  }
}

/** One piece of WAL from {@link streamWal}. */
export interface WalChunk {
  /** Where `data` starts in WAL. */
  startLsn: bigint;
  /** `startLsn + data.length`. */
  endLsn: bigint;
  /** The WAL bytes: a view, valid until the next chunk is asked for (copy to keep it). */
  data: Uint8Array;
  timeline: number;
  /** Marks the chunk durable wherever it was shipped: the flush position reported advances to {@link endLsn}. */
  ack(): void;
}

/** Options of {@link streamWal}. */
export interface StreamWalOptions extends PhysicalStreamOptions {
  /** Where to start (default: the slot's restart position, else the start of the server's current segment). */
  startLsn?: bigint;
  /** Timeline of {@link startLsn} (default the server's). */
  timeline?: number;
  /** Stop after the chunk that reaches this position. */
  endpos?: bigint;
}

/** The WAL chunk stream of {@link streamWal}. */
export class WalStream implements AsyncIterable<WalChunk> {
  #stream: PhysicalStream;
  #o: StreamWalOptions;
  constructor(options: StreamWalOptions) {
    checkLsn(options?.startLsn, "startLsn");
    checkLsn(options?.endpos, "endpos");
    this.#o = options;
    this.#stream = new PhysicalStream(options, true);
  }
  /** Ends the stream cleanly; the iteration then finishes. */
  stop(): void {
    this.#stream.stop();
  }
  /** Reports WAL up to `lsn` as flushed (what {@link WalChunk.ack} does). */
  ack(lsn: bigint): void {
    if (lsn > this.#stream.flushed) {
      this.#stream.flushed = lsn;
      this.#stream.sendStatus();
    }
  }
  /**
   * The chunks, in WAL order per timeline. After a reconnect the stream resumes where the last
   * acknowledged chunk ended (chunks delivered but not acknowledged come again); after a timeline switch it restarts on the new timeline at the start
   * of the segment holding the switch point (so `startLsn` goes back once, `timeline` says why).
   */
  async *[Symbol.asyncIterator](): AsyncIterator<WalChunk> {
    const o = this.#o;
    const s = this.#stream;
    let resume: { lsn: bigint; timeline: number } | undefined;
    const start = (ctx: StartContext) => {
      if (resume) return resume;
      const seg = BigInt(ctx.segmentSize);
      if (o.startLsn !== undefined) resume = { lsn: o.startLsn, timeline: o.timeline ?? ctx.identity.timeline };
      else if (ctx.slotRestart) resume = { lsn: ctx.slotRestart.lsn - (ctx.slotRestart.lsn % seg), timeline: ctx.slotRestart.timeline ?? ctx.identity.timeline };
      else resume = { lsn: ctx.identity.xlogpos - (ctx.identity.xlogpos % seg), timeline: ctx.identity.timeline };
      s.written = s.flushed = resume.lsn;
      return resume;
    };
    for await (const ev of s.events(start)) {
      if (ev.type === "timeline") {
        resume = { lsn: ev.switchLsn - (ev.switchLsn % BigInt(s.segmentSize)), timeline: ev.timeline };
        continue;
      }
      const endLsn = ev.startLsn + BigInt(ev.data.length);
      const timeline = ev.timeline;
      s.written = endLsn;
      // A reconnect resumes after the last chunk the caller acknowledged, not the last one
      // delivered: a chunk delivered but not yet stored elsewhere comes again (at least once).
      const ack = () => {
        if (resume && (timeline > resume.timeline || (timeline === resume.timeline && endLsn > resume.lsn))) {
          resume = { lsn: endLsn, timeline };
        }
        this.ack(endLsn);
      };
      yield { startLsn: ev.startLsn, endLsn, data: ev.data, timeline, ack };
      if (o.endpos !== undefined && endLsn >= o.endpos) s.stop();
    }
  }
}

/**
 * The server's WAL as an async iterable of chunks, for shipping WAL elsewhere; `ack()` each
 * chunk once it is durable there, which drives the flush position the server sees (and so the
 * slot, and synchronous commits).
 *
 * @example
 * ```ts
 * const wal = streamWal({ connection: "host=db user=repl", slot: "shipper", createSlot: true });
 * for await (const chunk of wal) {
 *   await upload(chunk.timeline, chunk.startLsn, chunk.data);
 *   chunk.ack();
 * }
 * ```
 */
export function streamWal(options: StreamWalOptions): WalStream {
  if (!options || typeof options !== "object") throw new TypeError("streamWal needs options");
  return new WalStream(options);
}
