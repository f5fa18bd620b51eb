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
import { type WalCompressionMethod, WalReceiver } from "../replication/wal_receiver.ts";
import { parseCompression } from "../compress/mod.ts";
import { EXIT, UsageError } from "./_args.ts";
import type { CommandContext } from "./_commands.ts";
import { libraryConnection, openConnection } from "./_connect.ts";

const usage = (m: string) => new UsageError(m, { command: "receivewal" });

/**
 * `-Z`: `METHOD[:DETAIL]` with METHOD `none`, `gzip`, `lz4` or `zstd` and DETAIL `N` or
 * `level=N`, or a bare level (0 = none, 1-9 = gzip), as pg_receivewal 15 (compress/'s rules).
 */
export function parseWalCompression(text: string | undefined): "none" | { method: WalCompressionMethod; level?: number } {
  if (text === undefined) return "none";
  try {
    const spec = parseCompression(text);
    return spec.method === "none" ? "none" : { method: spec.method, ...(spec.level !== undefined ? { level: spec.level } : {}) };
  } catch (e) {
    throw usage((e as Error).message);
  }
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
