// The client's own node:net sockets read through onread (pg/_receive.ts): COPY data that the
// consumer promised to finish with (CopyOut.reusing(), copyBoth(..., { reuse: true })) lands in
// a few reused buffers; everything else is copied out as before. Real servers; the server's own
// md5 of the same rows is the oracle. Bun's plain sockets are Bun.connect, which hands every read
// over in fresh memory: there lent reads are released (detached) once done with, not reused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, createDatabase, psql, unavailable } from "./_fixture/cluster.ts";
import { type Client, connect, OID, TypeRegistry } from "../pg/mod.ts";
import { busyPolling, FreeingReceiver, type Lease, unlease } from "../pg/_receive.ts";

const base = { env: {}, homeDir: mkdtempSync(join(tmpdir(), "pg-rdma-home-")) };
const isBun = (globalThis as { Bun?: unknown }).Bun !== undefined;
const skip = unavailable(18);
type Stats = { lent: number; owned: number; buffers: number; given: number; outstanding: number; freed: number };
const stats = (c: Client) => (c as unknown as { _receiveStats(): Stats | undefined })._receiveStats();

// 60 000 rows of an id and 1-400 letters, every 5 000th of 200 000 (spanning several reads):
// about 14 MB of COPY text, rows cut at every offset of the reads. The server's md5 of the same
// text is the oracle.
const ROWS = "SELECT g AS id, repeat(chr(97 + g % 26), CASE WHEN g % 5000 = 0 THEN 200000 ELSE 1 + (g * 7919) % 400 END) AS t FROM generate_series(1, 60000) g";
const COPY = `COPY (${ROWS}) TO STDOUT`;
const ORACLE = `SELECT md5(string_agg(id || E'\\t' || t || E'\\n', '' ORDER BY id)) FROM (${ROWS}) s`;

async function md5Of(chunks: AsyncIterable<Uint8Array>, eachChunk?: () => Promise<void>): Promise<string> {
  const h = createHash("md5");
  for await (const c of chunks) {
    h.update(c);
    if (eachChunk) await eachChunk();
  }
  return h.digest("hex");
}

test("FreeingReceiver: a lent read is detached when its last holder lets go, never while held, never when given away or not a whole buffer", () => {
  const canDetach = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === "function";
  const rx = new FreeingReceiver();
  const got: { chunk: Uint8Array; lease: Lease | undefined }[] = [];
  let lendable = true;
  rx.attach((chunk, lease) => {
    // A holder, as a CopyOut keeping a view of the chunk until its reader asks for the next.
    if (lease !== undefined) lease.refs++;
    got.push({ chunk, lease });
  }, () => lendable);
  const fresh = () => new Uint8Array(1024).fill(7);
  rx.deliver(fresh());
  const held = got[0];
  // Still held by the request: intact.
  assert.equal(held.chunk.length, 1024);
  assert.equal(held.chunk[1023], 7);
  if (!canDetach) {
    // A runtime without ArrayBuffer.prototype.transfer (Node 20) lends nothing.
    assert.equal(held.lease, undefined);
    assert.deepEqual(rx.stats, { lent: 0, owned: 1, buffers: 0, given: 0, outstanding: 0, freed: 0 });
    return;
  }
  assert.ok(held.lease);
  assert.equal(rx.stats.outstanding, 1);
  unlease(held.lease);
  assert.equal(held.chunk.buffer.byteLength, 0, "released: detached");
  assert.equal(held.chunk.length, 0);
  // Given away (its bytes reached something that keeps them): left alone.
  rx.deliver(fresh());
  got[1].lease!.given = true;
  unlease(got[1].lease!);
  assert.equal(got[1].chunk.length, 1024);
  // A view into a larger buffer, or a read while nothing may be lent: owned, untouched.
  rx.deliver(new Uint8Array(2048).subarray(1024));
  lendable = false;
  rx.deliver(fresh());
  assert.equal(got[2].lease, undefined);
  assert.equal(got[3].lease, undefined);
  assert.deepEqual(rx.stats, { lent: 2, owned: 2, buffers: 0, given: 1, outstanding: 0, freed: 1 });
});

