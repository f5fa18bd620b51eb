// WalReceiver against real servers, with Debian's pg_receivewal 15 as the oracle: the same
// completed segments byte for byte, resume after SIGKILL with a slot, timeline switches on
// promotion, synchronous mode, and the WAL chunk stream.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import {
  type ClusterInfo,
  cluster,
  createDatabase,
  psql,
  ROLES,
  serverBaseDir,
  startCluster,
  startServer,
  unavailable,
  VERSIONS,
} from "./_fixture/cluster.ts";
import { moduleCommand, runtime } from "./_fixture/runtime.ts";
import type { ConnectOptions } from "../pg/mod.ts";
import { formatLsn, parseLsn } from "../replication/_pgoutput.ts";
import { streamWal, WalReceiver } from "../replication/wal_receiver.ts";
import { baseBackup } from "../replication/base_backup.ts";
import * as transport from "../transport/mod.ts";

const PG15_BIN = "/usr/lib/postgresql/15/bin";
const noReceivewal = existsSync(join(PG15_BIN, "pg_receivewal")) ? undefined : "pg_receivewal (postgresql-15) is not installed";
const home = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const tag = `${runtime}_${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How a test reaches a server: native sockets (unix, trust) or rsockets (kernel provider, TCP, SCRAM). */
interface Transport {
  name: string;
  skip?: string;
  connection(c: Pick<ClusterInfo, "socketDir" | "port">): string;
  options: ConnectOptions;
}
const rsocketFactory = (transport as { rsocketFactory?: (o: { provider: "kernel" }) => ConnectOptions["socketFactory"] }).rsocketFactory;
const TRANSPORTS: Transport[] = [
  { name: "native", connection: (c) => `host=${c.socketDir} port=${c.port} user=postgres`, options: { env: {}, homeDir: home } },
  {
    name: "rsocket(kernel)",
    skip: rsocketFactory ? undefined : "transport/mod.ts exports no rsocketFactory",
    connection: (c) => `host=127.0.0.1 port=${c.port} user=${ROLES.replication.user} with_rsocket=true`,
    options: { env: {}, homeDir: home, password: ROLES.replication.password, socketFactory: rsocketFactory?.({ provider: "kernel" }) },
  },
];

function hashes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(dir)) {
    if (/^[0-9A-F]{24}$/.test(f) || /\.history$/.test(f)) out.set(f, createHash("sha256").update(readFileSync(join(dir, f))).digest("hex"));
  }
  return out;
}

/** Starts pg_receivewal 15 on a unix socket; resolves once it has opened its first .partial. */
async function receivewal(c: Pick<ClusterInfo, "socketDir" | "port">, dir: string, extra: string[] = []): Promise<ChildProcess> {
  const p = spawn(join(PG15_BIN, "pg_receivewal"), ["-D", dir, "-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "--no-loop", "-n", ...extra], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  p.stderr!.on("data", (d) => (err += String(d)));
  const deadline = Date.now() + 20_000;
  while (!readdirSync(dir).some((f) => f.endsWith(".partial"))) {
    if (p.exitCode !== null || Date.now() > deadline) throw new Error(`pg_receivewal did not start: ${err}`);
    await sleep(50);
  }
  return p;
}

/**
 * The reference archive: pg_receivewal 15 where it can stream (it refuses servers newer than
 * 15), else the server's own pg_wal, whose complete segments hold the same bytes (the tests
 * hold the WAL there with a slot).
 */
async function reference(v: number, c: Pick<ClusterInfo, "socketDir" | "port" | "dataDir">, extra: string[] = []): Promise<{ dir: string; stop(): Promise<void> }> {
  if (v !== 15) return { dir: join(c.dataDir, "pg_wal"), stop: async () => {} };
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-walrx-theirs-"));
  const p = await receivewal(c, dir, extra);
  return { dir, stop: () => stopChild(p) };
}

async function stopChild(p: ChildProcess, signal: NodeJS.Signals = "SIGINT"): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill(signal);
  await exited;
}

/** Waits until `dir` holds every complete segment named in `names`. */
async function waitForSegments(dir: string, names: string[], ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!names.every((n) => existsSync(join(dir, n)))) {
    if (Date.now() > deadline) throw new Error(`${dir} lacks ${names.filter((n) => !existsSync(join(dir, n))).join(", ")}`);
    await sleep(100);
  }
}

/** Writes about `mb` MiB of WAL in `db`, then switches to a new segment if asked. */
async function load(c: Pick<ClusterInfo, "socketDir" | "port">, db: string, mb: number, switchWal = true): Promise<bigint> {
  await psql(c, `CREATE TABLE IF NOT EXISTS w (a int, b text); INSERT INTO w SELECT g, repeat('x', 200) FROM generate_series(1, ${mb * 3500}) g`, { database: db });
  const out = await psql(c, switchWal ? "SELECT pg_switch_wal(); SELECT pg_current_wal_lsn()" : "SELECT pg_current_wal_lsn()", { database: db });
  return parseLsn(out.trim().split("\n").pop()!);
}

for (const v of VERSIONS) {
  for (const t of TRANSPORTS) {
    test(`WalReceiver PG${v} over ${t.name}: completed segments are byte-identical to the reference under a write load`, { skip: unavailable(v) ?? (v === 15 ? noReceivewal : undefined) ?? t.skip }, async () => {
      const c = await cluster(v);
      const db = await createDatabase(c, "walrx");
      const slot = `walrx_${tag}_${t.name.length}`;
      const ours = mkdtempSync(join(tmpdir(), "pg-rdma-walrx-ours-"));
      const ref = await reference(v, c);
      try {
        let started!: () => void;
        const isStarted = new Promise<void>((r) => (started = r));
        const rx = new WalReceiver({
          connection: t.connection(c), connectOptions: t.options, directory: ours, statusInterval: 1000, slot, createSlot: true, onStart: () => started(),
        });
        const run = rx.run();
        await Promise.race([isStarted, run]);
        let end = 0n;
        for (let i = 0; i < 4; i++) end = await load(c, db, 8);
        rx.stopAt(end);
        const res = await run;
        assert.ok(res.lsn >= end, `stopped at ${formatLsn(res.lsn)}, before ${formatLsn(end)}`);
        const ourDone = [...hashes(ours).keys()];
        assert.ok(ourDone.length >= 4, `only ${ourDone.length} complete segments: ${ourDone}`);
        // Ours starts at the new slot's restart position, which may be before where pg_receivewal
        // started (the server's position): compare the segments both have, the last included.
        await waitForSegments(ref.dir, [ourDone.sort()[ourDone.length - 1]]);
        const a = hashes(ours);
        const b = hashes(ref.dir);
        const common = ourDone.filter((n) => b.has(n));
        assert.ok(common.length >= 3, `segments in both archives: ${common}`);
        for (const n of common) assert.equal(a.get(n), b.get(n), `segment ${n} differs`);
      } finally {
        await ref.stop();
        await psql(c, `SELECT pg_drop_replication_slot('${slot}') FROM pg_replication_slots WHERE slot_name = '${slot}'`);
        await psql(c, `DROP DATABASE IF EXISTS ${db}`);
      }
    });
  }

  test(`WalReceiver PG${v}: killed mid-segment and restarted, its slot keeps the WAL and the archive matches the reference`, { skip: unavailable(v) ?? (v === 15 ? noReceivewal : undefined) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "walkill");
    const slot = `walkill_${tag}`;
    const refSlot = `walkill_ref_${tag}`;
    const ours = mkdtempSync(join(tmpdir(), "pg-rdma-walkill-ours-"));
    // Both slots reserve WAL in one statement: both archives start at the same segment.
    await psql(c, `SELECT pg_create_physical_replication_slot('${slot}', true), pg_create_physical_replication_slot('${refSlot}', true)`);
    const [exe, args] = moduleCommand("./_physical/receiver_child.ts", import.meta.url);
    const conn = `host=${c.socketDir} port=${c.port} user=postgres`;
    const child = (endpos?: bigint) => {
      const p = spawn(exe, [...args, JSON.stringify({ connection: conn, directory: ours, slot, endpos: endpos === undefined ? undefined : formatLsn(endpos) })], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const lines: { event: string }[] = [];
      let buf = "";
      let err = "";
      p.stdout!.on("data", (d) => {
        buf += String(d);
        for (let i; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) lines.push(JSON.parse(buf.slice(0, i)));
      });
      p.stderr!.on("data", (d) => (err += String(d)));
      return { p, lines, err: () => err };
    };
    const ref = await reference(v, c, ["-S", refSlot]);
    try {
      const first = child();
      const deadline = Date.now() + 60_000;
      while (!first.lines.some((l) => l.event === "start")) {
        if (first.p.exitCode !== null || Date.now() > deadline) throw new Error(`child did not start: ${first.err()}`);
        await sleep(50);
      }
      await load(c, db, 8);
      while (!first.lines.some((l) => l.event === "segment")) {
        if (first.p.exitCode !== null || Date.now() > deadline) throw new Error(`child wrote no segment: ${first.err()}`);
        await sleep(50);
      }
      await load(c, db, 6, false); // into the middle of a segment
      await sleep(1000);
      await stopChild(first.p, "SIGKILL");
      const partial = readdirSync(ours).filter((f) => f.endsWith(".partial"));
      assert.equal(partial.length, 1, `one .partial after the kill: ${readdirSync(ours)}`);
      // More WAL while it is down; a checkpoint would recycle what no slot holds.
      await load(c, db, 8);
      const end = await load(c, db, 8);
      await psql(c, "CHECKPOINT");
      const [restart] = (await psql(c, `SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim().split("\n");
      const partialStart = BigInt(parseInt(partial[0].slice(16, 24), 16)) * BigInt(16 << 20) + BigInt(parseInt(partial[0].slice(8, 16), 16)) * 0x1_0000_0000n;
      assert.ok(parseLsn(restart) <= partialStart, `slot restart ${restart} is before the .partial's start`);

      const second = child(end);
      const code = await new Promise((r) => second.p.once("exit", r));
      assert.equal(code, 0, `restarted child failed: ${second.err()}`);
      assert.ok(existsSync(join(ours, partial[0].replace(".partial", ""))), "the re-fetched .partial is now complete");
      const a = hashes(ours);
      await waitForSegments(ref.dir, [...a.keys()]);
      const b = hashes(ref.dir);
      assert.ok(a.size >= 3, `${a.size} segments`);
      for (const [n, h] of a) assert.equal(h, b.get(n), `segment ${n} differs`);
      // And nothing is missing between the first and the last segment.
      const names = [...a.keys()].sort();
      for (const n of [...b.keys()].filter((n) => n >= names[0] && n <= names[names.length - 1])) assert.ok(a.has(n), `${n} missing`);
    } finally {
      await ref.stop();
      await psql(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN ('${slot}', '${refSlot}') AND NOT active`);
      await psql(c, `DROP DATABASE IF EXISTS ${db}`);
    }
  });

  test(`WalReceiver PG${v}: synchronous mode makes the primary's commits wait for its flush report`, { skip: unavailable(v) }, async () => {
    const c = await startCluster(v);
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-walsync-"));
    try {
      // The table first: once the standby is named, every commit waits for it.
      await psql(c, "CREATE TABLE s (a int)");
      await psql(c, "ALTER SYSTEM SET synchronous_standby_names = 'pgrdma_sync'");
      await psql(c, "SELECT pg_reload_conf()");
      const opts = { connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: dir, applicationName: "pgrdma_sync", synchronous: true, statusInterval: 10_000 };
      let rx = new WalReceiver(opts);
      let run = rx.run();
      const deadline = Date.now() + 20_000;
      while ((await psql(c, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pgrdma_sync'")).trim() !== "sync") {
        if (Date.now() > deadline) throw new Error("the receiver never became the synchronous standby");
        await sleep(100);
      }
      // The status interval is 10 s: a commit quicker than that was released by the flush report.
      let t0 = Date.now();
      await psql(c, "INSERT INTO s VALUES (1)");
      assert.ok(Date.now() - t0 < 5000, `a commit took ${Date.now() - t0} ms`);
      rx.stop();
      await run;
      // Without it, a commit waits ...
      let committed = false;
      const pending = psql(c, "INSERT INTO s VALUES (2)").then(() => (committed = true));
      await sleep(1500);
      assert.equal(committed, false, "a commit finished with no synchronous standby");
      // ... until the receiver is back and has flushed it.
      t0 = Date.now();
      rx = new WalReceiver(opts);
      run = rx.run();
      await pending;
      assert.ok(Date.now() - t0 < 8000);
      rx.stop();
      const r = await run;
      assert.ok(r.lsn > 0n);
    } finally {
      await c.stop();
    }
  });

  test(`WalReceiver PG${v}: follows the timeline switch of a promoted standby like the reference, history file included`, { skip: unavailable(v) ?? (v === 15 ? noReceivewal : undefined) }, async () => {
    const primary = await startCluster(v);
    const base = serverBaseDir(v);
    let standby: Awaited<ReturnType<typeof startServer>> | undefined;
    let ref: { dir: string; stop(): Promise<void> } | undefined;
    try {
      await baseBackup({ connection: `host=${primary.socketDir} port=${primary.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: join(base, "data"), checkpoint: "fast", writeRecoveryConf: true });
      standby = await startServer(v, base);
      const ours = mkdtempSync(join(tmpdir(), "pg-rdma-walpromote-ours-"));
      await load(primary, "postgres", 4);
      ref = await reference(v, standby);
      // A slot on the standby keeps its pg_wal (the reference on PostgreSQL 18) from being recycled.
      const rx = new WalReceiver({
        connection: `host=${standby.socketDir} port=${standby.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: ours,
        statusInterval: 1000, retryInterval: 500, slot: "promote_test", createSlot: true,
      });
      const run = rx.run();
      await load(primary, "postgres", 8);
      await sleep(1000);
      await psql(standby, "SELECT pg_promote()");
      await load(standby, "postgres", 4);
      const end = await load(standby, "postgres", 4);
      rx.stopAt(end);
      const res = await run;
      assert.equal(res.timeline, 2);
      assert.ok(existsSync(join(ours, "00000002.history")), `no history file: ${readdirSync(ours)}`);
      const a = hashes(ours);
      const tl2 = [...a.keys()].filter((n) => n.startsWith("00000002") && n.length === 24);
      assert.ok(tl2.length >= 1, `no complete segment on timeline 2: ${[...a.keys()]}`);
      await waitForSegments(ref.dir, ["00000002.history", ...tl2]);
      const b = hashes(ref.dir);
      let compared = 0;
      for (const [n, h] of a) {
        if (!b.has(n)) continue; // recycled by the standby before the slot existed
        assert.equal(h, b.get(n), `${n} differs`);
        compared++;
      }
      assert.ok(compared >= 2, `compared ${compared}`);
    } finally {
      await ref?.stop();
      await standby?.stop();
      await primary.stop();
    }
  });

  test(`streamWal() PG${v}: yields contiguous chunks and ack() advances the slot`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const slot = `walstream_${tag}`;
    const wal = streamWal({ connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, slot, createSlot: true, statusInterval: 0 });
    try {
      let next = -1n;
      let bytes = 0;
      const db = await createDatabase(c, "walstream");
      const loading = load(c, db, 2, false);
      for await (const chunk of wal) {
        if (next >= 0n) assert.equal(chunk.startLsn, next, "chunks are contiguous");
        next = chunk.endLsn;
        bytes += chunk.data.length;
        chunk.ack();
        if (bytes > 1 << 20) break;
      }
      await loading;
      await psql(c, `DROP DATABASE ${db}`);
      // The flush reported is the slot's restart position once the server has taken it.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const r = parseLsn((await psql(c, `SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)).trim());
        if (r >= next) break;
        if (Date.now() > deadline) throw new Error(`slot at ${formatLsn(r)}, acked ${formatLsn(next)}`);
        await sleep(100);
      }
    } finally {
      wal.stop();
      await sleep(200);
      await psql(c, `SELECT pg_drop_replication_slot('${slot}') FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`);
    }
  });
  test(`WalReceiver PG${v}: gzip compression leaves .gz segments that decompress to the server's own segment files`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "walgz");
    const slot = `walgz_${tag}`;
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-walgz-"));
    try {
      let started!: () => void;
      const isStarted = new Promise<void>((r) => (started = r));
      // The slot holds the server's copies in pg_wal for the comparison.
      const rx = new WalReceiver({
        connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: dir,
        slot, createSlot: true, compression: { method: "gzip", level: 1 }, onStart: () => started(),
      });
      const run = rx.run();
      await Promise.race([isStarted, run]);
      await load(c, db, 4);
      rx.stopAt(await load(c, db, 4));
      await run;
      const gz = readdirSync(dir).filter((f) => f.endsWith(".gz"));
      assert.ok(gz.length >= 2, `gzip segments: ${readdirSync(dir)}`);
      assert.ok(!readdirSync(dir).some((f) => /^[0-9A-F]{24}$/.test(f)), "no uncompressed complete segment is left");
      for (const f of gz) {
        const server = readFileSync(join(c.dataDir, "pg_wal", f.slice(0, 24)));
        assert.ok(gunzipSync(readFileSync(join(dir, f))).equals(server), `${f} differs from the server's`);
      }
    } finally {
      await psql(c, `SELECT pg_drop_replication_slot('${slot}') FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`);
      await psql(c, `DROP DATABASE IF EXISTS ${db}`);
    }
  });
  test(`WalReceiver PG${v}: a silent server trips receiverTimeout, and the receiver reconnects and carries on without a gap`, { skip: unavailable(v) ?? (process.platform === "linux" ? undefined : "SIGSTOP of the walsender") }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "walto");
    const app = `walto_${tag}`;
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-walto-"));
    const retries: Error[] = [];
    let started!: () => void;
    const isStarted = new Promise<void>((r) => (started = r));
    const rx = new WalReceiver({
      connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: dir,
      applicationName: app, receiverTimeout: 1500, retryInterval: 200, statusInterval: 500, onRetry: (e) => retries.push(e), onStart: () => started(),
    });
    const run = rx.run();
    let stopped: number | undefined;
    const walsender = async (except = 0) =>
      Number((await psql(c, `SELECT max(pid) FROM pg_stat_replication WHERE application_name = '${app}' AND pid <> ${except}`)).trim() || 0);
    try {
      await Promise.race([isStarted, run]);
      await load(c, db, 4);
      stopped = await walsender();
      assert.ok(stopped > 0, "our walsender is listed");
      process.kill(stopped, "SIGSTOP"); // the server goes silent without closing the connection
      const deadline = Date.now() + 20_000;
      // The timeout closes the connection; a new walsender serves the reconnect.
      while (retries.length === 0 || (await walsender(stopped)) === 0) {
        if (Date.now() > deadline) throw new Error(`no reconnect: ${retries.map((e) => e.message)}`);
        await sleep(200);
      }
      process.kill(stopped, "SIGCONT");
      stopped = undefined;
      await load(c, db, 8);
      const end = await load(c, db, 8);
      rx.stopAt(end);
      const r = await run;
      assert.ok(r.lsn >= end);
      assert.ok(retries.length >= 1);
      const segs = readdirSync(dir).filter((f) => /^[0-9A-F]{24}$/.test(f)).map((f) => parseInt(f.slice(8), 16)).sort((a, b) => a - b);
      assert.ok(segs.length >= 3, `segments: ${segs}`);
      for (let i = 1; i < segs.length; i++) assert.equal(segs[i], segs[i - 1] + 1, "no segment is missing");
    } finally {
      if (stopped) process.kill(stopped, "SIGCONT");
      rx.stop();
      await run.catch(() => {});
      await psql(c, `DROP DATABASE IF EXISTS ${db}`);
    }
  });
  test(`WalReceiver PG${v}: hotStandbyFeedback reports the given xmin, which the primary shows as the walsender's backend_xmin`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const app = `walhsf_${tag}`;
    const dir = mkdtempSync(join(tmpdir(), "pg-rdma-walhsf-"));
    // An xmin a little behind the current one: the server accepts it (it is not in the future).
    const xmin = Number((await psql(c, "SELECT (txid_current() % 4294967296) - 2")).trim());
    const rx = new WalReceiver({
      connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: dir,
      applicationName: app, statusInterval: 300, hotStandbyFeedback: () => ({ xmin, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 }),
    });
    const run = rx.run();
    try {
      const deadline = Date.now() + 15_000;
      let seen = "";
      while ((seen = (await psql(c, `SELECT backend_xmin FROM pg_stat_replication WHERE application_name = '${app}'`)).trim()) !== String(xmin)) {
        if (Date.now() > deadline) throw new Error(`backend_xmin is ${JSON.stringify(seen)}, not ${xmin}`);
        await sleep(200);
      }
    } finally {
      rx.stop();
      await run;
    }
  });
}
