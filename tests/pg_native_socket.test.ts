// The client's default sockets per runtime: in Bun, connections that never negotiate TLS (unix
// sockets, sslmode=disable, the clear first attempt of sslmode=allow, cancel requests) go over
// Bun.connect (pg/_bun_socket.ts); everything else, and everything in Deno and Node, over
// node:net. The behaviour tests run in all three runtimes against PostgreSQL 18 and node:net
// peers; the ones that drive the Bun socket directly are skipped outside Bun.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, ROLES, unavailable } from "./_fixture/cluster.ts";
import { type Client, connect, ConnectionError, netSocketFactory, PostgresError, type SocketFactory } from "../pg/mod.ts";
import { attemptFactory, receivingNetSocketFactory } from "../pg/client.ts";
import { BunSocket, bunSocketFactory } from "../pg/_bun_socket.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const base = { env: {}, homeDir };
const skip = unavailable(18);
const isBun = "Bun" in globalThis;
const bunOnly = isBun ? undefined : "drives the Bun.connect socket, which exists only in Bun";
const MiB = 1024 * 1024;

/** Counts the Bun sockets opened while `fn` runs (0 outside Bun). */
async function bunSockets<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const proto = BunSocket.prototype as unknown as { _open(r: unknown): void };
  const orig = proto._open;
  let n = 0;
  proto._open = function (this: BunSocket, r: unknown) {
    n++;
    return orig.call(this, r);
  };
  try {
    return [await fn(), n];
  } finally {
    proto._open = orig;
  }
}

function tcp(port: number, extra = "sslmode=disable"): string {
  return `host=127.0.0.1 port=${port} user=${ROLES.superuser.user} password=${ROLES.superuser.password} dbname=postgres ${extra}`;
}

