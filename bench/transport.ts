/**
 * Transport benchmark: our rsocket Duplex against the runtime's own `node:net`, same run, same
 * peer. Bulk throughput (1 GiB each way) and 64-byte ping-pong latency (p50/p99), the FFI
 * transport in its default mode and with busy-polling (`pollingTime`). Ratios are against
 * node:net measured in the same run.
 *
 * ```sh
 * npx deno run -A bench/transport.ts          # Deno
 * npx bun bench/transport.ts                  # Bun
 * node dist/bench/transport.js                # Node (after npm run build)
 * ```
 *
 * With no `--host`, the peer is a node:net server in a child process of the same runtime on
 * 127.0.0.1, and the FFI transport uses the `kernel` provider (libc TCP through the same FFI,
 * poller and Duplex code as rsockets). On RDMA hardware, run the server on one host and the
 * client on the other, both with the `rdma` provider and the address of the RDMA interface:
 *
 * ```sh
 * node dist/bench/transport.js --serve --provider rdma --host 10.0.0.2 --port 7471   # server
 * node dist/bench/transport.js --provider rdma --host 10.0.0.2 --port 7471           # client
 * ```
 *
 * Options: `--size <MiB>` (default 1024), `--rounds <n>` ping-pongs (default 5000), `--reps <n>`
 * interleaved repetitions whose medians are reported (default 7, after one unrecorded 64 MiB
 * warm-up each way per transport; every other repetition runs the transports in reverse order),
 * `--polling-time <µs>` for the busy-poll row (default 50), `--provider rdma|kernel`.
 *
 * Wire protocol between client and server: the client sends one 9-byte header, a command byte
 * and a big-endian u64 length: `E` echo everything back (ping-pong), `S` sink `length` bytes
 * then answer one byte, `W` send `length` bytes then end.
 *
 * @module
 */
import { createConnection as netConnect, createServer as netServer } from "node:net";
import type { Duplex } from "node:stream";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import process from "node:process";
import {
  createConnection,
  createServer,
  pollerStats,
  type RsocketSocket,
} from "../transport/mod.ts";

const { values } = parseArgs({
  options: {
    serve: { type: "boolean", default: false },
    provider: { type: "string", default: "kernel" },
    host: { type: "string" },
    port: { type: "string", default: "0" },
    size: { type: "string", default: "1024" },
    rounds: { type: "string", default: "5000" },
    "polling-time": { type: "string", default: "50" },
    reps: { type: "string", default: "7" },
  },
});
const provider = values.provider as "kernel" | "rdma" | "native";
if (!["kernel", "rdma", "native"].includes(provider)) {
  throw new TypeError(`--provider must be rdma, kernel or native, got ${values.provider}`);
}
const SIZE = Number(values.size) * 2 ** 20;
const FULL = SIZE;
const ROUNDS = Number(values.rounds);
const POLLING = Number(values["polling-time"]);
const REPS = Number(values.reps);

// -- server -----------------------------------------------------------------------------------

function serve(s: Duplex): void {
  s.on("error", () => {});
  let head = new Uint8Array(0);
  const onHead = (d: Uint8Array) => {
    const joined = new Uint8Array(head.length + d.length);
    joined.set(head);
    joined.set(d, head.length);
    head = joined;
    if (head.length < 9) return;
    s.off("data", onHead);
    const cmd = String.fromCharCode(head[0]);
    const len = Number(new DataView(head.buffer, head.byteOffset).getBigUint64(1));
    const rest = head.subarray(9);
    if (cmd === "E") {
      if (rest.length) s.write(rest);
      s.on("data", (x: Uint8Array) => s.write(x));
    } else if (cmd === "S") {
      let got = rest.length;
      const done = () => got >= len && (s.off("data", count), s.write(new Uint8Array([1])));
      const count = (x: Uint8Array) => (got += x.length, done());
      s.on("data", count);
      done();
    } else if (cmd === "W") {
      const chunk = new Uint8Array(256 * 1024).fill(0x5a);
      let sent = 0;
      const pump = () => {
        while (sent < len) {
          const n = Math.min(chunk.length, len - sent);
          sent += n;
          if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            return void s.once("drain", pump);
          }
        }
        s.end();
      };
      pump();
    } else s.destroy();
  };
  s.on("data", onHead);
}

