// Compression throughput on a real 16 MiB WAL segment: our lz4 and zstd (compress/) against the
// native lz4 and zstd command-line tools at the same level, in the same run, plus gzip through
// node:zlib for reference. Prints MB/s per method and ours ÷ the tool's (the tool's figure
// includes starting the process and reading/writing files in tmpfs-like /tmp: a small overhead
// at 16 MiB). Not a target: a line in the README.
//
//   node dist/bench/compress.js | npx bun bench/compress.ts | npx deno run -A bench/compress.ts
// BENCH_SEGMENT=/path/to/segment uses that file instead of starting a PostgreSQL 15 cluster.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { psql, startCluster, unavailable } from "../tests/_fixture/cluster.ts";
import { runtime } from "../tests/_fixture/runtime.ts";
import { compress, decompress } from "../compress/mod.ts";

const SEG = 16 * 1024 * 1024;

async function realSegment(): Promise<Uint8Array> {
  if (process.env.BENCH_SEGMENT) return new Uint8Array(readFileSync(process.env.BENCH_SEGMENT));
  const why = unavailable(15);
  if (why) throw new Error(`no PostgreSQL 15 (${why}); set BENCH_SEGMENT`);
  const c = await startCluster(15);
  try {
    // A pgbench-like mix: inserts of text and numbers, updates, an index; about 40 MiB of WAL.
    await psql(c, `CREATE TABLE t (id int PRIMARY KEY, v text, n numeric, ts timestamptz);
      INSERT INTO t SELECT g, md5(g::text) || ' row ' || g, g * 1.5, now() FROM generate_series(1, 200000) g;
      UPDATE t SET n = n + 1, v = v || 'u' WHERE id % 3 = 0;`);
    const wal = join(c.dataDir, "pg_wal");
    const full = readdirSync(wal).filter((f) => /^[0-9A-F]{24}$/.test(f) && statSync(join(wal, f)).size === SEG).sort();
    // The second segment is written through, not the zero-filled tail of the last one.
    return new Uint8Array(readFileSync(join(wal, full[Math.min(1, full.length - 1)])));
  } finally {
    await c.stop();
  }
}

function best(n: number, f: () => number): number {
  let b = Infinity;
  for (let i = 0; i < n; i++) b = Math.min(b, f());
  return b;
}

async function bestAsync(n: number, f: () => Promise<unknown>): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

const seg = await realSegment();
const dir = mkdtempSync(join(tmpdir(), "pg-rdma-bench-compress-"));
const ROUNDS = 5;
const mbs = (ms: number) => (seg.length / 1e6 / (ms / 1000));
try {
  writeFileSync(join(dir, "seg"), seg);
  console.log(`${runtime}: one ${seg.length / 1048576} MiB WAL segment, best of ${ROUNDS}`);
  console.log("method      ours MB/s  tool MB/s  ours÷tool  ratio  decompress MB/s (ours)");
  for (const [method, level, tool, args] of [
    ["lz4", 0, "lz4", ["-1"]],
    ["zstd", 1, "zstd", ["-1"]],
    ["zstd", 3, "zstd", ["-3"]],
  ] as const) {
    await compress(seg, method, level); // load the package, warm up
    let packed: Uint8Array = new Uint8Array(0);
    const ours = await bestAsync(ROUNDS, async () => (packed = await compress(seg, method, level)));
    const back = await bestAsync(ROUNDS, () => decompress(packed, method));
    const out = join(dir, `seg.${method}`);
    const theirs = best(ROUNDS, () => {
      const t = performance.now();
      const r = spawnSync(tool, [...args, "-q", "-f", join(dir, "seg"), ...(tool === "zstd" ? ["-o"] : []), out]);
      if (r.status !== 0) throw new Error(`${tool} failed: ${r.stderr}`);
      return performance.now() - t;
    });
    const label = `${method}:${level}`.padEnd(10);
    console.log(`${label}  ${mbs(ours).toFixed(0).padStart(9)}  ${mbs(theirs).toFixed(0).padStart(9)}  ${(theirs / ours).toFixed(2).padStart(8)}×  ${(seg.length / packed.length).toFixed(1).padStart(5)}  ${mbs(back).toFixed(0).padStart(9)}`);
  }
  const gz = best(ROUNDS, () => {
    const t = performance.now();
    gzipSync(seg, { level: 1 });
    return performance.now() - t;
  });
  console.log(`gzip:1 (node:zlib)  ${mbs(gz).toFixed(0).padStart(5)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
