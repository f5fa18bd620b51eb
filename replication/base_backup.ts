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
  ftruncateSync,
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
import { type Client, connect, type ConnectOptions, resolveConnInfo } from "../pg/mod.ts";
import { formatLsn, parseLsn } from "./_pgoutput.ts";
import { identifySystem, quoteLiteral, ReplicationError } from "./_slots.ts";
import { TAR_END, type TarEntry, tarHeader, tarPadding, TarReader, type TarSink } from "./_tar.ts";
import { replicationConnInfo } from "./_wal_stream.ts";
import { WalReceiver } from "./wal_receiver.ts";

/** Options of {@link baseBackup} (pg_basebackup's). */
export interface BaseBackupOptions {
  /** Connection string, URI or keyword record; `replication=true` is added. */
  connection: string | Record<string, string | undefined>;
  /** How to connect: `socketFactory` (e.g. rsockets), `password`, `env`, `homeDir`. */
  connectOptions?: ConnectOptions;
  /** Where to write: a directory that does not exist or is empty. */
  directory: string;
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
  /** Progress: bytes received so far; asks the server to estimate sizes (`PROGRESS`). */
  onProgress?: (progress: { bytes: number; archive: string }) => void;
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

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Checks a member name is a relative path that stays inside its archive's directory. */
function safeJoin(root: string, name: string): string {
  const n = normalize(name);
  if (isAbsolute(n) || n === ".." || n.startsWith("../")) throw new ReplicationError(`archive member ${JSON.stringify(name)} escapes the target directory`);
  return join(root, n);
}

/** Extracts one tar stream into a directory. */
class Extractor implements TarSink {
  #root: string;
  #fd: number | undefined;
  #pos = 0;
  #sync: boolean;
  #mapLink: (name: string, target: string) => string;
  dirs: string[] = [];
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
    this.#fd = openSync(path, "w", e.mode & 0o777 || 0o600);
    this.#pos = 0;
  }
  data(b: Uint8Array): void {
    let w = 0;
    while (w < b.length) w += writeSync(this.#fd!, b, w, b.length - w, this.#pos + w);
    this.#pos += b.length;
  }
  endEntry(e: TarEntry): void {
    if (e.type !== "file") return;
    const fd = this.#fd!;
    this.#fd = undefined;
    if (this.#sync) fsyncSync(fd);
    closeSync(fd);
  }
  abort(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/** Copies one tar stream into a file; remembers where it ends and `postgresql.auto.conf`. */
class TarFileSink implements TarSink {
  fd: number;
  pos = 0;
  reader: TarReader;
  #capture: Uint8Array[] | undefined;
  autoConf: Uint8Array | undefined;
  constructor(path: string) {
    this.fd = openSync(path, "w", 0o600);
    this.reader = new TarReader(this);
  }
  push(b: Uint8Array): void {
    let w = 0;
    while (w < b.length) w += writeSync(this.fd, b, w, b.length - w, this.pos + w);
    this.pos += b.length;
    this.reader.push(b);
  }
  entry(e: TarEntry): void {
    if (e.name === "postgresql.auto.conf" && e.type === "file") this.#capture = [];
  }
  data(b: Uint8Array): void {
    this.#capture?.push(b.slice());
  }
  endEntry(): void {
    if (this.#capture) {
      const parts = this.#capture;
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      this.autoConf = out;
      this.#capture = undefined;
    }
  }
  /** Ends the archive (appending members first), with the end-of-archive marker. */
  finish(extra: { name: string; content: Uint8Array }[], sync: boolean): void {
    this.reader.finish();
    let at = this.reader.endOffset >= 0 ? this.reader.endOffset : this.pos;
    if (extra.length || this.reader.endOffset < 0) {
      ftruncateSync(this.fd, at);
      const now = Math.floor(Date.now() / 1000);
      const put = (b: Uint8Array) => {
        writeSync(this.fd, b, 0, b.length, at);
        at += b.length;
      };
      for (const x of extra) {
        put(tarHeader({ type: "file", name: x.name, mode: 0o600, size: x.content.length, mtime: now }));
        put(x.content);
        put(tarPadding(x.content.length));
      }
      put(TAR_END);
    }
    if (sync) fsyncSync(this.fd);
    closeSync(this.fd);
  }
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

/** Packs the files of a directory (one level plus archive_status) into a tar file. */
function tarDirectory(dir: string, out: string, sync: boolean): void {
  const fd = openSync(out, "w", 0o600);
  let at = 0;
  const put = (b: Uint8Array) => {
    let w = 0;
    while (w < b.length) w += writeSync(fd, b, w, b.length - w, at + w);
    at += b.length;
  };
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      if (st.isDirectory()) {
        put(tarHeader({ type: "directory", name: r, mode: 0o700, size: 0, mtime: st.mtimeMs / 1000 }));
        walk(r);
      } else if (st.isFile()) {
        const content = readFileSync(join(dir, r));
        put(tarHeader({ type: "file", name: r, mode: 0o600, size: content.length, mtime: st.mtimeMs / 1000 }));
        put(content);
        put(tarPadding(content.length));
      }
    }
  };
  walk("");
  put(TAR_END);
  if (sync) fsyncSync(fd);
  closeSync(fd);
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
 * Takes a base backup, as `pg_basebackup -D dir -Fp|-Ft -X stream|fetch`.
 *
 * @example
 * ```ts
 * const r = await baseBackup({
 *   connection: "host=db user=repl", directory: "/srv/standby", checkpoint: "fast", writeRecoveryConf: true,
 * });
 * console.log(formatLsn(r.startLsn), formatLsn(r.endLsn));
 * ```
 */
export async function baseBackup(options: BaseBackupOptions): Promise<BaseBackupResult> {
  if (!options || typeof options !== "object") throw new TypeError("baseBackup needs options");
  const o = options;
  if (typeof o.directory !== "string" || o.directory === "") throw new TypeError("directory must be a path");
  const format = o.format ?? "plain";
  if (format !== "plain" && format !== "tar") throw new TypeError(`format must be "plain" or "tar", got ${JSON.stringify(format)}`);
  const walMode = o.wal ?? "stream";
  if (walMode !== "stream" && walMode !== "fetch" && walMode !== "none") throw new TypeError(`wal must be "stream", "fetch" or "none", got ${JSON.stringify(walMode)}`);
  const mapping = new Map<string, string>();
  for (const [from, to] of Object.entries(o.tablespaceMapping ?? {})) {
    if (!isAbsolute(from) || !isAbsolute(to)) throw new TypeError(`tablespace mapping needs absolute paths: ${from}=${to}`);
    mapping.set(normalize(from), normalize(to));
  }
  const sql = baseBackupCommand({ ...o, progress: o.onProgress !== undefined });
  const sync = o.sync ?? true;
  const root = resolve(o.directory);
  if (!isEmptyDir(root)) throw new ReplicationError(`directory "${root}" exists and is not empty`);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const conninfo = replicationConnInfo(o.connection, o.applicationName ?? "pg_basebackup");
  const client: Client = await connect(conninfo, o.connectOptions);
  let receiver: WalReceiver | undefined;
  let receiving: Promise<unknown> | undefined;
  let walStart: bigint | undefined;
  const walDir = format === "plain" ? join(root, "pg_wal") : join(root, ".pg_wal.streaming");
  try {
    if (walMode === "stream") {
      mkdirSync(join(walDir, "archive_status"), { recursive: true, mode: 0o700 });
      // On a primary the backup starts at the redo point of a checkpoint requested after this
      // moment, so streaming may start at the current position (pg_basebackup starts at the
      // backup's start, which this client learns only after the copy). A standby starts from its
      // last restartpoint, which may be older: there the slot's restart position (its redo) is used.
      const [standby] = await client.simpleQuery<unknown[]>("SHOW in_hot_standby", { rowMode: "array" });
      const onPrimary = String(standby.rows[0]?.[0]) === "off";
      const here = onPrimary ? (await identifySystem(client)).xlogpos : undefined;
      let started!: (p: { lsn: bigint }) => void;
      let failed!: (e: unknown) => void;
      const ready = new Promise<{ lsn: bigint }>((a, b) => {
        started = a;
        failed = b;
      });
      receiver = new WalReceiver({
        connection: o.connection,
        connectOptions: o.connectOptions,
        applicationName: o.applicationName ?? "pg_basebackup",
        directory: walDir,
        startLsn: here,
        // The slot keeps the WAL from the backup's start until streamed; a temporary one unless named.
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
      walStart = (await ready).lsn;
    }
    const copy = client.copyBoth(sql);
    let bytes = 0;
    let archiveName = "";
    let extractor: Extractor | undefined;
    let reader: TarReader | undefined;
    let tarSink: TarFileSink | undefined;
    let mainTar: TarFileSink | undefined;
    let manifestFd: number | undefined;
    let manifestPos = 0;
    const dirs: string[] = [root];
    const endArchive = () => {
      if (reader) {
        reader.finish();
        dirs.push(...extractor!.dirs);
      }
      if (tarSink && tarSink !== mainTar) tarSink.finish([], sync);
      reader = undefined;
      extractor = undefined;
      tarSink = undefined;
    };
    try {
      for await (const msg of copy) {
        switch (msg[0]) {
          case 0x64: { // d: archive (or manifest) bytes
            const b = msg.subarray(1);
            if (manifestFd !== undefined) {
              let w = 0;
              while (w < b.length) w += writeSync(manifestFd, b, w, b.length - w, manifestPos + w);
              manifestPos += b.length;
              break;
            }
            bytes += b.length;
            if (reader) reader.push(b);
            else if (tarSink) tarSink.push(b);
            else throw new ReplicationError("archive data arrived before any archive started");
            break;
          }
          case 0x6e: { // n: new archive (name, tablespace location)
            endArchive();
            const [name, p] = cstrAt(msg, 1);
            const [location] = cstrAt(msg, p);
            archiveName = name;
            if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new ReplicationError(`the server named an archive ${JSON.stringify(name)}`);
            if (format === "tar") {
              tarSink = new TarFileSink(join(root, name));
              if (location === "") mainTar = tarSink;
            } else {
              let dir = root;
              if (location !== "") {
                dir = mapping.get(normalize(location)) ?? location;
                if (!isEmptyDir(dir)) throw new ReplicationError(`tablespace directory "${dir}" exists and is not empty (map it elsewhere with tablespaceMapping)`);
                mkdirSync(dir, { recursive: true, mode: 0o700 });
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
            o.onProgress?.({ bytes: done, archive: archiveName });
            break;
          }
          case 0x6d: // m: the manifest follows
            endArchive();
            if (o.manifest !== false) manifestFd = openSync(join(root, `${MANIFEST}.tmp`), "w", 0o600);
            break;
          default:
            throw new ReplicationError(`unexpected message '${String.fromCharCode(msg[0])}' in the BASE_BACKUP stream`);
        }
      }
      endArchive();
    } catch (e) {
      extractor?.abort();
      throw e;
    }
    const { before, after } = await copy.done;
    const startRow = before[0]?.rows[0] as Record<string, unknown> | undefined;
    const endRow = after[0]?.rows[0] as Record<string, unknown> | undefined;
    if (!startRow || !endRow) throw new ReplicationError("BASE_BACKUP did not report its start and end positions");
    const startLsn = parseLsn(String(startRow.recptr));
    const timeline = Number(startRow.tli);
    const endLsn = parseLsn(String(endRow.recptr));
    const tablespaces = (before[1]?.rows ?? []).map((r) => ({
      oid: r.spcoid == null ? null : Number(r.spcoid),
      location: r.spclocation == null ? null : String(r.spclocation),
      size: r.size == null ? null : Number(r.size) * 1024,
    }));
    if (manifestFd !== undefined) {
      if (sync) fsyncSync(manifestFd);
      closeSync(manifestFd);
      renameSync(join(root, `${MANIFEST}.tmp`), join(root, MANIFEST));
    }

    if (receiver) {
      if (walStart! > startLsn) throw new ReplicationError(`WAL streaming started at ${formatLsn(walStart!)}, after the backup's start ${formatLsn(startLsn)}`);
      receiver.stopAt(endLsn);
      await receiving;
      if (format === "tar") {
        tarDirectory(walDir, join(root, "pg_wal.tar"), sync);
        rmSync(walDir, { recursive: true, force: true });
      }
    }

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
        const add = new TextEncoder().encode(lines);
        const content = new Uint8Array(prev.length + add.length);
        content.set(prev);
        content.set(add, prev.length);
        mainTar.finish([{ name: "postgresql.auto.conf", content }, { name: "standby.signal", content: new Uint8Array(0) }], sync);
        mainTar = undefined;
      }
    }
    mainTar?.finish([], sync);
    if (sync) for (const d of new Set(dirs)) if (existsSync(d)) fsyncPath(d);
    return { startLsn, endLsn, timeline, bytes, tablespaces, walStart };
  } catch (e) {
    receiver?.stop();
    await receiving?.catch(() => {});
    throw e;
  } finally {
    await client.close().catch(() => {});
  }
}
