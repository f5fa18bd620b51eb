// The protocol client against real servers: queries, errors, pipelining, prepared statements,
// streaming, COPY, cancel, notices, LISTEN/NOTIFY, transactions, lost connections, fake servers,
// caller-supplied socket factories, multiple hosts and target_session_attrs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { cluster, type ClusterInfo, createDatabase, psql, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import {
  type Client,
  connect,
  type ConnectOptions,
  ConnectionError,
  connectWith,
  netSocketFactory,
  type Notification,
  PostgresError,
  resolveConnInfo,
  type SocketFactory,
} from "../pg/mod.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const base = { env: {}, homeDir };

function unix(c: ClusterInfo, db = "postgres", extra = ""): string {
  return `host=${c.socketDir} port=${c.port} user=postgres dbname=${db} ${extra}`;
}

/**
 * The transports every TCP test runs over: the runtime's own sockets, and our FFI transport with
 * rsocket's kernel provider (the same code path as RDMA, on libc TCP). Unix sockets have no
 * rsocket counterpart, so tests of those stay native only.
 */
const TRANSPORTS = [
  { name: "native", conn: "", env: {}, expect: "tcp" },
  { name: "rsocket/kernel", conn: " with_rsocket=true", env: { PG_RDMA_PROVIDER: "kernel" }, expect: "rsocket" },
] as const;
type Transport = (typeof TRANSPORTS)[number];

/** The superuser over TCP (SCRAM, no TLS) on the given transport. */
function tcpInfo(c: ClusterInfo, tr: Transport, db = "postgres", extra = ""): string {
  return `host=127.0.0.1 port=${c.port} user=${ROLES.superuser.user} password=${ROLES.superuser.password} dbname=${db} sslmode=disable ${extra}${tr.conn}`;
}

/** Connects over `tr` and checks the client really went the way the loop says. */
async function open(c: ClusterInfo, tr: Transport, db = "postgres", extra = "", options: ConnectOptions = {}): Promise<Client> {
  const client = await connect(tcpInfo(c, tr, db, extra), { ...base, ...options, env: tr.env });
  assert.equal(client.transport.transport, tr.expect);
  return client;
}

