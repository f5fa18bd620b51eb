/**
 * Logical replication throughput and lag, against peers measured in the same run:
 *
 * 1. A PostgreSQL 15 cluster of its own (the fixture's `startCluster`), a 6-column table, and one
 *    pgoutput slot per contender created before the workload: N row inserts (default 1 000 000,
 *    in transactions of 1 000 rows).
 * 2. Each contender drains its slot up to the WAL position after the workload (three rounds,
 *    contenders interleaved, best time kept: the machine is shared; every round is printed too,
 *    with this process's user and system CPU and, on Node, its garbage collection time per
 *    change). Where there are two CPUs or more, this process and pg_recvlogical run on CPU 0 and
 *    the server on CPU 1 (see PIN below):
 *    - `pg_recvlogical -f /dev/null` (Debian's 15 binary): raw bytes, no decoding — our ceiling;
 *    - pg-rdma's `logicalReplication()` (decoding every value with pg/'s types, acknowledging
 *      every transaction);
 *    - `pg-logical-replication` (npm, PgoutputPlugin, automatic acknowledgement).
 *    Prints changes/s and the ratios.
 * 3. End-to-end lag at a fixed rate: a writer commits 20-row transactions at 2 000 rows/s for
 *    5 s while each JS contender streams; lag = delivery time − commit time (same host clock);
 *    prints p50 / p99 / max.
 *
 * Run: `deno run -A bench/logical.ts [rows]`, `bun bench/logical.ts [rows]`,
 * `node dist/bench/logical.js [rows]` (after `npm run build`). Environment: `BENCH_PIN=A:B` or
 * `none`, `BENCH_DIAG=1` (bytes per socket read of pg-rdma), `BENCH_NO_LAG=1` (skip step 3),
 * `BENCH_REPS=n` (rounds, default 3).
 *
 * Every round also prints what couples the consumer to its walsender (Linux /proc): the
 * consumer's sleeps (voluntary context switches of its main thread; pg_recvlogical's through
 * /usr/bin/time), the walsender's CPU per change with its system part and its own sleeps (it
 * sleeps when the socket to the consumer is full), and each CPU's busy / idle / steal share.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { PerformanceObserver } from "node:perf_hooks";
import { psql, startCluster } from "../tests/_fixture/cluster.ts";
import { applyPin, describePin, onClientCpu, pinFromEnv, serverChildren, serverCpu, statFields } from "./_pin.ts";
import { connect, type ConnectOptions } from "../pg/mod.ts";
import { attemptFactory } from "../pg/client.ts";
import { logicalReplication, parseLsn } from "../replication/mod.ts";
import { LogicalReplicationService, PgoutputPlugin } from "pg-logical-replication";

const ROWS = Number(process.argv[2] ?? 1_000_000);
const TX = 1000;
const g = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } };
const runtimeName = g.Deno ? `Deno ${g.Deno.version.deno}` : g.Bun ? `Bun ${g.Bun.version}` : `Node ${process.version}`;

const c = await startCluster(15);
const db = "bench";
const q = (sql: string) => psql(c, sql, { database: db });
const ms = (t0: number) => performance.now() - t0;
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const lines: string[] = [];
const say = (s: string) => {
  lines.push(s);
  process.stdout.write(s + "\n");
};

const REPS = Number(process.env.BENCH_REPS ?? 3);
if (!Number.isInteger(REPS) || REPS < 1) throw new RangeError(`BENCH_REPS must be a positive integer, got ${process.env.BENCH_REPS}`);
// Pinned (bench/_pin.ts; default "0:1" where there are two CPUs or more): this process and
// pg_recvlogical on one CPU, the server (and so every walsender) on the other, the same for every
// contender. Unpinned, the kernel often wakes the consumer on the walsender's CPU (a unix socket
// write is a sync wakeup): both then share one core, the consumer reads ~1.5 KB instead of ~8 KB
// per wake-up and its CPU per change rises by 40%, by chance from one contender's run to the next
// (measured: Node, pinned 0:0 against 0:1).
const PIN = pinFromEnv();
// BENCH_DIAG=1: count the socket's reads for pg-rdma (an extra 'data' listener: slightly slower).
// Only sockets that emit 'data' are counted (Bun's): in Node and Deno the client's own socket
// reads through `onread` (pg/_receive.ts) and emits none, so the column says n/a there.
const DIAG = process.env.BENCH_DIAG === "1";
if (PIN) applyPin(PIN, c.pid);
// Garbage collection time of this process where the runtime reports it (Node).
let gcMs = 0;
try {
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gcMs += e.duration;
  }).observe({ entryTypes: ["gc"] });
} catch {
  gcMs = NaN;
}
let reads = 0;
let readBytes = 0;
const diagOptions: ConnectOptions = DIAG
  ? {
    socketFactory: async (t, o) => {
      // The socket the client would use by default (in Bun, Bun.connect: pg/_bun_socket.ts).
      const s = await attemptFactory(undefined, "plain")(t, o);
      s.on("data", (b: Uint8Array) => {
        reads++;
        readBytes += b.length;
      });
      return s;
    },
  }
  : {};
// pg_recvlogical's voluntary context switches in its last run (from /usr/bin/time).
let recvSwitches = [0, 0];
// Voluntary and involuntary context switches of a process's main thread.
function switches(pid: number | "self"): [number, number] {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    return [Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(s)![1]), Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(s)![1])];
  } catch {
    return [NaN, NaN];
  }
}
// Per-CPU jiffies from /proc/stat: [busy (user+nice+system+irq+softirq), idle (+iowait), steal].
function cpuTimes(): number[][] {
  const out: number[][] = [];
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d+) (.*)/.exec(line);
    if (!m) continue;
    const f = m[2].split(" ").map(Number);
    out[Number(m[1])] = [f[0] + f[1] + f[2] + f[5] + f[6], f[3] + f[4], f[7]];
  }
  return out;
}
// System CPU (s) of the postmaster's reaped children (stat field 17, cstime).
function childSystem(postmaster: number): number {
  return Number(statFields(postmaster)?.[14]) / 100;
}
// Samples the context switches of the walsender that serves the run (the postmaster's child
// whose title says walsender) every 20 ms; the returned function stops and gives the last sample.
function watchWalsender(postmaster: number): () => [number, number] {
  let pid = 0;
  let last: [number, number] = [0, 0];
  const find = () => serverChildren(postmaster).find((p) => p.title.includes("walsender"))?.pid ?? 0;
  const timer = setInterval(() => {
    if (pid === 0) pid = find();
    if (pid === 0) return;
    const v = switches(pid);
    if (!Number.isNaN(v[0])) last = v;
  }, 20);
  return () => {
    clearInterval(timer);
    return last;
  };
}
try {
  await psql(c, `CREATE DATABASE ${db}`);
  await q(`CREATE TABLE t (id int PRIMARY KEY, account bigint, status text, amount numeric(12,2), created timestamptz, note text);
    CREATE PUBLICATION pub FOR TABLE t`);
  // One slot per contender and repetition, all created before the workload: each holds it all.
  const contenders = ["recv", "ours", "peer"] as const;
  for (let r = 0; r < REPS; r++) for (const k of contenders) await q(`SELECT pg_create_logical_replication_slot('s_${k}_${r}', 'pgoutput')`);
  for (const s of ["l_ours", "l_peer"]) await q(`SELECT pg_create_logical_replication_slot('${s}', 'pgoutput')`);
  const t0 = performance.now();
  await q(`DO $$ BEGIN FOR b IN 0..${Math.ceil(ROWS / TX) - 1} LOOP
    INSERT INTO t SELECT g, g * 7, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END, (g % 100000) / 100.0,
      '2025-01-01'::timestamptz + g * interval '1 second', 'note ' || g
    FROM generate_series(b * ${TX} + 1, LEAST((b + 1) * ${TX}, ${ROWS})) g; COMMIT; END LOOP; END $$`);
  const endText = (await q("SELECT pg_current_wal_lsn()")).trim();
  const endLsn = parseLsn(endText);
  say(`pg-rdma bench/logical.ts: ${fmt(ROWS)} row inserts (${TX}/transaction, 6 columns) on PostgreSQL ${c.serverVersion}, ${runtimeName}; workload took ${fmt(ms(t0))} ms; best of ${REPS}, contenders interleaved`);
  const conninfo = `host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`;

  const runs = {
    // pg_recvlogical: raw bytes to /dev/null, no decoding.
    recv: (slot: string) =>
      new Promise<number>((resolve, reject) => {
        // Under /usr/bin/time for its voluntary context switches (its sleeps in select()).
        const bin = `${"/usr/lib/postgresql/15/bin"}/pg_recvlogical`;
        const [cmd, args] = onClientCpu(PIN, "/usr/bin/time", ["-f", "%w %c", bin,
          "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", db, "--slot", slot, "--start", "--no-loop",
          "-E", endText, "-f", "/dev/null", "-o", "proto_version=1", "-o", "publication_names=pub",
        ]);
        const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
        let err = "";
        child.stderr!.on("data", (b) => (err += b));
        child.on("error", reject);
        child.on("close", (code) => {
          if (code !== 0) return reject(new Error(`pg_recvlogical failed: ${err}`));
          recvSwitches = err.trim().split("\n").at(-1)!.split(" ").map(Number);
          resolve(ROWS);
        });
      }),
    // pg-rdma: every value decoded (pg/ types), every transaction acknowledged.
    ours: async (slot: string) => {
      let n = 0;
      const stream = logicalReplication({ connection: conninfo, connectOptions: { env: {}, ...diagOptions }, slot, publications: ["pub"], protoVersion: 1 });
      for await (const b of stream) {
        for (const e of b.events) if (e.type === "insert") n++;
        b.ack();
        if (b.final && b.endLsn !== undefined && b.endLsn >= endLsn) break;
        if (n >= ROWS && b.final) break;
      }
      await stream.close();
      return n;
    },
    // pg-logical-replication with its pgoutput plugin, automatic acknowledgement.
    peer: (slot: string) =>
      new Promise<number>((resolve, reject) => {
        let n = 0;
        const service = new LogicalReplicationService({ host: c.socketDir, port: c.port, user: "postgres", database: db }, {
          acknowledge: { auto: true, timeoutSeconds: 10 },
        });
        service.on("data", (_lsn: string, m: { tag: string }) => {
          if (m.tag === "insert") n++;
          if (m.tag === "commit" && n >= ROWS) void service.destroy().then(() => resolve(n));
        });
        service.on("error", reject);
        service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: ["pub"] }), slot).catch(reject);
      }),
  };
  const best = { recv: { ms: Infinity, cpu: 0, n: 0 }, ours: { ms: Infinity, cpu: 0, n: 0 }, peer: { ms: Infinity, cpu: 0, n: 0 } };
  const perRound: {
    r: number; k: (typeof contenders)[number]; rate: number; user: number; system: number; gc: number; perRead: number;
    server: number; serverSys: number; sleeps: number; wsSleeps: number; wsPreempt: number; times: number[][]; preempted: number;
  }[] = [];
  // The walsender's CPU per change (it exits with its connection): a consumer that reads
  // differently can make the same walsender work more per change.
  const us = (microseconds: number) => (microseconds / ROWS).toFixed(2);
  for (let r = 0; r < REPS; r++) {
    for (const k of contenders) {
      const server0 = await serverCpu(c.pid);
      const sys0 = childSystem(c.pid);
      const cpu0 = process.cpuUsage();
      const gc0 = gcMs;
      reads = readBytes = 0;
      const [sleeps0, preempt0] = switches("self");
      const ws = watchWalsender(c.pid);
      const times0 = cpuTimes();
      const t = performance.now();
      const n = await runs[k](`s_${k}_${r}`);
      const took = ms(t);
      const cpu = process.cpuUsage(cpu0);
      const sleeps = k === "recv" ? recvSwitches[0] : switches("self")[0] - sleeps0;
      const preempted = k === "recv" ? recvSwitches[1] : switches("self")[1] - preempt0;
      const [wsSleeps, wsPreempt] = ws();
      const times = cpuTimes().map((t, i) => t.map((v, j) => v - times0[i][j]));
      if (n !== ROWS) throw new Error(`${k} delivered ${n} of ${ROWS} changes`);
      const server = (await serverCpu(c.pid)) - server0;
      const serverSys = childSystem(c.pid) - sys0;
      if (took < best[k].ms) best[k] = { ms: took, cpu: (cpu.user + cpu.system) / 1000, n };
      perRound.push({ r, k, rate: ROWS / (took / 1000), user: cpu.user, system: cpu.system, gc: gcMs - gc0, perRead: readBytes / reads, server, serverSys, sleeps, wsSleeps, wsPreempt, times, preempted });
    }
  }
  const rate = (k: keyof typeof best) => ROWS / (best[k].ms / 1000);
  const cpuPer = (k: keyof typeof best) => (k === "recv" ? "–" : `${((best[k].cpu * 1000) / ROWS).toFixed(2)} µs`);

  say(describePin(PIN, "this process and pg_recvlogical"));
  say("");
  say("sleeps / preempted: voluntary / involuntary context switches of the consumer (its main thread) per 1 000 changes;");
  say("walsender: its CPU per change (of which system), its context switches per 1 000 changes (sampled every 20 ms);");
  say("CPUs: each CPU's busy / idle / steal % over the round (/proc/stat)");
  say("");
  say("| round | contender | changes/s | CPU µs/change user / system | GC µs/change | bytes per read | sleeps / preempted /1k | walsender CPU µs/change (sys) | walsender sleeps / preempted /1k | CPUs busy / idle / steal % |");
  say("|---|---|---|---|---|---|---|---|---|---|");
  const gcKnown = perRound.some((x) => x.gc > 0); // Deno and Bun do not report 'gc' entries
  for (const x of perRound) {
    const cpu = x.k === "recv" ? "–" : `${us(x.user)} / ${us(x.system)}`;
    const gc = x.k === "recv" || !gcKnown ? "–" : us(x.gc * 1000);
    const k1 = (v: number) => ((v * 1000) / ROWS).toFixed(1);
    say(`| ${x.r + 1} | ${x.k} | ${fmt(x.rate)} | ${cpu} | ${gc} | ${DIAG && x.k === "ours" ? (Number.isFinite(x.perRead) ? `${fmt(x.perRead)} B` : "n/a (onread)") : "–"} | ${k1(x.sleeps)} / ${k1(x.preempted)} | ${us(x.server * 1e6)} (${us(x.serverSys * 1e6)}) | ${k1(x.wsSleeps)} / ${k1(x.wsPreempt)} | ${x.times.map((t) => { const sum = t[0] + t[1] + t[2] || 1; return t.map((v) => Math.round((100 * v) / sum)).join("/"); }).join(", ")} |`);
  }
  say("");
  say("| consumer | changes/s | time | CPU of this process per change | pg-rdma's rate is |");
  say("|---|---|---|---|---|");
  say(`| pg_recvlogical -f /dev/null (raw, no decoding) | ${fmt(rate("recv"))} | ${fmt(best.recv.ms)} ms | ${cpuPer("recv")} | ${(rate("ours") / rate("recv")).toFixed(2)}× |`);
  say(`| pg-rdma logicalReplication() | ${fmt(rate("ours"))} | ${fmt(best.ours.ms)} ms | ${cpuPer("ours")} | – |`);
  say(`| pg-logical-replication 2.5 (PgoutputPlugin) | ${fmt(rate("peer"))} | ${fmt(best.peer.ms)} ms | ${cpuPer("peer")} | ${(rate("ours") / rate("peer")).toFixed(2)}× |`);

  // BENCH_NO_LAG=1: throughput only.
  if (process.env.BENCH_NO_LAG !== "1") {
    // Lag at a fixed rate: 20-row transactions, 100 per second, for 5 s.
    const lag = async (slot: string, consume: (onCommit: (commitMs: number) => void, stop: Promise<void>) => Promise<void>) => {
      // Start from now: skip what earlier runs wrote.
      await q(`SELECT pg_replication_slot_advance('${slot}', pg_current_wal_lsn())`);
      const lags: number[] = [];
      let stopIt!: () => void;
      const stop = new Promise<void>((r) => (stopIt = r));
      const consumer = consume((commitMs) => lags.push(Date.now() - commitMs), stop);
      await new Promise((r) => setTimeout(r, 500));
      const w = await connect(conninfo, { env: {} });
      const start = Date.now();
      let k = 0;
      while (Date.now() - start < 5000) {
        const base = 10_000_000 + k * 20;
        await w.query(`INSERT INTO t (id, note) SELECT g, 'lag' FROM generate_series(${base}, ${base + 19}) g`);
        k++;
        const next = start + k * 10;
        if (next > Date.now()) await new Promise((r) => setTimeout(r, next - Date.now()));
      }
      await w.query(`DELETE FROM t WHERE id >= 10000000`);
      await w.close();
      await new Promise((r) => setTimeout(r, 1000));
      stopIt();
      await consumer;
      lags.sort((a, b) => a - b);
      return { n: lags.length, p50: lags[Math.floor(lags.length * 0.5)], p99: lags[Math.floor(lags.length * 0.99)], max: lags.at(-1) };
    };
    const oursLag = await lag("l_ours", async (onCommit, stop) => {
      const s = logicalReplication({ connection: conninfo, connectOptions: { env: {} }, slot: "l_ours", publications: ["pub"] });
      void stop.then(() => s.close());
      for await (const b of s) {
        const last = b.events.at(-1);
        if (last?.type === "commit") onCommit(last.commitTime.getTime());
        b.ack();
      }
    });
    const peerLag = await lag("l_peer", async (onCommit, stop) => {
      const service = new LogicalReplicationService({ host: c.socketDir, port: c.port, user: "postgres", database: db }, { acknowledge: { auto: true, timeoutSeconds: 10 } });
      const commits = new Set<string>();
      service.on("data", (_lsn: string, m: { tag: string; commitTime?: bigint; commitEndLsn?: string }) => {
        // Its commitTime is µs since 1970 (it adds the 2000-01-01 offset itself).
        if (m.tag !== "commit" || commits.has(String(m.commitEndLsn))) return;
        commits.add(String(m.commitEndLsn));
        onCommit(Number(BigInt(m.commitTime as bigint) / 1000n));
      });
      void service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: ["pub"] }), "l_peer").catch(() => {});
      await stop;
      await service.destroy();
    });
    say("");
    say("| lag at 2 000 rows/s (100 tx/s) | transactions | p50 | p99 | max |");
    say("|---|---|---|---|---|");
    say(`| pg-rdma logicalReplication() | ${oursLag.n} | ${oursLag.p50} ms | ${oursLag.p99} ms | ${oursLag.max} ms |`);
    say(`| pg-logical-replication | ${peerLag.n} | ${peerLag.p50} ms | ${peerLag.p99} ms | ${peerLag.max} ms |`);
  }
} finally {
  await c.stop();
}
