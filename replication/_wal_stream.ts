/**
 * The physical replication session under the WAL receiver, the WAL chunk stream and the
 * `-X stream` of base backups: connect (`replication=true`), `IDENTIFY_SYSTEM`, the slot,
 * `START_REPLICATION ... PHYSICAL`, status updates on a timer and on request, the receiver
 * timeout, end-of-timeline handling (FACTS §3) and reconnecting after `retryInterval`.
 *
 * It yields WAL and timeline switches; the consumer says where to start (on every connection)
 * and what it has written and flushed (reported to the server).
 *
 * @module
 */
import { type Client, connect, type ConnectOptions, ConnectionError, parseConnectionString, PostgresError } from "../pg/mod.ts";
import type { CopyBoth } from "../pg/client.ts";
import { formatLsn, parseLsn } from "./_pgoutput.ts";
import { decodeReplicationMessage, encodeHotStandbyFeedback, encodeStandbyStatus, type HotStandbyFeedback } from "./_protocol.ts";
import {
  createReplicationSlot,
  identifySystem,
  quoteIdent,
  readReplicationSlot,
  ReplicationError,
  serverVersionNum,
  type SystemIdentity,
  timelineHistory,
} from "./_slots.ts";
import { checkSegmentSize, parseSizeSetting } from "./_wal_segment.ts";

/** Options shared by everything that streams physical WAL. */
export interface PhysicalStreamOptions {
  /** Connection string, URI or keyword record; `replication=true` is added. */
  connection: string | Record<string, string | undefined>;
  /** How to connect: `socketFactory` (e.g. rsockets), `password`, `env`, `homeDir`. */
  connectOptions?: ConnectOptions;
  /** `application_name` of the session (what `synchronous_standby_names` names). Default "pg-rdma". */
  applicationName?: string;
  /** Physical replication slot to stream from (↔ `primary_slot_name`). */
  slot?: string;
  /** Create {@link slot} when it does not exist (with reserved WAL). */
  createSlot?: boolean;
  /**
   * Stream from a temporary slot created on each connection (↔ `wal_receiver_create_temp_slot`);
   * it keeps WAL only while connected. Not with {@link slot}.
   */
  createTempSlot?: boolean;
  /** ms between status updates (↔ `wal_receiver_status_interval`, in ms here). Default 10000; 0: only when asked. */
  statusInterval?: number;
  /** ms of silence from the server after which the connection is dropped (↔ `wal_receiver_timeout`). Default 60000; 0 disables. */
  receiverTimeout?: number;
  /** ms to wait before reconnecting (↔ `wal_retrieve_retry_interval`). Default 5000. */
  retryInterval?: number;
  /** Reconnect after a lost connection (pg_receivewal without `--no-loop`). Default true. */
  reconnect?: boolean;
  /** Sends hot standby feedback with every status update: the xmin this function returns. */
  hotStandbyFeedback?: () => HotStandbyFeedback;
  /** Stops the stream cleanly when aborted. */
  signal?: AbortSignal;
  /** Told about each failure that a reconnect follows. */
  onRetry?: (error: Error) => void;
}

/** What a session yields. */
export type PhysicalEvent =
  | { type: "wal"; startLsn: bigint; data: Uint8Array; timeline: number }
  | { type: "timeline"; timeline: number; previous: number; switchLsn: bigint; history: { filename: string; content: Uint8Array } };

/** What the consumer is told on each connection, to say where to start. */
export interface StartContext {
  identity: SystemIdentity;
  segmentSize: number;
  /** The slot's restart position (PostgreSQL 15+, `READ_REPLICATION_SLOT`), when streaming from a slot. */
  slotRestart: { lsn: bigint; timeline: number | null } | null;
  client: Client;
}

