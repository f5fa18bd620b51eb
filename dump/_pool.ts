// Parallel dump jobs in worker processes of the same runtime (dump/_worker.ts): Node runs the
// compiled .js beside this module, Deno (`run -A`) and Bun the .ts sources. Each worker joins
// the leader's exported snapshot on a connection of its own and writes its own data files; the
// leader hands out tables largest first, relays progress, and on the first failure (or abort)
// kills every worker and removes the files they had in progress.
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { TableData } from "./_catalog.ts";
import { type ConnTarget, DumpError, type TableProgress, type TableSummary } from "./_copy.ts";
import { qualify } from "./_quote.ts";
import type { Compression } from "./_sink.ts";
import { WORKER_ENV, type WorkerInit, type WorkerMessage, type WorkerTable } from "./_worker.ts";

/** A table to dump and its index in the toc. */
export type Job = { t: TableData; i: number };

/** Options the pool needs from the dump's. */
export interface PoolOptions {
  env?: Record<string, string | undefined>;
  homeDir?: string;
  password?: string;
  onProgress?: (p: TableProgress) => void | Promise<void>;
  compressionLevel?: number;
  /** The files will be fsynced: the workers flush them in the background as they write. */
  sync?: boolean;
}

/** The argv that starts a worker process of the running runtime. */
function workerCommand(): [string, string[]] {
  const own = import.meta.url;
  const path = fileURLToPath(new URL(own.endsWith(".ts") ? "./_worker.ts" : "./_worker.js", own));
  return "Deno" in globalThis ? [process.execPath, ["run", "-A", path]] : [process.execPath, [path]];
}

interface Member {
  child: ChildProcess;
  ready: boolean;
  /** The job in flight. */
  job: (WorkerTable & { target: string }) | undefined;
  /** Progress callbacks run in order per worker. */
  progress: Promise<void>;
  stderr: string;
  exited: boolean;
}

/** A pool of worker processes; started early so their start-up overlaps the catalog read. */
export class ProcessPool {
  #members: Member[] = [];
  #o: PoolOptions;
  #failed: Error | undefined;
  #stopping = false;
  #onFail: ((e: Error) => void) | undefined;
  #feed: ((m: Member) => void) | undefined;

  /** Spawns `n` workers that join `snapshot`. */
  constructor(n: number, conninfo: ConnTarget, snapshot: string, o: PoolOptions) {
    this.#o = o;
    const [cmd, args] = workerCommand();
    const init: WorkerInit = {
      type: "init",
      conninfo,
      connect: { env: o.env, homeDir: o.homeDir, password: o.password },
      snapshot,
      progress: !!o.onProgress,
    };
    for (let k = 0; k < n; k++) {
      const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, [WORKER_ENV]: "1" } });
      const m: Member = { child, ready: false, job: undefined, progress: Promise.resolve(), stderr: "", exited: false };
      this.#members.push(m);
      child.stdin!.on("error", () => {}); // a dead worker's pipe: its exit is reported instead
      child.stdin!.write(JSON.stringify(init) + "\n");
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (s: string) => {
        m.stderr = (m.stderr + s).slice(-2000);
      });
      let pending = "";
      child.stdout!.setEncoding("utf8");
      child.stdout!.on("data", (s: string) => {
        pending += s;
        let nl;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line) this.#message(m, JSON.parse(line) as WorkerMessage);
        }
      });
      child.on("error", (e) => this.#fail(new DumpError(`could not start a dump worker process (${cmd}): ${e.message}`, { cause: e })));
      child.on("exit", (code, signal) => {
        m.exited = true;
        if (this.#failed) return;
        const what = m.job ? ` while dumping table ${m.job.target}` : "";
        const err = m.stderr.trim() ? `: ${m.stderr.trim().split("\n").slice(-3).join(" / ")}` : "";
        // Exiting is a failure while starting, with a table in flight, or when none is left to go on.
        if (!this.#stopping && (m.job || !this.#feed || this.#members.every((x) => x.exited))) {
          this.#fail(new DumpError(`a dump worker process exited (${signal ?? `code ${code}`})${what}${err}`, { object: m.job?.target }));
        }
      });
    }
  }

  #message(m: Member, msg: WorkerMessage): void {
    switch (msg.type) {
      case "ready":
        m.ready = true;
        this.#feed?.(m);
        break;
      case "progress":
        if (this.#o.onProgress) {
          m.progress = m.progress.then(() => this.#o.onProgress!(msg.p)).catch((e) => this.#fail(e instanceof Error ? e : new Error(String(e))));
        }
        break;
      case "done": {
        const job = m.job!;
        m.job = undefined;
        m.progress.then(() => {
          this.#results![job.index] = msg.summary;
          this.#done++;
          this.#feed?.(m);
        });
        break;
      }
      case "error": {
        const target = m.job?.target;
        this.#fail(new DumpError(msg.message, { object: msg.object ?? target }));
        break;
      }
    }
  }

  #results: TableSummary[] | undefined;
  #done = 0;

  /** Fails the pool: kills every worker and removes the files they were writing. */
  #fail(e: Error): void {
    if (this.#failed) return;
    this.#failed = e;
    this.kill();
    this.#onFail?.(e);
  }

  /** Kills every worker now (abort, failure) and removes their partial files. */
  kill(): void {
    for (const m of this.#members) {
      if (!m.exited) m.child.kill("SIGKILL");
      if (m.job) rmSync(`${m.job.path}.partial`, { force: true });
    }
  }

  /** Dumps the jobs (in the given order) into `dir`, filling `results[i]`; rejects on the first failure. */
  run(order: Job[], results: TableSummary[], path: (j: Job) => string, compression: Compression): Promise<void> {
    this.#results = results;
    let next = 0;
    return new Promise<void>((resolve, reject) => {
      if (this.#failed) return reject(this.#failed);
      this.#onFail = reject;
      this.#feed = (m) => {
        if (this.#failed) return;
        if (this.#done === order.length) return resolve();
        if (m.job || next >= order.length) return;
        const { t, i } = order[next++];
        m.job = { type: "table", index: i, table: t, path: path({ t, i }), compression, level: this.#o.compressionLevel, sync: this.#o.sync === true, target: qualify(t.schema, t.name) };
        const { target: _, ...job } = m.job;
        m.child.stdin!.write(JSON.stringify(job) + "\n");
      };
      if (order.length === 0) return resolve();
      for (const m of this.#members) if (m.ready) this.#feed(m);
    });
  }

  /** Ends every worker (each closes its connection and exits); kills those that take over 5 s. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#members.map((m) =>
      new Promise<void>((resolve) => {
        if (m.exited) return resolve();
        const timer = setTimeout(() => m.child.kill("SIGKILL"), 5000);
        m.child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        m.child.stdin!.end();
      })
    ));
    // After a kill, a worker may have opened its file after kill() removed it: remove it again.
    for (const m of this.#members) if (m.job) rmSync(`${m.job.path}.partial`, { force: true });
  }
}