test("receive PG18: CopyOut.reusing() on the client's own socket reads into a few reused buffers, every byte exact", { skip }, async () => {
  const c = await cluster(18);
  const want = (await psql(c, ORACLE)).trim();
  const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
  try {
    const before = stats(client);
    const copy = client.copyTo(COPY, { coalesce: true });
    // A consumer that yields to the event loop now and then: reads go on meanwhile.
    let n = 0;
    assert.equal(await md5Of(copy.reusing(), () => (++n % 64 === 0 ? new Promise((r) => setTimeout(r, 1)) : Promise.resolve())), want);
    assert.equal(copy.rows, 60000);
    // The same rows iterated without the promise: owned chunks, the same bytes.
    assert.equal(await md5Of(client.copyTo(COPY, { coalesce: true })), want);
    const s = stats(client);
    assert.ok(before && s);
    assert.ok(s.lent - before.lent > 100, `lent reads: ${JSON.stringify(s)}`);
    assert.equal(s.outstanding, 0, "every lent buffer came back");
    if (isBun) {
      // Bun.connect: no pool; every lent read that was not given away was released at once.
      assert.equal(s.buffers, 0);
      assert.ok(s.freed - before.freed > 100, `released reads: ${JSON.stringify(s)}`);
      assert.equal(s.freed + s.given, s.lent, JSON.stringify(s));
    } else {
      assert.ok(s.buffers <= 32, `the pool made ${s.buffers} buffers`);
      assert.equal(s.freed, 0);
    }
  } finally {
    await client.close();
  }
});

test("receive PG18: a chunk from reusing() is recycled once the next is asked for (the pool's buffer again; in Bun, its memory released)", { skip }, async () => {
  const c = await cluster(18);
  const want = (await psql(c, ORACLE)).trim();
  const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
  try {
    const h = createHash("md5");
    const seen = new Set<ArrayBufferLike>();
    let chunks = 0;
    let released = 0;
    let recurring = 0;
    let prev: Uint8Array | undefined;
    for await (const chunk of client.copyTo(COPY, { coalesce: true }).reusing()) {
      // A view kept past its turn: in Bun it reads as empty once its read was released.
      if (prev !== undefined && prev.buffer.byteLength === 0) released++;
      // A buffer seen before, back after another one: read into again.
      if (prev !== undefined && chunk.buffer !== prev.buffer && seen.has(chunk.buffer)) recurring++;
      h.update(chunk);
      seen.add(chunk.buffer);
      chunks++;
      prev = chunk;
    }
    assert.equal(h.digest("hex"), want);
    assert.ok(chunks > 200, `${chunks} chunks`);
    if (isBun) {
      assert.ok(released > 100, `${released} of ${chunks} released`);
      assert.equal(recurring, 0, "Bun hands every read over in new memory");
    } else {
      assert.equal(released, 0);
      assert.ok(recurring > 100, `${recurring} of ${chunks} chunks in a buffer read into again`);
    }
  } finally {
    await client.close();
  }
});

test("receive PG18: _busyPoll() keeps the event loop polling while a COPY's reads flow and lets it sleep once they stop", { skip }, async () => {
  const c = await cluster(18);
  const want = (await psql(c, ORACLE)).trim();
  const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
  try {
    assert.equal(busyPolling(), false);
    // Off by default: a COPY read through the pool never starts it.
    assert.equal(await md5Of(client.copyTo(COPY, { coalesce: true }).reusing()), want);
    assert.equal(busyPolling(), false);
    assert.equal(client._busyPoll(0.2), true);
    let hot = 0;
    let chunks = 0;
    const h = createHash("md5");
    for await (const chunk of client.copyTo(COPY, { coalesce: true }).reusing()) {
      h.update(chunk);
      chunks++;
      if (busyPolling()) hot++;
    }
    assert.equal(h.digest("hex"), want);
    assert.ok(hot > chunks / 2, `busy-polling during ${hot} of ${chunks} chunks`);
    // 0.2 ms after the last read the chain of turns ends: nothing is left spinning.
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(busyPolling(), false);
    // Owned reads (a query's rows) never start it.
    await client.query("SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g");
    assert.equal(busyPolling(), false);
    client._busyPoll(0);
  } finally {
    await client.close();
  }
});

