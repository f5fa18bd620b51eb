/**
 * Base backups: what `pg_basebackup` does, as a library ({@link baseBackup}). PostgreSQL 15+
 * protocol: `BASE_BACKUP (...)` answers with result sets (start position; tablespaces), one
 * COPY stream whose CopyData messages are `n` (new archive), `d` (archive bytes), `p`
 * (progress), `m` (manifest follows), and a result set with the end position.
 *
 * Output: a plain data directory (the tar streams extracted, tablespaces relocated with
 * {@link BaseBackupOptions.tablespaceMapping}) or tar files (`base.tar`, `<oid>.tar`,
 * `pg_wal.tar`), plus `backup_manifest`. WAL is streamed in parallel (`wal: "stream"`, the
 * default, as `pg_basebackup -X stream`) or included by the server (`"fetch"`).
 *
 * @module
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { createGzip } from "node:zlib";
import { type Codec, COMPRESSION_EXTENSIONS, createEncoder } from "../compress/mod.ts";
import { type Client, connect, type ConnectOptions, resolveConnInfo } from "../pg/mod.ts";
import { formatLsn, parseLsn } from "./_pgoutput.ts";
import { quoteLiteral, ReplicationError } from "./_slots.ts";
import { TAR_END, type TarEntry, tarHeader, tarPadding, TarReader, type TarSink } from "./_tar.ts";
import { replicationConnInfo } from "./_wal_stream.ts";
import { compressionOf, WalReceiver } from "./wal_receiver.ts";
import { fsyncAll, fsyncPath } from "./_fsync.ts";

/** Client-side compression methods of tar output (pg_basebackup 15 `-Z`). */
export type BackupCompressionMethod = "gzip" | "lz4" | "zstd";

/** Options of {@link baseBackup} (pg_basebackup's). */
export interface BaseBackupOptions {
  /** Connection string, URI or keyword record; `replication=true` is added. */
  connection: string | Record<string, string | undefined>;
  /** How to connect: `socketFactory` (e.g. rsockets), `password`, `env`, `homeDir`. */
  connectOptions?: ConnectOptions;
  /** Where to write: a directory that does not exist or is empty (not used with {@link tarOutput}). */
  directory?: string;
  /**
   * Write the tar of the main tablespace to this function instead of `base.tar` in
   * {@link directory} (pg_basebackup `-Ft -D -`): the backup manifest and the `-R` files become
   * members of it. Needs `format: "tar"`, a cluster without other tablespaces, and `wal` other
   * than `"stream"`. A chunk is a view valid until the call returns or its promise settles
   * (copy it to keep it); a returned promise holds the backup back until it settles.
   */
  tarOutput?: (chunk: Uint8Array) => void | Promise<void>;
  /** `"plain"` (a data directory, default) or `"tar"` (pg_basebackup `-Fp` / `-Ft`). */
  format?: "plain" | "tar";
  /**
   * WAL needed to start the backup: `"stream"` (default; a second connection streams it while
   * the backup runs), `"fetch"` (the server adds it at the end; it must still be on the server),
   * or `"none"` (pg_basebackup `-X`).
   */
  wal?: "stream" | "fetch" | "none";
  /** Checkpoint at the start: `"fast"` or `"spread"` (default, pg_basebackup `-c`). */
  checkpoint?: "fast" | "spread";
  /** Backup label (default "pg-rdma base backup"). */
  label?: string;
  /** Server-side transfer limit in kB/s, 32 to 1048576 (pg_basebackup `-r`). */
  maxRate?: number;
  /** Write `backup_manifest` (default true) with these checksums (default CRC32C). */
  manifest?: boolean;
  manifestChecksums?: "NONE" | "CRC32C" | "SHA224" | "SHA256" | "SHA384" | "SHA512";
  /**
   * Progress: bytes received so far and the expected total (the sum of the tablespace sizes the
   * server estimated, as pg_basebackup `-P` shows "x/y kB"; undefined when it did not say). Asks
   * the server to estimate sizes (`PROGRESS`).
   */
  onProgress?: (progress: { bytes: number; archive: string; total: number | undefined }) => void;
  /** Tablespace relocation, old location → new (pg_basebackup `-T old=new`); absolute paths. */
  tablespaceMapping?: Record<string, string>;
  /**
   * Write `standby.signal` and `primary_conninfo` (with `with_rsocket=true` when this backup ran
   * over rsockets) in `postgresql.auto.conf`, so the copy starts as a standby (pg_basebackup `-R`).
   */
  writeRecoveryConf?: boolean;
  /** Replication slot for WAL streaming, and `primary_slot_name` with {@link writeRecoveryConf} (`-S`). */
  slot?: string;
  /** Create {@link slot} first (`-C`). */
  createSlot?: boolean;
  /** fsync everything written (default true; false is `--no-sync`). */
  sync?: boolean;
  /**
   * Put the WAL directory here (absolute, not existing or empty) with `pg_wal` a symlink to it
   * (pg_basebackup `--waldir`); plain format only.
   */
  walDirectory?: string;
  /**
   * Compress tar output on the client, as pg_basebackup 15 `-z` / `-Z METHOD[:level]`; tar
   * format only. `"gzip"` (level 1-9, default 6): `base.tar.gz`, `pg_wal.tar.gz`; `"lz4"`
   * (levels 0-1, LZ4's fast mode): `base.tar.lz4`; `"zstd"` (1-22, default 3): `base.tar.zst`.
   * As pg_basebackup 15, a streamed `pg_wal.tar` is compressed with gzip only (its WAL writer
   * knows no other method); with `wal: "fetch"` the WAL is inside `base.tar.*`. LZ4 and zstd
   * come from compress/ (loaded on first use); every output reads back with `gzip -d`,
   * `lz4 -d`, `zstd -d`.
   */
  compression?: "none" | BackupCompressionMethod | { method: BackupCompressionMethod; level?: number };
  /**
   * Aborting stops the backup: the copy and the WAL stream end, the connections close, what the
   * backup wrote is removed (unless {@link clean} is false) and the promise rejects with the
   * signal's reason (an `AbortError` DOMException by default).
   */
  signal?: AbortSignal;
  /**
   * After a failure or an abort, remove what this backup wrote: the directories it created, the
   * contents of the empty ones it was given (default true; false is pg_basebackup `--no-clean`).
   */
  clean?: boolean;
  /** `application_name` of the connections. */
  applicationName?: string;
}

