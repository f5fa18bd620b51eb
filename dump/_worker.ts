// A data worker on its own thread (node:worker_threads, in all three runtimes): one connection
// that joins the leader's snapshot, then COPYs the tables it is handed into their files. The
// JavaScript side of a COPY (framing, one message per row, buffering) is CPU-bound, so parallel
// jobs only run in parallel on threads of their own.
//
// Messages, parent → worker: {type:"table", index, table, path, compression, level} | {type:"ack"}
// (progress may go on) | {type:"stop"}. Worker → parent: {type:"ready"} | {type:"progress", p} |
// {type:"done", index, summary} | {type:"error", index, message, object} | {type:"stopped"}.
import { parentPort, workerData } from "node:worker_threads";
import type { ConnectOptions } from "../pg/mod.ts";
import type { TableData } from "./_catalog.ts";
import { type ConnTarget, copyTable, DumpError, open, type TableProgress } from "./_copy.ts";
import { qualify, quoteLiteral } from "./_quote.ts";
import { type Compression, FileSink } from "./_sink.ts";

/** What the parent hands a worker at start. */
export interface WorkerInit {
  conninfo: ConnTarget;
  connect: Pick<ConnectOptions, "env" | "homeDir"> & { password?: string };
  snapshot: string;
  /** Whether the parent wants progress messages (each waits for an ack: the callback may hold the worker). */
  progress: boolean;
}

/** A table job. */
export interface WorkerTable {
  type: "table";
  index: number;
  table: TableData;
  path: string;
  compression: Compression;
  level?: number;
}

const port = parentPort;
if (port) {
  const init = workerData as WorkerInit;
  let ack: (() => void) | undefined;
  let chain: Promise<void>;
  const client = open(init.conninfo, init.connect);
  chain = client.then(async (c) => {
    await c.simpleQuery(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(init.snapshot)}`);
    port.postMessage({ type: "ready" });
  }).catch((e) => {
    port.postMessage({ type: "error", index: -1, message: `a dump worker could not start: ${(e as Error).message}` });
  });
  const run = async (m: WorkerTable) => {
    const t = m.table;
    const target = qualify(t.schema, t.name);
    let sink: FileSink | undefined;
    try {
      const c = await client;
      try {
        // NOWAIT: waiting behind a conflicting lock request queued after the leader's lock would deadlock.
        await c.simpleQuery(`LOCK TABLE ${target} IN ACCESS SHARE MODE NOWAIT`);
      } catch (e) {
        throw new DumpError(`could not obtain a lock on table ${target}: another session waits for a conflicting lock (${(e as Error).message})`, { object: target });
      }
      sink = await FileSink.open(m.path, m.compression, m.level);
      const onProgress = init.progress
        ? (p: TableProgress) =>
          new Promise<void>((resolve) => {
            ack = resolve;
            port.postMessage({ type: "progress", p });
          })
        : undefined;
      const summary = await copyTable(c, t, sink, { onProgress });
      await sink.commit();
      port.postMessage({ type: "done", index: m.index, summary });
    } catch (e) {
      await sink?.abort().catch(() => {});
      port.postMessage({ type: "error", index: m.index, message: (e as Error).message, object: e instanceof DumpError ? e.object : target });
    }
  };
  port.on("message", (m: WorkerTable | { type: "ack" } | { type: "stop" }) => {
    if (m.type === "ack") {
      const a = ack;
      ack = undefined;
      a?.();
    } else if (m.type === "stop") {
      chain = chain.then(async () => {
        await (await client.catch(() => undefined))?.close().catch(() => {});
        // The parent terminates the thread on this (Deno's parentPort has no close()).
        port.postMessage({ type: "stopped" });
      });
    } else chain = chain.then(() => run(m));
  });
}
