// pg-rdma tunnel as users run it: child processes of the same runtime, a client-side tunnel
// (tcp:// in, rdma:// out) chained to a server-side tunnel (rdma:// in, tcp:// out to the
// fixture's PostgreSQL), both on the kernel provider (rsockets code over kernel TCP: no RDMA
// device here). Real psql, pg_dump, pg_basebackup and a streaming standby go through it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, createDatabase, psql, psqlPath, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";
import { parseEndpoint, sessionTime } from "../cli/tunnel.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);
const PG15_BIN = "/usr/lib/postgresql/15/bin";
/** The first version with a cluster here, for the tests that need just one. */
const anyVersion = VERSIONS.find((v) => unavailable(v) === undefined);
const noCluster = anyVersion === undefined ? "no PostgreSQL cluster can be started here" : undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Tunnel {
  port: number;
  child: ChildProcess;
  log(): string;
  /** Sends a signal (process.kill: Deno reports child.kill()'s signal instead of the status). */
  stop(sig: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/** A free TCP port on 127.0.0.1 (for a tunnel started with -q, which prints no port). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s: Server = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * Starts `pg-rdma tunnel ARGS` and waits until it listens: its "listening on" line, or with
 * `port` given (for -q), until that port accepts.
 */
async function tunnel(args: string[], port?: number): Promise<Tunnel> {
  const child = spawn(exe, [...baseArgs, "tunnel", ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let err = "";
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = await new Promise<number>((resolve, reject) => {
    child.stderr!.on("data", (d) => {
      err += String(d);
      const m = /listening on \w+:\/\/[^ ]*:(\d+),/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    exited.then((code) => reject(new Error(`tunnel exited (${code}) before listening:\n${err}`)));
    timer = setTimeout(() => reject(new Error(`tunnel did not listen within 20 s:\n${err}`)), 20_000);
    if (port !== undefined) {
      const probe = () => {
        const s = createConnection({ host: "127.0.0.1", port });
        s.on("connect", () => (s.destroy(), resolve(port)));
        s.on("error", () => setTimeout(probe, 50));
      };
      probe();
    }
  }).finally(() => clearTimeout(timer));
  return {
    port: bound,
    child,
    log: () => err,
    exited,
    stop: (sig) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, sig);
      return exited;
    },
  };
}

/** A server-side tunnel in front of the cluster and a client-side tunnel to it; stop both after. */
async function chain(c: { host: string; port: number }, extra: string[] = []) {
  const server = await tunnel(["--listen", "rdma://127.0.0.1:0", "--connect", `tcp://${c.host}:${c.port}`, "--provider", "kernel", ...extra]);
  const client = await tunnel(["--listen", "tcp://127.0.0.1:0", "--connect", `rdma://127.0.0.1:${server.port}`, "--provider", "kernel", ...extra]);
  return {
    server,
    client,
    async close() {
      await Promise.all([client.stop("SIGTERM"), server.stop("SIGTERM")]);
    },
  };
}

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}, timeout = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, PGCONNECT_TIMEOUT: "10", ...env }, timeout, maxBuffer: 256 << 20 }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
  });
}

/** psql 15 over TCP to 127.0.0.1:port as the superuser (SCRAM). */
function psqlTcp(port: number, sql: string, db = "postgres", env: Record<string, string> = {}) {
  return run(psqlPath(), ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", db, "-c", sql], {
    PGPASSWORD: ROLES.superuser.password,
    ...env,
  });
}

