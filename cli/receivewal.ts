/**
 * `pg-rdma receivewal`: pg_receivewal on replication/'s {@link WalReceiver}, over RDMA with
 * `--with-rsocket`. Segments are written as `<name>.partial` and renamed once complete; a restart
 * resumes from the directory. `--create-slot` / `--drop-slot` manage a physical slot and exit.
 * SIGINT/SIGTERM finish the current write, flush, and exit 130/143 (the open segment stays
 * `.partial`, as with pg_receivewal).
 *
 * @module
 */
import { PostgresError } from "../pg/mod.ts";
import { createReplicationSlot, dropReplicationSlot, formatLsn, parseLsn } from "../replication/mod.ts";
import { WalReceiver } from "../replication/wal_receiver.ts";
import { EXIT, UsageError } from "./_args.ts";
import type { CommandContext } from "./_commands.ts";
import { libraryConnection, openConnection } from "./_connect.ts";

const usage = (m: string) => new UsageError(m, { command: "receivewal" });

/** `-Z`: `none`, `gzip`, `gzip:N`, `gzip:level=N`, or a bare level (0 = none), as pg_receivewal. */
export function parseWalCompression(text: string | undefined): "none" | { method: "gzip"; level?: number } {
  if (text === undefined) return "none";
  const m = /^(?:(none|gzip|lz4|zstd)(?::(?:level=)?(\d+))?|(\d+))$/.exec(text.trim());
  if (!m) throw usage(`invalid compression specification "${text}"`);
  if (m[3] !== undefined) {
    const level = Number(m[3]);
    if (level > 9) throw usage(`compression level ${level} is out of range (0-9)`);
    return level === 0 ? "none" : { method: "gzip", level };
  }
  if (m[1] === "lz4" || m[1] === "zstd") throw usage(`${m[1]} compression is not supported (use gzip or none)`);
  if (m[1] === "none") return "none";
  const level = m[2] === undefined ? undefined : Number(m[2]);
  if (level !== undefined && (level < 1 || level > 9)) throw usage(`gzip level ${level} is out of range (1-9)`);
  return { method: "gzip", ...(level !== undefined ? { level } : {}) };
}

/** Runs `pg-rdma receivewal`; resolves to the exit status. */
export async function receivewalCommand(ctx: CommandContext): Promise<number> {
  const v = ctx.args.values;
  const slot = v.slot as string | undefined;
  let endpos: bigint | undefined;
  if (v.endpos !== undefined) {
    try {
      endpos = parseLsn(String(v.endpos));
    } catch {
      throw usage(`could not parse end position "${String(v.endpos)}"`);
    }
  }
  let statusInterval: number | undefined;
  if (v["status-interval"] !== undefined) {
    const n = Number(v["status-interval"]);
    if (!(n >= 0)) throw usage(`invalid status interval "${String(v["status-interval"])}"`);
    statusInterval = n * 1000;
  }
  const compression = parseWalCompression(v.compress as string | undefined);

  if (v["create-slot"] || v["drop-slot"]) {
    const client = await openConnection(ctx, { extra: { replication: "true" } });
    try {
      if (v["drop-slot"]) {
        ctx.debug(`dropping replication slot "${slot}"`);
        await dropReplicationSlot(client, slot!);
      } else {
        ctx.debug(`creating replication slot "${slot}"`);
        try {
          await createReplicationSlot(client, slot!, { kind: "physical", reserveWal: true });
        } catch (e) {
          if (!(v["if-not-exists"] && e instanceof PostgresError && e.code === "42710")) throw e;
          ctx.debug(`replication slot "${slot}" exists already`);
        }
      }
    } finally {
      await client.close();
    }
    return EXIT.ok;
  }

  const { connection, connectOptions } = await libraryConnection(ctx, { replication: "true" });
  // On a terminal, a status line of the WAL received (catch-up shows as a fast-moving count).
  const progress = ctx.stderr.isTTY === true ? ctx.progress({ label: "receivewal" }) : undefined;
  let from: bigint | undefined;
  const receiver = new WalReceiver({
    connection,
    connectOptions,
    directory: String(v.directory),
    ...(slot !== undefined ? { slot } : {}),
    ...(endpos !== undefined ? { endpos } : {}),
    ...(statusInterval !== undefined ? { statusInterval } : {}),
    synchronous: v.synchronous === true,
    compression,
    sync: v["no-sync"] !== true,
    reconnect: v["no-loop"] !== true,
    applicationName: "pg_receivewal",
    signal: ctx.signal,
    onStart: (p) => {
      from ??= p.lsn;
      ctx.debug(`starting log streaming at ${formatLsn(p.lsn)} (timeline ${p.timeline})`);
    },
    onSegment: (s) => ctx.debug(`finished segment ${s.name} at ${formatLsn(s.startLsn)} (timeline ${s.timeline})`),
    onRetry: (e) => ctx.info(`${e.message}; disconnected, waiting to try again`),
  });
  const tick = progress
    ? setInterval(() => {
      if (from !== undefined && receiver.written > from) progress.update(Number(receiver.written - from));
    }, 200)
    : undefined;
  let r;
  try {
    r = await receiver.run();
  } finally {
    clearInterval(tick);
    progress?.finish(ctx.signal.aborted ? "interrupted" : undefined);
  }
  ctx.debug(`stopped log streaming at ${formatLsn(r.lsn)} (timeline ${r.timeline}), ${r.segments} segment(s) completed`);
  return EXIT.ok;
}
