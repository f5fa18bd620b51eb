// pg-rdma bench as users run it (a child process of the same runtime) against the fixture's
// PostgreSQL 15 and 18: -i, select-only for a duration, the tpcb-like default, --copy, --json,
// the rsocket transport (kernel provider), and usage errors. Option parsing is checked in-process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cluster, type ClusterInfo, createDatabase, psql, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { moduleCommand } from "./_fixture/runtime.ts";
import { type BenchReport, parseBenchOptions, parseSize, percentile } from "../cli/bench.ts";
import { UsageError } from "../cli/_args.ts";

const [exe, baseArgs] = moduleCommand("../cli/main.ts", import.meta.url);

interface Run {
  code: number;
  out: string;
  err: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const base: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", PGCONNECT_TIMEOUT: "10", ...env };
    for (const k of ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE", "WITH_RSOCKET", "PG_RDMA_PROVIDER"]) {
      if (!(k in env)) delete base[k];
    }
    execFile(exe, [...baseArgs, "bench", ...args], { env: base as NodeJS.ProcessEnv, timeout: 120_000, maxBuffer: 16 << 20 }, (e, out, err) => {
      const code = e ? Number((e as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isNaN(code) ? -1 : code, out: String(out), err: String(err) });
    });
  });
}

/** The connection options for the cluster's unix socket as the superuser (trust). */
const unix = (c: ClusterInfo, db: string) => ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "-d", db];

function checkLatency(r: BenchReport): void {
  const l = r.latency_ms;
  assert.ok(l.avg > 0 && l.avg < 1000, `average latency ${l.avg} ms`);
  assert.ok(l.p50 > 0 && l.p50 <= l.p99 && l.p99 <= l.max, `p50 ${l.p50} p99 ${l.p99} max ${l.max}`);
}

test("parseSize() reads PostgreSQL-style sizes and rejects others", () => {
  assert.equal(parseSize("8MB"), 8 * 2 ** 20);
  assert.equal(parseSize("512kB"), 512 * 1024);
  assert.equal(parseSize("1GiB"), 2 ** 30);
  assert.equal(parseSize("1.5M"), 1.5 * 2 ** 20);
  assert.equal(parseSize("4096"), 4096);
  for (const bad of ["", "8XB", "-1MB", "0", "MB", "8 M B"]) {
    assert.throws(() => parseSize(bad), RangeError, bad);
  }
});

test("parseBenchOptions() picks the workload and rejects contradictory options", () => {
  assert.equal(parseBenchOptions({ "select-only": true, time: "2", client: "2" }).workload, "select-only");
  assert.equal(parseBenchOptions({}).workload, "tpcb-like");
  const copy = parseBenchOptions({ copy: "8MB", transactions: "3" });
  assert.equal(copy.workload, "copy");
  assert.equal(copy.copySize, 8 * 2 ** 20);
  assert.equal(copy.transactions, 3);
  assert.equal(copy.time, undefined);
  for (
    const bad of [
      { time: "2", transactions: "5" },
      { "select-only": true, copy: "1MB" },
      { client: "0" },
      { client: "1.5" },
      { time: "soon" },
      { jobs: "0" },
      { jobs: "1.5" },
      { initialize: true, jobs: "2" },
      { initialize: true, "select-only": true },
      { scale: "2" },
      { protocol: "nope" },
      { copy: "8XB" },
    ]
  ) {
    assert.throws(() => parseBenchOptions(bad), UsageError, JSON.stringify(bad));
  }
});

test("parseBenchOptions() takes -j up to -c, lowering a larger -j to -c as pgbench does", () => {
  assert.equal(parseBenchOptions({}).jobs, 1);
  assert.equal(parseBenchOptions({ client: "4", jobs: "2" }).jobs, 2);
  assert.equal(parseBenchOptions({ client: "2", jobs: "8" }).jobs, 2);
});

