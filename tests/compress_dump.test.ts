// dump/ with lz4 and zstd against PostgreSQL 15: a directory dump restored by restore() equals
// the source, its data files are what Debian's lz4/zstd tools decode, and exportTable() streams
// decode with them too. Also the CLI's -Z spelling for dump and receivewal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cluster, type ClusterInfo, createDatabase, psql, unavailable } from "./_fixture/cluster.ts";
import { connect } from "../pg/mod.ts";
import { dump, exportTable, restore } from "../dump/mod.ts";
import { decompress } from "../compress/mod.ts";
import { parseCompression as parseDumpCompression } from "../cli/dump.ts";
import { parseWalCompression } from "../cli/receivewal.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const base = { env: {}, homeDir };
const conn = (c: ClusterInfo, db: string) => `host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`;
const hasTool = (name: string) => spawnSync(name, ["--version"]).status === 0;

/** A database with text hazards, bytea of every byte value, and one table of ~15 MB (many 1 MiB pieces). */
async function sourceDb(c: ClusterInfo): Promise<string> {
  const db = await createDatabase(c, "zsrc");
  await psql(c, `
    CREATE TABLE hazards (id int PRIMARY KEY, t text, b bytea, a int[], j jsonb);
    INSERT INTO hazards SELECT g, E'tab\\there\\nnew line \\\\ backslash\\n\\\\.\\n' || g, decode(lpad(to_hex(g % 256), 2, '0'), 'hex') || '\\x00ff'::bytea,
      ARRAY[g, NULL, -g], jsonb_build_object('k', g, 's', 'ü"q') FROM generate_series(1, 5000) g;
    INSERT INTO hazards VALUES (0, NULL, NULL, NULL, NULL), (-1, '', '', '{}', 'null');
    CREATE TABLE big (id bigint, payload text);
    INSERT INTO big SELECT g, md5(g::text) || repeat(chr(65 + g % 26), 60) FROM generate_series(1, 150000) g;
    CREATE TABLE empty (x int);`, { database: db });
  return db;
}

async function checksums(c: ClusterInfo, db: string): Promise<Record<string, string>> {
  const client = await connect(conn(c, db), base);
  try {
    const out: Record<string, string> = {};
    for (const t of ["hazards", "big", "empty"]) {
      const r = await client.query<{ m: string | null; n: string }>(`SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) AS m, count(*)::text AS n FROM ${t} x`);
      out[t] = `${r.rows[0].n}:${r.rows[0].m}`;
    }
    return out;
  } finally {
    await client.close();
  }
}

