/**
 * Client benchmark, ratios against peers measured in the same run:
 *
 * 1. codec: frames and decodes a stream of DataRow messages with our FrameReader (+ the row
 *    decoder's text path) and with pg-protocol's Parser;
 * 2. end to end over the unix socket of a PostgreSQL 18 test cluster (the fixture's): a 200,000
 *    row SELECT, and 10,000 pipelined one-row queries, with our client, node-postgres (`pg`) and
 *    postgres.js.
 *
 * Run: `npx deno run -A bench/pg_client.ts`, `npx bun bench/pg_client.ts`,
 * `node dist/bench/pg_client.js` (after `npm run build`).
 *
 * @module
 */
import { FrameReader, utf8 } from "../pg/_codec.ts";
import { Parser } from "pg-protocol/dist/parser.js";
import pg from "pg";
import postgres from "postgres";
import { connect } from "../pg/mod.ts";
import { cluster, unavailable } from "../tests/_fixture/cluster.ts";

const ROWS = 200_000;
const CHUNK = 64 * 1024;

/** A backend stream: RowDescription-free DataRows of 4 text columns, then cut into chunks. */
function makeStream(): Uint8Array[] {
  const enc = new TextEncoder();
  const cols = ["12345", "hello world", "2024-01-02 03:04:05.678+00", "3.14159"].map((s) => enc.encode(s));
  const rowLen = 1 + 4 + 2 + cols.reduce((n, c) => n + 4 + c.length, 0);
  const all = new Uint8Array(rowLen * ROWS);
  const v = new DataView(all.buffer);
  let p = 0;
  for (let r = 0; r < ROWS; r++) {
    all[p] = 0x44;
    v.setInt32(p + 1, rowLen - 1);
    v.setInt16(p + 5, cols.length);
    p += 7;
    for (const c of cols) {
      v.setInt32(p, c.length);
      all.set(c, p + 4);
      p += 4 + c.length;
    }
  }
  // Sockets deliver Buffers (in Deno and Bun too): hand both parsers what they would get.
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < all.length; o += CHUNK) chunks.push(Buffer.from(all.subarray(o, o + CHUNK)));
  return chunks;
}

function ours(chunks: Uint8Array[]): number {
  const r = new FrameReader();
  let n = 0;
  for (const c of chunks) {
    r.push(c);
    while (r.advance()) {
      // Decode every column to a string, as the client's row decoder does for text results.
      const b = r.bytes;
      const cols = (b[r.start] << 8) | b[r.start + 1];
      let p = r.start + 2;
      for (let i = 0; i < cols; i++) {
        const len = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
        p += 4;
        if (len >= 0) {
          n += utf8(b, p, p + len).length;
          p += len;
        }
      }
    }
  }
  return n;
}

function theirs(chunks: Uint8Array[]): number {
  const parser = new Parser();
  let n = 0;
  for (const c of chunks) {
    parser.parse(Buffer.from(c.buffer, c.byteOffset, c.byteLength), (msg) => {
      const fields = (msg as unknown as { fields?: (string | null)[] }).fields;
      if (fields) for (const f of fields) n += f?.length ?? 0;
    });
  }
  return n;
}

function time(fn: () => number): { ms: number; n: number } {
  let best = Infinity;
  let n = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    n = fn();
    best = Math.min(best, performance.now() - t);
  }
  return { ms: best, n };
}

async function timeAsync(fn: () => Promise<number>, runs = 3): Promise<{ ms: number; n: number }> {
  let best = Infinity;
  let n = 0;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    n = await fn();
    best = Math.min(best, performance.now() - t);
  }
  return { ms: best, n };
}

const chunks = makeStream();
const a = time(() => ours(chunks));
const b = time(() => theirs(chunks));
if (a.n !== b.n) throw new Error(`decoders disagree: ${a.n} vs ${b.n}`);
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
console.log(JSON.stringify({
  bench: "codec",
  runtime,
  rows: ROWS,
  ours_ms: +a.ms.toFixed(1),
  pg_protocol_ms: +b.ms.toFixed(1),
  ours_rows_per_s: Math.round(ROWS / a.ms * 1000),
  ratio: +(b.ms / a.ms).toFixed(2),
}));

if (!unavailable(18)) {
  const c = await cluster(18);
  const SQL = "SELECT g, 'row ' || g AS t, g * 1.5 AS f, now() AS ts FROM generate_series(1, 200000) g";
  const N = 10_000;
  const mine = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, { env: {} });
  const minePrepared = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, { env: {}, prepare: true });
  const nodePg = new pg.Client({ host: c.socketDir, port: c.port, user: "postgres", database: "postgres" });
  await nodePg.connect();
  const pjs = postgres({ host: c.socketDir, port: c.port, user: "postgres", database: "postgres", max: 1 });
  const select = {
    ours: await timeAsync(async () => (await mine.query(SQL)).rows.length),
    pg: await timeAsync(async () => (await nodePg.query(SQL)).rows.length),
    postgresjs: await timeAsync(async () => (await pjs.unsafe(SQL)).length),
  };
  const pipeline = {
    ours: await timeAsync(async () => (await Promise.all(Array.from({ length: N }, (_, i) => mine.query("SELECT $1::int AS i", [i])))).length),
    ours_prepared: await timeAsync(async () => (await Promise.all(Array.from({ length: N }, (_, i) => minePrepared.query("SELECT $1::int AS i", [i])))).length),
    pg: await timeAsync(async () => (await Promise.all(Array.from({ length: N }, (_, i) => nodePg.query("SELECT $1::int AS i", [i])))).length),
    postgresjs: await timeAsync(async () => (await Promise.all(Array.from({ length: N }, (_, i) => pjs`SELECT ${i}::int AS i`))).length),
  };
  await mine.close();
  await minePrepared.close();
  await nodePg.end();
  await pjs.end();
  for (const [name, r] of Object.entries({ select_200k_rows: select, pipelined_10k_queries: pipeline })) {
    const prepared = (r as { ours_prepared?: { ms: number } }).ours_prepared;
    console.log(JSON.stringify({
      bench: name,
      runtime,
      ours_ms: +r.ours.ms.toFixed(1),
      ...(prepared ? { ours_prepared_ms: +prepared.ms.toFixed(1) } : {}),
      pg_ms: +r.pg.ms.toFixed(1),
      postgresjs_ms: +r.postgresjs.ms.toFixed(1),
      vs_pg: +(r.pg.ms / r.ours.ms).toFixed(2),
      vs_postgresjs: +(r.postgresjs.ms / r.ours.ms).toFixed(2),
    }));
  }
}