for (const v of VERSIONS) {
  test(`psql works through a TCP→rdma→TCP tunnel chain, and both tunnels log like PostgreSQL, on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "tun");
    const t = await chain(c);
    try {
      const r = await psqlTcp(t.client.port, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g; SELECT count(*), md5(string_agg(h, ',' ORDER BY id)) FROM t", db);
      assert.equal(r.code, 0, r.err);
      const direct = await psql(c, "SELECT count(*), md5(string_agg(h, ',' ORDER BY id)) FROM t", { database: db });
      assert.equal(r.out, direct.endsWith("\n") ? direct : direct + "\n");
      // Large result through both tunnels, byte for byte.
      const big = await psqlTcp(t.client.port, "SELECT string_agg(h, '') FROM t", db);
      assert.equal(big.code, 0, big.err);
      assert.equal(big.out.length, 20000 * 32 + 1);
      await sleep(200); // let the disconnection lines arrive
      assert.match(t.server.log(), /connection received: host=127\.0\.0\.1 port=\d+ with_rsocket=true\n/);
      assert.match(t.client.log(), /connection received: host=127\.0\.0\.1 port=\d+\n/);
      assert.match(t.server.log(), /disconnection: session time: \d+:\d\d:\d\d\.\d{3} host=127\.0\.0\.1 port=\d+\n/);
    } finally {
      await t.close();
    }
    assert.equal(await t.client.exited, 143);
  });
}

test("pg_dump through the tunnel chain gives the same dump as pg_dump direct (PostgreSQL 15)", { skip: unavailable(15) }, async () => {
  const c = await cluster(15);
  const db = await createDatabase(c, "tundump");
  await psql(c, "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, repeat('x', g % 100) FROM generate_series(1, 5000) g; CREATE INDEX ON a (v);", { database: db });
  const t = await chain(c);
  try {
    const env = { PGPASSWORD: ROLES.superuser.password };
    const args = (port: number) => ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", db];
    const [through, direct] = await Promise.all([run(join(PG15_BIN, "pg_dump"), args(t.client.port), env), run(join(PG15_BIN, "pg_dump"), args(c.port), env)]);
    assert.equal(through.code, 0, through.err);
    assert.equal(direct.code, 0, direct.err);
    assert.ok(through.out.includes("COPY public.a (id, v) FROM stdin;"));
    // pg_dump 15.14+ writes a random \restrict key per run; the rest must match byte for byte.
    const digest = (s: string) => createHash("sha256").update(s.replace(/^\\(un)?restrict \S+$/gm, "")).digest("hex");
    assert.equal(through.out.length, direct.out.length);
    assert.equal(digest(through.out), digest(direct.out));
  } finally {
    await t.close();
  }
});

test("100 concurrent psql sessions run at once through the tunnel chain", { skip: noCluster }, async () => {
  const c = await cluster(anyVersion!);
  const t = await chain(c);
  try {
    const tag = `tun100_${process.pid}`;
    // Each session stays 3 s, longer than starting 100 psql processes takes on a loaded 2-core
    // machine (with 1.5 s, one loaded run saw only 39 at once).
    const runs = await Promise.all(Array.from({ length: 100 }, () =>
      psqlTcp(t.client.port, `SELECT pg_sleep(3); SELECT count(*) FROM pg_stat_activity WHERE application_name = '${tag}'`, "postgres", { PGAPPNAME: tag })
    ));
    for (const r of runs) assert.equal(r.code, 0, r.err);
    const most = Math.max(...runs.map((r) => Number(r.out.trim().split("\n").pop())));
    assert.ok(most >= 50, `sessions overlapped: at most ${most} were open at once`);
    await sleep(300);
    assert.equal(t.server.log().match(/connection received:/g)?.length, 100);
  } finally {
    await t.close();
  }
});

test("a streaming standby replicates through the tunnel chain (pg_basebackup -R, then primary_conninfo via the tunnel; PostgreSQL 15)", {
  skip: unavailable(15) ?? (existsSync(join(PG15_BIN, "pg_basebackup")) ? undefined : "pg_basebackup 15 is not installed"),
}, async () => {
  const c = await cluster(15);
  const db = await createDatabase(c, "tunrepl");
  await psql(c, "CREATE TABLE r (id int PRIMARY KEY, v text); INSERT INTO r VALUES (1, 'before')", { database: db });
  const t = await chain(c);
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-standby-"));
  const data = join(dir, "data");
  let standby: ChildProcess | undefined;
  try {
    const env = { PGPASSWORD: ROLES.replication.password };
    const bb = await run(join(PG15_BIN, "pg_basebackup"), ["-h", "127.0.0.1", "-p", String(t.client.port), "-U", ROLES.replication.user, "-D", data, "-R", "-X", "stream", "-c", "fast"], env);
    assert.equal(bb.code, 0, bb.err);
    const auto = readFileSync(join(data, "postgresql.auto.conf"), "utf8");
    assert.match(auto, new RegExp(`primary_conninfo = '.*port=${t.client.port}`));
    // The standby runs as the user the fixture's servers run as (root may not run postgres).
    const owner = statSync(c.dataDir);
    const sock = join(dir, "sock");
    await run("mkdir", ["-p", sock]);
    chmodSync(dir, 0o755);
    if (process.getuid?.() === 0) await run("chown", ["-R", `${owner.uid}:${owner.gid}`, dir]);
    chmodSync(data, 0o700);
    const port = await freePort();
    writeFileSync(join(data, "postgresql.auto.conf"), `${auto}\nport = ${port}\nlisten_addresses = ''\nunix_socket_directories = '${sock}'\nhot_standby = on\n`);
    if (process.getuid?.() === 0) await run("chown", [`${owner.uid}:${owner.gid}`, join(data, "postgresql.auto.conf")]);
    const cmd = process.getuid?.() === 0
      ? ["setpriv", ["--reuid", String(owner.uid), "--regid", String(owner.gid), "--clear-groups", join(PG15_BIN, "postgres"), "-D", data]] as const
      : [join(PG15_BIN, "postgres"), ["-D", data]] as const;
    standby = spawn(cmd[0], [...cmd[1]], { stdio: ["ignore", "ignore", "pipe"] });
    let slog = "";
    standby.stderr!.on("data", (d) => (slog += String(d)));
    const s = { socketDir: sock, port };
    await psql(c, "INSERT INTO r VALUES (2, 'after')", { database: db });
    let got = "";
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      got = await psql(s, "SELECT string_agg(v, ',' ORDER BY id) FROM r", { database: db }).catch(() => "");
      if (got.trim() === "before,after") break;
      await sleep(200);
    }
    assert.equal(got.trim(), "before,after", slog.slice(-2000));
    const repl = await psql(c, "SELECT state, client_addr FROM pg_stat_replication WHERE usename = 'pgrdma_repl' AND state = 'streaming'");
    assert.match(repl, /^streaming\|127\.0\.0\.1$/m);
    assert.equal((await psql(s, "SELECT pg_is_in_recovery()")).trim(), "t");
  } finally {
    if (standby && standby.exitCode === null) {
      const gone = new Promise((r) => standby!.on("exit", r));
      process.kill(standby.pid!, "SIGINT"); // fast shutdown
      await Promise.race([gone, sleep(15_000)]);
    }
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("killing the server-side tunnel ends the client's session at once; the client-side tunnel keeps running", { skip: noCluster }, async () => {
  const c = await cluster(anyVersion!);
  const t = await chain(c);
  try {
    const started = Date.now();
    const session = psqlTcp(t.client.port, "SELECT pg_sleep(60)");
    await sleep(1500);
    process.kill(t.server.child.pid!, "SIGKILL");
    const r = await session;
    assert.notEqual(r.code, 0);
    assert.match(r.err, /server closed the connection unexpectedly|connection to server was lost/);
    assert.ok(Date.now() - started < 20_000, "the session ended long before pg_sleep(60)");
    await sleep(200);
    assert.match(t.client.log(), /disconnection: session time: /);
    // The client-side tunnel still accepts; its upstream is gone, so it says so and closes.
    const again = await psqlTcp(t.client.port, "SELECT 1");
    assert.notEqual(again.code, 0);
    await sleep(200);
    assert.match(t.client.log(), /could not connect to rdma:\/\/127\.0\.0\.1:\d+: /);
    assert.equal(t.client.child.exitCode, null);
  } finally {
    await t.close();
  }
});

test("SIGTERM lets an open session finish within --grace, then the tunnel exits 143; a longer one is cut at the grace", { skip: noCluster }, async () => {
  const c = await cluster(anyVersion!);
  const t = await tunnel(["--listen", "tcp://127.0.0.1:0", "--connect", `tcp://${c.host}:${c.port}`, "--grace", "20"]);
  const short = psqlTcp(t.port, "SELECT pg_sleep(2); SELECT 'finished'");
  await sleep(1000);
  const stopAt = Date.now();
  const code = t.stop("SIGTERM");
  const r = await short;
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /finished/);
  assert.equal(await code, 143);
  assert.match(t.log(), /shutting down: waiting up to 20 s for 1 open connection/);
  assert.ok(Date.now() - stopAt < 15_000);

  const quietPort = await freePort();
  const t2 = await tunnel(["--listen", `tcp://127.0.0.1:${quietPort}`, "--connect", `tcp://${c.host}:${c.port}`, "--grace", "0.5", "-q"], quietPort);
  const long = psqlTcp(t2.port, "SELECT pg_sleep(60)");
  await sleep(1000);
  const at = Date.now();
  assert.equal(await t2.stop("SIGINT"), 130);
  const lr = await long;
  assert.notEqual(lr.code, 0);
  assert.ok(Date.now() - at < 10_000);
  assert.equal(t2.log(), "", "-q prints nothing");
});