async function listen(onConn: (s: Socket) => void): Promise<[Server, number]> {
  const server = createServer((s) => {
    s.on("error", () => {});
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return [server, (server.address() as { port: number }).port];
}

const close = (server: Server) => new Promise((r) => server.close(r));

/** Connects with the Bun socket factory (Bun only). */
async function bunConnect(port: number): Promise<BunSocket> {
  const f = bunSocketFactory()!;
  return await f({ kind: "tcp", host: "127.0.0.1", port }, { signal: new AbortController().signal }) as unknown as BunSocket;
}

test("attemptFactory(): Bun.connect in Bun, node:net with onread elsewhere, only for plain attempts without a caller's factory", () => {
  const mine: SocketFactory = (t, o) => netSocketFactory(t, o);
  if (isBun) {
    assert.equal(typeof bunSocketFactory(), "function");
    assert.equal(attemptFactory(undefined, "plain"), bunSocketFactory());
  } else {
    assert.equal(bunSocketFactory(), undefined);
    assert.equal(attemptFactory(undefined, "plain"), receivingNetSocketFactory);
  }
  // TLS needs node:tls over node:net; a caller's factory is always used as given.
  assert.equal(attemptFactory(undefined, "tls"), netSocketFactory);
  assert.equal(attemptFactory(mine, "plain"), mine);
  assert.equal(attemptFactory(netSocketFactory, "plain"), netSocketFactory);
});

test("connect() PG18: queries over a unix socket and over TCP with sslmode=disable (Bun: over Bun.connect)", { skip }, async () => {
  const c = await cluster(18);
  const [, n] = await bunSockets(async () => {
    for (const info of [`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, tcp(c.port)]) {
      const client = await connect(info, base);
      try {
        const r = await client.query("SELECT $1::int + 1 AS n, repeat('x', 100000) AS big", [41]);
        assert.equal(r.rows[0].n, 42);
        assert.equal((r.rows[0].big as string).length, 100000);
        assert.equal(client.tls, false);
      } finally {
        await client.close();
      }
    }
  });
  assert.equal(n, isBun ? 2 : 0);
});

test("connect() PG18: TLS connections stay on node:net; sslmode=allow's clear first attempt may use Bun.connect", { skip }, async () => {
  const c = await cluster(18);
  const [, n] = await bunSockets(async () => {
    const t = await connect(tcp(c.port, "sslmode=require"), base);
    assert.equal(t.tls, true);
    assert.deepEqual((await t.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    await t.close();
  });
  assert.equal(n, 0);
  const [, m] = await bunSockets(async () => {
    const a = await connect(tcp(c.port, "sslmode=allow"), base);
    assert.equal(a.tls, false);
    assert.deepEqual((await a.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    await a.close();
  });
  assert.equal(m, isBun ? 1 : 0);
});

test("copyTo() PG18: a slow consumer pauses the socket: the backend waits in ClientWrite, memory stays bounded", { skip }, async () => {
  const c = await cluster(18);
  const client = await connect(tcp(c.port), base);
  const observer = await connect(tcp(c.port), base);
  try {
    const rows = 96; // 96 MiB, 1 MiB per row
    let n = 0;
    let state: unknown;
    let grown = 0;
    const rss0 = process.memoryUsage().rss;
    const out = client.copyTo(`COPY (SELECT repeat('y', ${MiB}) FROM generate_series(1, ${rows})) TO STDOUT`);
    for await (const chunk of out) {
      n += chunk.length;
      if (state === undefined) {
        await new Promise((r) => setTimeout(r, 500));
        state = (await observer.query("SELECT state, wait_event FROM pg_stat_activity WHERE pid = $1", [client.processId])).rows[0];
        grown = process.memoryUsage().rss - rss0;
      }
    }
    assert.equal(n, rows * (MiB + 1));
    assert.equal(out.result?.rowCount, rows);
    assert.deepEqual(state, { state: "active", wait_event: "ClientWrite" });
    assert.ok(grown < 48 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB while the consumer waited`);
  } finally {
    await observer.close();
    await client.close();
  }
});

test("copyFrom() PG18: a server that stops reading holds the source back (write() false, then drain), and every row arrives", { skip }, async () => {
  const c = await cluster(18);
  const client = await connect(tcp(c.port), base);
  const observer = await connect(tcp(c.port), base);
  try {
    await client.query("CREATE TEMP TABLE sink (i int, t text)");
    // The backend sleeps on the first row: the socket fills and the client must wait for drain.
    await client.query(`CREATE FUNCTION pg_temp.nap() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.i = 1 THEN PERFORM pg_sleep(1.5); END IF; RETURN NEW; END $$`);
    await client.query("CREATE TRIGGER nap BEFORE INSERT ON sink FOR EACH ROW EXECUTE FUNCTION pg_temp.nap()");
    const total = 64 * MiB;
    const line = "x".repeat(1000);
    let made = 0;
    let rows = 0;
    const source = async function* () {
      const enc = new TextEncoder();
      while (made < total) {
        let s = "";
        for (let k = 0; k < 64; k++) s += `${++rows}\t${line}\n`;
        const b = enc.encode(s);
        made += b.length;
        yield b;
      }
    };
    const copy = client.copyFrom("COPY sink FROM STDIN", source());
    // Wait until the backend sleeps, then see how far the source got meanwhile.
    for (let i = 0; i < 100; i++) {
      const r = await observer.query("SELECT wait_event FROM pg_stat_activity WHERE pid = $1", [client.processId]);
      if (r.rows[0]?.wait_event === "PgSleep") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 500));
    const during = made;
    const r = await copy;
    assert.equal(r.rowCount, rows);
    assert.ok(during < total / 2, `the source made ${(during / MiB).toFixed(1)} MiB while the server slept`);
    const { rows: got } = await client.query("SELECT count(*)::int AS n, max(i) AS m FROM sink");
    assert.deepEqual(got, [{ n: rows, m: rows }]);
  } finally {
    await observer.close();
    await client.close();
  }
});

test("connect(): a refused TCP port and a missing unix socket read as libpq (and node:net) words them", async () => {
  const [server, port] = await listen(() => {});
  await close(server); // the port is free now: refused
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-nosock-"));
  const cases = [
    [tcp(port), `connection to server at "127.0.0.1", port ${port} failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?`],
    [`host=${dir} port=5999 user=u dbname=d`, `connection to server on socket "${dir}/.s.PGSQL.5999" failed: No such file or directory\n\tIs the server running locally and accepting connections on that socket?`],
  ] as const;
  for (const [info, text] of cases) {
    for (const socketFactory of [undefined, netSocketFactory]) {
      const e = await connect(info, { ...base, socketFactory }).then(() => undefined, (e) => e);
      assert.ok(e instanceof ConnectionError, String(e));
      assert.equal(e.message, text);
    }
  }
});

test("bunSocketFactory(): connect errors carry node:net's code, errno and message", { skip: bunOnly }, async () => {
  const [server, port] = await listen(() => {});
  await close(server);
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-nosock-"));
  const targets = [
    { kind: "tcp", host: "127.0.0.1", port },
    { kind: "unix", path: `${dir}/.s.PGSQL.1` },
    { kind: "unix", path: dir }, // a directory: ECONNREFUSED
  ] as const;
  for (const t of targets) {
    const signal = new AbortController().signal;
    const fail = (f: SocketFactory) => Promise.resolve(f(t, { signal })).then(() => undefined, (e: NodeJS.ErrnoException) => e);
    const ours = await fail(bunSocketFactory()!);
    const theirs = await fail(netSocketFactory);
    assert.ok(ours instanceof Error && theirs instanceof Error);
    assert.equal(ours.code, theirs.code);
    assert.equal(ours.errno, theirs.errno);
    assert.equal(ours.message, theirs.message);
  }
  // An aborted signal rejects with its reason, before anything is opened.
  const ac = new AbortController();
  ac.abort(new Error("gave up"));
  await assert.rejects(Promise.resolve().then(() => bunSocketFactory()!({ kind: "tcp", host: "127.0.0.1", port }, { signal: ac.signal })), /gave up/);
});

test("connection loss PG18: pg_terminate_backend mid-query fails it with 57P01 and ends the client", { skip }, async () => {
  const c = await cluster(18);
  const observer = await connect(tcp(c.port), base);
  try {
    for (const socketFactory of [undefined, netSocketFactory]) {
      const client = await connect(tcp(c.port), { ...base, socketFactory });
      const ended = new Promise((r) => client.once("end", r));
      const q = client.query("SELECT pg_sleep(30)").then(() => undefined, (e) => e);
      await new Promise((r) => setTimeout(r, 200));
      await observer.query("SELECT pg_terminate_backend($1)", [client.processId]);
      const e = await q;
      assert.ok(e instanceof PostgresError, String(e));
      assert.equal(e.code, "57P01");
      await ended;
      assert.equal(client.closed, true);
      await assert.rejects(client.query("SELECT 1"), ConnectionError);
      await client.close();
      await client.close();
    }
  } finally {
    await observer.close();
  }
});

test("cancel() PG18: cancels a running pg_sleep over sslmode=disable (Bun: both sockets over Bun.connect)", { skip }, async () => {
  const c = await cluster(18);
  const [, n] = await bunSockets(async () => {
    const client: Client = await connect(tcp(c.port), base);
    try {
      const q = client.query("SELECT pg_sleep(30)").then(() => undefined, (e) => e);
      await new Promise((r) => setTimeout(r, 300));
      await client.cancel();
      const e = await q;
      assert.ok(e instanceof PostgresError && e.code === "57014", String(e));
      assert.deepEqual((await client.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    } finally {
      await client.close();
    }
  });
  assert.equal(n, isBun ? 2 : 0);
});

test("BunSocket: write() returns false at the high-water mark, 'drain' follows, end() sends everything before FIN", { skip: bunOnly }, async () => {
  let peer!: Socket;
  let got = 0;
  let onEnd!: () => void;
  const ended = new Promise<void>((r) => (onEnd = r));
  const [server, port] = await listen((s) => {
    peer = s;
    s.pause(); // not reading: the kernel's buffers fill
    s.on("data", (d) => (got += d.length));
    s.on("end", () => {
      onEnd();
      s.end();
    });
  });
  const s = await bunConnect(port);
  const closes: unknown[] = [];
  s.on("close", (hadError) => closes.push(hadError));
  s.on("data", () => {}); // as on a net.Socket, 'end' and 'close' need the reading side consumed
  const chunk = new Uint8Array(MiB).fill(7);
  let writes = 0;
  while (s.write(chunk)) writes++;
  assert.ok(writes < 64, "write() never said to wait");
  assert.ok(s.writableLength >= 16 * 1024);
  const drained = new Promise((r) => s.once("drain", r));
  while (!peer) await new Promise((r) => setTimeout(r, 5));
  peer.resume();
  await drained;
  s.write(chunk);
  s.end();
  s.end(); // twice is safe
  await ended;
  assert.equal(got, (writes + 2) * MiB);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(closes, [false]);
  await close(server);
});

test("BunSocket: chunks are fresh memory, pause() stops reading, destroy() twice emits one close", { skip: bunOnly }, async () => {
  const size = 8 * MiB;
  let peer!: Socket;
  const [server, port] = await listen((s) => {
    peer = s;
    const b = new Uint8Array(size);
    for (let i = 0; i < size; i++) b[i] = (i * 7) & 255;
    s.write(b);
  });
  try {
    const s = await bunConnect(port);
    const chunks: Uint8Array[] = [];
    let paused = 0;
    s.on("data", (d: Uint8Array) => {
      chunks.push(d);
      if (chunks.length === 1) {
        s.pause();
        paused = chunks.length;
        setTimeout(() => {
          // Nothing arrived while paused, and the peer is backed up.
          assert.equal(chunks.length, paused);
          assert.ok(peer.writableLength > 0);
          s.resume();
        }, 200);
      }
    });
    let total = 0;
    while (total < size) {
      await new Promise((r) => setTimeout(r, 20));
      total = chunks.reduce((a, c) => a + c.length, 0);
    }
    assert.equal(total, size);
    // Each chunk has memory of its own (the client keeps views), and none was overwritten.
    assert.equal(new Set(chunks.map((c) => c.buffer)).size, chunks.length);
    let i = 0;
    for (const c of chunks) for (const x of c) assert.equal(x, (i++ * 7) & 255);
    let closes = 0;
    const errors: unknown[] = [];
    s.on("close", () => closes++);
    s.on("error", (e) => errors.push(e));
    s.destroy();
    s.destroy();
    assert.equal(s.write(new Uint8Array(1)), false);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closes, 1);
    assert.deepEqual(errors, []);
  } finally {
    await close(server);
  }
});

test("BunSocket: a peer's reset mid-stream is ECONNRESET, then one close", { skip: bunOnly }, async () => {
  let peer!: Socket;
  const [server, port] = await listen((s) => (peer = s));
  try {
    const s = await bunConnect(port);
    const events: string[] = [];
    s.on("data", () => {});
    s.on("error", (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
    s.on("end", () => events.push("end"));
    const closed = new Promise((r) => s.on("close", r));
    while (!peer) await new Promise((r) => setTimeout(r, 5));
    peer.write("abc");
    await new Promise((r) => setTimeout(r, 50));
    peer.resetAndDestroy();
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(events, ["error ECONNRESET"]);
  } finally {
    await close(server);
  }
});