for (const [method, jobs] of [["zstd", 2], ["lz4", 1]] as const) {
  const ext = method === "zstd" ? ".zst" : ".lz4";
  test(`dump() directory format with ${method} (jobs=${jobs}) restored by restore() equals the source, and ${method} -d reads its files (PostgreSQL 15)`, { skip: unavailable(15) }, async () => {
    const c = await cluster(15);
    const src = await sourceDb(c);
    const work = mkdtempSync(join(tmpdir(), `pg-rdma-zdump-`));
    try {
      const dir = join(work, "d");
      await dump(conn(c, src), { ...base, format: "directory", file: dir, jobs, compression: method, ...(method === "zstd" ? { compressionLevel: 5 } : {}) });
      const files = readdirSync(dir).filter((f) => f.endsWith(`.dat${ext}`));
      assert.equal(files.length, 3, `data files: ${readdirSync(dir)}`);
      let packedTotal = 0, plainTotal = 0;
      for (const f of files) {
        const packed = readFileSync(join(dir, f));
        const plain = await decompress(packed, method);
        packedTotal += packed.length;
        plainTotal += plain.length;
        if (hasTool(method)) {
          const r = spawnSync(method, ["-d", "-c", "-q", join(dir, f)], { maxBuffer: 256 << 20 });
          assert.equal(r.status, 0, String(r.stderr));
          assert.ok(r.stdout.equals(plain), `${method} -d ${f} gives what our decoder gives`);
        }
      }
      assert.ok(plainTotal > 12_000_000 && packedTotal < plainTotal / 2, `compressed ${plainTotal} to ${packedTotal}`);
      const dst = await createDatabase(c, "zdst");
      const r = await restore(dir, conn(c, dst), { ...base, jobs: 2 });
      assert.equal(r.tables, 3);
      assert.deepEqual(await checksums(c, dst), await checksums(c, src));
      await psql(c, `DROP DATABASE ${dst}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
      await psql(c, `DROP DATABASE IF EXISTS ${src}`);
    }
  });
}

test("exportTable() with zstd and lz4 yields one stream the standard tools decode to the plain CSV (PostgreSQL 15)", { skip: unavailable(15) ?? (hasTool("zstd") && hasTool("lz4") ? undefined : "zstd/lz4 commands not installed") }, async () => {
  const c = await cluster(15);
  const src = await sourceDb(c);
  const client = await connect(conn(c, src), base);
  const work = mkdtempSync(join(tmpdir(), `pg-rdma-zexport-`));
  try {
    const collect = async (it: AsyncIterable<Uint8Array>) => {
      const parts: Uint8Array[] = [];
      for await (const p of it) parts.push(p.slice());
      return Buffer.concat(parts);
    };
    const plain = await collect(exportTable(client, { schema: "public", table: "big" }, { format: "csv" }));
    for (const method of ["zstd", "lz4"] as const) {
      const packed = await collect(exportTable(client, { schema: "public", table: "big" }, { format: "csv", compression: method }));
      writeFileSync(join(work, `big.${method}`), packed);
      const r = spawnSync(method, ["-d", "-c", "-q", join(work, `big.${method}`)], { maxBuffer: 256 << 20 });
      assert.equal(r.status, 0, String(r.stderr));
      assert.ok(r.stdout.equals(plain), `${method} -d of the exported stream is the CSV`);
    }
  } finally {
    await client.close();
    rmSync(work, { recursive: true, force: true });
    await psql(c, `DROP DATABASE IF EXISTS ${src}`);
  }
});

test("dump() checks lz4/zstd levels with RangeErrors naming the bad level", async () => {
  await assert.rejects(dump("host=/nonexistent", { file: join(tmpdir(), "x.sql"), compression: "zstd", compressionLevel: 23 }), { name: "RangeError", message: /zstd compression level must be an integer 1-22, got 23/ });
  await assert.rejects(dump("host=/nonexistent", { file: join(tmpdir(), "x.sql"), compression: "lz4", compressionLevel: 12 }), { name: "RangeError", message: /LZ4 HC/ });
});

test("the CLI's -Z/--compress reads pg_dump's and pg_receivewal's spellings and refuses bad levels as usage errors", () => {
  assert.deepEqual(parseDumpCompression("zstd", "dump"), { compression: "zstd" });
  assert.deepEqual(parseDumpCompression("zstd:level=7", "dump"), { compression: "zstd", level: 7 });
  assert.deepEqual(parseDumpCompression("lz4", "dump"), { compression: "lz4" });
  assert.deepEqual(parseDumpCompression("gzip:9", "dump"), { compression: "gzip", level: 9 });
  assert.deepEqual(parseDumpCompression("0", "dump"), { compression: "none" });
  assert.deepEqual(parseDumpCompression("4", "dump"), { compression: "gzip", level: 4 });
  assert.deepEqual(parseWalCompression("zstd:3"), { method: "zstd", level: 3 });
  assert.deepEqual(parseWalCompression("lz4"), { method: "lz4" });
  assert.deepEqual(parseWalCompression("gzip"), { method: "gzip" });
  assert.equal(parseWalCompression("none"), "none");
  assert.equal(parseWalCompression(undefined), "none");
  const usage = (f: () => unknown, re: RegExp) => assert.throws(f, (e: Error) => e.name === "UsageError" && re.test(e.message));
  usage(() => parseDumpCompression("zstd:99", "dump"), /zstd compression level must be an integer 1-22, got 99/);
  usage(() => parseDumpCompression("lz4:level=12", "dump"), /LZ4 HC/);
  usage(() => parseDumpCompression("xz", "dump"), /invalid compression method "xz"/);
  usage(() => parseWalCompression("gzip:10"), /gzip compression level must be an integer 1-9, got 10/);
  usage(() => parseWalCompression("zstd:long"), /invalid compression detail "long"/);
  usage(() => parseWalCompression("15"), /out of range for gzip/);
});