test("the tunnel chain is byte-transparent, keeps half-closed connections open, and carries 20 at once", async () => {
  // An upstream that answers only after the client has finished sending (half-close): the
  // SHA-256 and length of everything it received.
  const upstream = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash("sha256");
    let n = 0;
    s.on("data", (d: Uint8Array) => {
      h.update(d);
      n += d.length;
    });
    s.on("end", () => s.end(`${n} ${h.digest("hex")}`));
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
  const up = (upstream.address() as { port: number }).port;
  const t = await chain({ host: "127.0.0.1", port: up });
  try {
    const one = (size: number) =>
      new Promise<{ sent: string; got: string }>((resolve, reject) => {
        const data = randomBytes(size);
        const s = createConnection({ host: "127.0.0.1", port: t.client.port, allowHalfOpen: true });
        let got = "";
        s.on("data", (d) => (got += String(d)));
        s.on("end", () => resolve({ sent: `${size} ${createHash("sha256").update(data).digest("hex")}`, got }));
        s.on("error", reject);
        s.on("connect", () => s.end(data));
      });
    const results = await Promise.all([one(8 << 20), ...Array.from({ length: 19 }, (_, i) => one(1000 + i * 50_000))]);
    for (const r of results) assert.equal(r.got, r.sent);
  } finally {
    await t.close();
    await new Promise((r) => upstream.close(r));
  }
});

