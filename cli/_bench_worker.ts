/**
 * One thread of `pg-rdma bench -j N` (see `cli/bench.ts`): connects its share of the clients,
 * says "ready", runs the workload on "go", posts what its clients did, closes them and ends.
 * "stop" (SIGINT in the main thread, or the main thread giving up) ends the run early.
 *
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { type Client, connect, resolveConnInfo } from "../pg/mod.ts";
import { type ClientsOutcome, runClients, type WorkerMessage, type WorkerSetup } from "./bench.ts";

const setup = workerData as WorkerSetup;
const port = parentPort!;
const stop = new AbortController();
let go!: () => void;
const start = new Promise<void>((r) => (go = r));
port.on("message", (m: string) => {
  if (m === "go") go();
  else if (m === "stop") {
    stop.abort();
    go();
  }
});
const post = (m: WorkerMessage) => port.postMessage(m);

const clients: Client[] = [];
try {
  const { env } = setup;
  const info = resolveConnInfo(setup.connection, { env });
  // .pgpass applies as in the main thread (connect() looks it up with this environment).
  const options = { env, ...(setup.password !== undefined ? { password: setup.password } : {}) };
  let connectMs = 0;
  for (let i = 0; i < setup.clients && !stop.signal.aborted; i++) {
    const t0 = performance.now();
    clients.push(await connect(info, options));
    connectMs += performance.now() - t0;
  }
  post({ type: "ready", connectMs });
  await start;
  const outcome: ClientsOutcome = await runClients(clients, setup.options, setup.target, stop.signal, setup.counter);
  post({ type: "done", outcome });
} catch (e) {
  post({ type: "error", message: (e as Error).message });
} finally {
  await Promise.allSettled(clients.map((c) => c.close()));
  port.close();
}
