/**
 * Replication commands shared by the logical consumer and the physical WAL receiver:
 * `IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT`, `DROP_REPLICATION_SLOT`,
 * `READ_REPLICATION_SLOT`, `TIMELINE_HISTORY`, and the `pg_replication_slots` view (FACTS §3).
 *
 * Each takes a connected {@link Client}; the commands need a replication connection
 * (`replication=true` or `replication=database` in the conninfo) and use the simple query
 * protocol, the only one replication connections accept. The syntax follows the server's
 * version: parenthesised options from PostgreSQL 15, the older keyword form before it.
 *
 * @module
 */
import type { Client } from "../pg/mod.ts";
import { parseLsn } from "./_pgoutput.ts";

/**
 * A replication session failed in a way the caller may want to catch (a slot that cannot be
 * used, a stream that ended unexpectedly, a reconnect that gave up). Server errors stay
 * `PostgresError`, connection losses `ConnectionError`; they are the `cause` when wrapped.
 */
export class ReplicationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ReplicationError";
  }
}

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/**
 * Checks a replication slot name: lower-case letters, digits and `_`, 1-63 characters, as the
 * server requires. Throws a TypeError naming the problem otherwise.
 */
export function checkSlotName(name: unknown, what = "slot name"): string {
  if (typeof name !== "string") throw new TypeError(`${what} must be a string, got ${typeof name}`);
  if (!SLOT_NAME.test(name)) {
    throw new TypeError(
      `${what} ${JSON.stringify(name)} is not valid: use 1-63 lower-case letters, digits and underscores`,
    );
  }
  return name;
}

/** Quotes an SQL identifier ("a""b"). Refuses NUL, which no identifier can hold. */
export function quoteIdent(name: string): string {
  if (typeof name !== "string" || name === "" || name.includes("\0")) {
    throw new TypeError(`${JSON.stringify(name)} cannot be an identifier`);
  }
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes an SQL string literal ('it''s'), with E'' when it holds a backslash. */
export function quoteLiteral(value: string): string {
  if (typeof value !== "string" || value.includes("\0")) throw new TypeError(`${JSON.stringify(value)} cannot be a string literal`);
  const body = value.replaceAll("'", "''");
  return value.includes("\\") ? `E'${body.replaceAll("\\", "\\\\")}'` : `'${body}'`;
}

/**
 * The server's version as `server_version_num` would give it (150008 for 15.8, 180000 for 18.0),
 * from the `server_version` ParameterStatus the server sends at startup.
 */
export function serverVersionNum(client: Client): number {
  const v = client.parameters.get("server_version");
  const m = v === undefined ? null : /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v);
  if (!m) throw new ReplicationError(`cannot tell the server's version from server_version ${JSON.stringify(v)}`);
  const major = Number(m[1]);
  // Before 10, versions had three parts (9.6.24 → 90624).
  return major >= 10 ? major * 10000 + Number(m[2] ?? 0) : major * 10000 + Number(m[2] ?? 0) * 100 + Number(m[3] ?? 0);
}

/** What `IDENTIFY_SYSTEM` returns. */
export interface SystemIdentity {
  /** The cluster's system identifier (a 64-bit number, as decimal text). */
  systemId: string;
  /** Current timeline. */
  timeline: number;
  /** Current WAL flush position. */
  xlogpos: bigint;
  /** The database of a `replication=database` connection; null for physical connections. */
  dbname: string | null;
}

async function rows(client: Client, sql: string): Promise<unknown[][]> {
  const results = await client.simpleQuery<unknown[]>(sql, { rowMode: "array" });
  return results.length ? results[0].rows : [];
}

function lsnOrNull(v: unknown): bigint | null {
  return v === null || v === undefined ? null : parseLsn(String(v));
}

/**
 * `IDENTIFY_SYSTEM`: the cluster's identity, timeline and WAL position.
 *
 * @example
 * ```ts
 * const client = await connect("host=db user=repl replication=true");
 * const { systemId, timeline, xlogpos } = await identifySystem(client);
 * ```
 */
export async function identifySystem(client: Client): Promise<SystemIdentity> {
  const [r] = await rows(client, "IDENTIFY_SYSTEM");
  if (!r) throw new ReplicationError("IDENTIFY_SYSTEM returned no row");
  return {
    systemId: String(r[0]),
    timeline: Number(r[1]),
    xlogpos: parseLsn(String(r[2])),
    dbname: r[3] === null || r[3] === undefined ? null : String(r[3]),
  };
}

