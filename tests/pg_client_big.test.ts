// GiB-scale traffic through the client with flat memory: 1 GiB COPY FROM STDIN generated on the
// fly, 1 GiB COPY TO STDOUT, 1 GiB of rows through stream(), and COPY TO with 16 MiB rows, where
// backpressure must count bytes and not only messages. PostgreSQL 18, native TCP, once per runtime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, createDatabase, ROLES, unavailable } from "./_fixture/cluster.ts";
import { type Client, connect } from "../pg/mod.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const skip = unavailable(18);
const MiB = 1024 * 1024;
/** Each row is `i<TAB>t<LF>` with t 1000 characters: 1,070,000 rows make just over 1 GiB. */
const ROWS = 1_070_000;
const WIDTH = 1000;
const FILL = "abcdefghij".repeat(WIDTH / 10);
/** What the server's `lpad(i::text, 1000, 'abcdefghij')` gives, computed here. */
const payload = (i: number): string => {
  const s = String(i);
  return FILL.slice(0, WIDTH - s.length) + s;
};
const SERVER_PAYLOAD = `lpad(i::text, ${WIDTH}, 'abcdefghij')`;
/** Largest RSS growth allowed while a GiB passes. */
const LIMIT = 128 * MiB;

async function open(c: ClusterInfo, db: string): Promise<Client> {
  const client = await connect(
    `host=127.0.0.1 port=${c.port} user=${ROLES.superuser.user} password=${ROLES.superuser.password} dbname=${db} sslmode=disable`,
    { env: {}, homeDir },
  );
  assert.equal(client.transport.transport, "tcp");
  return client;
}

/**
 * Samples RSS every 20 ms from now on; `stop()` gives the peak growth over the starting value,
 * `now()` the growth at this moment.
 */
function rssWatch(): { stop: () => number; now: () => number } {
  const start = process.memoryUsage().rss;
  let peak = start;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return peak - start;
    },
    now: () => process.memoryUsage().rss - start,
  };
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/**
 * The COPY text of rows 1..ROWS, made 64 rows at a time (~64 KiB: below V8's large-object size,
 * so the strings die young instead of waiting for a full GC in old space).
 * With `reuse`, every chunk is written into the same buffer (for a consumer done with each chunk
 * before it asks for the next), so the generator itself leaves no garbage to inflate RSS.
 */
async function* copyText(hash: ReturnType<typeof createHash>, count: { bytes: number }, reuse = false): AsyncGenerator<Uint8Array> {
  const enc = new TextEncoder();
  const buf = new Uint8Array(reuse ? 80 * 1024 : 0);
  for (let i = 1; i <= ROWS; i += 64) {
    let s = "";
    for (let j = i; j < Math.min(i + 64, ROWS + 1); j++) s += `${j}\t${payload(j)}\n`;
    const b = reuse ? buf.subarray(0, enc.encodeInto(s, buf).written) : enc.encode(s);
    hash.update(b);
    count.bytes += b.length;
    yield b;
  }
}

test("copyFrom() PG18: 1 GiB generated on the fly arrives whole, RSS grows by less than 128 MiB", { skip }, async () => {
  const c = await cluster(18);
  const db = await createDatabase(c, "big");
  const client = await open(c, db);
  try {
    // UNLOGGED: the test is about the client, not about writing a GiB of WAL on a shared disk.
    await client.query("CREATE UNLOGGED TABLE big (i int, t text)");
    const count = { bytes: 0 };
    const watch = rssWatch();
    const r = await client.copyFrom("COPY big FROM STDIN", copyText(createHash("sha256"), count));
    const growth = watch.stop();
    assert.equal(r.rowCount, ROWS);
    assert.ok(count.bytes > 1024 * MiB, `only ${count.bytes} bytes sent`);
    const { rows } = await client.query<{ n: number; s: string; len: string; last: string }>(
      "SELECT count(*)::int AS n, sum(i)::text AS s, sum(length(t))::text AS len, max(t) FILTER (WHERE i = $1) AS last FROM big",
      [ROWS],
    );
    assert.deepEqual(rows[0], { n: ROWS, s: String(ROWS * (ROWS + 1) / 2), len: String(ROWS * WIDTH), last: payload(ROWS) });
    assert.ok(growth < LIMIT, `RSS grew by ${mib(growth)}`);
  } finally {
    await client.query(`DROP TABLE IF EXISTS big`).catch(() => {});
    await client.close();
  }
});