async function runServer(): Promise<void> {
  const host = values.host ?? "127.0.0.1";
  const port = Number(values.port);
  let address: { port: number };
  if (provider === "native") {
    const srv = netServer((s) => (s.setNoDelay(true), serve(s)));
    srv.listen(port, host);
    await once(srv, "listening");
    address = srv.address() as { port: number };
  } else {
    const srv = createServer({ provider, pollingTime: POLLING }, serve);
    srv.listen({ port, host });
    await once(srv, "listening");
    address = srv.address()!;
  }
  process.stdout.write(`listening ${host} ${address.port}\n`);
  // A child server ends with its parent (stdin closes).
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("close", () => process.exit(0));
  process.stdin.resume();
}

// -- client -----------------------------------------------------------------------------------

type Dial = () => Promise<Duplex>;

function header(cmd: string, len: number): Uint8Array {
  const h = new Uint8Array(9);
  h[0] = cmd.charCodeAt(0);
  new DataView(h.buffer).setBigUint64(1, BigInt(len));
  return h;
}

/** CPU time (user + system, all threads) this process used since `c0`, in ms. */
function cpuMs(c0: ReturnType<typeof process.cpuUsage>): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

async function upload(dial: Dial, SIZE = FULL): Promise<[number, number]> {
  const s = await dial();
  const chunk = new Uint8Array(256 * 1024).fill(0xa5);
  const ack = new Promise<void>((resolve) => s.once("data", () => resolve()));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  s.write(header("S", SIZE));
  for (let sent = 0; sent < SIZE; sent += chunk.length) {
    if (!s.write(chunk)) await once(s, "drain");
  }
  await ack;
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuMs(c0);
  s.destroy();
  return [SIZE / 1e6 / secs, cpu / (SIZE / 2 ** 30)];
}

async function download(dial: Dial, SIZE = FULL): Promise<[number, number]> {
  const s = await dial();
  let got = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const done = new Promise<void>((resolve) => s.once("end", resolve));
  s.on("data", (d: Uint8Array) => (got += d.length));
  s.write(header("W", SIZE));
  await done;
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuMs(c0);
  if (got !== SIZE) throw new Error(`downloaded ${got} of ${SIZE} bytes`);
  s.destroy();
  return [SIZE / 1e6 / secs, cpu / (SIZE / 2 ** 30)];
}

async function pingPong(dial: Dial): Promise<{ p50: number; p99: number }> {
  const s = await dial();
  s.write(header("E", 0));
  const msg = new Uint8Array(64).fill(1);
  let need = 0, wake: (() => void) | undefined;
  s.on("data", (d: Uint8Array) => {
    need -= d.length;
    if (need <= 0 && wake) (wake(), wake = undefined);
  });
  const lat: number[] = [];
  const warm = Math.min(500, ROUNDS / 10);
  for (let i = 0; i < ROUNDS + warm; i++) {
    const t0 = performance.now();
    need = 64;
    const got = new Promise<void>((resolve) => (wake = resolve));
    s.write(msg);
    await got;
    if (i >= warm) lat.push((performance.now() - t0) * 1000);
  }
  s.destroy();
  lat.sort((a, b) => a - b);
  return { p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)] };
}

