/**
 * The streaming replication protocol's CopyData messages, I/O-free (PostgreSQL docs, "Streaming
 * Replication Protocol"; FACTS §3). Big-endian integers; LSNs as bigint; timestamps as µs since
 * 2000-01-01 (bigint).
 *
 * Server → client: XLogData `w`, primary keepalive `k`.
 * Client → server: standby status update `r`, hot standby feedback `h`.
 *
 * Shared by the logical consumer and the physical WAL receiver.
 *
 * @module
 */
import { ReplicationDecodeError } from "./_pgoutput.ts";

const PG_EPOCH_US = 946_684_800_000_000n;

/** Now as µs since 2000-01-01, the protocol's clock. */
export function pgNow(): bigint {
  return BigInt(Date.now()) * 1000n - PG_EPOCH_US;
}

/** XLogData `w`: WAL (physical) or one logical decoding message (logical). */
export interface XLogData {
  type: "xlogdata";
  /** Where `data` starts in WAL (logical: the LSN of the decoded record; 0 for non-final writes). */
  dataStart: bigint;
  /** The server's end of WAL (logical: the record's LSN). */
  walEnd: bigint;
  /** Server clock when sent, µs since 2000-01-01. */
  sendTime: bigint;
  /** The payload: a view into the message (copy it to keep it past the next message). */
  data: Uint8Array;
}

/** Primary keepalive `k`. */
export interface Keepalive {
  type: "keepalive";
  walEnd: bigint;
  sendTime: bigint;
  /** The server wants a status update now (it will disconnect after wal_sender_timeout). */
  replyRequested: boolean;
}

/** Decodes one CopyData payload of a replication stream (`w` or `k`). */
export function decodeReplicationMessage(msg: Uint8Array): XLogData | Keepalive {
  const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const kind = msg[0];
  if (kind === 0x77) { // w
    if (msg.length < 25) throw new ReplicationDecodeError("XLogData (w)", msg.length, `${msg.length} bytes, shorter than its 25-byte header`);
    return {
      type: "xlogdata",
      dataStart: dv.getBigUint64(1),
      walEnd: dv.getBigUint64(9),
      sendTime: dv.getBigInt64(17),
      data: msg.subarray(25),
    };
  }
  if (kind === 0x6b) { // k
    if (msg.length < 18) throw new ReplicationDecodeError("primary keepalive (k)", msg.length, `${msg.length} bytes, not 18`);
    return { type: "keepalive", walEnd: dv.getBigUint64(1), sendTime: dv.getBigInt64(9), replyRequested: msg[17] !== 0 };
  }
  throw new ReplicationDecodeError(
    "replication stream",
    0,
    msg.length ? `unexpected message type '${String.fromCharCode(kind)}' (0x${kind.toString(16)})` : "empty message",
  );
}

/** Positions a standby reports: each is the last byte + 1 written / flushed / applied. */
export interface StandbyStatus {
  write: bigint;
  flush: bigint;
  apply: bigint;
  /** Ask the server to reply with a keepalive at once (for measuring). */
  replyRequested?: boolean;
  /** Client clock (µs since 2000-01-01); default now. */
  clock?: bigint;
}

/** Standby status update `r` (34 bytes). Only `flush` advances a slot. */
export function encodeStandbyStatus(s: StandbyStatus): Uint8Array {
  const out = new Uint8Array(34);
  const dv = new DataView(out.buffer);
  out[0] = 0x72; // r
  dv.setBigUint64(1, s.write);
  dv.setBigUint64(9, s.flush);
  dv.setBigUint64(17, s.apply);
  dv.setBigInt64(25, s.clock ?? pgNow());
  out[33] = s.replyRequested ? 1 : 0;
  return out;
}

/** Hot standby feedback `h` (physical): the standby's oldest xmin and catalog_xmin with epochs. */
export interface HotStandbyFeedback {
  xmin: number;
  xminEpoch: number;
  catalogXmin: number;
  catalogXminEpoch: number;
  clock?: bigint;
}

/** Hot standby feedback `h` (25 bytes). Zeros tell the server to drop a previous xmin. */
export function encodeHotStandbyFeedback(f: HotStandbyFeedback): Uint8Array {
  const out = new Uint8Array(25);
  const dv = new DataView(out.buffer);
  out[0] = 0x68; // h
  dv.setBigInt64(1, f.clock ?? pgNow());
  dv.setUint32(9, f.xmin >>> 0);
  dv.setUint32(13, f.xminEpoch >>> 0);
  dv.setUint32(17, f.catalogXmin >>> 0);
  dv.setUint32(21, f.catalogXminEpoch >>> 0);
  return out;
}
