/**
 * Tunnel benchmark: PostgreSQL's own clients through `pg-rdma tunnel` against the same clients
 * on direct TCP, in the same run, on an own PostgreSQL 15 cluster.
 *
 * The path measured is the one users deploy: a client-side tunnel (`tcp://` in, `rdma://` out)
 * chained to a server-side tunnel (`rdma://` in, `tcp://` out to PostgreSQL), both child
 * processes of the runtime running this file, on the kernel provider (the rsocket code path
 * over kernel TCP: no RDMA device here, so this measures the relay's own cost, twice over).
 *
 * 1. `pgbench -S -c 8 -j 2 -T 15` (Debian's pgbench 15) after `pgbench -i -s 10`: tps.
 * 2. `psql -c "COPY (SELECT ...) TO STDOUT"` of 1 GiB (1 048 576 rows of 1 KiB) into
 *    /dev/null: MB/s (MB = 2^20 bytes).
 *
 * Direct and tunnel alternate (who goes first swaps each round); the best of `BENCH_ROUNDS`
 * (default 2) is kept, and the ratios are tunnel ÷ direct. The CPU seconds each tunnel process
 * used in its runs are printed too (from /proc), since on 2 shared cores they are the cost that
 * shows up as lost throughput.
 *
 * ```sh
 * node dist/bench/tunnel.js          # tunnels run by Node (after npm run build)
 * npx bun bench/tunnel.ts            # by Bun
 * npx deno run -A bench/tunnel.ts    # by Deno
 * ```
 *
 * Environment: `BENCH_ROUNDS`, `BENCH_SECONDS` (pgbench -T, default 15), `BENCH_COPY_MB`
 * (default 1024), `BENCH_SCALE` (default 10), `BENCH_PROVIDER` (default kernel), `BENCH_MIDDLE=tcp`
 * (the middle hop over tcp://: node:net relays without the FFI, to tell the relay's cost from
 * the transport's).
 *
 * @module
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROLES, startCluster, unavailable } from "../tests/_fixture/cluster.ts";
import { moduleCommand, runtime } from "../tests/_fixture/runtime.ts";

const BIN = "/usr/lib/postgresql/15/bin";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const COPY_MB = Number(process.env.BENCH_COPY_MB ?? 1024);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const PROVIDER = process.env.BENCH_PROVIDER ?? "kernel";
/** `tcp` makes the middle hop tcp:// (node:net relays, no FFI): how much is the relay itself. */
const MIDDLE = process.env.BENCH_MIDDLE === "tcp" ? "tcp" : "rdma";
const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);
const env = { ...process.env, PGPASSWORD: ROLES.superuser.password, PGCONNECT_TIMEOUT: "10" };

function run(cmd: string, args: string[], opts: { toNull?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    if (opts.toNull) {
      // Output straight to /dev/null: nothing of ours reads it.
      const child = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr!.on("data", (d) => (err += String(d)));
      child.on("exit", (code) => (code === 0 ? resolve("") : reject(new Error(`${cmd} exited ${code}: ${err}`))));
      return;
    }
    execFile(cmd, args, { env, maxBuffer: 64 << 20 }, (e, out, err) => (e ? reject(new Error(`${cmd}: ${err || e.message}`)) : resolve(String(out))));
  });
}

