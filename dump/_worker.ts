// A data worker in a process of its own (started by dump/_pool.ts with the same runtime): one
// connection that joins the leader's snapshot, then COPYs the tables it is handed into their
// files. A process, not a thread: each job gets its own event loop, heap and garbage collector,
// as pg_dump -j gets its own processes, and a stuck or failing worker can be killed outright.
//
// One JSON message per line. Parent → worker on stdin: the WorkerInit first, then
// {type:"table", index, table, path, compression, level, sync}; end of stdin means stop (close and
// exit). Worker → parent on stdout: {type:"ready"} | {type:"progress", p} |
// {type:"done", index, summary} | {type:"error", index, message, object} (index -1: the worker
// could not start).
import process from "node:process";
import type { ConnectOptions } from "../pg/mod.ts";
import type { TableData } from "./_catalog.ts";
import { type ConnTarget, copyTable, DumpError, open, type TableProgress } from "./_copy.ts";
import { qualify, quoteLiteral } from "./_quote.ts";
import { type Compression, FileSink } from "./_sink.ts";

/** What the parent hands a worker first. */
export interface WorkerInit {
  type: "init";
  conninfo: ConnTarget;
  connect: Pick<ConnectOptions, "env" | "homeDir"> & { password?: string };
  snapshot: string;
  /** Whether the parent wants progress messages. */
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
  /** The parent fsyncs the file afterwards: flush it in the background while writing. */
  sync?: boolean;
}

/** What a worker says. */
export type WorkerMessage =
  | { type: "ready" }
  | { type: "progress"; p: TableProgress }
  | { type: "done"; index: number; summary: import("./_copy.ts").TableSummary }
  | { type: "error"; index: number; message: string; object?: string };

/** The environment variable that makes this module run as a worker (and not when imported). */
export const WORKER_ENV = "PG_RDMA_DUMP_WORKER";

function send(m: WorkerMessage): void {
  process.stdout.write(JSON.stringify(m) + "\n");
}

async function main(): Promise<void> {
  let init: WorkerInit | undefined;
  let client: ReturnType<typeof open> | undefined;
  let chain: Promise<void> = Promise.resolve();
  const run = async (m: WorkerTable) => {
    const t = m.table;
    const target = qualify(t.schema, t.name);
    let sink: FileSink | undefined;
    try {
      const c = await client!;
      try {
        // NOWAIT: waiting behind a conflicting lock request queued after the leader's lock would deadlock.
        await c.simpleQuery(`LOCK TABLE ${target} IN ACCESS SHARE MODE NOWAIT`);
      } catch (e) {
        throw new DumpError(`could not obtain a lock on table ${target}: another session waits for a conflicting lock (${(e as Error).message})`, { object: target });
      }
      sink = await FileSink.open(m.path, m.compression, m.level, m.sync === true);
      const onProgress = init!.progress ? (p: TableProgress) => send({ type: "progress", p }) : undefined;
      const summary = await copyTable(c, t, sink, { onProgress });
      await sink.commit();
      send({ type: "done", index: m.index, summary });
    } catch (e) {
      await sink?.abort().catch(() => {});
      send({ type: "error", index: m.index, message: (e as Error).message, object: e instanceof DumpError ? e.object : target });
    }
  };
  const handle = (line: string) => {
    if (!line) return;
    const m = JSON.parse(line) as WorkerInit | WorkerTable;
    if (m.type === "init") {
      init = m;
      client = open(m.conninfo, m.connect);
      chain = client.then(async (c) => {
        await c.simpleQuery(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(m.snapshot)}`);
        send({ type: "ready" });
      }).catch((e) => {
        send({ type: "error", index: -1, message: `a dump worker could not start: ${(e as Error).message}` });
      });
    } else chain = chain.then(() => run(m));
  };
  let pending = "";
  process.stdin.setEncoding("utf8");
  for await (const chunk of process.stdin as AsyncIterable<string>) {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      handle(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  // stdin ended: the parent is done with us (or gone).
  await chain;
  await (await client?.catch(() => undefined))?.close().catch(() => {});
  process.exit(0);
}

if (process.env[WORKER_ENV] === "1") {
  main().catch((e) => {
    process.stderr.write(`dump worker: ${(e as Error)?.stack ?? e}\n`);
    process.exit(1);
  });
}
