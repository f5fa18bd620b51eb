/**
 * Dump benchmark, ratios against peers measured in the same run, on a PostgreSQL 15 test cluster
 * (the fixture's, Debian binaries) over its unix socket:
 *
 * - a database of a few wide and many narrow tables (size printed; `DUMP_BENCH_MB`, default 1000);
 * - ours `dump()` plain, jobs 1, against `pg_dump --data-only -f` (Debian 15);
 * - ours directory format with 4 jobs against `pg_dump -Fd -j 4 -Z 0` (no compression on
 *   either side; pg_dump -Fd would gzip by default): the jobs as connections of this process
 *   (the default), and in worker processes (`processes: true`);
 * - one wide table: ours (`dump -t`, plain, to a file) against
 *   `psql -c "COPY t TO STDOUT" > /dev/null`, the ceiling of a single COPY.
 *
 * Run: `npx deno run -A bench/dump.ts`, `npx bun bench/dump.ts`, `node dist/bench/dump.js`.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump } from "../dump/mod.ts";
import { cluster, createDatabase, psql, psqlPath, unavailable } from "../tests/_fixture/cluster.ts";

const why = unavailable(15);
if (why) {
  console.error(`bench/dump: ${why}`);
  process.exit(1);
}
const MB = Number(process.env.DUMP_BENCH_MB ?? 1000);
const c = await cluster(15);
const db = await createDatabase(c, "dumpbench");
const bin = "/usr/lib/postgresql/15/bin";
const work = mkdtempSync(join(tmpdir(), "pg-rdma-dumpbench-"));
const conninfo = `host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`;
const opts = { env: {}, homeDir: work };

// 4 wide tables take 80% of the size, 200 narrow ones the rest.
const WIDE = 4;
const NARROW = 200;
const wideRows = Math.round((MB * 0.8 * 1e6) / WIDE / 420);
const narrowRows = Math.round((MB * 0.2 * 1e6) / NARROW / 40);
let setup = "";
for (let i = 0; i < WIDE; i++) {
  setup += `CREATE TABLE wide_${i} (id bigint, a text, b text, c numeric, d timestamptz, e jsonb);
    INSERT INTO wide_${i} SELECT g, repeat(md5(g::text), 4), repeat(md5((g + 1)::text), 4), g * 1.5, '2024-01-01'::timestamptz + g * interval '1 s',
      jsonb_build_object('k', g, 'v', md5(g::text)) FROM generate_series(1, ${wideRows}) g;\n`;
}
setup += `DO $$ BEGIN FOR i IN 1..${NARROW} LOOP
  EXECUTE format('CREATE TABLE narrow_%s (id int, v int, s text)', i);
  EXECUTE format('INSERT INTO narrow_%s SELECT g, g %% 97, left(md5(g::text), 20) FROM generate_series(1, ${narrowRows}) g', i);
END LOOP; END $$;`;
console.log(`bench/dump: creating ~${MB} MB (${WIDE} wide tables × ${wideRows} rows, ${NARROW} narrow × ${narrowRows})...`);
await psql(c, setup, { database: db });
await psql(c, "VACUUM ANALYZE", { database: db });
const size = Number(await psql(c, "SELECT pg_database_size(current_database())", { database: db }));
console.log(`database size ${(size / 1e6).toFixed(0)} MB; runtime ${typeof Deno !== "undefined" ? "deno" : typeof Bun !== "undefined" ? "bun" : `node ${process.version}`}`);

declare const Deno: unknown;
declare const Bun: unknown;

function timeCmd(cmd: string, args: string[], shell = false): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], shell });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return performance.now() - t;
}

/** CPU seconds (user + system) this process spent in the last timeAsync() run. */
let lastCpu = 0;
async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  const u = process.cpuUsage();
  await fn();
  const d = process.cpuUsage(u);
  lastCpu = (d.user + d.system) / 1e6;
  return performance.now() - t;
}

const pgArgs = ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres"];
const rows: [string, number, number, number | undefined][] = [];
/** Best of two runs; `cpu` is our process's CPU time in that best run. */
let cpu = 0;
const best = async (fn: () => Promise<number> | number) => {
  let b = Infinity;
  for (let i = 0; i < 2; i++) {
    const t = await fn();
    if (t < b) {
      b = t;
      cpu = lastCpu;
    }
  }
  return b;
};

// 1. plain, one job.
const plainFile = join(work, "ours.sql");
// Old outputs are removed before each run: replacing a large file costs its unlink in the kernel.
const ours1 = await best(() => {
  rmSync(plainFile, { force: true });
  return timeAsync(() => dump(conninfo, { ...opts, file: plainFile, dataOnly: true }));
});
const cpu1 = cpu;
const outBytes = statSync(plainFile).size;
rmSync(plainFile, { force: true });
const theirs1 = await best(() => {
  rmSync(join(work, "pgdump.sql"), { force: true });
  return timeCmd(`${bin}/pg_dump`, [...pgArgs, "--data-only", "-f", join(work, "pgdump.sql"), db]);
});
rmSync(join(work, "pgdump.sql"), { force: true });
rows.push(["plain, 1 job (pg_dump --data-only -f)", ours1, theirs1, cpu1]);

// 2. directory, 4 jobs.
const dirRun = (processes: boolean) => async () => {
  rmSync(join(work, "ours.dir"), { recursive: true, force: true });
  return await timeAsync(() => dump(conninfo, { ...opts, format: "directory", file: join(work, "ours.dir"), jobs: 4, dataOnly: true, processes }));
};
const ours4 = await best(dirRun(false));
const cpu4 = cpu;
const ours4p = await best(dirRun(true));
rmSync(join(work, "ours.dir"), { recursive: true, force: true });
const theirs4 = await best(() => {
  rmSync(join(work, "pgdump.dir"), { recursive: true, force: true });
  return timeCmd(`${bin}/pg_dump`, [...pgArgs, "--data-only", "-Fd", "-j", "4", "-Z", "0", "-f", join(work, "pgdump.dir"), db]);
});
rmSync(join(work, "pgdump.dir"), { recursive: true, force: true });
rows.push(["directory, 4 jobs (pg_dump -Fd -j 4 -Z 0)", ours4, theirs4, cpu4]);
rows.push(["directory, 4 jobs in worker processes (same)", ours4p, theirs4, undefined]);

// 3. one wide table against the psql COPY ceiling.
const oneFile = join(work, "one.sql");
const oursT = await best(() => {
  rmSync(oneFile, { force: true });
  return timeAsync(() => dump(conninfo, { ...opts, file: oneFile, dataOnly: true, tables: ["wide_0"] }));
});
const cpuT = cpu;
const ceiling = await best(() => timeCmd(`${psqlPath()} -X ${pgArgs.join(" ")} -d ${db} -c 'COPY wide_0 TO STDOUT' > /dev/null`, [], true));
rows.push(["one wide table (psql COPY > /dev/null)", oursT, ceiling, cpuT]);

console.log(`\nplain output ${(outBytes / 1e6).toFixed(0)} MB\n`);
console.log("| case (peer) | ours s | peer s | ours/peer | our process's CPU s |");
console.log("|---|---|---|---|---|");
for (const [name, o, p, u] of rows) {
  console.log(`| ${name} | ${(o / 1000).toFixed(2)} | ${(p / 1000).toFixed(2)} | ${(o / p).toFixed(2)} | ${u === undefined ? "-" : u.toFixed(2)} |`);
}
rmSync(work, { recursive: true, force: true });
await psql(c, `DROP DATABASE "${db}"`);
process.exit(0);