/** user + system CPU seconds of a process so far (Linux /proc; clock ticks of 100 Hz). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Tunnel {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function tunnel(listen: string, connect: string): Promise<Tunnel> {
  const child = spawn(exe, [...baseArgs, "tunnel", "--listen", listen, "--connect", connect, "--provider", PROVIDER], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  let err = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.on("data", (d) => {
      err += String(d);
      const m = /listening on \w+:\/\/[^ ]*:(\d+),/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    exited.then(() => reject(new Error(`tunnel exited before listening:\n${err}`)));
  });
  // Keep draining its log (one line per connection), or a full pipe would stall it.
  return { port, child, stop: () => (child.kill("SIGTERM"), exited) };
}

const tpsOf = (out: string) => {
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
  if (!m) throw new Error(`no tps in pgbench output:\n${out}`);
  return Number(m[1]);
};

if (unavailable(15)) {
  console.log(`skipped: ${unavailable(15)}`);
} else {
  const c = await startCluster(15);
  const server = await tunnel(`${MIDDLE}://127.0.0.1:0`, `tcp://127.0.0.1:${c.port}`);
  const client = await tunnel("tcp://127.0.0.1:0", `${MIDDLE}://127.0.0.1:${server.port}`);
  const tcp = (port: number) => ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"];
  try {
    console.log(`PostgreSQL ${c.serverVersion}; tunnels: ${runtime}, middle hop ${MIDDLE}://, provider ${PROVIDER}; ${ROUNDS} round(s)`);
    await run(join(BIN, "pgbench"), ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-i", "-q", "-s", String(SCALE), "postgres"]);
    const best = { pgDirect: 0, pgTunnel: 0, copyDirect: 0, copyTunnel: 0 };
    const cpu = { pgbench: 0, copy: 0 };
    const pgbench = async (port: number) =>
      tpsOf(await run(join(BIN, "pgbench"), [...tcp(port), "-c", "8", "-j", "2", "-T", String(SECONDS), "-S", "-n", "postgres"]));
    const rows = COPY_MB * 1024;
    const sql = `COPY (SELECT s.r FROM (SELECT repeat('x', 1023) AS r OFFSET 0) s CROSS JOIN generate_series(1, ${rows})) TO STDOUT`;
    const copy = async (port: number) => {
      const t0 = performance.now();
      await run(join(BIN, "psql"), [...tcp(port), "-X", "-d", "postgres", "-c", sql], { toNull: true });
      return COPY_MB / ((performance.now() - t0) / 1000);
    };
    /** Runs fn through the tunnel, adding the tunnels' CPU seconds to `cpu[key]`. */
    const through = async <T>(key: keyof typeof cpu, fn: () => Promise<T>): Promise<T> => {
      const before = cpuSeconds(client.child.pid!) + cpuSeconds(server.child.pid!);
      const r = await fn();
      cpu[key] += cpuSeconds(client.child.pid!) + cpuSeconds(server.child.pid!) - before;
      return r;
    };
    for (let round = 0; round < ROUNDS; round++) {
      const direct = () => pgbench(c.port);
      const tunneled = () => through("pgbench", () => pgbench(client.port));
      const [d, t] = round % 2 ? [await direct(), await tunneled()] : [...[await tunneled(), await direct()].reverse()];
      best.pgDirect = Math.max(best.pgDirect, d);
      best.pgTunnel = Math.max(best.pgTunnel, t);
      console.log(`pgbench -S round ${round + 1}: direct ${d.toFixed(0)} tps, tunnel ${t.toFixed(0)} tps (${(t / d).toFixed(2)}x)`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const direct = () => copy(c.port);
      const tunneled = () => through("copy", () => copy(client.port));
      const [d, t] = round % 2 ? [await direct(), await tunneled()] : [...[await tunneled(), await direct()].reverse()];
      best.copyDirect = Math.max(best.copyDirect, d);
      best.copyTunnel = Math.max(best.copyTunnel, t);
      console.log(`COPY ${COPY_MB} MiB round ${round + 1}: direct ${d.toFixed(0)} MB/s, tunnel ${t.toFixed(0)} MB/s (${(t / d).toFixed(2)}x)`);
    }
    const pgRatio = best.pgTunnel / best.pgDirect;
    const copyRatio = best.copyTunnel / best.copyDirect;
    console.log(
      `\n| tunnels run by | pgbench -S direct tps | through tunnels | ratio | COPY direct MB/s | through tunnels | ratio | tunnels' CPU s (pgbench / COPY, all rounds) |`,
    );
    console.log(`|---|---|---|---|---|---|---|---|`);
    console.log(
      `| ${runtime} | ${best.pgDirect.toFixed(0)} | ${best.pgTunnel.toFixed(0)} | ${pgRatio.toFixed(2)}× | ${best.copyDirect.toFixed(0)} | ` +
        `${best.copyTunnel.toFixed(0)} | ${copyRatio.toFixed(2)}× | ${cpu.pgbench.toFixed(1)} / ${cpu.copy.toFixed(1)} |`,
    );
    console.log(`targets: pgbench >= 0.8x: ${pgRatio >= 0.8 ? "met" : "NOT met"}; COPY >= 0.9x: ${copyRatio >= 0.9 ? "met" : "NOT met"}`);
  } finally {
    await Promise.all([client.stop(), server.stop()]);
    await c.stop();
  }
}