/** What {@link baseBackup} did. */
export interface BaseBackupResult {
  startLsn: bigint;
  endLsn: bigint;
  timeline: number;
  /** Archive bytes received (tar streams, without the manifest). */
  bytes: number;
  /** Tablespaces as the server listed them (oid, location, size in bytes when estimated). */
  tablespaces: { oid: number | null; location: string | null; size: number | null }[];
  /** Where the WAL stream started (`wal: "stream"`). */
  walStart?: bigint;
}

const MANIFEST = "backup_manifest";

/** Checks a member name is a relative path that stays inside its archive's directory. */
function safeJoin(root: string, name: string): string {
  const n = normalize(name);
  if (isAbsolute(n) || n === ".." || n.startsWith("../")) throw new ReplicationError(`archive member ${JSON.stringify(name)} escapes the target directory`);
  return join(root, n);
}

/**
 * One file written front to back, each piece (a 32 KiB CopyData message, mostly) as soon as it
 * comes. Not gathered into bigger writes: on the 2 GiB benchmark 1 MiB `writev` batches were
 * slower, not faster. The copy into the page cache is most of a backup's CPU time (61% of perf
 * samples), likely cheaper while the received bytes are still in the CPU's cache. A message split
 * across two socket reads is written as its two pieces: holding the short one back to `writev`
 * it with its neighbour cost Deno more than it saved (Deno 2.9's `writevSync` took 1.7x the CPU
 * of two `writeSync` calls for the same bytes; equal in Node and Bun).
 */
