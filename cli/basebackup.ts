/**
 * `pg-rdma basebackup`: pg_basebackup on replication/'s {@link baseBackup}, over RDMA with
 * `--with-rsocket` (`-R` then writes `with_rsocket=true` into `primary_conninfo`, so the standby
 * streams over RDMA too). Plain or tar output, `-X none|fetch|stream`, `-c fast|spread`, `-P`
 * progress, `-r` rate limit, `-T` tablespace mapping, `-l`, `-S`/`-C`, manifests.
 *
 * @module
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { formatLsn } from "../replication/mod.ts";
import { baseBackup, type BaseBackupOptions } from "../replication/base_backup.ts";
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

/** Runs `pg-rdma basebackup`; resolves to the exit status. */
export async function basebackupCommand(ctx: CommandContext): Promise<number> {
  const v = ctx.args.values;
  const format = String(v.format ?? "p").startsWith("t") ? "tar" : "plain";
  const walText = String(v["wal-method"] ?? "stream");
  const wal = walText.startsWith("n") ? "none" : walText.startsWith("f") ? "fetch" : "stream";
  if (v.pgdata === "-") throw usage("writing a tar archive to stdout (-D -) is not supported; give a directory");
  for (const unsupported of ["target", "waldir", "incremental", "compress", "gzip"]) {
    if (v[unsupported] !== undefined) throw usage(`--${unsupported} is not supported yet`);
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
  // The library has no stop signal: SIGINT/SIGTERM abandon the backup (its connections close
  // when the process exits) and, as pg_basebackup, remove what was written unless --no-clean.
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(ctx.signal.reason);
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    const backup = baseBackup({
      connection,
      connectOptions,
      directory: String(v.pgdata),
      format,
      wal,
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
      ...(progress ? { onProgress: (p: { bytes: number }) => progress.update(p.bytes) } : {}),
    });
    backup.catch(() => {});
    const r = await Promise.race([backup, aborted]);
    progress?.finish();
    ctx.debug(`backup from ${formatLsn(r.startLsn)} to ${formatLsn(r.endLsn)} on timeline ${r.timeline}, ${r.bytes} bytes`);
  } catch (e) {
    progress?.finish(ctx.signal.aborted ? "interrupted" : "failed");
    if (v["no-clean"] !== true && existsSync(dir)) {
      ctx.info(`removing ${existed ? "contents of " : ""}data directory "${dir}"`);
      if (existed) for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
      else rmSync(dir, { recursive: true, force: true });
    } else if (existsSync(dir)) ctx.info(`data directory "${dir}" not removed at user's request`);
    throw e;
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
  }
  return EXIT.ok;
}
