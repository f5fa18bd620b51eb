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
 * Direct and each tunnel chain take turns (who goes first rotates each round); the best of
 * `BENCH_ROUNDS` (default 2) is kept, and the ratios are tunnel ÷ direct. By default two chains
 * run in the same run: one whose middle hop is our rsocket transport, and one of plain node:net
 * relays (`tcp://` both ways, no FFI), so the reader sees what the relay costs and what the
 * transport adds. The CPU seconds each chain's tunnels used are printed too (from /proc), and,
 * per pgbench transaction, the CPU µs and the pollers' counters (off-thread parks, eventfd
 * wake-ups, `rpoll(…, 0)` calls, sockets dispatched), which the tunnels log with `--verbose`.
 *
 * ```sh
 * node dist/bench/tunnel.js          # tunnels run by Node (after npm run build)
 * npx bun bench/tunnel.ts            # by Bun
 * npx deno run -A bench/tunnel.ts    # by Deno
 * ```
 *
 * Environment: `BENCH_ROUNDS`, `BENCH_SECONDS` (pgbench -T, default 15), `BENCH_COPY_MB`
 * (default 1024), `BENCH_SCALE` (default 10), `BENCH_PROVIDER` (default kernel), `BENCH_MIDDLE`
 * (`both`, default; `rdma`: only our transport; `tcp`: only node:net relays; `socat`: Debian's
 * socat, a relay in C, as the floor of what any user-space relay costs; a comma list mixes
 * them), `BENCH_SHAPE` (`chain`, default: the two tunnels above; `single`: one client-side
 * tunnel whose `rdma://` side connects straight to PostgreSQL, the shape used in front of a
 * server that listens for rsockets itself, as Postgres Pro Enterprise does; on the kernel
 * provider PostgreSQL accepts that connection as TCP), `BENCH_NETNS=1` (the
 * client-side tunnels and the clients in a network namespace of their own, over a veth pair;
 * direct runs stay on loopback; needs CAP_NET_ADMIN), `BENCH_PROFILE=DIR` (Node: V8 CPU
 * profiles of the tunnels into DIR).
 *
 * @module
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
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
/**
 * Which middle hops to measure, each through its own pair of tunnels in the same run: `rdma`
 * (our transport), `tcp` (node:net relays, no FFI: how much is the relay itself), or `both`
 * (the default).
 */
const MIDDLE = process.env.BENCH_MIDDLE ?? "both";
type Middle = "rdma" | "tcp" | "socat";
const MIDDLES: Middle[] = MIDDLE === "both" ? ["rdma", "tcp"] : (MIDDLE.split(",") as Middle[]);
for (const m of MIDDLES) {
  if (!["rdma", "tcp", "socat"].includes(m)) throw new TypeError(`BENCH_MIDDLE must be rdma, tcp, socat, a comma list of them, or both; got ${MIDDLE}`);
}
/** `chain`: client-side tunnel -> server-side tunnel -> PostgreSQL; `single`: one tunnel -> PostgreSQL. */
const SHAPE = process.env.BENCH_SHAPE ?? "chain";
if (SHAPE !== "chain" && SHAPE !== "single") throw new TypeError(`BENCH_SHAPE must be chain or single, got ${SHAPE}`);
if (SHAPE === "single" && process.env.BENCH_NETNS === "1") throw new TypeError("BENCH_SHAPE=single and BENCH_NETNS=1 do not combine: PostgreSQL listens on loopback only");
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

/**
 * user + system CPU seconds of a process so far, with those of its children it reaped (socat
 * forks one per connection) (Linux /proc; clock ticks of 100 Hz).
 */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
}

interface Tunnel {
  port: number;
  child: ChildProcess;
  /** The poller counters the tunnel logged last (with --verbose, at each disconnection). */
  stats(): Record<string, number>;
  stop(): Promise<void>;
}

/**
 * BENCH_NETNS=1: the client-side tunnel and the clients (pgbench, psql) run in a network
 * namespace of their own, joined to this one by a veth pair (10.213.0.1 here, 10.213.0.2
 * there), so the middle hop crosses a real link between two network stacks, as between an
 * application host and a database host (the CPUs are still shared). Needs CAP_NET_ADMIN.
 */
