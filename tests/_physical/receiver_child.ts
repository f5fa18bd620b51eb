// Child process of the WAL receiver tests: runs a WalReceiver with the options in argv[2]
// (JSON; endpos as "X/X"), prints one JSON line per event ("start", "segment", "done"), so
// the parent can kill it at a moment it chooses and restart it.
import process from "node:process";
import { parseLsn, formatLsn } from "../../replication/_pgoutput.ts";
import { WalReceiver } from "../../replication/wal_receiver.ts";

const o = JSON.parse(process.argv[2]) as { connection: string; directory: string; slot?: string; endpos?: string };
const rx = new WalReceiver({
  connection: o.connection,
  connectOptions: { env: {} },
  directory: o.directory,
  slot: o.slot,
  createSlot: o.slot !== undefined,
  endpos: o.endpos ? parseLsn(o.endpos) : undefined,
  reconnect: false,
  statusInterval: 500,
  onStart: (p) => process.stdout.write(JSON.stringify({ event: "start", lsn: formatLsn(p.lsn), timeline: p.timeline }) + "\n"),
  onSegment: (s) => process.stdout.write(JSON.stringify({ event: "segment", name: s.name }) + "\n"),
});
rx.run().then((r) => {
  process.stdout.write(JSON.stringify({ event: "done", lsn: formatLsn(r.lsn), segments: r.segments }) + "\n");
}, (e) => {
  process.stderr.write(`receiver_child: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