test("copyTo() PG18: 1 GiB COPY TO STDOUT is byte-identical (sha256), RSS grows by less than 128 MiB", { skip }, async () => {
  const c = await cluster(18);
  const client = await open(c, "postgres");
  try {
    const expected = createHash("sha256");
    const count = { bytes: 0 };
    // The same text, generated here while it streams in, so neither side is held in memory.
    const local = copyText(expected, count, true);
    const got = createHash("sha256");
    let bytes = 0;
    const watch = rssWatch();
    const out = client.copyTo(`COPY (SELECT i, ${SERVER_PAYLOAD} FROM generate_series(1, ${ROWS}) i) TO STDOUT`);
    for await (const chunk of out) {
      got.update(chunk);
      bytes += chunk.length;
      while (count.bytes < bytes && !(await local.next()).done);
    }
    while (!(await local.next()).done);
    const growth = watch.stop();
    assert.equal(out.result?.rowCount, ROWS);
    assert.equal(bytes, count.bytes);
    assert.ok(bytes > 1024 * MiB);
    assert.equal(got.digest("hex"), expected.digest("hex"));
    assert.ok(growth < LIMIT, `RSS grew by ${mib(growth)}`);
  } finally {
    await client.close();
  }
});

test("stream() PG18: 1 GiB of rows one by one, counts and sums right, RSS grows by less than 128 MiB", { skip }, async () => {
  const c = await cluster(18);
  const client = await open(c, "postgres");
  try {
    let n = 0;
    let sum = 0;
    let chars = 0;
    const watch = rssWatch();
    for await (const row of client.stream<{ i: number; t: string }>(`SELECT i, ${SERVER_PAYLOAD} AS t FROM generate_series(1, ${ROWS}) i`)) {
      n++;
      sum += row.i;
      chars += row.t.length;
      if (row.i !== n || (n % 4096 === 0 && row.t !== payload(n))) assert.fail(`row ${n}: ${row.i} ${row.t.slice(-12)}`);
    }
    const growth = watch.stop();
    assert.equal(n, ROWS);
    assert.equal(sum, ROWS * (ROWS + 1) / 2);
    assert.equal(chars, ROWS * WIDTH);
    assert.ok(growth < LIMIT, `RSS grew by ${mib(growth)}`);
  } finally {
    await client.close();
  }
});

test("copyTo() PG18: 16 MiB rows to a slow consumer pause the socket by bytes, not after 256 messages", { skip }, async () => {
  const c = await cluster(18);
  const client = await open(c, "postgres");
  const observer = await open(c, "postgres");
  try {
    const size = 16 * MiB;
    const rows = 12; // 192 MiB: a window of 256 messages would take all of it in at once
    const watch = rssWatch();
    let n = 0;
    let waitEvent: unknown;
    let early = 0;
    const out = client.copyTo(`COPY (SELECT repeat('x', ${size}) FROM generate_series(1, ${rows})) TO STDOUT`);
    for await (const chunk of out) {
      n++;
      assert.equal(chunk.length, size + 1);
      assert.equal(chunk[0], 0x78);
      assert.equal(chunk[size - 1], 0x78);
      assert.equal(chunk[size], 0x0a);
      if (n === 1) {
        // A slow consumer: had the client kept reading, the backend would be done by now.
        await new Promise((r) => setTimeout(r, 500));
        const { rows: a } = await observer.query("SELECT state, wait_event FROM pg_stat_activity WHERE pid = $1", [client.processId]);
        waitEvent = a[0];
        early = watch.now();
      }
    }
    watch.stop();
    assert.equal(n, rows);
    assert.equal(out.result?.rowCount, rows);
    // The backend is still writing, blocked on the paused socket.
    assert.deepEqual(waitEvent, { state: "active", wait_event: "ClientWrite" });
    // And the client holds a few rows, not the 192 MiB a count-only window would have read
    // ahead by then. (Measured at that moment: Bun's GC may keep consumed rows for a while, so
    // the peak over the whole run says little.)
    assert.ok(early < 0.75 * rows * size, `RSS grew by ${mib(early)} while the consumer waited`);
  } finally {
    await observer.close();
    await client.close();
  }
});