/** Checks a non-negative millisecond option. */
export function msOption(v: unknown, name: string, def: number): number {
  if (v === undefined) return def;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a number of milliseconds ≥ 0, got ${String(v)}`);
  return v;
}

/** Adds `replication=true` and an application name to connection settings. */
export function replicationConnInfo(
  connection: string | Record<string, string | undefined>,
  applicationName: string | undefined,
  replication = "true",
): Record<string, string | undefined> {
  let rec: Record<string, string | undefined>;
  if (typeof connection === "string") rec = parseConnectionString(connection);
  else if (connection && typeof connection === "object") rec = { ...connection };
  else throw new TypeError("connection must be a connection string or a keyword record");
  rec.replication = replication;
  if (applicationName !== undefined) rec.application_name = applicationName;
  else rec.application_name ??= "pg-rdma";
  return rec;
}

/** The server's WAL segment size (`SHOW wal_segment_size`, which replication connections accept). */
export async function showSegmentSize(client: Client): Promise<number> {
  const [r] = await client.simpleQuery<unknown[]>("SHOW wal_segment_size", { rowMode: "array" });
  return checkSegmentSize(parseSizeSetting(String(r.rows[0][0])));
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

/** Errors that no reconnect can fix: bad settings, a missing or wrong slot, another cluster, authentication. */
function fatal(e: unknown): boolean {
  if (e instanceof TypeError || e instanceof RangeError || e instanceof ReplicationError) return true;
  if (e instanceof PostgresError) {
    // 28: authentication, 42: bad name/syntax/privilege, 3D000: no database
    return /^(28|42|3D)/.test(e.code ?? "");
  }
  return false;
}

/**
 * One physical replication stream across reconnects and timeline switches. Iterate
 * {@link events}; set {@link written}/{@link flushed} as the WAL is handled; {@link stop} ends
 * it cleanly (CopyDone, then the connection closes).
 */
export class PhysicalStream {
  /** End of the WAL handled so far (reported as `write`). */
  written = 0n;
  /** End of the WAL known durable (reported as `flush`, when {@link reportFlush}). */
  flushed = 0n;
  /** Report {@link flushed} to the server (else 0, as pg_receivewal does without a slot). */
  reportFlush: boolean;
  /** The server's segment size, known after the first connection. */
  segmentSize = 0;
  identity: SystemIdentity | undefined;
  #o: PhysicalStreamOptions;
  #conninfo: Record<string, string | undefined>;
  #statusMs: number;
  #timeoutMs: number;
  #retryMs: number;
  #copy: CopyBoth | undefined;
  #client: Client | undefined;
  #copyEnded = false;
  #stopping = false;
  #waiting = false;
  #lastHeard = 0;
  #stopWaiters = new AbortController();

  constructor(options: PhysicalStreamOptions, reportFlush: boolean) {
    if (!options || typeof options !== "object") throw new TypeError("options are required");
    this.#o = options;
    this.#conninfo = replicationConnInfo(options.connection, options.applicationName);
    this.#statusMs = msOption(options.statusInterval, "statusInterval", 10_000);
    this.#timeoutMs = msOption(options.receiverTimeout, "receiverTimeout", 60_000);
    this.#retryMs = msOption(options.retryInterval, "retryInterval", 5_000);
    if (options.slot !== undefined && options.createTempSlot) throw new TypeError("use either slot or createTempSlot, not both");
    if (options.createSlot && options.slot === undefined) throw new TypeError("createSlot needs a slot name");
    this.reportFlush = reportFlush;
    options.signal?.addEventListener("abort", () => this.stop(), { once: true });
  }

  /** Ends the stream at the next message: CopyDone, drain, close. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stopWaiters.abort();
    this.#endCopy();
    // A stream waiting on a silent server would wait for its keepalive: close instead after a grace period.
    const c = this.#client;
    if (c) setTimeout(() => void c.close().catch(() => {}), 2000).unref?.();
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  #endCopy(): void {
    if (this.#copy && !this.#copyEnded) {
      this.#copyEnded = true;
      try {
        this.#copy.end();
      } catch { /* connection already gone */ }
    }
  }

  /** Sends a standby status update now (and hot standby feedback when configured). */
  sendStatus(replyRequested = false): void {
    const copy = this.#copy;
    if (!copy || this.#copyEnded) return;
    try {
      copy.write(encodeStandbyStatus({
        write: this.written,
        flush: this.reportFlush ? this.flushed : 0n,
        apply: 0n,
        replyRequested,
      }));
      const hsf = this.#o.hotStandbyFeedback;
      if (hsf) copy.write(encodeHotStandbyFeedback(hsf()));
    } catch { /* the connection is going; the read side reports it */ }
  }

  /**
   * The events of the stream. `start` is asked on every connection where to start streaming;
   * it may return a position inside a segment (the server sends from there).
   */
  async *events(start: (ctx: StartContext) => Promise<{ lsn: bigint; timeline: number }> | { lsn: bigint; timeline: number }): AsyncGenerator<PhysicalEvent> {
    for (;;) {
      if (this.#stopping) return;
      let client: Client | undefined;
      try {
        client = await connect(this.#conninfo, this.#o.connectOptions);
        this.#client = client;
        if (this.#stopping) return;
        const identity = await identifySystem(client);
        if (this.identity && this.identity.systemId !== identity.systemId) {
          throw new ReplicationError(`the server's system identifier changed from ${this.identity.systemId} to ${identity.systemId}: not the same cluster`);
        }
        this.identity = identity;
        const segSize = await showSegmentSize(client);
        if (this.segmentSize && segSize !== this.segmentSize) throw new ReplicationError(`the server's WAL segment size changed from ${this.segmentSize} to ${segSize}`);
        this.segmentSize = segSize;
        let slot = this.#o.slot;
        let slotRestart: StartContext["slotRestart"] = null;
        const v = serverVersionNum(client);
        if (this.#o.createTempSlot) {
          slot = `pg_rdma_${process.pid}_${Date.now().toString(36)}`;
          await createReplicationSlot(client, slot, { kind: "physical", temporary: true, reserveWal: true });
        } else if (slot !== undefined && v >= 150000) {
          const pos = await readReplicationSlot(client, slot);
          if (pos.slotType === null) {
            if (!this.#o.createSlot) throw new ReplicationError(`replication slot "${slot}" does not exist`);
            await createReplicationSlot(client, slot, { kind: "physical", reserveWal: true });
          } else if (pos.slotType !== "physical") {
            throw new ReplicationError(`replication slot "${slot}" is ${pos.slotType}, not physical`);
          }
        } else if (slot !== undefined && this.#o.createSlot) {
          await createReplicationSlot(client, slot, { kind: "physical", reserveWal: true }).catch((e) => {
            if (!(e instanceof PostgresError && e.code === "42710")) throw e; // already exists
          });
        }
        if (slot !== undefined && v >= 150000) {
          const pos = await readReplicationSlot(client, slot);
          if (pos.restartLsn !== null) slotRestart = { lsn: pos.restartLsn, timeline: pos.restartTli };
        }
        let { lsn, timeline } = await start({ identity, segmentSize: segSize, slotRestart, client });
        for (;;) {
          const slotPart = slot !== undefined ? `SLOT ${quoteIdent(slot)} ` : "";
          const copy = client.copyBoth(`START_REPLICATION ${slotPart}PHYSICAL ${formatLsn(lsn)} TIMELINE ${timeline}`);
          this.#copy = copy;
          this.#copyEnded = false;
          await copy.started();
          if (this.#stopping) this.#endCopy();
          const ended = yield* this.#pump(copy, client, timeline);
          if (!ended) return; // stopped
          // End of timeline: the server sent CopyDone; answer, then read (next tli, switch LSN).
          this.#endCopy();
          const { after } = await copy.done;
          this.#copy = undefined;
          const row = after.find((r) => r.rows.length > 0)?.rows[0] as Record<string, unknown> | undefined;
          if (!row) throw new ConnectionError("the server ended the replication stream without a next timeline (shutting down?)");
          const vals = Object.values(row);
          const next = Number(vals[0]);
          const switchLsn = parseLsn(String(vals[1]));
          const history = await timelineHistory(client, next);
          yield { type: "timeline", timeline: next, previous: timeline, switchLsn, history };
          timeline = next;
          lsn = switchLsn - (switchLsn % BigInt(segSize));
          if (this.#stopping) return;
        }
      } catch (e) {
        if (this.#stopping) return;
        if (!(this.#o.reconnect ?? true) || fatal(e)) throw e;
        this.#o.onRetry?.(e as Error);
        await client?.close().catch(() => {});
        await sleep(this.#retryMs, this.#stopWaiters.signal);
      } finally {
        this.#copy = undefined;
        this.#client = undefined;
        await client?.close().catch(() => {});
      }
    }
  }

  /** Reads one START_REPLICATION copy; true when the server ended it (end of timeline), false when we stopped. */
  async *#pump(copy: CopyBoth, client: Client, timeline: number): AsyncGenerator<PhysicalEvent, boolean> {
    this.#lastHeard = Date.now();
    const timers: ReturnType<typeof setInterval>[] = [];
    if (this.#statusMs > 0) timers.push(setInterval(() => this.sendStatus(), this.#statusMs));
    if (this.#timeoutMs > 0) {
      timers.push(setInterval(() => {
        if (this.#waiting && Date.now() - this.#lastHeard > this.#timeoutMs) {
          // Closing fails the pending read with a ConnectionError: the reconnect path takes over.
          void client.close().catch(() => {});
        }
      }, Math.min(1000, this.#timeoutMs)));
    }
    try {
      const it = copy[Symbol.asyncIterator]();
      for (;;) {
        this.#waiting = true;
        const r = await it.next();
        this.#waiting = false;
        this.#lastHeard = Date.now();
        if (r.done) break;
        if (this.#copyEnded) continue; // draining after our CopyDone
        const m = decodeReplicationMessage(r.value);
        if (m.type === "keepalive") {
          if (m.replyRequested) this.sendStatus();
          continue;
        }
        yield { type: "wal", startLsn: m.dataStart, data: m.data, timeline };
        if (this.#stopping) this.#endCopy();
      }
      if (this.#copyEnded && this.#stopping) {
        await copy.done;
        return false;
      }
      if (!copy.serverDone) {
        await copy.done; // throws the server's error, if any
        throw new ConnectionError("the replication stream ended unexpectedly");
      }
      return true;
    } finally {
      for (const t of timers) clearInterval(t);
    }
  }
}