/** Options of {@link createReplicationSlot}. */
export interface CreateSlotOptions {
  /** `"logical"` (needs `plugin` and a `replication=database` connection) or `"physical"`. */
  kind: "physical" | "logical";
  /** Output plugin of a logical slot: `pgoutput`, `test_decoding`, `wal2json`, ... */
  plugin?: string;
  /** Dropped when the session ends (or on error); cannot outlive a reconnect. */
  temporary?: boolean;
  /** Logical: decode prepared transactions at PREPARE (PostgreSQL 15+ syntax; 14 old form). */
  twoPhase?: boolean;
  /** Physical: reserve WAL now rather than at the first connection. */
  reserveWal?: boolean;
  /**
   * Logical: `"export"` (default of the server) exports a snapshot usable by other sessions until
   * the next command on this connection; `"use"` applies it to this (non-replication-mode)
   * transaction; `"nothing"` takes none.
   */
  snapshot?: "export" | "use" | "nothing";
  /** Logical, PostgreSQL 17+: the slot is synchronised to standbys (`FAILOVER`). */
  failover?: boolean;
}

/** What `CREATE_REPLICATION_SLOT` returns. */
export interface CreatedSlot {
  slotName: string;
  /** Logical: where decoding starts (stream from here); physical: 0 (the server reports none; see {@link readReplicationSlot}). */
  consistentPoint: bigint;
  /** The exported snapshot (`SET TRANSACTION SNAPSHOT '...'`), if one was exported. */
  snapshotName: string | null;
  outputPlugin: string | null;
}

/**
 * Builds the `CREATE_REPLICATION_SLOT` command for a server version. Exported for tests;
 * throws TypeError/RangeError for options the version or the slot kind does not support.
 */
export function createSlotCommand(name: string, options: CreateSlotOptions, versionNum: number): string {
  checkSlotName(name);
  if (options === null || typeof options !== "object") throw new TypeError("createReplicationSlot() needs options with kind");
  const { kind } = options;
  if (kind !== "physical" && kind !== "logical") throw new TypeError(`slot kind must be "physical" or "logical", got ${JSON.stringify(kind)}`);
  const snap = options.snapshot;
  if (snap !== undefined && snap !== "export" && snap !== "use" && snap !== "nothing") {
    throw new TypeError(`snapshot must be "export", "use" or "nothing", got ${JSON.stringify(snap)}`);
  }
  if (kind === "physical") {
    for (const k of ["plugin", "twoPhase", "snapshot", "failover"] as const) {
      if (options[k] !== undefined && options[k] !== false) throw new TypeError(`a physical slot takes no ${k} option`);
    }
  } else {
    if (typeof options.plugin !== "string" || options.plugin === "") throw new TypeError("a logical slot needs an output plugin (plugin: \"pgoutput\")");
    if (options.reserveWal) throw new TypeError("reserveWal applies to physical slots only (logical slots always reserve WAL)");
  }
  if (options.failover && versionNum < 170000) throw new RangeError(`failover slots need PostgreSQL 17 or later (server is ${versionNum})`);
  if (options.twoPhase && versionNum < 140000) throw new RangeError(`two-phase slots need PostgreSQL 14 or later (server is ${versionNum})`);

  let sql = `CREATE_REPLICATION_SLOT ${quoteIdent(name)}${options.temporary ? " TEMPORARY" : ""} `;
  sql += kind === "physical" ? "PHYSICAL" : `LOGICAL ${quoteIdent(options.plugin as string)}`;
  if (versionNum >= 150000) {
    const opts: string[] = [];
    if (options.reserveWal) opts.push("RESERVE_WAL true");
    if (options.twoPhase) opts.push("TWO_PHASE true");
    if (snap) opts.push(`SNAPSHOT ${quoteLiteral(snap)}`);
    if (options.failover) opts.push("FAILOVER true");
    if (opts.length) sql += ` (${opts.join(", ")})`;
  } else {
    if (options.reserveWal) sql += " RESERVE_WAL";
    if (snap) sql += ({ export: " EXPORT_SNAPSHOT", use: " USE_SNAPSHOT", nothing: " NOEXPORT_SNAPSHOT" } as const)[snap];
    if (options.twoPhase) sql += " TWO_PHASE";
  }
  return sql;
}

/**
 * `CREATE_REPLICATION_SLOT`: creates a physical or logical slot with the syntax the server's
 * version wants. An exported snapshot lives only until the next command on this connection.
 *
 * @example
 * ```ts
 * const repl = await connect("host=db dbname=app user=repl replication=database");
 * const slot = await createReplicationSlot(repl, "app_sub", { kind: "logical", plugin: "pgoutput", snapshot: "export" });
 * // slot.snapshotName → "00000003-00000002-1", slot.consistentPoint → 0x16B3748n
 * ```
 */
export async function createReplicationSlot(client: Client, name: string, options: CreateSlotOptions): Promise<CreatedSlot> {
  const sql = createSlotCommand(name, options, serverVersionNum(client));
  const [r] = await rows(client, sql);
  if (!r) throw new ReplicationError("CREATE_REPLICATION_SLOT returned no row");
  return {
    slotName: String(r[0]),
    consistentPoint: lsnOrNull(r[1]) ?? 0n,
    snapshotName: r[2] === null || r[2] === undefined ? null : String(r[2]),
    outputPlugin: r[3] === null || r[3] === undefined ? null : String(r[3]),
  };
}