test("pg-rdma tunnel refuses bad endpoints (exit 2) and reports a port in use (exit 1)", async () => {
  const bad = await run(exe, [...baseArgs, "tunnel", "--listen", "udp://1.2.3.4:5", "--connect", "tcp://127.0.0.1:5432"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /unknown scheme "udp"/);
  const missing = await run(exe, [...baseArgs, "tunnel", "--listen", "6432"]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /no upstream specified/);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
  try {
    const port = (busy.address() as { port: number }).port;
    const r = await run(exe, [...baseArgs, "tunnel", "--listen", `127.0.0.1:${port}`, "--connect", "tcp://127.0.0.1:5432"]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`could not listen on tcp://127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  } finally {
    busy.close();
  }
});

test("parseEndpoint() reads tcp://, rdma://, [IPv6], HOST:PORT and PORT; sessionTime() is PostgreSQL's H:MM:SS.mmm", () => {
  assert.deepEqual(parseEndpoint("rdma://db-host:5432", "127.0.0.1"), { scheme: "rdma", host: "db-host", port: 5432 });
  assert.deepEqual(parseEndpoint("tcp://[::1]:6432", "127.0.0.1"), { scheme: "tcp", host: "::1", port: 6432 });
  assert.deepEqual(parseEndpoint("6432", "127.0.0.1"), { scheme: "tcp", host: "127.0.0.1", port: 6432 });
  assert.deepEqual(parseEndpoint("0.0.0.0:5432", "127.0.0.1"), { scheme: "tcp", host: "0.0.0.0", port: 5432 });
  assert.throws(() => parseEndpoint("rdma://db", "x"), /no port/);
  assert.throws(() => parseEndpoint("tcp://db:70000", "x"), /port must be 0-65535/);
  assert.equal(sessionTime(3_723_004), "1:02:03.004");
});
