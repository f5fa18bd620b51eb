/**
 * A logical replication consumer run as a child process by tests/replication_logical_resilience
 * (so that it can be SIGKILLed mid-transaction). Settings come as JSON in `PG_RDMA_LC`:
 * `{ connection, password, slot, publication, out, pauseAfter, ffi }` (`ffi`: connect through the
 * FFI transport on the kernel provider instead of native TCP). For every batch it appends
 * `d <xid> <first id> <last id> <count>` to `out` (synchronously, before anything else), and
 * `a <xid> <endLsn>` just before acknowledging a final batch. After `pauseAfter` acknowledged
 * transactions it handles the next transaction's first chunk, waits, writes `p <xid>` and then
 * hangs, still connected, until it is killed.
 *
 * @module
 */
import { appendFileSync } from "node:fs";
import { logicalReplication } from "../../replication/mod.ts";
import type { SocketFactory } from "../../pg/mod.ts";

const cfg = JSON.parse(process.env.PG_RDMA_LC ?? "{}") as {
  connection: string;
  password: string;
  slot: string;
  publication: string;
  out: string;
  pauseAfter: number;
  ffi?: boolean;
};
// Loaded only when asked for, so the native-TCP run does not touch FFI at all.
const socketFactory = cfg.ffi ? (await import("../../transport/mod.ts")).rsocketFactory({ provider: "kernel" }) as SocketFactory : undefined;

const stream = logicalReplication({
  connection: cfg.connection,
  connectOptions: { env: {}, password: cfg.password, socketFactory },
  slot: cfg.slot,
  publications: [cfg.publication],
  streaming: "off",
  maxChunkEvents: 200,
  statusInterval: 1000,
});
let acked = 0;
for await (const b of stream) {
  const ids = b.events.flatMap((e) => (e.type === "insert" ? [e.new.id as number] : []));
  appendFileSync(cfg.out, `d ${b.xid} ${ids[0] ?? "-"} ${ids.at(-1) ?? "-"} ${ids.length}\n`);
  if (acked >= cfg.pauseAfter && !b.final) {
    await new Promise((r) => setTimeout(r, 300));
    appendFileSync(cfg.out, `p ${b.xid}\n`);
    setInterval(() => {}, 1000); // hang here, mid-transaction, until SIGKILL
    await new Promise(() => {});
  }
  if (b.final && b.endLsn !== undefined) {
    appendFileSync(cfg.out, `a ${b.xid} ${b.endLsn}\n`);
    b.ack();
    acked++;
  }
}