/**
 * `DROP_REPLICATION_SLOT`. With `wait`, waits for a session using the slot to end instead of
 * failing (SQLSTATE 55006) at once.
 */
export async function dropReplicationSlot(client: Client, name: string, options: { wait?: boolean } = {}): Promise<void> {
  checkSlotName(name);
  await client.simpleQuery(`DROP_REPLICATION_SLOT ${quoteIdent(name)}${options.wait ? " WAIT" : ""}`);
}

/** What `READ_REPLICATION_SLOT` returns; all null for a slot that does not exist. */
export interface SlotPosition {
  slotType: "physical" | "logical" | null;
  restartLsn: bigint | null;
  restartTli: number | null;
}

/**
 * `READ_REPLICATION_SLOT` (PostgreSQL 15+): a slot's type and restart position (the server
 * reports the restart position of physical slots only). A missing slot gives all nulls.
 */
export async function readReplicationSlot(client: Client, name: string): Promise<SlotPosition> {
  checkSlotName(name);
  const v = serverVersionNum(client);
  if (v < 150000) throw new RangeError(`READ_REPLICATION_SLOT needs PostgreSQL 15 or later (server is ${v})`);
  const [r] = await rows(client, `READ_REPLICATION_SLOT ${quoteIdent(name)}`);
  if (!r) return { slotType: null, restartLsn: null, restartTli: null };
  return {
    slotType: r[0] === null ? null : String(r[0]) as "physical" | "logical",
    restartLsn: lsnOrNull(r[1]),
    restartTli: r[2] === null || r[2] === undefined ? null : Number(r[2]),
  };
}

/** A row of `pg_replication_slots`, with LSNs as bigint; fields a version lacks are undefined. */
export interface SlotInfo {
  slotName: string;
  plugin: string | null;
  slotType: "physical" | "logical";
  database: string | null;
  temporary: boolean;
  active: boolean;
  activePid: number | null;
  restartLsn: bigint | null;
  confirmedFlushLsn: bigint | null;
  /** `reserved`, `extended`, `unreserved` or `lost` (13+). */
  walStatus?: string | null;
  twoPhase?: boolean;
  /** 17+. */
  failover?: boolean;
  /** 16+ (`conflicting`); 17+ also `invalidationReason`. */
  conflicting?: boolean | null;
  invalidationReason?: string | null;
}

/**
 * Lists the cluster's replication slots from `pg_replication_slots`. Works on an ordinary
 * connection or a `replication=database` one (physical replication connections cannot run SQL).
 */
export async function listReplicationSlots(client: Client): Promise<SlotInfo[]> {
  const [res] = await client.simpleQuery("SELECT * FROM pg_catalog.pg_replication_slots ORDER BY slot_name");
  const b = (x: unknown) => x === true || x === "t" || x === "true";
  return res.rows.map((r) => {
    const info: SlotInfo = {
      slotName: String(r.slot_name),
      plugin: r.plugin == null ? null : String(r.plugin),
      slotType: String(r.slot_type) as "physical" | "logical",
      database: r.database == null ? null : String(r.database),
      temporary: b(r.temporary),
      active: b(r.active),
      activePid: r.active_pid == null ? null : Number(r.active_pid),
      restartLsn: lsnOrNull(r.restart_lsn),
      confirmedFlushLsn: lsnOrNull(r.confirmed_flush_lsn),
    };
    if ("wal_status" in r) info.walStatus = r.wal_status == null ? null : String(r.wal_status);
    if ("two_phase" in r) info.twoPhase = b(r.two_phase);
    if ("failover" in r) info.failover = b(r.failover);
    if ("conflicting" in r) info.conflicting = r.conflicting == null ? null : b(r.conflicting);
    if ("invalidation_reason" in r) info.invalidationReason = r.invalidation_reason == null ? null : String(r.invalidation_reason);
    return info;
  });
}

/**
 * `TIMELINE_HISTORY tli`: the history file of a timeline (timelines after the first), as the
 * file name and its bytes.
 */
export async function timelineHistory(client: Client, tli: number): Promise<{ filename: string; content: Uint8Array }> {
  if (!Number.isInteger(tli) || tli < 1 || tli > 0xffffffff) throw new RangeError(`timeline must be an integer from 1 to 4294967295, got ${tli}`);
  const [r] = await rows(client, `TIMELINE_HISTORY ${tli}`);
  if (!r) throw new ReplicationError(`TIMELINE_HISTORY ${tli} returned no row`);
  const c = r[1];
  return {
    filename: String(r[0]),
    // The server declares the column bytea on some versions and text on others.
    content: c instanceof Uint8Array ? c : new TextEncoder().encode(String(c ?? "")),
  };
}
