// baseBackup() against real servers: plain and tar output, streamed and fetched WAL, the
// manifest (pg_verifybackup 15 where it can read it, our own checksum check on 18), a hot
// standby started from the backup, tablespaces relocated, and point-in-time recovery from
// a WalReceiver archive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ClusterInfo,
  cluster,
  type OwnedCluster,
  createDatabase,
  psql,
  ROLES,
  serverBaseDir,
  shareWithServer,
  startCluster,
  startServer,
  unavailable,
  type Version,
  VERSIONS,
} from "./_fixture/cluster.ts";
import { runtime } from "./_fixture/runtime.ts";
import { type ConnectOptions, netSocketFactory, type SocketFactory } from "../pg/mod.ts";
import { parseLsn } from "../replication/_pgoutput.ts";
import { segmentNameOf } from "../replication/_wal_segment.ts";
import { baseBackup } from "../replication/base_backup.ts";
import { WalReceiver } from "../replication/wal_receiver.ts";
import * as transport from "../transport/mod.ts";

const PG15_BIN = "/usr/lib/postgresql/15/bin";
const home = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const tag = `${runtime}_${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The backups here copy whole clusters: the shared ones grow with every other test's databases
// during a run (each CREATE DATABASE copies the template), so the later a backup of them ran, the
// slower it was. A small cluster per version for this file keeps them the same size; its
// watchdog stops it when this process ends.
const small = new Map<Version, Promise<OwnedCluster>>();
function smallCluster(v: Version): Promise<OwnedCluster> {
  let c = small.get(v);
  if (!c) small.set(v, c = startCluster(v));
  return c;
}

const rsocketFactory = (transport as { rsocketFactory?: (o: { provider: "kernel" }) => ConnectOptions["socketFactory"] }).rsocketFactory;
const TRANSPORTS = [
  { name: "native", skip: undefined as string | undefined, connection: (c: ClusterInfo) => `host=${c.socketDir} port=${c.port} user=postgres`, options: { env: {}, homeDir: home } as ConnectOptions },
  {
    name: "rsocket(kernel)",
    skip: rsocketFactory ? undefined : "transport/mod.ts exports no rsocketFactory",
    connection: (c: ClusterInfo) => `host=127.0.0.1 port=${c.port} user=${ROLES.replication.user} with_rsocket=true`,
    options: { env: {}, homeDir: home, password: ROLES.replication.password, socketFactory: rsocketFactory?.({ provider: "kernel" }) } as ConnectOptions,
  },
];

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (e, out, err) => (e ? reject(new Error(`${cmd} ${args.join(" ")}: ${err || e.message}`)) : resolve(String(out)))));
}

/**
 * Checks a plain backup against its manifest: pg_verifybackup 15 for a PostgreSQL 15 backup
 * (it cannot read 18's manifest version 2); for 18, every listed file's size and SHA-256.
 */
async function verify(v: number, dir: string, noWal = false): Promise<void> {
  if (v === 15) {
    const out = await run(join(PG15_BIN, "pg_verifybackup"), [...(noWal ? ["-n"] : []), dir]);
    assert.match(out, /backup successfully verified/);
    return;
  }
  const m = JSON.parse(readFileSync(join(dir, "backup_manifest"), "utf8")) as {
    "PostgreSQL-Backup-Manifest-Version": number;
    Files: { Path: string; Size: number; "Checksum-Algorithm": string; Checksum: string }[];
    "WAL-Ranges": unknown[];
  };
  assert.ok(m.Files.length > 100 && m["WAL-Ranges"].length >= 1);
  for (const f of m.Files) {
    if (f.Path === "postgresql.auto.conf") continue; // -R changes it; pg_verifybackup skips it too
    const data = readFileSync(join(dir, f.Path));
    assert.equal(data.length, f.Size, `${f.Path} size`);
    assert.equal(f["Checksum-Algorithm"], "SHA256");
    assert.equal(createHash("sha256").update(data).digest("hex"), f.Checksum, `${f.Path} checksum`);
  }
}

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

test("baseBackup() refuses an unknown compression method, a level out of range and compression of plain output, before connecting", async () => {
  const o = { connection: "host=/nonexistent", directory: join(tmpdir(), "pg-rdma-bb-never"), format: "tar" as const };
  await assert.rejects(baseBackup({ ...o, compression: "brotli" as "gzip" }), { name: "TypeError", message: /compression must be "none", "gzip", "lz4", "zstd"/ });
  await assert.rejects(baseBackup({ ...o, compression: { method: "lz4", level: 9 } }), { name: "RangeError", message: /lz4 compression level must be an integer 0-1, got 9/ });
  await assert.rejects(baseBackup({ ...o, compression: { method: "zstd", level: 23 } }), { name: "RangeError", message: /zstd compression level must be an integer 1-22, got 23/ });
  await assert.rejects(baseBackup({ ...o, format: "plain", compression: "zstd" }), { name: "TypeError", message: /compression needs format "tar"/ });
  assert.ok(!existsSync(o.directory), "nothing was created");
});

for (const v of VERSIONS) {
  for (const t of TRANSPORTS) {
    test(`baseBackup() PG${v} over ${t.name}: a plain backup with streamed WAL (from the backup's start) verifies, reports a total, and starts as a hot standby of the primary`, { skip: unavailable(v) ?? t.skip }, async () => {
      const c = await smallCluster(v);
      const db = await createDatabase(c, "bb");
      await psql(c, "CREATE TABLE r AS SELECT g AS a FROM generate_series(1, 1000) g", { database: db });
      const base = serverBaseDir(v);
      const data = join(base, "data");
      const seen: number[] = [];
      const totals = new Set<number | undefined>();
      const r = await baseBackup({
        connection: t.connection(c), connectOptions: t.options, directory: data, checkpoint: "fast", writeRecoveryConf: true,
        manifestChecksums: v === 15 ? "CRC32C" : "SHA256", onProgress: (p) => (seen.push(p.bytes), totals.add(p.total)),
      });
      assert.ok(r.startLsn > 0n && r.endLsn >= r.startLsn && r.timeline === 1);
      // Streaming starts at the start of the segment holding the backup's start, as pg_basebackup's.
      assert.equal(r.walStart, r.startLsn - (r.startLsn % BigInt(16 << 20)));
      assert.ok(seen.length > 0 && seen.every((b, i) => i === 0 || b >= seen[i - 1]), "progress only grows");
      // One total, the sum of the tablespace sizes; the bytes end near it (the server's estimate).
      assert.equal(totals.size, 1);
      const [total] = totals;
      assert.equal(total, r.tablespaces.reduce((n, t) => n + t.size!, 0));
      assert.ok(total! > 1 << 20 && seen[seen.length - 1] <= total! * 1.2 && seen[seen.length - 1] >= total! * 0.8, `${seen[seen.length - 1]} of ${total}`);
      assert.ok(existsSync(join(data, "standby.signal")));
      const auto = readFileSync(join(data, "postgresql.auto.conf"), "utf8");
      assert.match(auto, /^primary_conninfo = '.*port=\d+.*'$/m);
      if (t.name !== "native") {
        // Over rsockets the standby is told to use them too (a Postgres Pro server understands it).
        assert.match(auto, /with_rsocket=true/);
        await verify(v, data);
        return;
      }
      await verify(v, data);
      const standby = await startServer(v, base);
      try {
        await psql(c, "INSERT INTO r SELECT g FROM generate_series(1001, 1500) g", { database: db });
        await waitFor("the standby to replay the primary's rows", async () =>
          (await psql(standby, "SELECT count(*) FROM r", { database: db })).trim() === "1500");
        assert.equal((await psql(standby, "SELECT pg_is_in_recovery()")).trim(), "t");
      } finally {
        await standby.stop();
        await psql(c, `DROP DATABASE ${db}`);
      }
    });
  }

  test(`baseBackup() PG${v}: over a socket that hands the stream on in small uneven chunks (message headers, archive headers and messages split), plain and tar backups verify`, { skip: unavailable(v) }, async () => {
    const c = await smallCluster(v);
    // A real socket whose data events are re-cut: the copy's messages then arrive in pieces of
    // 1 byte to 32 KiB + 5, so every kind of message (n, d, p, m) is split somewhere.
    const sizes = [1, 2, 3, 4, 5, 7, 100, 511, 512, 513, 4099, 32773];
    let k = 0;
    let chunks = 0;
    const factory: SocketFactory = async (t, o) => {
      const s = await netSocketFactory(t, o);
      const emit = s.emit.bind(s) as (event: string | symbol, ...args: unknown[]) => boolean;
      s.emit = ((event: string | symbol, ...args: unknown[]) => {
        if (event !== "data") return emit(event, ...args);
        const b = args[0] as Uint8Array;
        for (let p = 0; p < b.length;) {
          const n = sizes[k++ % sizes.length];
          emit("data", b.subarray(p, p + n));
          chunks++;
          p += n;
        }
        return true;
      }) as typeof s.emit;
      return s;
    };
    const connection = `host=${c.socketDir} port=${c.port} user=postgres`;
    const connectOptions: ConnectOptions = { env: {}, homeDir: home, socketFactory: factory };
    const manifestChecksums = v === 15 ? "CRC32C" : "SHA256";
    const plain = join(mkdtempSync(join(tmpdir(), "pg-rdma-bbcut-")), "data");
    await baseBackup({ connection, connectOptions, directory: plain, checkpoint: "fast", manifestChecksums });
    await verify(v, plain);
    const dir = join(mkdtempSync(join(tmpdir(), "pg-rdma-bbcut-")), "out");
    await baseBackup({ connection, connectOptions, directory: dir, format: "tar", wal: "fetch", checkpoint: "fast", manifestChecksums });
    const x = join(dir, "x");
    mkdirSync(x);
    await run("tar", ["-xf", join(dir, "base.tar"), "-C", x]);
    writeFileSync(join(x, "backup_manifest"), readFileSync(join(dir, "backup_manifest")));
    await verify(v, x);
    assert.ok(chunks > 10_000, `the stream was re-cut (${chunks} chunks)`);
  });

  test(`baseBackup() PG${v}: tar format with fetched WAL holds the WAL, the manifest and the recovery settings`, { skip: unavailable(v) }, async () => {
    const c = await smallCluster(v);
    const dir = join(mkdtempSync(join(tmpdir(), "pg-rdma-bbtar-")), "out");
    const r = await baseBackup({
      connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: dir,
      format: "tar", wal: "fetch", checkpoint: "fast", writeRecoveryConf: true, slot: "some_slot", manifestChecksums: v === 15 ? "CRC32C" : "SHA256",
    });
    assert.deepEqual(readdirSync(dir).sort(), ["backup_manifest", "base.tar"]);
    const x = join(dir, "x");
    mkdirSync(x);
    await run("tar", ["-xf", join(dir, "base.tar"), "-C", x]);
    writeFileSync(join(x, "backup_manifest"), readFileSync(join(dir, "backup_manifest")));
    // The WAL from start to end is inside, under pg_wal.
    const segs = readdirSync(join(x, "pg_wal")).filter((f) => /^[0-9A-F]{24}$/.test(f));
    assert.ok(segs.length >= 1, "WAL in pg_wal");
    assert.ok(segs.includes(segmentNameOf(r.timeline, r.startLsn, 16 << 20)), `the start segment is among ${segs}`);
    assert.ok(existsSync(join(x, "standby.signal")));
    assert.match(readFileSync(join(x, "postgresql.auto.conf"), "utf8"), /^primary_slot_name = 'some_slot'$/m);
    await verify(v, x);
  });

  test(`baseBackup() PG${v}: lz4 and zstd tar output is named as pg_basebackup 15 names it and reads back with lz4 -d / zstd -d to a backup that verifies`, { skip: unavailable(v) }, async () => {
    const c = await smallCluster(v);
    const base = mkdtempSync(join(tmpdir(), "pg-rdma-bbz-"));
    const conn = `host=${c.socketDir} port=${c.port} user=postgres`;
    const checksums = v === 15 ? "CRC32C" : "SHA256";
    for (const [method, wal, level] of [["lz4", "stream", undefined], ["zstd", "fetch", 5]] as const) {
      const dir = join(base, method);
      await baseBackup({ connection: conn, connectOptions: { env: {}, homeDir: home }, directory: dir, format: "tar", wal, checkpoint: "fast", manifestChecksums: checksums, compression: { method, level } });
      const ext = method === "lz4" ? ".lz4" : ".zst";
      const names = readdirSync(dir).sort();
      // As pg_basebackup 15: the streamed WAL's tar is compressed with gzip only, so it stays plain here.
      assert.deepEqual(names, wal === "stream" ? ["backup_manifest", `base.tar${ext}`, "pg_wal.tar"] : ["backup_manifest", `base.tar${ext}`]);
      if (v === 15) {
        const theirs = join(base, `${method}-pg_basebackup`);
        await run(join(PG15_BIN, "pg_basebackup"), ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-D", theirs, "-Ft", "-X", wal, "-c", "fast", "-Z", `${method}${level ? `:${level}` : ""}`, "--no-sync"]);
        assert.deepEqual(readdirSync(theirs).sort(), names, "the same files as pg_basebackup 15");
      }
      // Debian's tools read the archive back; the tar extracts to a backup that verifies.
      const tar = join(dir, "base.tar");
      const packed = join(dir, `base.tar${ext}`);
      await run(method, method === "lz4" ? ["-d", "-q", packed, tar] : ["-d", "-q", packed, "-o", tar]);
      const x = join(dir, "x");
      mkdirSync(x);
      await run("tar", ["-xf", tar, "-C", x]);
      if (wal === "stream") await run("tar", ["-xf", join(dir, "pg_wal.tar"), "-C", join(x, "pg_wal")]);
      writeFileSync(join(x, "backup_manifest"), readFileSync(join(dir, "backup_manifest")));
      assert.equal(readFileSync(join(x, "PG_VERSION"), "utf8").trim(), String(v));
      await verify(v, x);
    }
  });

  test(`baseBackup() PG${v}: a tablespace is relocated with tablespaceMapping and the copy starts with its data`, { skip: unavailable(v) }, async () => {
    const c = await startCluster(v);
    try {
      const ts = join(c.baseDir, "ts1");
      mkdirSync(ts);
      shareWithServer(ts);
      await psql(c, `CREATE TABLESPACE ts1 LOCATION '${ts}'`);
      await psql(c, "CREATE TABLE tt TABLESPACE ts1 AS SELECT g AS a FROM generate_series(1, 5000) g");
      const base = serverBaseDir(v);
      const mapped = join(base, "ts1-copy");
      const r = await baseBackup({
        connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home },
        directory: join(base, "data"), checkpoint: "fast", tablespaceMapping: { [ts]: mapped },
      });
      assert.equal(r.tablespaces.filter((t) => t.location === ts).length, 1);
      const [link] = readdirSync(join(base, "data", "pg_tblspc"));
      assert.equal(readlinkSync(join(base, "data", "pg_tblspc", link)), mapped);
      assert.ok(readdirSync(mapped).some((f) => f.startsWith("PG_")), "the tablespace's files are in the new place");
      const copy = await startServer(v, base);
      try {
        assert.equal((await psql(copy, "SELECT count(*) FROM tt")).trim(), "5000");
        assert.equal((await psql(copy, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'")).trim(), mapped);
      } finally {
        await copy.stop();
      }
    } finally {
      await c.stop();
    }
  });

  // PostgreSQL 15 recovers to a restore point, 18 to a time: both targets are covered.
  const target = v === 15 ? "recovery_target_name" : "recovery_target_time";
  test(`baseBackup() + WalReceiver PG${v}: point-in-time recovery from our archive stops at ${target}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "pitr");
    const archive = mkdtempSync(join(tmpdir(), "pg-rdma-pitr-archive-"));
    const slot = `pitr_${tag}`;
    let started!: () => void;
    const isStarted = new Promise<void>((r) => (started = r));
    const rx = new WalReceiver({
      connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: archive,
      slot, createSlot: true, statusInterval: 1000, onStart: () => started(),
    });
    const receiving = rx.run();
    let server: Awaited<ReturnType<typeof startServer>> | undefined;
    try {
      await Promise.race([isStarted, receiving]);
      await psql(c, "CREATE TABLE p (a int)", { database: db });
      const base = serverBaseDir(v);
      await baseBackup({ connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: join(base, "data"), checkpoint: "fast", wal: "none" });
      await psql(c, "INSERT INTO p SELECT generate_series(1, 100)", { database: db });
      const point = `rp_${tag}`;
      let targetValue: string;
      if (v === 15) {
        await psql(c, `SELECT pg_create_restore_point('${point}')`);
        targetValue = point;
      } else {
        await sleep(1100);
        targetValue = (await psql(c, "SELECT now()")).trim();
        await sleep(1100);
      }
      await psql(c, "INSERT INTO p SELECT generate_series(101, 200)", { database: db });
      const end = parseLsn((await psql(c, "SELECT pg_switch_wal(); SELECT pg_current_wal_lsn()")).trim().split("\n").pop()!);
      rx.stopAt(end);
      await receiving;
      shareWithServer(archive);
      writeFileSync(join(base, "data", "recovery.signal"), "");
      writeFileSync(join(base, "data", "postgresql.auto.conf"), [
        `restore_command = 'cp ${archive}/%f %p'`,
        `${target} = '${targetValue}'`,
        "recovery_target_action = 'pause'",
        "",
      ].join("\n"), { flag: "a" });
      server = await startServer(v, base);
      const srv = server;
      await waitFor("recovery to pause at the target", async () => (await psql(srv, "SELECT pg_get_wal_replay_pause_state()")).trim() === "paused");
      assert.equal((await psql(srv, "SELECT count(*) FROM p", { database: db })).trim(), "100", `recovered up to ${target}, not past it`);
    } finally {
      rx.stop();
      await receiving.catch(() => {});
      await server?.stop();
      await psql(c, `SELECT pg_drop_replication_slot('${slot}') FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`);
      await psql(c, `DROP DATABASE IF EXISTS ${db}`);
    }
  });
}

test("baseBackup() PG15: maxRate makes the server send no faster than asked", { skip: unavailable(15) }, async () => {
  const c = await smallCluster(15);
  const dir = join(mkdtempSync(join(tmpdir(), "pg-rdma-bbrate-")), "out");
  const rate = 16384; // kB/s
  const t0 = Date.now();
  const r = await baseBackup({
    connection: `host=${c.socketDir} port=${c.port} user=postgres`, connectOptions: { env: {}, homeDir: home }, directory: dir,
    format: "tar", wal: "none", checkpoint: "fast", maxRate: rate, manifest: false,
  });
  const seconds = (Date.now() - t0) / 1000;
  const floor = r.bytes / 1024 / rate;
  assert.ok(seconds >= floor * 0.8, `${r.bytes} bytes in ${seconds.toFixed(2)} s, faster than ${rate} kB/s`);
  assert.ok(!existsSync(join(dir, "backup_manifest")), "no manifest when not asked for");
});

for (const v of VERSIONS) {
  test(`baseBackup() PG${v}: aborting stops the backup, closes its connections, removes what it wrote and rejects with an AbortError`, { skip: unavailable(v) }, async () => {
    const c = await smallCluster(v);
    const base = mkdtempSync(join(tmpdir(), "pg-rdma-bbabort-"));
    const conn = `host=${c.socketDir} port=${c.port} user=postgres application_name=abort_${tag}`;
    const opts = { connection: conn, connectOptions: { env: {}, homeDir: home }, checkpoint: "fast" as const, maxRate: 32 };
    // A directory it creates goes; an empty one it was given stays, emptied; the WAL directory too.
    const created = join(base, "new");
    const given = join(base, "given");
    mkdirSync(given);
    for (const [directory, extra] of [[created, { walDirectory: join(base, "wal") }], [given, { format: "tar" as const, compression: "gzip" as const }]] as const) {
      const ac = new AbortController();
      const backup = baseBackup({ ...opts, ...extra, directory, signal: ac.signal, onProgress: (p) => p.bytes > 0 && ac.abort() });
      await assert.rejects(backup, { name: "AbortError" });
      assert.equal(existsSync(directory), directory === given);
      if (directory === given) assert.deepEqual(readdirSync(given), []);
      assert.ok(!existsSync(join(base, "wal")));
    }
    // The server saw both connections go (the backup's and the WAL stream's).
    await waitFor("the walsenders to end", async () =>
      (await psql(c, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'abort_${tag}'`)).trim() === "0", 10_000);
    // An already aborted signal: nothing is written, nothing connects.
    await assert.rejects(baseBackup({ ...opts, directory: join(base, "never"), signal: AbortSignal.abort() }), { name: "AbortError" });
    assert.ok(!existsSync(join(base, "never")));
  });
}