async function withClient<T>(c: ClusterInfo, tr: Transport, fn: (client: Client) => Promise<T>, db = "postgres", extra = ""): Promise<T> {
  const client = await open(c, tr, db, extra);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** A fake server on 127.0.0.1 that runs `onConnection` for each client. */
async function fakeServer(onConnection: (s: Socket) => void): Promise<{ port: number; server: Server; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    server,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const authOkReady = (() => {
  // AuthenticationOk, BackendKeyData(1, 2), ReadyForQuery(I)
  const b = new Uint8Array(9 + 13 + 6);
  const v = new DataView(b.buffer);
  b[0] = 0x52;
  v.setInt32(1, 8);
  b[9] = 0x4b;
  v.setInt32(10, 12);
  v.setInt32(14, 1);
  v.setInt32(18, 2);
  b[22] = 0x5a;
  v.setInt32(23, 5);
  b[27] = 0x49;
  return b;
})();

for (const v of VERSIONS) {
  const skip = unavailable(v);
  for (const tr of TRANSPORTS) {
    test(`query() PG${v} ${tr.name}: parameters, rowMode array, fields and command tags`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        const r = await client.query("SELECT $1::int + 1 AS n, $2::text AS t, $3::int AS z", [41, "x", null]);
        assert.deepEqual(r.rows, [{ n: 42, t: "x", z: null }]);
        assert.equal(r.command, "SELECT 1");
        assert.equal(r.rowCount, 1);
        assert.deepEqual(r.fields.map((f) => [f.name, f.typeOid]), [["n", 23], ["t", 25], ["z", 23]]);
        const a = await client.query<unknown[]>("SELECT 1, 'a'", [], { rowMode: "array" });
        assert.deepEqual(a.rows, [[1, "a"]]);
        const ddl = await client.query("CREATE TEMP TABLE t (x int)");
        assert.equal(ddl.command, "CREATE TABLE");
        assert.equal(ddl.rowCount, null);
        const ins = await client.query("INSERT INTO t SELECT generate_series(1, 5)");
        assert.equal(ins.command, "INSERT 0 5");
        assert.equal(ins.rowCount, 5);
      });
    });

    test(`simpleQuery() PG${v} ${tr.name}: several statements give one result each; empty query gives an empty result`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        const rs = await client.simpleQuery("SELECT 1 AS a; SELECT 'b' AS b, NULL AS c");
        assert.deepEqual(rs.map((r) => r.rows), [[{ a: 1 }], [{ b: "b", c: null }]]);
        const empty = await client.simpleQuery("");
        assert.deepEqual(empty.map((r) => r.command), [""]);
      });
    });

    test(`query() PG${v} ${tr.name}: a server error is a PostgresError with every field, and the connection goes on`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await assert.rejects(client.query("SELECT * FROM no_such_table"), (e: unknown) => {
          assert.ok(e instanceof PostgresError);
          assert.equal(e.code, "42P01");
          assert.equal(e.severity, "ERROR");
          assert.equal(e.message, 'relation "no_such_table" does not exist');
          assert.equal(e.position, "15");
          assert.ok(e.file && e.line && e.routine);
          return true;
        });
        await client.query("CREATE TEMP TABLE u (id int CONSTRAINT u_pk PRIMARY KEY)");
        await client.query("INSERT INTO u VALUES (1)");
        await assert.rejects(client.query("INSERT INTO u VALUES (1)"), (e: unknown) => {
          assert.ok(e instanceof PostgresError);
          assert.equal(e.code, "23505");
          assert.equal(e.table, "u");
          assert.equal(e.constraint, "u_pk");
          assert.equal(e.detail, "Key (id)=(1) already exists.");
          assert.match(e.schema ?? "", /^pg_temp/);
          return true;
        });
        await assert.rejects(client.query("SELECT 1/0"), { code: "22012", message: "division by zero" });
        await assert.rejects(client.query("DO $$ BEGIN PERFORM 1/0; END $$"), (e: unknown) => (e as PostgresError).where?.includes("PL/pgSQL") === true);
        assert.deepEqual((await client.query("SELECT 'still fine' AS s")).rows, [{ s: "still fine" }]);
      });
    });

    test(`prepare() PG${v} ${tr.name}: named statements report parameter types and execute repeatedly`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        const st = await client.prepare("SELECT $1::int * 2 AS d, $2::text AS t");
        assert.deepEqual(st.paramTypes, [23, 25]);
        assert.deepEqual(st.fields.map((f) => f.name), ["d", "t"]);
        for (let i = 0; i < 3; i++) assert.deepEqual((await st.execute([i, `v${i}`])).rows, [{ d: i * 2, t: `v${i}` }]);
        await assert.rejects(st.execute([1]), RangeError);
        await st.close();
        await assert.rejects(client.query(`EXECUTE ${st.name}(1, 'a')`), { code: "26000" });
      });
    });

    test(`query() PG${v} ${tr.name}: 10,000 pipelined statements come back in order; a failing one fails alone`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        const n = 10_000;
        const ps = Array.from({ length: n }, (_, i) => i === 5000 ? client.query("SELECT 1/0") : client.query("SELECT $1::int AS i", [i]));
        const settled = await Promise.allSettled(ps);
        for (let i = 0; i < n; i++) {
          const s = settled[i];
          if (i === 5000) assert.equal(s.status === "rejected" && (s.reason as PostgresError).code, "22012");
          else assert.equal(s.status === "fulfilled" && (s.value.rows[0] as { i: number }).i, i);
        }
      });
    });

    test(`query() PG${v} ${tr.name}: prepare: true reuses one named statement per SQL text, and forgets failed ones`, { skip }, async () => {
      const c = await cluster(v);
      const client = await open(c, tr, "postgres", "", { prepare: true });
      try {
        const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => client.query("SELECT $1::int * 3 AS x", [i])));
        assert.deepEqual(rs.map((r) => (r.rows[0] as { x: number }).x), Array.from({ length: 50 }, (_, i) => i * 3));
        const names = await client.query<{ name: string; statement: string }>("SELECT name, statement FROM pg_prepared_statements ORDER BY name", [], { prepare: false });
        assert.deepEqual(names.rows.map((r) => r.statement), ["SELECT $1::int * 3 AS x"]);
        await assert.rejects(client.query("SELEC 1"), { code: "42601" });
        await assert.rejects(client.query("SELEC 1"), { code: "42601" }); // parsed again, not "does not exist"
        await client.begin(async (tx) => {
          await tx.query("SELECT 1/0").catch(() => {});
          await assert.rejects(tx.query("SELECT 'in failed tx' AS t"), { code: "25P02" });
        }).catch(() => {});
        assert.deepEqual((await client.query("SELECT 'in failed tx' AS t")).rows, [{ t: "in failed tx" }]);
      } finally {
        await client.close();
      }
    });

    test(`query() PG${v} ${tr.name}: binary results decode like text results`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        const sql = "SELECT 1::int2 a, 2::int4 b, 3::int8 c, 1.5::float8 d, 'x'::text e, true f, '12.345'::numeric g, '\\x00ff'::bytea h, ARRAY[1,NULL]::int[] i";
        const t = await client.query(sql);
        const b = await client.query(sql, [], { binary: true });
        assert.deepEqual(b.rows, t.rows);
        assert.equal(b.fields[0].format, 1);
      });
    });

    test(`stream() PG${v} ${tr.name}: 200,000 rows arrive in order with backpressure; stopping early keeps the connection`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        let n = 0;
        let sum = 0;
        for await (const row of client.stream<{ g: number }>("SELECT g FROM generate_series(1, 200000) g", [], { highWaterMark: 100 })) {
          n++;
          sum += row.g;
          assert.equal(row.g, n);
          if (n % 50000 === 0) await new Promise((r) => setTimeout(r, 5)); // a slow consumer
        }
        assert.equal(n, 200000);
        assert.equal(sum, 200000 * 200001 / 2);
        let seen = 0;
        for await (const _ of client.stream("SELECT g FROM generate_series(1, 100000) g", [], { highWaterMark: 10 })) if (++seen === 3) break;
        assert.deepEqual((await client.query("SELECT 'after' AS s")).rows, [{ s: "after" }]);
        const bad = client.stream("SELECT 1/0");
        await assert.rejects(async () => {
          for await (const _ of bad) { /* drain */ }
        }, { code: "22012" });
      });
    });

    test(`copyFrom()/copyTo() PG${v} ${tr.name}: 64 MiB in and out, bytes identical, memory bounded`, { skip }, async () => {
      const c = await cluster(v);
      const db = await createDatabase(c);
      await withClient(c, tr, async (client) => {
        await client.query("CREATE TABLE big (i int, s text)");
        const line = "x".repeat(1000);
        const rowsN = 64 * 1024; // ~64 MiB of COPY text
        const inHash = createHash("sha256");
        let inBytes = 0;
        const enc = new TextEncoder();
        async function* source() {
          for (let i = 0; i < rowsN; i += 64) {
            let chunk = "";
            for (let j = i; j < i + 64; j++) chunk += `${j}\t${line}\n`;
            const b = enc.encode(chunk);
            inHash.update(b);
            inBytes += b.length;
            yield b;
          }
        }
        const rss0 = process.memoryUsage().rss;
        let peak = rss0;
        const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
        try {
          const r = await client.copyFrom("COPY big FROM STDIN", source());
          assert.equal(r.rowCount, rowsN);
          assert.ok(inBytes > 64 * 1000 * 1000);
          const outHash = createHash("sha256");
          let outBytes = 0;
          const out = client.copyTo("COPY (SELECT * FROM big ORDER BY i) TO STDOUT", { highWaterMark: 16 });
          for await (const chunk of out) {
            outHash.update(chunk);
            outBytes += chunk.length;
          }
          assert.equal(out.result?.rowCount, rowsN);
          assert.equal(outBytes, inBytes);
          const digest = inHash.digest("hex");
          assert.equal(outHash.digest("hex"), digest);
          // coalesce: the same bytes, messages already received joined into chunks of <= 256 KiB.
          const coHash = createHash("sha256");
          let coBytes = 0;
          let largest = 0;
          const co = client.copyTo("COPY (SELECT * FROM big ORDER BY i) TO STDOUT", { highWaterMark: 16, coalesce: true });
          for await (const chunk of co) {
            if (coBytes === 0) await new Promise((r) => setTimeout(r, 50)); // let the window fill
            coHash.update(chunk);
            coBytes += chunk.length;
            largest = Math.max(largest, chunk.length);
          }
          assert.equal(co.result?.rowCount, rowsN);
          assert.equal(coBytes, inBytes);
          assert.equal(coHash.digest("hex"), digest);
          assert.ok(largest > 8 * 1006 && largest <= 256 * 1024, `largest coalesced chunk ${largest} bytes`);
          // Leaving a coalesced copy early drops the rest; the connection stays usable.
          for await (const _ of client.copyTo("COPY big TO STDOUT", { coalesce: true })) break;
          assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM big")).rows, [{ n: rowsN }]);
        } finally {
          clearInterval(sampler);
        }
        // Bounded: nowhere near the 64 MiB that buffering the whole COPY would hold twice over.
        assert.ok(peak - rss0 < 96 * 1024 * 1024, `RSS grew by ${((peak - rss0) / 1048576).toFixed(1)} MiB`);
      }, db);
    });

    test(`copyTo() PG${v} ${tr.name}: coalesce gives the same bytes as one chunk per row for rows of 0 B to 200 KiB, and the rows before an error`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        // Row widths cross both coalescing paths: copied into a batch (short and medium rows)
        // and handed over as views (rows above 64 KiB), in an order that fills batches unevenly.
        const sql = "COPY (SELECT i, repeat(chr(97 + i % 26), CASE WHEN i % 97 = 0 THEN 200000 WHEN i % 13 = 0 THEN 3000 WHEN i % 2 = 0 THEN 40 ELSE i % 7 END) FROM generate_series(1, 20000) i) TO STDOUT";
        const collect = async (coalesce: boolean) => {
          const h = createHash("sha256");
          let n = 0;
          let chunks = 0;
          for await (const chunk of client.copyTo(sql, { coalesce })) {
            h.update(chunk);
            n += chunk.length;
            chunks++;
          }
          return { digest: h.digest("hex"), n, chunks };
        };
        const plain = await collect(false);
        const co = await collect(true);
        assert.equal(plain.chunks, 20000);
        assert.equal(co.n, plain.n);
        assert.equal(co.digest, plain.digest);
        assert.ok(co.chunks < plain.chunks / 4, `${co.chunks} coalesced chunks`);
        // An error after 5000 rows: every row before it arrives, then the error is thrown.
        let text = "";
        const failing = client.copyTo("COPY (SELECT i, 10 / (5001 - i) FROM generate_series(1, 6000) i) TO STDOUT", { coalesce: true });
        await assert.rejects(async () => {
          for await (const chunk of failing) text += new TextDecoder().decode(chunk);
        }, /division by zero/);
        const lines = text.split("\n").filter((l) => l !== "");
        assert.equal(lines.length, 5000);
        assert.equal(lines[4999], "5000\t10");
        assert.deepEqual((await client.query("SELECT 1 AS ok")).rows, [{ ok: 1 }]);
      });
    });

    test(`copyTo() PG${v} ${tr.name}: reusing() gives the coalesced bytes in a few reused batches, rows counts every row at each step, and an early stop leaves the connection usable`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        // ~26 MB of short and medium rows (about 100 batches of 256 KiB), with some above 64 KiB
        // (handed over as views, outside the batches).
        const sql = "COPY (SELECT i, repeat(chr(97 + i % 26), CASE WHEN i % 5000 = 0 THEN 100000 WHEN i % 7 = 0 THEN 400 ELSE i % 50 END) FROM generate_series(1, 300000) i) TO STDOUT";
        const plain = createHash("sha256");
        let plainRows = 0;
        const co = client.copyTo(sql, { coalesce: true });
        for await (const chunk of co) {
          plain.update(chunk);
          for (const b of chunk) if (b === 10) plainRows++;
          assert.equal(co.rows, plainRows);
        }
        const copy = client.copyTo(sql, { coalesce: true });
        const h = createHash("sha256");
        // On the client's own socket the rows are compacted inside the received chunks (no
        // batch). Over node:net (Deno, Node) those chunks are lent reads, the same few buffers
        // read into again: chunks handed out at different steps share memory. Elsewhere (Bun's
        // socket, the FFI transport) every read is fresh memory and no two chunks overlap; Bun's
        // socket releases each lent read once it is done with. (Batch reuse: the caller-socket
        // test.)
        type Stats = { buffers: number; freed: number };
        const stats = () => (client as unknown as { _receiveStats(): Stats | undefined })._receiveStats();
        const ranges = new Map<ArrayBufferLike, [number, number][]>();
        let overlaps = 0;
        let n = 0;
        let newlines = 0;
        for await (const chunk of copy.reusing()) {
          h.update(chunk); // the chunk is valid until the next step: use it now
          for (const b of chunk) if (b === 10) newlines++;
          const mine: [number, number] = [chunk.byteOffset, chunk.byteOffset + chunk.length];
          const list = ranges.get(chunk.buffer) ?? [];
          for (const [a, b] of list) if (a < mine[1] && mine[0] < b) overlaps++;
          list.push(mine);
          ranges.set(chunk.buffer, list);
          n += chunk.length;
          assert.equal(copy.rows, newlines);
        }
        assert.equal(plainRows, 300000);
        assert.equal(copy.rows, 300000);
        assert.equal(copy.result?.rowCount, 300000);
        assert.equal(h.digest("hex"), plain.digest("hex"));
        assert.ok(n > 25e6, `${n} bytes`);
        const st = stats();
        if (st !== undefined && st.buffers > 0) assert.ok(overlaps > 0, "lent reads: the pool's buffers are read into again");
        else assert.equal(overlaps, 0);
        if (st !== undefined && st.buffers === 0) assert.ok(st.freed > 10, `Bun: lent reads released: ${JSON.stringify(st)}`);
        // Stopping early: the rest is dropped and the next query works.
        let seen = 0;
        for await (const chunk of client.copyTo(sql, { coalesce: true }).reusing()) {
          seen += chunk.length;
          if (seen > 1e6) break;
        }
        assert.deepEqual((await client.query("SELECT 2 AS ok")).rows, [{ ok: 2 }]);
        assert.throws(() => client.copyTo("COPY (SELECT 1) TO STDOUT").reusing(), TypeError);
        assert.deepEqual((await client.query("SELECT 3 AS ok")).rows, [{ ok: 3 }]);
      });
    });

    test(`copyFrom() PG${v} ${tr.name}: close() while the source is still pumping rejects the copy, with no unhandled rejection`, { skip }, async () => {
      const c = await cluster(v);
      const unhandled: unknown[] = [];
      const onUnhandled = (e: unknown) => unhandled.push(e);
      process.on("unhandledRejection", onUnhandled);
      try {
        const client = await open(c, tr);
        await client.query("CREATE TEMP TABLE closing (a text)");
        let sent = 0;
        const endless = async function* () {
          for (;;) {
            yield "x".repeat(1000) + "\n";
            if (++sent % 100 === 0) await new Promise((r) => setTimeout(r, 1));
          }
        };
        const copy = client.copyFrom("COPY closing FROM STDIN", endless());
        while (sent < 500) await new Promise((r) => setTimeout(r, 5));
        const rejected = assert.rejects(copy, /connection is closed/); // handled before close() fails it
        await client.close();
        await rejected;
        await new Promise((r) => setTimeout(r, 100)); // an unhandled rejection is reported by now
        assert.deepEqual(unhandled, []);
      } finally {
        process.off("unhandledRejection", onUnhandled);
      }
    });

    test(`copyFrom()/copyTo() PG${v} ${tr.name}: Node and Web streams, a failing source aborts the COPY cleanly`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await client.query("CREATE TEMP TABLE cp (a int, b text)");
        await client.copyFrom("COPY cp FROM STDIN", Readable.from(["1\tone\n", "2\ttwo\n"]));
        await client.copyFrom("COPY cp FROM STDIN", new ReadableStream({
          start(ctl) {
            ctl.enqueue(new TextEncoder().encode("3\tthree\n"));
            ctl.close();
          },
        }));
        await client.copyFrom("COPY cp FROM STDIN (FORMAT csv)", ["4,\"fo,ur\"\n"]);
        const node = client.copyTo("COPY cp TO STDOUT").toNodeStream();
        let text = "";
        for await (const b of node) text += new TextDecoder().decode(b as Uint8Array);
        assert.equal(text, "1\tone\n2\ttwo\n3\tthree\n4\tfo,ur\n");
        const web = client.copyTo("COPY (SELECT count(*) FROM cp) TO STDOUT").toWebStream();
        const reader = web.getReader();
        const first = await reader.read();
        assert.equal(new TextDecoder().decode(first.value), "4\n");
        assert.equal((await reader.read()).done, true);
        async function* failing() {
          yield "5\tfive\n";
          throw new Error("disk on fire");
        }
        await assert.rejects(client.copyFrom("COPY cp FROM STDIN", failing()), /disk on fire/);
        await assert.rejects(client.copyFrom("COPY cp FROM STDIN", ["not a number\tx\n"]), { code: "22P02" });
        await assert.rejects(client.copyFrom("COPY nope FROM STDIN", ["1\n"]), { code: "42P01" });
        // Concurrent COPYs and queries pipelined around them keep their order.
        const [r1, q1, r2, q2] = await Promise.all([
          client.copyFrom("COPY cp FROM STDIN", ["10\tten\n"]),
          client.query("SELECT count(*)::int AS n FROM cp"),
          client.copyFrom("COPY cp FROM STDIN", ["11\televen\n", "12\ttwelve\n"]),
          client.query("SELECT count(*)::int AS n FROM cp"),
        ]);
        assert.deepEqual([r1.rowCount, q1.rows, r2.rowCount, q2.rows], [1, [{ n: 5 }], 2, [{ n: 7 }]]);
        await client.query("DELETE FROM cp WHERE a >= 10");
        assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM cp")).rows, [{ n: 4 }]);
      });
    });

    test(`connect() PG${v} ${tr.name}: max_protocol_version=3.2 ${v >= 18 ? "gets 3.2 and a 32-byte cancel key" : "falls back to 3.0"}; cancel works`, { skip }, async () => {
      const c = await cluster(v);
      const client = await open(c, tr, "postgres", "max_protocol_version=3.2");
      try {
        assert.equal(client.protocolVersion, v >= 18 ? "3.2" : "3.0");
        assert.equal(client.secretKey.length, v >= 18 ? 32 : 4);
        const q = assert.rejects(client.query("SELECT pg_sleep(30)"), { code: "57014" });
        await new Promise((r) => setTimeout(r, 200));
        await client.cancel();
        await q;
      } finally {
        await client.close();
      }
    });

    test(`notices and LISTEN/NOTIFY PG${v} ${tr.name}: events carry the server's fields and payloads`, { skip }, async () => {
      const c = await cluster(v);
      const a = await open(c, tr);
      const b = await open(c, tr);
      try {
        const notices: string[] = [];
        a.on("notice", (n) => notices.push(`${n.severity}:${n.message}`));
        await a.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$");
        assert.deepEqual(notices, ["NOTICE:hello 42"]);
        await a.query("LISTEN chan");
        const got = new Promise<Notification>((r) => a.once("notification", r));
        await b.query("SELECT pg_notify('chan', 'payload ☃')");
        const n = await got;
        assert.deepEqual(n, { processId: b.processId, channel: "chan", payload: "payload ☃" });
        const params: string[] = [];
        a.on("parameter", (k, val) => params.push(`${k}=${val}`));
        await a.query("SET application_name = 'renamed'");
        assert.deepEqual(params, ["application_name=renamed"]);
        assert.equal(a.parameters.get("application_name"), "renamed");
      } finally {
        await a.close();
        await b.close();
      }
    });

    test(`begin() PG${v} ${tr.name}: commits on success, rolls back on error, reports a swallowed failure`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await client.query("CREATE TEMP TABLE tx (x int)");
        await client.begin(async (tx) => {
          await tx.query("INSERT INTO tx VALUES (1)");
          assert.equal(tx.transactionStatus, "T");
        });
        await assert.rejects(client.begin(async (tx) => {
          await tx.query("INSERT INTO tx VALUES (2)");
          throw new Error("nope");
        }), /nope/);
        await assert.rejects(client.begin(async (tx) => {
          await tx.query("SELECT 1/0").catch(() => {});
        }), { code: "25P02" });
        assert.equal(client.transactionStatus, "I");
        assert.deepEqual((await client.query("SELECT array_agg(x) AS xs FROM tx")).rows, [{ xs: [1] }]);
        const iso = await client.begin((tx) => tx.query("SHOW transaction_isolation"), "ISOLATION LEVEL SERIALIZABLE");
        assert.deepEqual(iso.rows, [{ transaction_isolation: "serializable" }]);
      });
    });

    test(`connection loss PG${v} ${tr.name}: pg_terminate_backend fails the running query and every later one, no hang`, { skip }, async () => {
      const c = await cluster(v);
      const client = await open(c, tr);
      const ended = new Promise((r) => client.once("end", r));
      const q = assert.rejects(client.query("SELECT pg_sleep(30)"), (e: unknown) => e instanceof PostgresError && e.code === "57P01");
      await new Promise((r) => setTimeout(r, 200));
      await psql(c, `SELECT pg_terminate_backend(${client.processId})`);
      await q;
      await ended;
      assert.equal(client.closed, true);
      await assert.rejects(client.query("SELECT 1"), ConnectionError);
      await client.close();
    });

    test(`close() PG${v} ${tr.name}: pending queries fail with ConnectionError; close is idempotent`, { skip }, async () => {
      const c = await cluster(v);
      const client = await open(c, tr);
      const q = assert.rejects(client.query("SELECT pg_sleep(5)"), ConnectionError);
      await client.close();
      await q;
      await client.close();
      await assert.rejects(client.query("SELECT 1"), /connection is closed/);
    });

    test(`query() PG${v} ${tr.name}: more parameters than the protocol allows is a RangeError, and the connection goes on`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        await assert.rejects(client.query("SELECT 1", new Array(70000).fill(1)), RangeError);
        await assert.rejects(client.query(42 as unknown as string), TypeError);
        assert.deepEqual((await client.query("SELECT 2 AS two")).rows, [{ two: 2 }]);
      });
    });

    test(`connect() PG${v} ${tr.name}: application_name, fallback_application_name and options reach the server`, { skip }, async () => {
      const c = await cluster(v);
      await withClient(c, tr, async (client) => {
        assert.deepEqual((await client.query("SELECT current_setting('application_name') AS a, current_setting('work_mem') AS w")).rows, [{ a: "fb", w: "12MB" }]);
      }, "postgres", "fallback_application_name=fb options='-c work_mem=12MB'");
      await withClient(c, tr, (client) => {
        assert.equal(client.parameters.get("application_name"), "app");
        return Promise.resolve();
      }, "postgres", "application_name=app fallback_application_name=fb");
    });
  }

  test(`cancel() PG${v}: cancels a running pg_sleep through the same socket factory`, { skip }, async () => {
    const c = await cluster(v);
    const targets: string[] = [];
    const factory: SocketFactory = (t, o) => {
      targets.push(t.kind);
      return netSocketFactory(t, o);
    };
    const client = await connect(`host=127.0.0.1 port=${c.port} user=${ROLES.scram.user} dbname=postgres sslmode=require`, { ...base, password: ROLES.scram.password, socketFactory: factory });
    try {
      const t0 = Date.now();
      const q = assert.rejects(client.query("SELECT pg_sleep(30)"), (e: unknown) => e instanceof PostgresError && e.code === "57014" && /canceling statement due to user request/.test(e.message));
      await new Promise((r) => setTimeout(r, 300));
      await client.cancel();
      await q;
      assert.ok(Date.now() - t0 < 10_000);
      assert.deepEqual(targets, ["tcp", "tcp"]);
      assert.deepEqual((await client.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    } finally {
      await client.close();
    }
  });

  test(`connectWith() PG${v}: runs over a caller-supplied socket factory`, { skip }, async () => {
    const c = await cluster(v);
    let calls = 0;
    const factory: SocketFactory = (t, o) => {
      calls++;
      return netSocketFactory(t, o);
    };
    const info = resolveConnInfo(`host=127.0.0.1 port=${c.port} user=${ROLES.scram.user} dbname=postgres sslmode=verify-full sslrootcert=${c.tls.ca}`, base);
    const client = await connectWith(info, { password: ROLES.scram.password, socketFactory: factory, homeDir });
    try {
      assert.equal(calls, 1);
      assert.equal(client.tls, true);
      assert.deepEqual((await client.query("SELECT 7 AS seven")).rows, [{ seven: 7 }]);
    } finally {
      await client.close();
    }
  });

  test(`copyTo() PG${v}: over a caller's socket, coalescing never writes into the chunks the socket emitted, and reusing() recycles a few batches`, { skip }, async () => {
    const c = await cluster(v);
    // Every chunk the caller's socket emits, with a copy of its bytes as emitted.
    const emitted: { chunk: Uint8Array; copy: Uint8Array }[] = [];
    const factory: SocketFactory = async (t, o) => {
      const s = await netSocketFactory(t, o);
      s.on("data", (chunk: Uint8Array) => emitted.push({ chunk, copy: chunk.slice() }));
      return s;
    };
    const client = await connect(unix(c), { ...base, socketFactory: factory });
    try {
      assert.equal(client.transport.transport, "custom");
      const sql = "COPY (SELECT i, repeat(chr(97 + i % 26), CASE WHEN i % 5000 = 0 THEN 100000 WHEN i % 7 = 0 THEN 400 ELSE i % 50 END) FROM generate_series(1, 100000) i) TO STDOUT";
      const copy = client.copyTo(sql, { coalesce: true });
      const buffers = new Set<ArrayBufferLike>();
      let n = 0;
      let newlines = 0;
      for await (const chunk of copy.reusing()) {
        const before = newlines;
        for (const b of chunk) if (b === 10) newlines++;
        // A row above 64 KiB alone is a view of received bytes, not of a batch.
        if (!(chunk.length > 65536 && newlines - before === 1)) buffers.add(chunk.buffer);
        n += chunk.length;
      }
      assert.equal(copy.rows, 100000);
      assert.equal(newlines, 100000);
      assert.ok(n > 8e6, `${n} bytes`);
      assert.ok(buffers.size < 20, `${buffers.size} distinct batches for ${Math.ceil(n / 262144)} batches of data`);
      assert.ok(emitted.length > 10, `${emitted.length} chunks`);
      const changed = emitted.filter((e) => Buffer.compare(e.chunk, e.copy) !== 0).length;
      assert.equal(changed, 0);
    } finally {
      await client.close();
    }
  });

  test(`connect() PG${v}: keepalive settings reach the socket factory for TCP only`, { skip }, async () => {
    const c = await cluster(v);
    const seen: unknown[] = [];
    const factory: SocketFactory = (t, o) => {
      seen.push(o.keepAlive);
      return netSocketFactory(t, o);
    };
    const opts = { ...base, password: ROLES.scram.password, socketFactory: factory };
    const tcp = `host=127.0.0.1 port=${c.port} user=${ROLES.scram.user} dbname=postgres sslmode=disable`;
    for (const extra of ["", "keepalives_idle=30", "keepalives=0"]) await (await connect(`${tcp} ${extra}`, opts)).close();
    await (await connect(unix(c), { ...base, socketFactory: factory })).close();
    assert.deepEqual(seen, [{ idle: undefined }, { idle: 30 }, undefined, undefined]);
  });

  test(`connect() PG${v}: replication=true opens a physical walsender that answers IDENTIFY_SYSTEM`, { skip }, async () => {
    const c = await cluster(v);
    const client = await connect(`host=127.0.0.1 port=${c.port} user=${ROLES.replication.user} replication=true sslmode=disable`, { ...base, password: ROLES.replication.password });
    try {
      const [r] = await client.simpleQuery<{ dbname: string | null }>("IDENTIFY_SYSTEM");
      assert.equal(r.rows[0].dbname, null); // physical: no database
      await assert.rejects(client.simpleQuery("SELECT 1"), PostgresError);
    } finally {
      await client.close();
    }
  });

  test(`connect() PG${v}: tries hosts in order, skips dead ones, lists every failure like libpq`, { skip }, async () => {
    const c = await cluster(v);
    const dead = await fakeServer((s) => s.destroy());
    await dead.close(); // nothing listens there now
    const opts = { ...base, password: ROLES.scram.password };
    const client = await connect(`host=127.0.0.1,127.0.0.1 port=${dead.port},${c.port} user=${ROLES.scram.user} dbname=postgres sslmode=disable`, opts);
    assert.equal(client.host.port, c.port);
    await client.close();
    const e = await connect(`host=127.0.0.1,${c.socketDir} port=${dead.port},1 user=postgres dbname=postgres`, base).then(() => undefined, (x) => x);
    assert.ok(e instanceof ConnectionError);
    assert.equal(e.message, [
      `connection to server at "127.0.0.1", port ${dead.port} failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?`,
      `connection to server on socket "${c.socketDir}/.s.PGSQL.1" failed: No such file or directory\n\tIs the server running locally and accepting connections on that socket?`,
    ].join("\n"));
    // An authentication failure ends the walk: the second (good) host is not tried.
    const auth = await connect(`host=127.0.0.1,127.0.0.1 port=${c.port},${c.port} user=${ROLES.scram.user} dbname=postgres sslmode=disable`, { ...base, password: "wrong" }).then(() => undefined, (x) => x);
    assert.ok(auth instanceof ConnectionError);
    assert.equal(auth.message.split("\n").length, 1);
    assert.equal(auth.code, "28P01");
    for (let i = 0; i < 4; i++) {
      const lb = await connect(`host=127.0.0.1,127.0.0.1 port=${dead.port},${c.port} user=${ROLES.scram.user} dbname=postgres sslmode=disable load_balance_hosts=random`, opts);
      assert.equal(lb.host.port, c.port);
      await lb.close();
    }
  });

  test(`connect() PG${v}: target_session_attrs picks or refuses servers as libpq does`, { skip }, async () => {
    const c = await cluster(v);
    for (const ok of ["any", "read-write", "primary", "prefer-standby"]) {
      const client = await connect(unix(c, "postgres", `target_session_attrs=${ok}`), base);
      await client.close();
    }
    const standby = await connect(unix(c, "postgres", "target_session_attrs=standby"), base).then(() => undefined, (x) => x);
    assert.match((standby as Error).message, /failed: server is not in hot standby mode$/);
    const ro = await connect(unix(c, "postgres", "target_session_attrs=read-only"), base).then(() => undefined, (x) => x);
    assert.match((ro as Error).message, /failed: session is not read-only$/);
    // A read-only session (default_transaction_read_only via options) flips both answers.
    const roOpts = "options='-c default_transaction_read_only=on'";
    const roClient = await connect(unix(c, "postgres", `${roOpts} target_session_attrs=read-only`), base);
    await roClient.close();
    const rw = await connect(unix(c, "postgres", `${roOpts} target_session_attrs=read-write`), base).then(() => undefined, (x) => x);
    assert.match((rw as Error).message, /failed: session is read-only$/);
  });

}

test("connect(): a server that sends garbage gives a clear ConnectionError, not a hang", async () => {
  const fake = await fakeServer((s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
  try {
    const e = await connect(`host=127.0.0.1 port=${fake.port} user=u dbname=d sslmode=disable connect_timeout=5`, { ...base, password: "x" }).then(() => undefined, (x) => x);
    assert.ok(e instanceof ConnectionError);
    assert.match(e.message, new RegExp(`^connection to server at "127.0.0.1", port ${fake.port} failed: invalid message from server: type 0x48`));
  } finally {
    await fake.close();
  }
});

test("connect(): a server that closes at once, or never answers, fails with libpq's messages", async () => {
  const closing = await fakeServer((s) => s.destroy());
  const silent = await fakeServer(() => {});
  try {
    const e = await connect(`host=127.0.0.1 port=${closing.port} user=u dbname=d sslmode=disable`, base).then(() => undefined, (x) => x);
    assert.ok(e instanceof ConnectionError);
    assert.match(e.message, /failed: server closed the connection unexpectedly/);
    const t0 = Date.now();
    const t = await connect(`host=127.0.0.1 port=${silent.port} user=u dbname=d sslmode=disable connect_timeout=2`, base).then(() => undefined, (x) => x);
    assert.ok(t instanceof ConnectionError);
    assert.equal(t.message, `connection to server at "127.0.0.1", port ${silent.port} failed: timeout expired`);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await closing.close();
    await silent.close();
  }
});

test("query(): garbage from the server mid-session fails the query and closes the client", async () => {
  const fake = await fakeServer((s) => {
    let started = false;
    s.on("data", () => {
      if (!started) {
        started = true;
        s.write(authOkReady);
      } else s.write(new Uint8Array([0x44, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])); // DataRow with a negative length
    });
  });
  try {
    const client = await connect(`host=127.0.0.1 port=${fake.port} user=u dbname=d sslmode=disable`, base);
    assert.equal(client.processId, 1);
    await assert.rejects(client.query("SELECT 1"), (e: unknown) => e instanceof ConnectionError && /invalid message from server/.test(e.message));
    assert.equal(client.closed, true);
    await client.close();
  } finally {
    await fake.close();
  }
});

test("connect(): a server refusing TLS fails sslmode=require and falls back for sslmode=prefer", async () => {
  const fake = await fakeServer((s) => {
    let first = true;
    s.on("data", () => {
      if (first) {
        first = false;
        s.write(Uint8Array.of(0x4e)); // N: no TLS here
      } else s.write(authOkReady);
    });
  });
  try {
    const e = await connect(`host=127.0.0.1 port=${fake.port} user=u dbname=d sslmode=require`, base).then(() => undefined, (x) => x);
    assert.ok(e instanceof ConnectionError);
    assert.equal(e.message, `connection to server at "127.0.0.1", port ${fake.port} failed: server does not support SSL, but SSL was required`);
    const client = await connect(`host=127.0.0.1 port=${fake.port} user=u dbname=d sslmode=prefer`, base);
    assert.equal(client.tls, false);
    await client.close();
  } finally {
    await fake.close();
  }
});

test("connect(): bytes sent in the clear right after the server's S are refused (CVE-2021-23222)", async () => {
  const fake = await fakeServer((s) => s.once("data", () => s.write(Uint8Array.of(0x53, 0x52, 0, 0, 0, 8, 0, 0, 0, 0))));
  try {
    const e = await connect(`host=127.0.0.1 port=${fake.port} user=u dbname=d sslmode=require`, base).then(() => undefined, (x) => x);
    assert.ok(e instanceof ConnectionError);
    assert.match(e.message, /failed: received unencrypted data after SSL request$/);
  } finally {
    await fake.close();
  }
});

test("connectWith(): a socket factory that ignores the abort signal still times out", async () => {
  const info = resolveConnInfo("host=192.0.2.1 port=5432 user=u dbname=d sslmode=disable connect_timeout=2", base);
  const t0 = Date.now();
  const e = await connectWith(info, { socketFactory: () => new Promise(() => {}) }).then(() => undefined, (x) => x);
  assert.ok(e instanceof ConnectionError);
  assert.equal(e.message, `connection to server at "192.0.2.1", port 5432 failed: timeout expired`);
  assert.ok(Date.now() - t0 < 5000);
});

test("connect(): a host starting with @ reaches a unix socket in the abstract namespace", async () => {
  const name = `pgrdma-${process.pid}-${Date.now()}`;
  const server = createServer((s) => {
    s.on("error", () => {});
    s.once("data", () => s.write(authOkReady));
  });
  await new Promise<void>((r) => server.listen(`\0${name}/.s.PGSQL.5432`, r));
  try {
    const client = await connect(`host=@${name} port=5432 user=u dbname=d`, base);
    assert.equal(client.host.kind, "unix");
    assert.equal(client.processId, 1);
    await client.close();
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test("connect(): sslmode=prefer retries in the clear when the TLS handshake fails, as libpq does", async () => {
  let n = 0;
  const fake = await fakeServer((s) => {
    const attempt = ++n;
    s.once("data", () => {
      if (attempt === 1) {
        s.write(Uint8Array.of(0x53)); // S, then no TLS handshake at all
        setTimeout(() => s.destroy(), 20);
      } else s.write(authOkReady);
    });
  });
  try {
    const client = await connect(`host=127.0.0.1 port=${fake.port} user=u dbname=d sslmode=prefer connect_timeout=5`, base);
    assert.equal(client.tls, false);
    assert.equal(n, 2);
    await client.close();
    const e = await connect(`host=127.0.0.1 port=${fake.port} user=u dbname=d sslmode=require connect_timeout=5`, base).then(() => undefined, (x) => x);
    assert.ok(e instanceof ConnectionError);
  } finally {
    await fake.close();
  }
});

/** Bytes of one backend message. */
function msg(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

const cstrs = (...parts: string[]) => new TextEncoder().encode(parts.map((p) => p + "\0").join(""));

/**
 * A minimal fake PostgreSQL: trust login with the given ParameterStatus values, and one text
 * column `answer(sql)` for every simple Query.
 */
function fakePostgres(params: Record<string, string>, answer: (sql: string) => string) {
  return fakeServer((s) => {
    let startup = true;
    s.on("data", (d: Uint8Array) => {
      if (startup) {
        startup = false;
        const ps = Object.entries(params).map(([k, v]) => msg("S", cstrs(k, v)));
        s.write(Buffer.concat([authOkReady.subarray(0, 22), ...ps, authOkReady.subarray(22)]));
        return;
      }
      if (d[0] !== 0x51) return; // Q
      const sql = new TextDecoder().decode(d.subarray(5, d.length - 1));
      const value = new TextEncoder().encode(answer(sql));
      const rowDesc = new Uint8Array([0, 1, ...cstrs("answer"), 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
      const dataRow = new Uint8Array([0, 1, 0, 0, 0, value.length, ...value]);
      s.write(Buffer.concat([msg("T", rowDesc), msg("D", dataRow), msg("C", cstrs("SELECT 1")), msg("Z", Uint8Array.of(0x49))]));
    });
  });
}

test("connect(): target_session_attrs uses in_hot_standby when reported, and prefers a standby", async () => {
  const standby = await fakePostgres({ in_hot_standby: "on", default_transaction_read_only: "off" }, () => "unused");
  const primary = await fakePostgres({ in_hot_standby: "off", default_transaction_read_only: "off" }, () => "unused");
  try {
    const hosts = `host=127.0.0.1,127.0.0.1 port=${primary.port},${standby.port} user=u dbname=d sslmode=disable`;
    for (const [attrs, port] of [["standby", standby.port], ["prefer-standby", standby.port], ["primary", primary.port], ["read-write", primary.port], ["read-only", standby.port], ["any", primary.port]] as const) {
      const client = await connect(`${hosts} target_session_attrs=${attrs}`, base);
      assert.equal(client.host.port, port, attrs);
      await client.close();
    }
    // prefer-standby with no standby takes any server.
    const only = await connect(`host=127.0.0.1 port=${primary.port} user=u dbname=d sslmode=disable target_session_attrs=prefer-standby`, base);
    assert.equal(only.host.port, primary.port);
    await only.close();
    const e = await connect(`host=127.0.0.1 port=${standby.port} user=u dbname=d sslmode=disable target_session_attrs=primary`, base).then(() => undefined, (x) => x);
    assert.equal((e as Error).message, `connection to server at "127.0.0.1", port ${standby.port} failed: server is in hot standby mode`);
  } finally {
    await standby.close();
    await primary.close();
  }
});

test("connect(): without in_hot_standby (before PostgreSQL 14) target_session_attrs asks the server", async () => {
  const queries: string[] = [];
  const old = await fakePostgres({ server_version: "13.0" }, (sql) => {
    queries.push(sql);
    return sql.includes("pg_is_in_recovery") ? "t" : "on";
  });
  try {
    const base13 = `host=127.0.0.1 port=${old.port} user=u dbname=d sslmode=disable`;
    const ro = await connect(`${base13} target_session_attrs=read-only`, base);
    await ro.close();
    const sb = await connect(`${base13} target_session_attrs=standby`, base);
    await sb.close();
    assert.deepEqual(queries, ["SHOW transaction_read_only", "SELECT pg_is_in_recovery()"]);
    const rw = await connect(`${base13} target_session_attrs=read-write`, base).then(() => undefined, (x) => x);
    assert.match((rw as Error).message, /failed: session is read-only$/);
  } finally {
    await old.close();
  }
});

test("connectWith(): with_rsocket=true without a socket factory fails instead of using TCP", async () => {
  const info = resolveConnInfo("host=127.0.0.1 port=1 user=u dbname=d with_rsocket=true", base);
  await assert.rejects(connectWith(info), (e: unknown) => e instanceof ConnectionError && /with_rsocket=true needs an rsocket socket factory/.test(e.message));
});
