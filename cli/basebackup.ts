/**
 * `pg-rdma basebackup`: pg_basebackup on replication/'s {@link baseBackup}, over RDMA with
 * `--with-rsocket` (`-R` then writes `with_rsocket=true` into `primary_conninfo`, so the standby
 * streams over RDMA too). Plain or tar output (`-D -` with `-Ft`: the main tablespace's tar on
 * stdout), `-z`/`-Z gzip|lz4|zstd[:level]` for tar output, `--waldir`, `-X none|fetch|stream`,
 * `-c fast|spread`, `-P` progress with the server's size estimate as total, `-r` rate limit,
 * `-T` tablespace mapping, `-l`, `-S`/`-C`, manifests. SIGINT/SIGTERM abort the backup and
 * remove what it wrote (unless `--no-clean`), as pg_basebackup does.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { isAbsolute } from "node:path";
import { formatLsn } from "../replication/mod.ts";
import { type BackupCompressionMethod, baseBackup, type BaseBackupOptions } from "../replication/base_backup.ts";
import { checkCompression } from "../compress/mod.ts";
import { EXIT, UsageError } from "./_args.ts";
import type { CommandContext } from "./_commands.ts";
import { libraryConnection } from "./_connect.ts";

const usage = (m: string) => new UsageError(m, { command: "basebackup" });

/** `-r RATE`: kB/s, or with a `k` or `M` suffix, as pg_basebackup (32 kB/s to 1 GB/s). */
export function parseMaxRate(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kM]?)\s*$/.exec(text);
  if (!m) throw usage(`invalid transfer rate "${text}"`);
  const rate = Math.round(Number(m[1]) * (m[2] === "M" ? 1024 : 1));
  if (rate < 32 || rate > 1048576) {
    throw usage(`transfer rate "${text}" is out of range (32 kB/s to 1 GB/s)`);
  }
  return rate;
}

const CHECKSUMS = ["NONE", "CRC32C", "SHA224", "SHA256", "SHA384", "SHA512"] as const;

/**
 * `-Z [client-]METHOD[:DETAIL]` or a bare level, as pg_basebackup 15: METHOD `gzip` (1-9),
 * `lz4` (0-1: LZ4's fast mode, what compress/ offers) or `zstd` (1-22), DETAIL `N` or
 * `level=N`; compressed on the client (server-side compression is not offered). `-z` is `gzip`.
 */
export function parseBackupCompression(text: string | undefined, gzipFlag: boolean): "none" | { method: BackupCompressionMethod; level?: number } {
  if (text === undefined) return gzipFlag ? { method: "gzip" } : "none";
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const level = Number(t);
    if (level > 9) throw usage(`compression level ${level} is out of range (0-9)`);
    return level === 0 ? "none" : { method: "gzip", level };
  }
  const m = /^(?:(client|server)-)?([a-z0-9]+)(?::(.*))?$/.exec(t);
  if (!m) throw usage(`invalid compression specification "${text}"`);
  const [, where, method, detail] = m;
  if (method !== "gzip" && method !== "lz4" && method !== "zstd" && method !== "none") throw usage(`unrecognized compression algorithm: "${method}"`);
  if (where === "server") throw usage("server-side compression is not supported; use client-side compression (-Z gzip, lz4 or zstd)");
  if (method === "none") {
    if (detail !== undefined) throw usage(`compression algorithm "none" does not accept a compression level`);
    return "none";
  }
  if (detail === undefined) return { method };
  const lm = /^(?:level=)?(-?\d+)$/.exec(detail);
  if (!lm) throw usage(`invalid compression specification "${text}"`);
  const level = Number(lm[1]);
  if (method === "gzip" && (level < 1 || level > 9)) throw usage(`compression algorithm "gzip" expects a compression level between 1 and 9 (default at -1)`);
  try {
    checkCompression(method, level);
  } catch (e) {
    throw usage((e as Error).message);
  }
  return { method, level };
}