test("percentile() takes the nearest rank", () => {
  const v = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile(v, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test("pg-rdma bench exits 2 with a clear message on bad flags", async () => {
  const cases: [string[], RegExp][] = [
    [["-T", "2", "-t", "5"], /either a number of transactions \(-t\) or a duration \(-T\)/],
    [["--copy", "8XB"], /--copy: invalid size "8XB"/],
    [["-c", "0"], /invalid value "0" for option --client/],
    [["-S", "--copy", "1MB"], /either -S or --copy/],
    [["--bogus"], /bogus/],
    [["-M", "nope"], /nope/],
  ];
  for (const [args, message] of cases) {
    const r = await cli([...args, "-h", "/nonexistent"]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, message);
    assert.equal(r.out, "");
  }
});

for (const v of VERSIONS) {
  test(`pg-rdma bench -i, then -S -T 2 -c 2 --json gives tps > 0 and sane latency, on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "bench");
    const none = await cli([...unix(c, db), "-S", "-t", "1"]);
    assert.equal(none.code, 1);
    assert.match(none.err, /run "pg-rdma bench -i" first/);

    const init = await cli([...unix(c, db), "-i"]);
    assert.equal(init.code, 0, init.err);
    assert.equal((await psql(c, "SELECT count(*), max(aid) FROM pg_rdma_bench", { database: db })).trim(), "100000|100000");

    const r = await cli([...unix(c, db), "-S", "-T", "2", "-c", "2", "--json"]);
    assert.equal(r.code, 0, r.err);
    const report = JSON.parse(r.out) as BenchReport;
    assert.equal(report.transport.transport, "tcp");
    assert.equal(report.workload, "select-only");
    assert.equal(report.table, "pg_rdma_bench");
    assert.equal(report.clients, 2);
    assert.equal(report.failed, 0);
    assert.ok(report.transactions > 0 && report.tps > 0, `tps ${report.tps}`);
    assert.ok(report.duration_s >= 2 && report.duration_s < 10, `duration ${report.duration_s}`);
    assert.ok(Math.abs(report.tps - report.transactions / report.duration_s) < 1e-6 * report.tps);
    checkLatency(report);
  });

  test(`pg-rdma bench runs the tpcb-like default (-t, -M prepared) and prints pgbench's report on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "bench");
    assert.equal((await cli([...unix(c, db), "-i", "-q"])).code, 0);
    const r = await cli([...unix(c, db), "-c", "3", "-t", "20", "-M", "prepared"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^transport: tcp: /);
    assert.match(r.out, /\ntransaction type: <builtin: TPC-B \(sort of\)>\n/);
    assert.match(r.out, /\nquery mode: prepared\n/);
    assert.match(r.out, /\nnumber of transactions actually processed: 60\/60\n/);
    assert.match(r.out, /\nlatency p99 = \d+\.\d{3} ms\n/);
    assert.match(r.out, /\ntps = \d+\.\d{6} \(without initial connection time\)\n$/);
    // 60 updates of random accounts by random deltas: the balances moved.
    const changed = Number(await psql(c, "SELECT count(*) FROM pg_rdma_bench WHERE abalance <> 0", { database: db }));
    assert.ok(changed > 0 && changed <= 60, `${changed} accounts changed`);
  });

  test(`pg-rdma bench --copy 8MB reports the bytes received and MB/s on PostgreSQL ${v}`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const r = await cli([...unix(c, "postgres"), "--copy", "8MB", "-t", "2", "-c", "2", "--json"]);
    assert.equal(r.code, 0, r.err);
    const report = JSON.parse(r.out) as BenchReport;
    assert.equal(report.workload, "copy");
    assert.equal(report.transactions, 4);
    assert.equal(report.bytes, 4 * 8 * 2 ** 20);
    assert.ok(report.mb_per_s! > 0, `MB/s ${report.mb_per_s}`);
    assert.ok(Math.abs(report.mb_per_s! - 32 / report.duration_s) < 1e-6 * report.mb_per_s!);
    checkLatency(report);
  });
}

const anyVersion = VERSIONS.find((v) => unavailable(v) === undefined);

test("pg-rdma bench -j 2 -c 4 runs 4 clients on 2 threads and adds up their transactions as pgbench does", { skip: anyVersion === undefined ? "no PostgreSQL cluster can be started here" : undefined }, async () => {
  const c = await cluster(anyVersion!);
  const db = await createDatabase(c, "bench");
  assert.equal((await cli([...unix(c, db), "-i", "-q"])).code, 0);
  const r = await cli([...unix(c, db), "-j", "2", "-c", "4", "-t", "30", "-M", "extended", "--json"]);
  assert.equal(r.code, 0, r.err);
  const report = JSON.parse(r.out) as BenchReport;
  assert.equal(report.clients, 4);
  assert.equal(report.jobs, 2);
  assert.equal(report.transactions, 120);
  assert.equal(report.failed, 0);
  checkLatency(report);
  // 120 tpcb-like transactions moved balances: the work reached the server.
  const changed = Number(await psql(c, "SELECT count(*) FROM pg_rdma_bench WHERE abalance <> 0", { database: db }));
  assert.ok(changed > 0 && changed <= 120, `${changed} accounts changed`);
  // Uneven shares (5 clients on 3 threads: 2, 2, 1), and pgbench's text report.
  const text = await cli([...unix(c, db), "-S", "-j", "3", "-c", "5", "-t", "7"]);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /\nnumber of clients: 5\nnumber of threads: 3\n/);
  assert.match(text.out, /\nnumber of transactions actually processed: 35\/35\n/);
  // A connection that fails fails the run with the server's error, as with -j 1.
  const bad = await cli([...unix(c, db), "-j", "2", "-c", "2", "-t", "1", "-U", "no_such_role"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /no_such_role/);
});

test("pg-rdma bench --with-rsocket runs over rsockets (kernel provider) and says so", { skip: anyVersion === undefined ? "no PostgreSQL cluster can be started here" : undefined }, async () => {
  const c = await cluster(anyVersion!);
  const db = await createDatabase(c, "bench");
  assert.equal((await cli([...unix(c, db), "-i", "-q"])).code, 0);
  const tcp = ["-h", c.host, "-p", String(c.port), "-U", "postgres", "-d", db, "--with-rsocket"];
  const env = { PGPASSWORD: ROLES.superuser.password, PG_RDMA_PROVIDER: "kernel" };
  const r = await cli([...tcp, "-S", "-t", "50", "-c", "2", "-M", "extended", "--json"], env);
  assert.equal(r.code, 0, r.err);
  const report = JSON.parse(r.out) as BenchReport;
  assert.equal(report.transport.transport, "rsocket");
  assert.equal(report.transport.provider, "kernel");
  assert.equal(report.transactions, 100);
  assert.equal(report.protocol, "extended");
  checkLatency(report);
  const text = await cli([...tcp, "--copy", "1MB", "-t", "1"], env);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /^transport: rsocket \(kernel provider\): /);
  assert.match(text.out, /\nbytes received = 1048576 \(1\.000 MB\)\nthroughput = \d+\.\d{3} MB\/s\n$/);
});