class OutFile {
  #fd: number | undefined;
  constructor(path: string, mode: number) {
    this.#fd = openSync(path, "w", mode);
  }
  write(b: Uint8Array): void {
    for (let w = 0; w < b.length;) w += writeSync(this.#fd!, b, w, b.length - w);
  }
  /** Closes the file, fsyncing it first with `sync`. */
  close(sync: boolean): void {
    const fd = this.#fd!;
    this.#fd = undefined;
    try {
      if (sync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  /** After a failure: closes the file. */
  abort(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/**
 * Extracts one tar stream into a directory. Files are closed without fsync; with `sync` they are
 * listed in {@link files} for {@link fsyncAll} once the backup is received.
 */
class Extractor implements TarSink {
  #root: string;
  #file: OutFile | undefined;
  #path = "";
  #sync: boolean;
  #mapLink: (name: string, target: string) => string;
  dirs: string[] = [];
  files: string[] = [];
  constructor(root: string, sync: boolean, mapLink: (name: string, target: string) => string) {
    this.#root = root;
    this.#sync = sync;
    this.#mapLink = mapLink;
  }
  entry(e: TarEntry): void {
    const path = safeJoin(this.#root, e.name);
    if (e.type === "directory") {
      mkdirSync(path, { recursive: true, mode: e.mode & 0o777 || 0o700 });
      this.dirs.push(path);
      return;
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (e.type === "symlink") {
      symlinkSync(this.#mapLink(e.name, e.linkname), path);
      return;
    }
    this.#file = new OutFile(path, e.mode & 0o777 || 0o600);
    this.#path = path;
  }
  data(b: Uint8Array): void {
    this.#file!.write(b);
  }
  endEntry(e: TarEntry): void {
    if (e.type !== "file") return;
    const f = this.#file!;
    this.#file = undefined;
    f.close(false);
    if (this.#sync) this.files.push(this.#path);
  }
  abort(): void {
    this.#file?.abort();
    this.#file = undefined;
  }
}

/** Where a tar stream goes: bytes in order, then {@link close} (durably with `sync`). */
interface Emitter {
  emit(b: Uint8Array): void | Promise<void>;
  close(sync: boolean): void | Promise<void>;
  /** After a failure: release what is open. */
  abort(): void;
}

/** A file written front to back. */
function fileEmitter(path: string): Emitter {
  const f = new OutFile(path, 0o600);
  return { emit: (b) => f.write(b), close: (sync) => f.close(sync), abort: () => f.abort() };
}

/** gzip in front of another output: the stream goes through zlib (off the main thread). */
function gzipEmitter(target: Emitter, level: number): Emitter {
  const gz = createGzip({ level });
  let failed: unknown;
  // zlib's output goes on in order; a slow target (a pipe) holds zlib's input back.
  let pending: Promise<void> = Promise.resolve();
  gz.on("data", (c: Uint8Array) => {
    const r = target.emit(c);
    if (r) {
      gz.pause();
      pending = r.then(() => void gz.resume(), (e) => {
        failed = e;
        gz.resume();
      });
    }
  });
  gz.on("error", (e: Error) => (failed = e));
  const ended = new Promise<void>((r) => gz.once("end", r));
  return {
    emit: (b) =>
      new Promise<void>((res, rej) => {
        if (failed) return rej(failed);
        gz.write(b, (e) => (e ? rej(e) : res()));
      }),
    async close(sync) {
      gz.end();
      await ended;
      await pending;
      if (failed) throw failed;
      await target.close(sync);
    },
    abort() {
      gz.destroy();
      target.abort();
    },
  };
}

/** Passes each chunk to `target` in order; a promise when the target wants us to wait. */
function emitEach(target: Emitter, chunks: Uint8Array[], i = 0): void | Promise<void> {
  for (; i < chunks.length; i++) {
    const r = target.emit(chunks[i]);
    if (r) {
      const next = i + 1;
      return r.then(() => emitEach(target, chunks, next));
    }
  }
}

/** Largest piece given to an LZ4/zstd encoder at once (pg_wal.tar passes whole 16 MiB segments). */
const CODEC_PIECE = 1 << 20;

/**
 * An LZ4 or zstd encoder of compress/ in front of another output. It runs here, synchronously,
 * on pieces of at most 1 MiB; the event loop turns between the pieces of a larger chunk.
 */
function codecEmitter(target: Emitter, codec: Codec): Emitter {
  const pieces = async (b: Uint8Array) => {
    for (let i = 0; i < b.length; i += CODEC_PIECE) {
      await emitEach(target, codec.push(b.subarray(i, i + CODEC_PIECE)));
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  return {
    emit: (b) => (b.length > CODEC_PIECE ? pieces(b) : emitEach(target, codec.push(b))),
    async close(sync) {
      await emitEach(target, codec.end());
      await target.close(sync);
    },
    abort() {
      target.abort();
    },
  };
}

/** A caller's function ({@link BaseBackupOptions.tarOutput}). */
function functionEmitter(fn: (b: Uint8Array) => void | Promise<void>): Emitter {
  return { emit: fn, close() {}, abort() {} };
}

const HOLD = 1024; // two tar blocks: an end-of-archive marker is never passed on before it is seen

/**
 * Passes one tar stream on front to back, parsing it on the way: it remembers
 * `postgresql.auto.conf` and holds back the last 1 KiB, so that an end-of-archive marker (when
 * the server sends one; PostgreSQL 15+ does not) is dropped and members can be appended.
 */
class TarOut implements TarSink {
  reader: TarReader;
  #out: Emitter;
  #tail = new Uint8Array(0);
  #in = 0;
  #sent = 0;
  #capture: Uint8Array[] | undefined;
  autoConf: Uint8Array | undefined;
  constructor(out: Emitter) {
    this.#out = out;
    this.reader = new TarReader(this);
  }
  /** Passes on what is safe to pass on; a promise when the output wants us to wait. */
  push(b: Uint8Array): void | Promise<void> {
    this.reader.push(b);
    const before = this.#in;
    this.#in += b.length;
    const end = this.reader.endOffset;
    const limit = end >= 0 ? end : this.#in - HOLD;
    const parts: Uint8Array[] = [];
    if (limit > this.#sent) {
      const fromTail = Math.min(this.#tail.length, limit - this.#sent);
      if (fromTail > 0) parts.push(this.#tail.subarray(0, fromTail));
      if (limit > before) parts.push(b.subarray(0, limit - before));
    }
    // Keep [max(limit, sent), in) as a copy (b is a view into the receive buffer).
    const keepFrom = Math.max(limit, this.#sent);
    const keep = end >= 0 ? 0 : this.#in - keepFrom;
    if (keep > 0) {
      const t = new Uint8Array(keep);
      const fromB = Math.min(keep, b.length);
      const fromOld = keep - fromB;
      if (fromOld > 0) t.set(this.#tail.subarray(this.#tail.length - fromOld));
      t.set(b.subarray(b.length - fromB), fromOld);
      this.#tail = t;
    } else this.#tail = new Uint8Array(0);
    this.#sent = Math.max(this.#sent, limit);
    return this.#emitAll(parts, 0);
  }
  #emitAll(parts: Uint8Array[], i: number): void | Promise<void> {
    for (; i < parts.length; i++) {
      const r = this.#out.emit(parts[i]);
      if (r) {
        const next = i + 1;
        return r.then(() => this.#emitAll(parts, next));
      }
    }
  }
  entry(e: TarEntry): void {
    if (e.name === "postgresql.auto.conf" && e.type === "file") this.#capture = [];
  }
  data(b: Uint8Array): void {
    this.#capture?.push(b.slice());
  }
  endEntry(): void {
    if (this.#capture) {
      this.autoConf = concat(this.#capture);
      this.#capture = undefined;
    }
  }
  /** After a failure: closes the output. */
  abort(): void {
    this.#out.abort();
  }
  /** Ends the archive: the held-back bytes, members appended, the end-of-archive marker. */
  async finish(extra: { name: string; content: Uint8Array }[], sync: boolean): Promise<void> {
    this.reader.finish();
    const parts: Uint8Array[] = [];
    if (this.reader.endOffset < 0) parts.push(this.#tail);
    this.#tail = new Uint8Array(0);
    const now = Math.floor(Date.now() / 1000);
    for (const x of extra) {
      parts.push(tarHeader({ type: "file", name: x.name, mode: 0o600, size: x.content.length, mtime: now }), x.content, tarPadding(x.content.length));
    }
    parts.push(TAR_END);
    await this.#emitAll(parts, 0);
    await this.#out.close(sync);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Escapes a value for a libpq connection string (`'...'` with `\` escapes). */
function connValue(v: string): string {
  return /^[A-Za-z0-9_./:@-]+$/.test(v) && v !== "" ? v : `'${v.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

const RECOVERY_KEYS = [
  "user", "password", "passfile", "channel_binding", "host", "hostaddr", "port", "sslmode", "sslcert", "sslkey",
  "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode",
  "krbsrvname", "target_session_attrs", "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
  "keepalives_count", "tcp_user_timeout",
] as const;

/**
 * The `postgresql.auto.conf` lines pg_basebackup `-R` writes: `primary_conninfo` from the
 * connection settings (plus `with_rsocket=true` when `withRsocket`), and `primary_slot_name`.
 */
export function recoveryConfLines(settings: Record<string, string | undefined>, options: { slot?: string; withRsocket?: boolean } = {}): string {
  const parts: string[] = [];
  for (const k of RECOVERY_KEYS) {
    const v = settings[k];
    if (v !== undefined && v !== "") parts.push(`${k}=${connValue(v)}`);
  }
  if (options.withRsocket) parts.push("with_rsocket=true");
  let out = "# Written by pg-rdma basebackup\n";
  out += `primary_conninfo = ${quoteGuc(parts.join(" "))}\n`;
  if (options.slot) out += `primary_slot_name = ${quoteGuc(options.slot)}\n`;
  return out;
}

function quoteGuc(v: string): string {
  return `'${v.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

function isEmptyDir(path: string): boolean {
  return !existsSync(path) || (statSync(path).isDirectory() && readdirSync(path).length === 0);
}

/** Packs the files of a directory (one level plus archive_status) into a tar stream. */
async function tarDirectory(dir: string, out: Emitter, sync: boolean): Promise<void> {
  const put = (b: Uint8Array) => out.emit(b);
  const walk = async (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      if (st.isDirectory()) {
        await put(tarHeader({ type: "directory", name: r, mode: 0o700, size: 0, mtime: st.mtimeMs / 1000 }));
        await walk(r);
      } else if (st.isFile()) {
        const content = readFileSync(join(dir, r));
        await put(tarHeader({ type: "file", name: r, mode: 0o600, size: content.length, mtime: st.mtimeMs / 1000 }));
        await put(content);
        await put(tarPadding(content.length));
      }
    }
  };
  await walk("");
  await put(TAR_END);
  await out.close(sync);
}

const CHECKSUMS = ["NONE", "CRC32C", "SHA224", "SHA256", "SHA384", "SHA512"];

/** Builds the BASE_BACKUP command (PostgreSQL 15+ syntax). Exported for tests. */
export function baseBackupCommand(o: Pick<BaseBackupOptions, "label" | "checkpoint" | "wal" | "maxRate" | "manifest" | "manifestChecksums"> & { progress?: boolean }): string {
  const opts = [`LABEL ${quoteLiteral(o.label ?? "pg-rdma base backup")}`];
  if (o.progress) opts.push("PROGRESS");
  if (o.checkpoint !== undefined) {
    if (o.checkpoint !== "fast" && o.checkpoint !== "spread") throw new TypeError(`checkpoint must be "fast" or "spread", got ${JSON.stringify(o.checkpoint)}`);
    opts.push(`CHECKPOINT '${o.checkpoint}'`);
  }
  if (o.wal === "fetch") opts.push("WAL");
  opts.push("WAIT");
  if (o.maxRate !== undefined) {
    if (!Number.isInteger(o.maxRate) || o.maxRate < 32 || o.maxRate > 1048576) throw new RangeError(`maxRate must be an integer from 32 to 1048576 (kB/s), got ${o.maxRate}`);
    opts.push(`MAX_RATE ${o.maxRate}`);
  }
  if (o.manifest === false) opts.push("MANIFEST 'no'");
  else {
    opts.push("MANIFEST 'yes'");
    const c = o.manifestChecksums ?? "CRC32C";
    if (!CHECKSUMS.includes(c)) throw new TypeError(`manifestChecksums must be one of ${CHECKSUMS.join(", ")}, got ${JSON.stringify(c)}`);
    opts.push(`MANIFEST_CHECKSUMS '${c}'`);
  }
  return `BASE_BACKUP (${opts.join(", ")})`;
}

function cstrAt(b: Uint8Array, p: number): [string, number] {
  let e = p;
  while (e < b.length && b[e] !== 0) e++;
  return [new TextDecoder().decode(b.subarray(p, e)), e + 1];
}

/**
 * What a backup wrote, to remove after a failure as pg_basebackup does: directories it created
 * go, directories that existed empty are emptied.
 */
class Written {
  #dirs: { path: string; created: boolean }[] = [];
  /** Makes `path` (absent or empty, else throws) and remembers it. */
  claim(path: string, what: string): void {
    if (!isEmptyDir(path)) throw new ReplicationError(`${what} "${path}" exists and is not empty`);
    const created = !existsSync(path);
    mkdirSync(path, { recursive: true, mode: 0o700 });
    this.#dirs.push({ path, created });
  }
  remove(): void {
    for (const { path, created } of this.#dirs.reverse()) {
      if (created) rmSync(path, { recursive: true, force: true });
      else if (existsSync(path)) for (const name of readdirSync(path)) rmSync(join(path, name), { recursive: true, force: true });
    }
  }
}

/**
 * Takes a base backup, as `pg_basebackup -D dir -Fp|-Ft -X stream|fetch`.
 *
 * @example
 * ```ts
 * const r = await baseBackup({
 *   connection: "host=db user=repl", directory: "/srv/standby", checkpoint: "fast", writeRecoveryConf: true,
 *   signal: AbortSignal.timeout(3_600_000),
 * });
 * console.log(formatLsn(r.startLsn), formatLsn(r.endLsn));
 * ```
 */
export async function baseBackup(options: BaseBackupOptions): Promise<BaseBackupResult> {
  if (!options || typeof options !== "object") throw new TypeError("baseBackup needs options");
  const o = options;
  const format = o.format ?? "plain";
  if (format !== "plain" && format !== "tar") throw new TypeError(`format must be "plain" or "tar", got ${JSON.stringify(format)}`);
  const walMode = o.wal ?? "stream";
  if (walMode !== "stream" && walMode !== "fetch" && walMode !== "none") throw new TypeError(`wal must be "stream", "fetch" or "none", got ${JSON.stringify(walMode)}`);
  const toFunction = o.tarOutput !== undefined;
  if (toFunction) {
    if (typeof o.tarOutput !== "function") throw new TypeError("tarOutput must be a function");
    if (format !== "tar") throw new TypeError('tarOutput needs format "tar"');
    if (walMode === "stream") throw new TypeError('tarOutput cannot be used with wal "stream" (the WAL would need a second output): use "fetch"');
  } else if (typeof o.directory !== "string" || o.directory === "") throw new TypeError("directory must be a path");
  const compression = compressionOf(o.compression);
  if (compression !== undefined && format !== "tar") throw new TypeError('compression needs format "tar" (only tar output can be compressed)');
  if (o.walDirectory !== undefined) {
    if (format !== "plain") throw new TypeError('walDirectory needs format "plain"');
    if (typeof o.walDirectory !== "string" || !isAbsolute(o.walDirectory)) throw new TypeError("walDirectory must be an absolute path");
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
  const mapping = new Map<string, string>();
  for (const [from, to] of Object.entries(o.tablespaceMapping ?? {})) {
    if (!isAbsolute(from) || !isAbsolute(to)) throw new TypeError(`tablespace mapping needs absolute paths: ${from}=${to}`);
    mapping.set(normalize(from), normalize(to));
  }
  const sql = baseBackupCommand({ ...o, progress: o.onProgress !== undefined });
  const sync = o.sync ?? true;
  o.signal?.throwIfAborted();
  const written = new Written();
  const root = toFunction ? "" : resolve(o.directory!);
  try {
    if (!toFunction) written.claim(root, "directory");
    if (o.walDirectory !== undefined) {
      written.claim(o.walDirectory, "WAL directory");
      symlinkSync(o.walDirectory, join(root, "pg_wal"));
    }
    return await run(o, { sql, sync, format, walMode, mapping, root, compression, written });
  } catch (e) {
    if (o.clean !== false) written.remove();
    throw o.signal?.aborted ? o.signal.reason : e;
  }
}

interface Plan {
  sql: string;
  sync: boolean;
  format: "plain" | "tar";
  walMode: "stream" | "fetch" | "none";
  mapping: Map<string, string>;
  root: string;
  compression: { method: BackupCompressionMethod; level: number } | undefined;
  written: Written;
}

async function run(o: BaseBackupOptions, plan: Plan): Promise<BaseBackupResult> {
  const { sql, sync, format, walMode, mapping, root, compression, written } = plan;
  const conninfo = replicationConnInfo(o.connection, o.applicationName ?? "pg_basebackup");
  const client: Client = await connect(conninfo, o.connectOptions);
  let receiver: WalReceiver | undefined;
  let receiving: Promise<unknown> | undefined;
  let walStart: bigint | undefined;
  const walDir = format === "plain" ? join(root, "pg_wal") : join(root, ".pg_wal.streaming");
  const tarExt = `.tar${COMPRESSION_EXTENSIONS[compression?.method ?? "none"]}`;
  // As pg_basebackup 15: its streamed WAL's tar writer compresses with gzip or not at all.
  const walCompression = compression?.method === "gzip" ? compression : undefined;
  const emitter = async (name: string, z: Plan["compression"]): Promise<Emitter> => {
    // The encoder first: a compression package that cannot load leaves no file behind.
    const codec = z && z.method !== "gzip" ? await createEncoder(z.method, z.level) : undefined;
    const out = o.tarOutput ? functionEmitter(o.tarOutput) : fileEmitter(join(root, name));
    if (z === undefined) return out;
    return codec ? codecEmitter(out, codec) : gzipEmitter(out, z.level);
  };
  // An abort closes the connections: the copy and the WAL stream then fail, and baseBackup() cleans up.
  const onAbort = () => {
    receiver?.stop();
    void client.close().catch(() => {});
  };
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    o.signal?.throwIfAborted();
    // In pieces: the archives' 32 KiB messages straddle the 64 KiB socket reads, and joining each
    // straddling one would copy half the backup into fresh memory once more. Extracted (plain),
    // every byte is written out or copied before the next batch is asked for, so the reads may
    // land in reused memory (`reuse`); a tar's compressor may still hold its input.
    const copy = client.copyBoth(sql, { batched: true, pieces: true, reuse: format === "plain" });
    // The start position and the tablespaces come before the archives (FACTS §3).
    const before = await copy.before();
    const startRow = before[0]?.rows[0] as Record<string, unknown> | undefined;
    if (!startRow) throw new ReplicationError("BASE_BACKUP did not report its start position");
    const startLsn = parseLsn(String(startRow.recptr));
    const timeline = Number(startRow.tli);
    const tablespaces = (before[1]?.rows ?? []).map((r) => ({
      oid: r.spcoid == null ? null : Number(r.spcoid),
      location: r.spclocation == null ? null : String(r.spclocation),
      size: r.size == null ? null : Number(r.size) * 1024,
    }));
    const total = tablespaces.length && tablespaces.every((t) => t.size !== null) ? tablespaces.reduce((n, t) => n + t.size!, 0) : undefined;
    if (o.tarOutput && tablespaces.length > 1) {
      throw new ReplicationError(`can only write single tablespace to stdout, database has ${tablespaces.length}`);
    }

    if (walMode === "stream") {
      mkdirSync(join(walDir, "archive_status"), { recursive: true, mode: 0o700 });
      let started!: (p: { lsn: bigint }) => void;
      let failed!: (e: unknown) => void;
      const ready = new Promise<{ lsn: bigint }>((a, b) => {
        started = a;
        failed = b;
      });
      // As pg_basebackup: stream from the backup's start on its timeline, from a slot created now
      // (a new physical slot reserves WAL from the last checkpoint's redo: the backup's start).
      receiver = new WalReceiver({
        connection: o.connection,
        connectOptions: o.connectOptions,
        applicationName: o.applicationName ?? "pg_basebackup",
        directory: walDir,
        startLsn,
        timeline,
        ...(o.slot !== undefined ? { slot: o.slot, createSlot: o.createSlot } : { createTempSlot: true }),
        partialSuffix: "",
        reconnect: false,
        sync,
        statusInterval: 1000,
        onStart: (p) => started(p),
        onSegment: (s) => writeFileSync(join(walDir, "archive_status", `${s.name}.done`), ""),
      });
      receiving = receiver.run().catch((e) => {
        failed(e);
        throw e;
      });
      receiving.catch(() => {});
      // Ended (stopped by an abort) before streaming started: fail instead of waiting forever.
      receiving.then(() => failed(new ReplicationError("WAL streaming ended before it started")), () => {});
      walStart = (await ready).lsn;
      if (walStart > startLsn) throw new ReplicationError(`WAL streaming started at ${formatLsn(walStart)}, after the backup's start ${formatLsn(startLsn)}`);
    }

    let bytes = 0;
    let archiveName = "";
    let extractor: Extractor | undefined;
    let reader: TarReader | undefined;
    let tarSink: TarOut | undefined;
    let mainTar: TarOut | undefined;
    let manifestFile: OutFile | undefined;
    let manifestParts: Uint8Array[] | undefined;
    const dirs: string[] = [root];
    const files: string[] = []; // extracted, to fsync at the end
    const endArchive = async () => {
      if (reader) {
        reader.finish();
        dirs.push(...extractor!.dirs);
        files.push(...extractor!.files);
      }
      if (tarSink && tarSink !== mainTar) await tarSink.finish([], sync);
      reader = undefined;
      extractor = undefined;
      tarSink = undefined;
    };
    // d: archive (or manifest) bytes, any part of a message (the tar reader takes any split).
    const data = (b: Uint8Array): void | Promise<void> => {
      if (manifestParts) manifestParts.push(b.slice());
      else if (manifestFile) manifestFile.write(b);
      else {
        bytes += b.length;
        if (reader) reader.push(b);
        else if (tarSink) return tarSink.push(b);
        else throw new ReplicationError("archive data arrived before any archive started");
      }
    };
    // The other messages, whole.
    const message = async (msg: Uint8Array): Promise<void> => {
      switch (msg[0]) {
        case 0x6e: { // n: new archive (name, tablespace location)
          await endArchive();
          const [name, p] = cstrAt(msg, 1);
          const [location] = cstrAt(msg, p);
          archiveName = name;
          if (!/^[A-Za-z0-9_.-]+\.tar$/.test(name)) throw new ReplicationError(`the server named an archive ${JSON.stringify(name)}`);
          if (format === "tar") {
            tarSink = new TarOut(await emitter(name.slice(0, -4) + tarExt, compression));
            if (location === "") mainTar = tarSink;
          } else {
            let dir = root;
            if (location !== "") {
              dir = mapping.get(normalize(location)) ?? location;
              if (!isEmptyDir(dir)) throw new ReplicationError(`tablespace directory "${dir}" exists and is not empty (map it elsewhere with tablespaceMapping)`);
              written.claim(dir, "tablespace directory");
              dirs.push(dir);
            }
            extractor = new Extractor(dir, sync, (member, target) =>
              member.startsWith("pg_tblspc/") ? mapping.get(normalize(target)) ?? target : target);
            reader = new TarReader(extractor);
          }
          break;
        }
        case 0x70: { // p: progress, Int64 bytes done
          const done = Number(new DataView(msg.buffer, msg.byteOffset, msg.byteLength).getBigInt64(1));
          o.onProgress?.({ bytes: done, archive: archiveName, total });
          break;
        }
        case 0x6d: // m: the manifest follows
          await endArchive();
          if (o.manifest !== false) {
            if (o.tarOutput) manifestParts = [];
            else manifestFile = new OutFile(join(root, `${MANIFEST}.tmp`), 0o600);
          }
          break;
        default:
          throw new ReplicationError(`unexpected message '${String.fromCharCode(msg[0])}' in the BASE_BACKUP stream`);
      }
    };
    try {
      let kind = 0; // the type of the message whose pieces are arriving
      let parts: Uint8Array[] | undefined; // a split message other than d, copied until whole
      for await (const batch of copy.batches()) {
        const { bytes: chunks, offsets } = batch;
        const last = chunks.length - 1;
        for (let i = 0; i <= last; i++) {
          const chunk = chunks[i];
          let start = offsets[2 * i];
          const end = offsets[2 * i + 1];
          if (i > 0 || batch.continued !== true) {
            if (start === end) throw new ReplicationError("empty message in the BASE_BACKUP stream");
            kind = chunk[start];
            if (kind === 0x64) start++;
          }
          if (kind === 0x64) {
            const wait = data(chunk.subarray(start, end));
            if (wait) await wait;
          } else if (i === last && batch.unfinished === true) (parts ??= []).push(chunk.slice(start, end));
          else if (parts) {
            parts.push(chunk.subarray(start, end));
            const whole = concat(parts);
            parts = undefined;
            await message(whole);
          } else await message(chunk.subarray(start, end));
        }
      }
      await endArchive();
    } catch (e) {
      extractor?.abort();
      tarSink?.abort();
      if (mainTar !== tarSink) mainTar?.abort();
      manifestFile?.abort();
      throw e;
    }
    const { after } = await copy.done.catch((e) => {
      manifestFile?.abort();
      throw e;
    });
    const endRow = after[0]?.rows[0] as Record<string, unknown> | undefined;
    if (!endRow) throw new ReplicationError("BASE_BACKUP did not report its end position");
    const endLsn = parseLsn(String(endRow.recptr));
    if (manifestFile) {
      manifestFile.close(sync);
      renameSync(join(root, `${MANIFEST}.tmp`), join(root, MANIFEST));
    }

    if (receiver) {
      receiver.stopAt(endLsn);
      await receiving;
      if (format === "tar") {
        await tarDirectory(walDir, await emitter(`pg_wal.tar${walCompression ? ".gz" : ""}`, walCompression), sync);
        rmSync(walDir, { recursive: true, force: true });
      }
    }

    // Members appended to the main tar: the manifest (to a function only) and the -R files.
    const extra: { name: string; content: Uint8Array }[] = [];
    if (manifestParts) extra.push({ name: MANIFEST, content: concat(manifestParts) });
    if (o.writeRecoveryConf) {
      // The server's address and the user as resolved (env, service), the rest as the caller gave it.
      const resolved = resolveConnInfo(conninfo, { env: o.connectOptions?.env, homeDir: o.connectOptions?.homeDir }).options;
      const settings: Record<string, string | undefined> = {};
      for (const k of RECOVERY_KEYS) if (conninfo[k] !== undefined) settings[k] = conninfo[k];
      for (const k of ["user", "host", "hostaddr", "port"]) if (resolved[k]) settings[k] = resolved[k];
      if (typeof o.connectOptions?.password === "string") settings.password = o.connectOptions.password;
      // Over rsockets when the client says so (its transport choice), or when they were demanded.
      const overRsocket = (client as { transport?: { transport?: string } }).transport?.transport === "rsocket" || resolved.with_rsocket === "true";
      const lines = recoveryConfLines(settings, { slot: o.slot, withRsocket: overRsocket });
      if (format === "plain") {
        const auto = join(root, "postgresql.auto.conf");
        writeFileSync(auto, lines, { flag: "a", mode: 0o600 });
        writeFileSync(join(root, "standby.signal"), "", { mode: 0o600 });
        if (sync) {
          fsyncPath(auto);
          fsyncPath(join(root, "standby.signal"));
        }
      } else if (mainTar) {
        const prev = mainTar.autoConf ?? new Uint8Array(0);
        extra.push({ name: "postgresql.auto.conf", content: concat([prev, new TextEncoder().encode(lines)]) });
        extra.push({ name: "standby.signal", content: new Uint8Array(0) });
      }
    }
    await mainTar?.finish(extra, sync);
    if (sync) await fsyncAll(files);
    if (sync && !o.tarOutput) for (const d of new Set(dirs)) if (existsSync(d)) fsyncPath(d);
    return { startLsn, endLsn, timeline, bytes, tablespaces, walStart };
  } catch (e) {
    receiver?.stop();
    await receiving?.catch(() => {});
    throw e;
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    await client.close().catch(() => {});
  }
}