/** Runs `pg-rdma basebackup`; resolves to the exit status. */
export async function basebackupCommand(ctx: CommandContext): Promise<number> {
  const v = ctx.args.values;
  const format = String(v.format ?? "p").startsWith("t") ? "tar" : "plain";
  const walText = String(v["wal-method"] ?? "stream");
  const wal = walText.startsWith("n") ? "none" : walText.startsWith("f") ? "fetch" : "stream";
  const toStdout = v.pgdata === "-";
  // The checks and messages of pg_basebackup 15.
  if (toStdout && format !== "tar") throw usage("writing to stdout (-D -) needs tar format (-Ft)");
  if (toStdout && wal === "stream") throw usage("cannot stream write-ahead logs in tar mode to stdout");
  for (const unsupported of ["target", "incremental"]) {
    if (v[unsupported] !== undefined) throw usage(`--${unsupported} is not supported yet`);
  }
  const compression = parseBackupCompression(v.compress as string | undefined, v.gzip === true);
  if (format === "plain" && compression !== "none") throw usage("only tar mode backups can be compressed");
  if (v.slot !== undefined && wal !== "stream") throw usage("replication slots can only be used with WAL streaming");
  const waldir = v.waldir === undefined ? undefined : String(v.waldir);
  if (waldir !== undefined) {
    if (format !== "plain") throw usage("WAL directory location can only be specified in plain mode");
    if (!isAbsolute(waldir)) throw usage("WAL directory location must be an absolute path");
  }
  const mapping: Record<string, string> = {};
  for (const m of (v["tablespace-mapping"] as string[] | undefined) ?? []) {
    const eq = m.indexOf("=");
    const [from, to] = eq < 0 ? [m, ""] : [m.slice(0, eq), m.slice(eq + 1)];
    if (!from || !to) throw usage(`invalid tablespace mapping format "${m}", must be "OLDDIR=NEWDIR"`);
    if (!isAbsolute(from) || !isAbsolute(to)) throw usage(`tablespace mapping "${m}": directories must be absolute paths`);
    mapping[from] = to;
  }
  let manifestChecksums: BaseBackupOptions["manifestChecksums"];
  if (v["manifest-checksums"] !== undefined) {
    const c = String(v["manifest-checksums"]).toUpperCase();
    if (!(CHECKSUMS as readonly string[]).includes(c)) {
      throw usage(`invalid manifest checksum algorithm "${String(v["manifest-checksums"])}"`);
    }
    manifestChecksums = c as BaseBackupOptions["manifestChecksums"];
  }
  if (v["create-slot"] && v.slot === undefined) throw usage("--create-slot needs a slot to be specified using --slot");
  if (v["no-slot"] && v.slot !== undefined) throw usage("--no-slot cannot be used with --slot");

  const { connection, connectOptions } = await libraryConnection(ctx, { replication: "true" });
  const progress = v.progress ? ctx.progress({ label: "basebackup" }) : undefined;
  const dir = String(v.pgdata);
  const existed = existsSync(dir);
  const clean = v["no-clean"] !== true;
  // The tar goes to stdout as it arrives; a slow reader holds the backup back (not memory).
  type Out = {
    write(b: Uint8Array): boolean;
    once(e: "drain" | "error", cb: (e?: Error) => void): unknown;
    off?(e: "drain" | "error", cb: (e?: Error) => void): unknown;
  };
  const out = (typeof (ctx.stdout as unknown as Partial<Out>).once === "function" ? ctx.stdout : process.stdout) as unknown as Out;
  const tarOutput = (chunk: Uint8Array): void | Promise<void> => {
    // A copy: the chunk is a view the backup reuses, and the stream holds it until written.
    if (out.write(chunk.slice())) return;
    return new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        out.off?.("error", onError);
        resolve();
      };
      const onError = (e?: Error) => {
        out.off?.("drain", onDrain);
        reject(e);
      };
      out.once("drain", onDrain);
      out.once("error", onError);
    });
  };
  try {
    const r = await baseBackup({
      connection,
      connectOptions,
      ...(toStdout ? { tarOutput } : { directory: dir }),
      format,
      wal,
      compression,
      ...(waldir !== undefined ? { walDirectory: waldir } : {}),
      ...(v.checkpoint ? { checkpoint: v.checkpoint as "fast" | "spread" } : {}),
      ...(v.label ? { label: String(v.label) } : {}),
      ...(v["max-rate"] ? { maxRate: parseMaxRate(String(v["max-rate"])) } : {}),
      manifest: v["no-manifest"] !== true,
      ...(manifestChecksums ? { manifestChecksums } : {}),
      ...(Object.keys(mapping).length ? { tablespaceMapping: mapping } : {}),
      writeRecoveryConf: v["write-recovery-conf"] === true,
      ...(v.slot !== undefined ? { slot: String(v.slot) } : {}),
      createSlot: v["create-slot"] === true,
      sync: v["no-sync"] !== true,
      applicationName: "pg_basebackup",
      signal: ctx.signal,
      clean,
      ...(progress
        ? {
          onProgress: (p: { bytes: number; total: number | undefined }) => {
            if (p.total !== undefined && progress.total === undefined) {
              progress.total = p.total;
              ctx.debug(`the server estimates the backup at ${Math.round(p.total / 1024)} kB`);
            }
            progress.update(p.bytes);
          },
        }
        : {}),
    });
    progress?.finish();
    ctx.debug(`backup from ${formatLsn(r.startLsn)} to ${formatLsn(r.endLsn)} on timeline ${r.timeline}, ${r.bytes} bytes`);
  } catch (e) {
    progress?.finish(ctx.signal.aborted ? "interrupted" : "failed");
    if (!toStdout) {
      // baseBackup() removed what it wrote (clean); say so as pg_basebackup does.
      if (clean && (existed || !existsSync(dir))) ctx.info(`removed ${existed ? "contents of " : ""}data directory "${dir}"`);
      else if (!clean && existsSync(dir)) ctx.info(`data directory "${dir}" not removed at user's request`);
    }
    throw e;
  }
  return EXIT.ok;
}