async function startPeer(): Promise<{ host: string; port: number; stop(): void }> {
  if (values.host) return { host: values.host, port: Number(values.port), stop() {} };
  const self = fileURLToPath(import.meta.url);
  const args = "Deno" in globalThis ? ["run", "-A", self] : [self];
  const child = spawn(process.execPath, [...args, "--serve", "--provider", "native"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let out = "";
  for await (const d of child.stdout) {
    out += d;
    if (/listening \S+ \d+/.test(out)) break;
  }
  const m = /listening (\S+) (\d+)/.exec(out);
  if (!m) throw new Error(`the peer did not start: ${out}`);
  return { host: m[1], port: Number(m[2]), stop: () => (child.stdin?.end(), child.kill()) };
}

async function runClient(): Promise<void> {
  const peer = await startPeer();
  const ffiKind = provider === "native" ? "kernel" : provider;
  const dialNative: Dial = async () => {
    const s = netConnect({ host: peer.host, port: peer.port, noDelay: true });
    await once(s, "connect");
    return s;
  };
  const dialFfi = (pollingTime: number): Dial => async () => {
    const s: RsocketSocket = createConnection({
      host: peer.host,
      port: peer.port,
      provider: ffiKind,
      pollingTime,
      noDelay: true,
    });
    await once(s, "connect");
    return s;
  };
  const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
  // Interleaved repetitions, medians reported: the machines this runs on are shared.
  const plan: [string, Dial, boolean][] = [];
  // Against a remote rsocket server there is no TCP peer to compare with: absolute figures.
  if (!values.host) plan.push(["node:net", dialNative, true]);
  plan.push([`ffi ${ffiKind}`, dialFfi(0), true]);
  plan.push([`ffi ${ffiKind}, pollingTime ${POLLING} µs`, dialFfi(POLLING), false]);
  const samples = plan.map(() => [[], [], [], [], [], []] as number[][]);
  const pollerNotes: string[] = [];
  try {
    // One unrecorded warm-up per transport: JIT, the poller's helper thread, first slabs.
    for (const [, dial, bulk] of plan) {
      if (bulk) await upload(dial, 64 << 20), await download(dial, 64 << 20);
    }
    for (let rep = 0; rep < REPS; rep++) {
      // Every other repetition runs the transports in reverse order, so a drift in the
      // machine's state (it swings by 2x on this VM within a minute) hits both alike.
      const order = [...plan.keys()];
      if (rep % 2 === 1) order.reverse();
      for (const i of order) {
        const [name, dial, bulk] = plan[i];
        if (bulk) {
          const ffi = !name.startsWith("node:net");
          const st0 = ffi ? pollerStats(ffiKind) : undefined;
          const [up, upCpu] = await upload(dial);
          const st1 = ffi ? pollerStats(ffiKind) : undefined;
          const [down, downCpu] = await download(dial);
          const st2 = ffi ? pollerStats(ffiKind) : undefined;
          if (st0 && st1 && st2 && rep === REPS - 1) {
            const gib = SIZE / 2 ** 30;
            const per = (a: typeof st0, b: typeof st0) =>
              `parks ${((b.parks - a.parks) / gib).toFixed(0)}, rpoll(0) ${
                ((b.polls - a.polls) / gib).toFixed(0)
              }, dispatches ${((b.dispatches - a.dispatches) / gib).toFixed(0)}`;
            pollerNotes.push(`${name}: per GiB up: ${per(st0, st1)}; down: ${per(st1, st2)}`);
          }
          samples[i][0].push(up);
          samples[i][1].push(down);
          samples[i][4].push(upCpu);
          samples[i][5].push(downCpu);
        }
        const { p50, p99 } = await pingPong(dial);
        samples[i][2].push(p50);
        samples[i][3].push(p99);
      }
    }
  } finally {
    peer.stop();
  }
  const median = (xs: number[]) => {
    if (!xs.length) return NaN;
    const v = [...xs].sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  const rows = plan.map(([name], i) =>
    [name, ...samples[i].map(median)] as [string, number, number, number, number, number, number]
  );
  const ref = rows[0][0] === "node:net" ? rows[0] : undefined;
  const f = (x: number, d = 0) => (Number.isNaN(x) ? "–" : x.toFixed(d));
  const r = (x: number, y: number) => (Number.isNaN(x) ? "" : ` (${(x / y).toFixed(2)}×)`);
  console.log(
    `\n${runtime}, medians of ${REPS} interleaved runs: ${
      SIZE / 2 ** 20
    } MiB each way, ${ROUNDS} ping-pongs of 64 B, peer ${
      values.host ? `${provider} server` : "node:net"
    } on ${peer.host}\n`,
  );
  console.log(
    "| transport | upload MB/s | download MB/s | ping-pong p50 µs | p99 µs | client CPU ms/GiB up / down |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const [name, up, down, p50, p99, upCpu, downCpu] of rows) {
    const rel = (x: number, i: number) => (!ref || ref[0] === name ? "" : r(x, ref[i] as number));
    console.log(
      `| ${name} | ${f(up)}${rel(up, 1)} | ${f(down)}${rel(down, 2)} | ${f(p50, 1)}${
        rel(p50, 3)
      } | ${f(p99, 1)}${rel(p99, 4)} | ${f(upCpu)} / ${f(downCpu)} |`,
    );
  }
  if (ref) {
    // Each repetition's ffi run next to that repetition's node:net run: the median of these
    // paired ratios is less exposed to the machine's drift than the ratio of the medians.
    const i = plan.findIndex(([, , bulk], j) => bulk && j > 0);
    const paired = (k: number) => samples[i][k].map((x, rep) => x / samples[0][k][rep]);
    const show = (k: number) =>
      `${paired(k).map((x) => x.toFixed(2)).join(" ")} (median ${median(paired(k)).toFixed(2)}×)`;
    console.log(`\n${plan[i][0]} ÷ node:net per repetition, upload: ${show(0)}; download: ${show(1)}`);
  }
  for (const note of pollerNotes) console.log(`\npoller, ${note}`);
}

if (values.serve) await runServer();
else await runClient();
