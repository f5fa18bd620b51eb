import { test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeReplicationMessage,
  encodeHotStandbyFeedback,
  encodeStandbyStatus,
  pgNow,
} from "../replication/_protocol.ts";

test("decodeReplicationMessage() reads XLogData byte by byte", () => {
  const m = new Uint8Array(25 + 3);
  const dv = new DataView(m.buffer);
  m[0] = 0x77;
  dv.setBigUint64(1, 0x1_0000_0028n);
  dv.setBigUint64(9, 0x1_0000_0100n);
  dv.setBigInt64(17, 123456789n);
  m.set([1, 2, 3], 25);
  const d = decodeReplicationMessage(m);
  assert.equal(d.type, "xlogdata");
  if (d.type !== "xlogdata") return;
  assert.equal(d.dataStart, 0x1_0000_0028n);
  assert.equal(d.walEnd, 0x1_0000_0100n);
  assert.equal(d.sendTime, 123456789n);
  assert.deepEqual([...d.data], [1, 2, 3]);
});

test("decodeReplicationMessage() reads a keepalive and its reply flag", () => {
  const m = new Uint8Array(18);
  const dv = new DataView(m.buffer);
  m[0] = 0x6b;
  dv.setBigUint64(1, 0xabcdefn);
  dv.setBigInt64(9, -5n);
  m[17] = 1;
  assert.deepEqual(decodeReplicationMessage(m), { type: "keepalive", walEnd: 0xabcdefn, sendTime: -5n, replyRequested: true });
});

test("decodeReplicationMessage() names short and unknown messages", () => {
  assert.throws(() => decodeReplicationMessage(Uint8Array.of(0x77, 0, 0)), /XLogData \(w\) message at offset 3: 3 bytes, shorter than its 25-byte header/);
  assert.throws(() => decodeReplicationMessage(Uint8Array.of(0x6b, 0)), /primary keepalive \(k\)/);
  assert.throws(() => decodeReplicationMessage(Uint8Array.of(0x51)), /unexpected message type 'Q' \(0x51\)/);
  assert.throws(() => decodeReplicationMessage(new Uint8Array(0)), /empty message/);
});

test("encodeStandbyStatus() lays out r: write, flush, apply, clock, reply flag", () => {
  const b = encodeStandbyStatus({ write: 3n, flush: 2n, apply: 1n, clock: 77n, replyRequested: true });
  const dv = new DataView(b.buffer);
  assert.equal(b.length, 34);
  assert.equal(b[0], 0x72);
  assert.deepEqual([dv.getBigUint64(1), dv.getBigUint64(9), dv.getBigUint64(17), dv.getBigInt64(25), b[33]], [3n, 2n, 1n, 77n, 1]);
});

test("encodeHotStandbyFeedback() lays out h: clock, xmin, epoch, catalog_xmin, epoch", () => {
  const b = encodeHotStandbyFeedback({ xmin: 0xfffffffe, xminEpoch: 1, catalogXmin: 700, catalogXminEpoch: 2, clock: 9n });
  const dv = new DataView(b.buffer);
  assert.equal(b.length, 25);
  assert.equal(b[0], 0x68);
  assert.deepEqual([dv.getBigInt64(1), dv.getUint32(9), dv.getUint32(13), dv.getUint32(17), dv.getUint32(21)], [9n, 0xfffffffe, 1, 700, 2]);
});

test("pgNow() counts µs from 2000-01-01", () => {
  const us = pgNow();
  const fromDate = (BigInt(Date.now()) - 946_684_800_000n) * 1000n;
  assert.ok(us <= fromDate && fromDate - us < 5_000_000n);
});