const NETNS = process.env.BENCH_NETNS === "1";
const NS = `pgrdma-bench-${process.pid}`;
const VETH = [`prb${process.pid % 100000}a`, `prb${process.pid % 100000}b`];
const HERE = NETNS ? "10.213.0.1" : "127.0.0.1";
/** Command prefix that runs a program on the client side. */
const clientSide: string[] = NETNS ? ["ip", "netns", "exec", NS] : [];

function netnsUp(): void {
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
  try {
    ip("netns", "add", NS);
    ip("link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1]);
    ip("link", "set", VETH[1], "netns", NS);
    ip("addr", "add", "10.213.0.1/24", "dev", VETH[0]);
    ip("link", "set", VETH[0], "up");
    ip("netns", "exec", NS, "ip", "addr", "add", "10.213.0.2/24", "dev", VETH[1]);
    ip("netns", "exec", NS, "ip", "link", "set", VETH[1], "up");
    ip("netns", "exec", NS, "ip", "link", "set", "lo", "up");
  } catch (e) {
    netnsDown();
    const why = String((e as { stderr?: unknown }).stderr ?? "").trim() || (e as Error).message;
    throw new Error(`BENCH_NETNS=1: cannot set up the network namespace (${why})`, { cause: e });
  }
}

function netnsDown(): void {
  // Deleting the namespace deletes its veth end, and with it the pair.
  for (const args of [["netns", "del", NS], ["link", "del", VETH[0]]]) {
    try {
      execFileSync("ip", args, { stdio: "ignore" });
    } catch { /* already gone */ }
  }
}

async function tunnel(listen: string, connect: string, prefix: string[] = []): Promise<Tunnel> {
  // BENCH_PROFILE=DIR (Node): each tunnel writes a V8 CPU profile there when it stops.
  const prof = process.env.BENCH_PROFILE && runtime === "node" ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const argv = [exe, ...prof, ...baseArgs, "tunnel", "--verbose", "--listen", listen, "--connect", connect, "--provider", PROVIDER];
  const full = [...prefix, ...argv];
  // `ip netns exec` execs the program: the pid (for the CPU seconds) stays the tunnel's.
  const child = spawn(full[0], full.slice(1), {
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
  // Keep draining its log (lines per connection), or a full pipe would stall it; keep the
  // last poller counters.
  let stats: Record<string, number> = {};
  let tail = "";
  child.stderr!.on("data", (d) => {
    const lines = (tail + String(d)).split("\n");
    tail = lines.pop()!;
    for (const l of lines) {
      const m = /poller stats: (\{.*\})/.exec(l);
      if (m) stats = JSON.parse(m[1]);
    }
  });
  err = "";
  return { port, child, stats: () => stats, stop: () => (child.kill("SIGTERM"), exited) };
}

/** A free TCP port on `host` (socat cannot report the one it was given). */
async function freePort(host: string): Promise<number> {
  const { createServer } = await import("node:net");
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Debian's socat as a relay `listen` -> `connect` (TCP both ways), with the Tunnel shape. */
async function socatRelay(host: string, target: string, prefix: string[] = []): Promise<Tunnel> {
  const port = await freePort(host);
  const full = [...prefix, "socat", `TCP-LISTEN:${port},bind=${host},fork,reuseaddr,nodelay`, `TCP:${target},nodelay`];
  const child = spawn(full[0], full.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  let err = "";
  child.stderr!.on("data", (d) => (err += String(d)));
  // Listening once a connection succeeds.
  const { connect } = await import("node:net");
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, host, () => (s.destroy(), r(true)));
      s.on("error", () => r(false));
    });
    if (ok) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`socat did not listen on ${host}:${port}: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, child, stats: () => ({}), stop: () => (child.kill("SIGTERM"), exited) };
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
  if (NETNS) netnsUp();
  /**
   * The relays between the clients and PostgreSQL: a client-side tunnel chained to a
   * server-side one with the middle hop over `middle` (shape `chain`), or the client-side one
   * alone (shape `single`). `client` is the one the clients connect to.
   */
  interface Chain {
    middle: Middle;
    label: string;
    relays: Tunnel[];
    client: Tunnel;
    best: { pgbench: number; copy: number };
    cpu: { pgbench: number; copy: number };
    perTx: { parks: number; wakeUps: number; polls: number; dispatches: number; cpuUs: number; txns: number };
  }
  const chains: Chain[] = [];
  const tcp = (port: number) => ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"];
  /** pgbench / psql through the tunnels run where the client-side tunnel runs. */
  const tool = (name: string, port: number) =>
    port === c.port ? [join(BIN, name)] : [...clientSide, join(BIN, name)];
  try {
    for (const middle of MIDDLES) {
      const relays: Tunnel[] = [];
      let target = `${HERE}:${c.port}`;
      if (SHAPE === "chain") {
        const server = middle === "socat"
          ? await socatRelay(HERE, `127.0.0.1:${c.port}`)
          : await tunnel(`${middle}://${HERE}:0`, `tcp://127.0.0.1:${c.port}`);
        relays.push(server);
        target = `${HERE}:${server.port}`;
      }
      const client = middle === "socat"
        ? await socatRelay("127.0.0.1", target, clientSide)
        : await tunnel("tcp://127.0.0.1:0", `${middle}://${target}`, clientSide);
      relays.unshift(client);
      const what = middle === "rdma"
        ? `rsocket transport (${PROVIDER} provider)`
        : middle === "tcp"
        ? "node:net relays (tcp://, no FFI)"
        : "socat relays (C, no JavaScript)";
      chains.push({
        middle,
        label: SHAPE === "single" ? what.replace("relays", "relay") + ", one tunnel" : what,
        relays,
        client,
        best: { pgbench: 0, copy: 0 },
        cpu: { pgbench: 0, copy: 0 },
        perTx: { parks: 0, wakeUps: 0, polls: 0, dispatches: 0, cpuUs: 0, txns: 0 },
      });
    }
    console.log(
      `PostgreSQL ${c.serverVersion}; tunnels: ${runtime}; middle hops: ${MIDDLES.map((m) => `${m}://`).join(", ")}; ` +
        `provider ${PROVIDER}; shape ${SHAPE}; ${ROUNDS} round(s)` +
        (NETNS ? `; client side in network namespace ${NS} (veth 10.213.0.2 -> 10.213.0.1)` : ""),
    );
    await run(join(BIN, "pgbench"), ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-i", "-q", "-s", String(SCALE), "postgres"]);
    const direct = { pgbench: 0, copy: 0 };
    let txns = 0;
    const pgbench = async (port: number) => {
      const [cmd, ...pre] = tool("pgbench", port);
      const out = await run(cmd, [...pre, ...tcp(port), "-c", "8", "-j", "2", "-T", String(SECONDS), "-S", "-n", "postgres"]);
      txns = Number(/actually processed: (\d+)/.exec(out)?.[1] ?? 0);
      return tpsOf(out);
    };
    const rows = COPY_MB * 1024;
    const sql = `COPY (SELECT s.r FROM (SELECT repeat('x', 1023) AS r OFFSET 0) s CROSS JOIN generate_series(1, ${rows})) TO STDOUT`;
    const copy = async (port: number) => {
      const t0 = performance.now();
      const [cmd, ...pre] = tool("psql", port);
      await run(cmd, [...pre, ...tcp(port), "-X", "-d", "postgres", "-c", sql], { toNull: true });
      return COPY_MB / ((performance.now() - t0) / 1000);
    };
    const counters = (ch: Chain) => {
      const all = ch.relays.map((r) => r.stats());
      const k = (x: string) => all.reduce((sum, a) => sum + (a[x] ?? 0), 0);
      return { parks: k("parks"), wakeUps: k("wakeUps"), polls: k("polls"), dispatches: k("dispatches") };
    };
    /** Runs one measurement through `ch`, adding its tunnels' CPU seconds (and, for pgbench, counters). */
    const through = async (ch: Chain, key: "pgbench" | "copy"): Promise<number> => {
      const cpu = () => ch.relays.reduce((sum, t) => sum + cpuSeconds(t.child.pid!), 0);
      const cpu0 = cpu();
      const s0 = counters(ch);
      const r = key === "pgbench" ? await pgbench(ch.client.port) : await copy(ch.client.port);
      if (ch.middle === "socat") await new Promise((res) => setTimeout(res, 200)); // its children reaped
      const used = cpu() - cpu0;
      ch.cpu[key] += used;
      if (key === "pgbench") {
        await new Promise((res) => setTimeout(res, 200)); // the disconnection lines carry the counters
        const s1 = counters(ch);
        for (const k of ["parks", "wakeUps", "polls", "dispatches"] as const) ch.perTx[k] += s1[k] - s0[k];
        ch.perTx.cpuUs += used * 1e6;
        ch.perTx.txns += txns;
      }
      return r;
    };
    for (const key of ["pgbench", "copy"] as const) {
      for (let round = 0; round < ROUNDS; round++) {
        // Who goes first rotates each round: direct, then each chain.
        const order: (Chain | undefined)[] = [undefined, ...chains];
        for (let i = 0; i < round % order.length; i++) order.push(order.shift());
        const got = new Map<Chain | undefined, number>();
        for (const ch of order) got.set(ch, ch ? await through(ch, key) : key === "pgbench" ? await pgbench(c.port) : await copy(c.port));
        const d = got.get(undefined)!;
        direct[key] = Math.max(direct[key], d);
        const unit = key === "pgbench" ? "tps" : "MB/s";
        const parts = chains.map((ch) => {
          const t = got.get(ch)!;
          ch.best[key] = Math.max(ch.best[key], t);
          return `${ch.middle} ${t.toFixed(0)} ${unit} (${(t / d).toFixed(2)}x)`;
        });
        console.log(`${key === "pgbench" ? "pgbench -S" : `COPY ${COPY_MB} MiB`} round ${round + 1}: direct ${d.toFixed(0)} ${unit}, ${parts.join(", ")}`);
      }
    }
    for (const ch of chains) {
      const t = ch.perTx;
      if (t.txns === 0) continue;
      const f = (x: number) => (x / t.txns).toFixed(2);
      console.log(
        `per pgbench transaction, ${ch.relays.length === 1 ? "the" : "both"} ${ch.middle} relay${ch.relays.length === 1 ? "" : "s"}: ${f(t.cpuUs)} CPU µs` +
          (ch.middle === "rdma"
            ? `, off-thread parks ${f(t.parks)}, eventfd wake-ups ${f(t.wakeUps)}, rpoll(…, 0) ${f(t.polls)}, sockets dispatched ${f(t.dispatches)}`
            : ""),
      );
    }
    console.log(
      `\n| tunnels run by | middle hop | pgbench -S direct tps | through tunnels | ratio | COPY direct MB/s | through tunnels | ratio | tunnels' CPU s (pgbench / COPY, all rounds) |`,
    );
    console.log(`|---|---|---|---|---|---|---|---|---|`);
    for (const ch of chains) {
      console.log(
        `| ${runtime} | ${ch.label} | ${direct.pgbench.toFixed(0)} | ${ch.best.pgbench.toFixed(0)} | ${(ch.best.pgbench / direct.pgbench).toFixed(2)}× | ` +
          `${direct.copy.toFixed(0)} | ${ch.best.copy.toFixed(0)} | ${(ch.best.copy / direct.copy).toFixed(2)}× | ${ch.cpu.pgbench.toFixed(1)} / ${ch.cpu.copy.toFixed(1)} |`,
      );
    }
    const ours = chains.find((ch) => ch.middle === "rdma");
    if (ours) {
      const pg = ours.best.pgbench / direct.pgbench, cp = ours.best.copy / direct.copy;
      console.log(`targets (rsocket transport): pgbench >= 0.8x: ${pg >= 0.8 ? "met" : "NOT met"}; COPY >= 0.9x: ${cp >= 0.9 ? "met" : "NOT met"}`);
    }
  } finally {
    await Promise.all(chains.flatMap((ch) => ch.relays.map((r) => r.stop())));
    if (NETNS) netnsDown();
    await c.stop();
  }
}
