/**
 * Consumes one large transaction in a process of its own, so that its resident memory is the
 * consumer's alone (tests/replication_logical_big). Settings as JSON in `PG_RDMA_LB`:
 * `{ connection, password, slot, publication, rows, streaming }`. Prints one JSON line:
 * `{ rows, bytes, baseRss, peakRss, ms }`.
 *
 * @module
 */
import { logicalReplication } from "../../replication/mod.ts";

const cfg = JSON.parse(process.env.PG_RDMA_LB ?? "{}") as {
  connection: string;
  password: string;
  slot: string;
  publication: string;
  rows: number;
  streaming: "off" | "on";
};
const baseRss = process.memoryUsage().rss;
let peakRss = baseRss;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const t0 = Date.now();
let rows = 0;
let bytes = 0;
const stream = logicalReplication({
  connection: cfg.connection,
  connectOptions: { env: {}, password: cfg.password },
  slot: cfg.slot,
  publications: [cfg.publication],
  streaming: cfg.streaming,
});
for await (const b of stream) {
  for (const e of b.events) {
    if (e.type === "insert") {
      rows++;
      bytes += (e.new.v as string).length;
    }
  }
  b.ack();
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  if (b.final && b.events.at(-1)?.type !== "streamAbort" && rows >= cfg.rows) break;
}
clearInterval(sampler);
await stream.close();
process.stdout.write(JSON.stringify({ rows, bytes, baseRss, peakRss, ms: Date.now() - t0 }) + "\n");
