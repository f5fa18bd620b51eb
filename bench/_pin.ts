/**
 * CPU pinning for the benchmarks, the same for every contender: the benchmark process (and the
 * peer's command-line tool) on CPU A, the PostgreSQL server (postmaster and every backend or
 * walsender it forks) on CPU B. `BENCH_PIN=A:B` chooses, `BENCH_PIN=none` lets the scheduler
 * place; the default is `0:1` where there are two CPUs or more.
 *
 * Why: on this 2-vCPU VM, unpinned, the kernel often wakes a client on its server process's CPU
 * (a unix-socket write is a sync wake-up). Both then share one core while the other idles, and
 * which contender that happens to changes from run to run: measured, the logical consumer's CPU
 * per change rose 40% and `SELECT 1` rates jumped between ~13k/s and 25-40k/s with placement.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** CPUs of the client side and of the server side. */
export interface Pin {
  client: number;
  server: number;
}

/** The pinning asked for by `BENCH_PIN` (see the module doc), or undefined for none. */
export function pinFromEnv(): Pin | undefined {
  const v = process.env.BENCH_PIN ?? (availableParallelism() >= 2 ? "0:1" : "none");
  if (v === "none") return undefined;
  const m = /^(\d+):(\d+)$/.exec(v);
  if (!m) throw new RangeError(`BENCH_PIN must be "A:B" (two CPU numbers) or "none", got ${JSON.stringify(v)}`);
  return { client: Number(m[1]), server: Number(m[2]) };
}

function taskset(args: string[]): void {
  const r = spawnSync("taskset", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`taskset ${args.join(" ")} failed: ${r.stderr || r.error?.message}`);
}

// Every CPU, read when the module loads: once this process is pinned to one CPU,
// availableParallelism() says there is one.
const EVERY_CPU = `0-${availableParallelism() - 1}`;

/** This process (all its threads) on `client`, the server's postmaster and its children on `server` (taskset CPU lists). */
function place(client: string, server: string, postmasterPid: number): void {
  taskset(["-a", "-p", "-c", client, String(process.pid)]);
  const kids = spawnSync("pgrep", ["-P", String(postmasterPid)], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
  for (const pid of [String(postmasterPid), ...kids]) taskset(["-a", "-p", "-c", server, pid]);
}

/**
 * Pins this process (all its threads) to `pin.client`, and the server whose postmaster is
 * `postmasterPid` (with the children it has now; later ones inherit its CPU) to `pin.server`.
 */
export function applyPin(pin: Pin, postmasterPid: number): void {
  place(String(pin.client), String(pin.server), postmasterPid);
}

/** Undoes {@link applyPin}: this process and the server may run on every CPU again. */
export function releasePin(postmasterPid: number): void {
  place(EVERY_CPU, EVERY_CPU, postmasterPid);
}

/**
 * /proc/<pid>/stat after the command name (in parentheses, may hold spaces), or undefined when
 * the process is gone: field 3 (state) is index 0, 4 (ppid) index 1, cutime and cstime (16 and
 * 17, clock ticks of 1/100 s) 13 and 14.
 */
export function statFields(pid: number | string): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined; // gone meanwhile
  }
}

/** The parent of a process (a backend's parent is the postmaster), from /proc. */
export function parentPid(pid: number): number {
  const f = statFields(pid);
  if (!f) throw new Error(`no process ${pid}`);
  return Number(f[1]);
}

/**
 * The CPU (user + system s) the server has spent serving connections: the postmaster's reaped
 * children, so a backend's (or walsender's) time counts once it has exited. Waits first, up to
 * 2 s, until none of its children is a client backend (a process title naming a client,
 * `[local]` or `host(port)`) or one exiting or not reaped yet (no title; the background
 * processes never exit and are not counted): a client's exit returns before its backend's.
 * The difference over a run is what the server spent serving it. Why the benchmarks print it:
 * a client that reads differently can make the same server work more for the same rows.
 */
export async function serverCpu(postmasterPid: number): Promise<number> {
  for (let i = 0; i < 40 && clientBackends(postmasterPid) > 0; i++) await new Promise((r) => setTimeout(r, 50));
  const f = statFields(postmasterPid);
  return f ? (Number(f[13]) + Number(f[14])) / 100 : NaN;
}

/** The postmaster's children now: pid, state (`/proc` stat field 3) and process title. */
export function serverChildren(postmasterPid: number): { pid: number; state: string; title: string }[] {
  const out: { pid: number; state: string; title: string }[] = [];
  for (const d of readdirSync("/proc")) {
    const f = /^\d+$/.test(d) ? statFields(d) : undefined;
    if (f?.[1] !== String(postmasterPid)) continue;
    try {
      out.push({ pid: Number(d), state: f[0], title: readFileSync(`/proc/${d}/cmdline`, "latin1") });
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** How many of the postmaster's children serve a client now (see {@link serverCpu}). */
function clientBackends(postmasterPid: number): number {
  // A backend that is exiting has already lost its title (its memory is gone), and once
  // exited it is a zombie until the postmaster reaps it and adds its time.
  return serverChildren(postmasterPid).filter((c) => c.state === "Z" || c.title === "" || /\[local\]|\(\d+\)/.test(c.title)).length;
}

/** `cmd args` to run on the client's CPU when pinned (through taskset), else as given. */
export function onClientCpu(pin: Pin | undefined, cmd: string, args: string[]): [string, string[]] {
  return pin ? ["taskset", ["-c", String(pin.client), cmd, ...args]] : [cmd, args];
}

/** One line for the benchmark's output saying how it was placed. */
export function describePin(pin: Pin | undefined, client: string): string {
  return pin ? `pinned: ${client} on CPU ${pin.client}, the server on CPU ${pin.server}` : "not pinned";
}