test("receive PG18: a consumer that leaves reusing() early gives every lent buffer back; the connection goes on", { skip }, async () => {
  const c = await cluster(18);
  const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=postgres`, base);
  try {
    const copy = client.copyTo(COPY, { coalesce: true });
    let seen = 0;
    for await (const chunk of copy.reusing()) {
      seen += chunk.length;
      if (seen > 1 << 20) break;
    }
    const [r] = await client.simpleQuery("SELECT 41 + 1 AS n");
    assert.equal(r.rows[0].n, 42);
    const s = stats(client);
    assert.equal(s!.outstanding, 0, JSON.stringify(s));
  } finally {
    await client.close();
  }
});

test("receive PG18: rows that arrive in a lent read are never overwritten by later reads (a parser that keeps its bytes)", { skip }, async () => {
  const c = await cluster(18);
  const db = await createDatabase(c, "recv");
  const want = (await psql(c, ORACLE, { database: db })).trim();
  // bytea in binary, decoded to the very view of the received bytes: only correct if the chunk
  // it lies in is never read into again.
  const types = new TypeRegistry().set(OID.bytea, { text: (s: string) => s, binary: (b: Uint8Array) => b });
  const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`, { ...base, types });
  try {
    for (let round = 0; round < 4; round++) {
      // All three at once: the server sends the first COPY's end, the rows and the second COPY
      // back to back, so reads lent for a COPY also carry DataRows.
      const first = client.copyTo(COPY, { coalesce: true });
      const rows = client.query("SELECT g, decode(lpad(to_hex(g), 8, '0'), 'hex') AS b FROM generate_series(1, 2000) g", [], { binary: true });
      const second = client.copyTo(COPY, { coalesce: true });
      assert.equal(await md5Of(first.reusing(), () => (round % 2 ? new Promise((r) => setTimeout(r, 0)) : Promise.resolve())), want);
      const res = await rows;
      assert.equal(await md5Of(second.reusing()), want);
      // Megabytes were read into the pool's buffers since (in Bun: lent reads were released): the
      // rows' bytes must be intact.
      for (const row of res.rows as { g: number; b: Uint8Array }[]) {
        assert.equal(new DataView(row.b.buffer, row.b.byteOffset, 4).getUint32(0), row.g, `row ${row.g} (round ${round})`);
      }
    }
    const s = stats(client);
    assert.equal(s!.outstanding, 0, JSON.stringify(s));
  } finally {
    await client.close();
  }
});

test("receive PG18: copyBoth(BASE_BACKUP, { batched, pieces, reuse }) releases each batch when the next is asked for", { skip }, async () => {
  const c = await cluster(18);
  const client = await connect(`host=${c.socketDir} port=${c.port} user=postgres replication=true`, base);
  try {
    assert.throws(() => client.copyBoth("BASE_BACKUP", { reuse: true }), /reuse: true needs batched: true/);
    const copy = client.copyBoth("BASE_BACKUP (LABEL 'receive test', CHECKPOINT 'fast', MANIFEST 'no')", { batched: true, pieces: true, reuse: true });
    let archive = 0;
    let kind = 0;
    for await (const batch of copy.batches()) {
      for (let i = 0; i < batch.bytes.length; i++) {
        let start = batch.offsets[2 * i];
        if (i > 0 || batch.continued !== true) kind = batch.bytes[i][start++];
        if (kind === 0x64) archive += batch.offsets[2 * i + 1] - start;
      }
    }
    await copy.done;
    // An empty cluster's base backup is some 20-40 MB of archive.
    assert.ok(archive > 10 << 20, `archive bytes ${archive}`);
    const s = stats(client);
    assert.ok(s!.lent > 100, JSON.stringify(s));
    assert.ok(s!.buffers <= 32, JSON.stringify(s));
    assert.equal(s!.outstanding, 0, JSON.stringify(s));
    if (isBun) assert.ok(s!.freed > 100, JSON.stringify(s));
  } finally {
    await client.close();
  }
});
