// dump/ under concurrency and failure: transfers committed during a dump never show half in it
// (one snapshot shared by the workers), the ACCESS SHARE lock makes a concurrent DROP wait, a
// table without SELECT privilege and a connection killed mid-table give a DumpError naming the
// table and no output that looks complete. Also the FFI transport as the dump's socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { cluster, type ClusterInfo, createDatabase, psql, ROLES, unavailable, VERSIONS } from "./_fixture/cluster.ts";
import { connect, PostgresError } from "../pg/mod.ts";
import { dump, DumpError, readToc, restore, type TableProgress } from "../dump/mod.ts";
import { TRANSPORTS } from "./_fixture/transports.ts";
import { busyPolling } from "../pg/_receive.ts";

const homeDir = mkdtempSync(join(tmpdir(), "pg-rdma-home-"));
const base = { env: {}, homeDir };
const work = mkdtempSync(join(tmpdir(), "pg-rdma-dumpc-"));
const conn = (c: ClusterInfo, db: string) => `host=${c.socketDir} port=${c.port} user=postgres dbname=${db}`;

const ffi = TRANSPORTS.find((t) => t.tag === "ffi")!;

/** Sum and count of the `amount` column (2nd) of COPY text rows. */
function tally(copyText: string): { n: number; sum: number } {
  let n = 0;
  let sum = 0;
  for (const line of copyText.split("\n")) {
    if (!line) continue;
    n++;
    sum += Number(line.split("\t")[1]);
  }
  return { n, sum };
}

/**
 * The data of one table from a directory dump, as COPY text. A binary file (the default where
 * the types allow) is read back for the tables of these tests: int columns (4-byte values) and
 * text longer than 4 bytes.
 */
function tableData(dir: string, table: string): string {
  const toc = JSON.parse(readFileSync(join(dir, "toc.json"), "utf8"));
  const d = toc.data.find((x: { table: string }) => x.table === table);
  const raw = readFileSync(join(dir, d.file));
  const data = d.file.endsWith(".gz") ? gunzipSync(raw) : raw;
  if (d.format !== "binary") return data.toString();
  assert.equal(data.subarray(0, 11).toString("latin1"), "PGCOPY\n\xff\r\n\0");
  let at = 19 + data.readInt32BE(15);
  let out = "";
  for (let n = data.readInt16BE(at); n !== -1; n = data.readInt16BE(at)) {
    at += 2;
    const fields: string[] = [];
    for (let i = 0; i < n; i++) {
      const len = data.readInt32BE(at);
      at += 4;
      fields.push(len === -1 ? "\\N" : len === 4 ? String(data.readInt32BE(at)) : data.toString("utf8", at, at + len));
      at += Math.max(len, 0);
    }
    out += fields.join("\t") + "\n";
  }
  assert.equal(at + 2, data.length, "the trailer ends the file");
  return out;
}

for (const v of VERSIONS) {
  test(`dump() sees transfers committed during the dump either whole or not at all, with jobs=2 in worker processes (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumpcons");
    await psql(c, `CREATE TABLE a (id int PRIMARY KEY, amount int); CREATE TABLE b (id int PRIMARY KEY, amount int);
      INSERT INTO a SELECT g, 10 FROM generate_series(1, 2000) g; INSERT INTO b SELECT g, 10 FROM generate_series(1, 2000) g`, { database: db });
    const mover = await connect(conn(c, db), base);
    let transfers = 0;
    // Before either table is read, move rows and amounts between the tables in transactions:
    // delete a row from one, insert it into the other, and shift amounts between two rows.
    const move = async () => {
      for (let i = 0; i < 50; i++) {
        const id = 10000 + transfers++;
        await mover.begin(async (tx) => {
          await tx.query("WITH d AS (DELETE FROM a WHERE id = (SELECT min(id) FROM a) RETURNING amount) INSERT INTO b SELECT $1, amount FROM d", [id]);
          await tx.query("UPDATE a SET amount = amount - 3 WHERE id = (SELECT max(id) FROM a)");
          await tx.query("UPDATE b SET amount = amount + 3 WHERE id = 1");
        });
      }
    };
    const started = new Set<string>();
    const onProgress = async (p: TableProgress) => {
      if (p.rows === 0 && !p.done && !started.has(p.table)) {
        started.add(p.table);
        await move();
      }
    };
    try {
      for (const [format, jobs] of [["directory", 2], ["plain", 1]] as const) {
        const file = join(work, `cons-${v}-${format}`);
        // Directory: the workers in processes of their own (the in-process pool is the default,
        // tested elsewhere), writing binary COPY (these narrow rows would be text by default).
        await dump(conn(c, db), { ...base, format, file, jobs, onProgress, processes: true, ...(format === "directory" ? { dataFormat: "binary" as const } : {}) });
        if (format === "directory") assert.deepEqual((await readToc(file)).data.map((d) => d.format), ["binary", "binary"]);
        let ta: { n: number; sum: number };
        let tb: { n: number; sum: number };
        if (format === "directory") {
          ta = tally(tableData(file, "a"));
          tb = tally(tableData(file, "b"));
        } else {
          const text = readFileSync(file, "utf8");
          const block = (t: string) => text.split(`COPY "public"."${t}" ("id", "amount") FROM stdin;\n`)[1].split("\\.\n")[0];
          ta = tally(block("a"));
          tb = tally(block("b"));
        }
        assert.equal(ta.n + tb.n, 4000);
        assert.equal(ta.sum + tb.sum, 40000);
        // The dump shows the state before the transfers made during it.
        const now = await psql(c, "SELECT count(*) FROM b", { database: db });
        assert.ok(Number(now) > tb.n, `transfers happened during the ${format} dump (${now} rows in b now, ${tb.n} dumped)`);
        started.clear();
      }
      assert.ok(transfers >= 100);
    } finally {
      await mover.close();
    }
  });

  test(`dump() reads the data of a snapshot the caller exported, also with jobs=2, and runs SERIALIZABLE DEFERRABLE when asked (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumpsnap");
    await psql(c, "CREATE TABLE s1 (a int); CREATE TABLE s2 (a int); INSERT INTO s1 VALUES (1); INSERT INTO s2 VALUES (1)", { database: db });
    const holder = await connect(conn(c, db), base);
    try {
      await holder.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ");
      const snap = String((await holder.simpleQuery<string[]>("SELECT pg_export_snapshot()", { rowMode: "array" }))[0].rows[0][0]);
      await psql(c, "INSERT INTO s1 VALUES (2); INSERT INTO s2 VALUES (2)", { database: db });
      const dir = join(work, `snap-${v}`);
      const s = await dump(conn(c, db), { ...base, format: "directory", file: dir, jobs: 2, snapshot: snap });
      assert.equal(s.rows, 2);
      assert.equal(tableData(dir, "s1"), "1\n");
      assert.equal(tableData(dir, "s2"), "1\n");
    } finally {
      await holder.close();
    }
    await assert.rejects(dump(conn(c, db), { ...base, file: join(work, `snap-${v}.sql`), snapshot: "00000003-0000001B-1" }), (e: unknown) => {
      assert.ok(e instanceof DumpError);
      assert.match(e.message, /cannot use snapshot 00000003-0000001B-1/);
      return true;
    });
    const s = await dump(conn(c, db), { ...base, file: join(work, `ser-${v}.sql`), serializableDeferrable: true });
    assert.equal(s.rows, 4);
  });

  test(`dump() sends a table's COPY before it reads the one before (plain, and directory with one job): the server is on table b while a's first progress report waits, and the output has both (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumppipe");
    // Never analysed (autovacuum off), so both estimates are 0 and the directory format takes
    // them in name order too (its order is by estimated size).
    await psql(c, `CREATE TABLE a (x int) WITH (autovacuum_enabled = off); INSERT INTO a VALUES (1);
      CREATE TABLE b (x int, t text) WITH (autovacuum_enabled = off); INSERT INTO b SELECT g, repeat('y', 200) FROM generate_series(1, 200000) g`, { database: db });
    for (const format of ["plain", "directory"] as const) {
      const file = join(work, `pipe-${v}-${format}`);
      let running = "";
      const s = await dump(conn(c, db), {
        ...base,
        format,
        file,
        onProgress: async (p) => {
          if (p.table !== "a" || p.done || p.rows !== 0) return;
          // Before a is read at all, the dump's backend has run a's COPY and is in b's (waiting
          // on the full socket: b is 40 MB). Sent one at a time, it would be idle here.
          for (let i = 0; i < 100 && !running.startsWith('COPY "public"."b"'); i++) {
            if (i) await new Promise((r) => setTimeout(r, 50));
            running = (await psql(c, `SELECT query FROM pg_stat_activity WHERE datname = '${db}' AND state = 'active' AND query LIKE 'COPY %'`, { database: db })).trim();
          }
        },
      });
      assert.match(running, /^COPY "public"\."b"/, `${format}: the backend was not in b's COPY while a's first report waited (it ran ${JSON.stringify(running)})`);
      assert.equal(s.rows, 200001);
      const rowB = "\t" + "y".repeat(200);
      if (format === "plain") {
        const text = readFileSync(file, "utf8");
        const at = [text.indexOf('COPY "public"."a" ("x") FROM stdin;\n1\n\\.\n'), text.indexOf('COPY "public"."b" ("x", "t") FROM stdin;\n1' + rowB + "\n")];
        assert.ok(at[0] > 0 && at[1] > at[0], `a at ${at[0]}, b at ${at[1]}`);
        assert.equal(text.slice(at[1]).split("\n").filter((l) => l.endsWith(rowB)).length, 200000);
      } else {
        assert.equal(tableData(file, "a"), "1\n");
        const lines = tableData(file, "b").split("\n");
        assert.equal(lines.length, 200001); // and the empty string after the last newline
        assert.ok(lines.slice(0, -1).every((l, i) => l === `${i + 1}${rowB}`));
      }
    }
  });

  test(`dump() busy-polls between reads with one job (not with busyPoll: false, never with jobs > 1); a busyPoll that is not a boolean is a TypeError (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumppoll");
    await psql(c, `CREATE TABLE b (x int, t text); INSERT INTO b SELECT g, repeat('y', 200) FROM generate_series(1, 200000) g`, { database: db });
    // How many of table b's progress reports (one per MB, some 40) found the event loop kept hot.
    const hotReports = async (o: { format: "plain" | "directory"; jobs?: number; busyPoll?: boolean }, name: string) => {
      let hot = 0;
      let reports = 0;
      const s = await dump(conn(c, db), {
        ...base,
        ...o,
        file: join(work, `poll-${v}-${name}`),
        onProgress: (p) => {
          if (p.table !== "b" || p.done) return;
          reports++;
          if (busyPolling()) hot++;
        },
      });
      assert.equal(s.rows, 200000);
      assert.ok(reports > 20, `${name}: ${reports} reports`);
      // Nothing keeps spinning once the dump is over.
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(busyPolling(), false, `${name}: still busy-polling after the dump`);
      return hot;
    };
    const plain = await hotReports({ format: "plain" }, "plain");
    // On a single CPU the default is off (the spinning would take the backend's CPU).
    if (cpus().length > 1) assert.ok(plain > 10, `one job: ${plain} reports found the loop hot`);
    else assert.equal(plain, 0);
    assert.ok(await hotReports({ format: "plain", busyPoll: true }, "forced") > 10);
    assert.equal(await hotReports({ format: "plain", busyPoll: false }, "off"), 0);
    assert.equal(await hotReports({ format: "directory", jobs: 2 }, "jobs"), 0);
    await assert.rejects(dump(conn(c, db), { ...base, file: join(work, `poll-${v}-bad`), busyPoll: "yes" as unknown as boolean }), /busyPoll must be true or false, not "yes"/);
  });

  test(`dump() holds ACCESS SHARE locks so a concurrent DROP TABLE waits (lock_timeout on the DROP side) (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumplock");
    await psql(c, "CREATE TABLE first (a int); CREATE TABLE second (a int); INSERT INTO second VALUES (42)", { database: db });
    const other = await connect(conn(c, db), base);
    let dropError: unknown;
    try {
      const file = join(work, `lock-${v}.sql`);
      await dump(conn(c, db), {
        ...base,
        file,
        onProgress: async (p) => {
          if (p.table === "first" && !p.done) {
            await other.simpleQuery("SET lock_timeout = '200ms'");
            dropError = await other.simpleQuery("DROP TABLE second").then(() => undefined, (e) => e);
          }
        },
      });
      assert.ok(dropError instanceof PostgresError, "DROP TABLE failed while the dump ran");
      assert.equal(dropError.code, "55P03"); // lock_not_available
      assert.match(readFileSync(file, "utf8"), /COPY "public"."second" \("a"\) FROM stdin;\n42\n\\\.\n/);
      // Once the dump is over, the DROP goes through.
      await other.simpleQuery("DROP TABLE second");
    } finally {
      await other.close();
    }
  });

  test(`dump() fails with a DumpError naming a table the role may not read, and leaves no file (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumpperm");
    await psql(c, `CREATE TABLE open_t (a int); GRANT SELECT ON open_t TO ${ROLES.scram.user}; CREATE TABLE "Secret ""t"""(a int)`, { database: db });
    const file = join(work, `perm-${v}.sql`);
    const info = `host=127.0.0.1 port=${c.port} user=${ROLES.scram.user} dbname=${db} sslmode=disable`;
    await assert.rejects(dump(info, { ...base, password: ROLES.scram.password, file }), (e: unknown) => {
      assert.ok(e instanceof DumpError);
      assert.equal(e.object, '"public"."Secret ""t"""');
      assert.match(e.message, /cannot lock table "public"\."Secret ""t""": permission denied/);
      return true;
    });
    assert.equal(existsSync(file) || existsSync(`${file}.partial`), false);
  });

  test(`dump() fails with a DumpError naming the table when its connection is killed mid-table, and leaves nothing that looks complete (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumpkill");
    await psql(c, "CREATE TABLE small (a int); INSERT INTO small VALUES (1); CREATE TABLE big (a int, t text); INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g", {
      database: db,
    });
    for (const [format, jobs, processes] of [["plain", 1, false], ["directory", 2, true], ["directory", 2, false]] as const) {
      const file = join(work, `kill-${v}-${format}-${processes}`);
      let killed = false;
      const p = dump(conn(c, db), {
        ...base,
        format,
        file,
        jobs,
        processes,
        onProgress: async (pr) => {
          if (pr.table === "big" && pr.rows > 0 && !killed) {
            killed = true;
            await psql(c, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db}' AND query LIKE 'COPY "public"."big"%'`);
          }
        },
      });
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof DumpError, String(e));
        assert.equal(e.object, '"public"."big"');
        assert.match(e.message, /dumping the data of table "public"\."big" failed/);
        return true;
      });
      assert.ok(killed);
      if (format === "plain") assert.equal(existsSync(file) || existsSync(`${file}.partial`), false);
      // "big" is data file 1 (tables are numbered in name order): neither it nor toc.json exists.
      else assert.ok(!readdirSync(file).includes("toc.json") && readdirSync(file).every((f) => !f.startsWith("1.")), readdirSync(file).join(","));
    }
  });

  test(`dump() stops on its AbortSignal mid-table: rejects with the abort reason, closes every connection, leaves no .partial and no toc.json (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumpabort");
    await psql(c, "CREATE TABLE small (a int); INSERT INTO small VALUES (1); CREATE TABLE big (a int, t text); INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g", {
      database: db,
    });
    const sessions = async () => (await psql(c, `SELECT count(*) FROM pg_stat_activity WHERE datname = '${db}' AND pid <> pg_backend_pid()`, { database: db })).trim();
    for (const [format, jobs, processes] of [["plain", 1, false], ["directory", 2, false], ["directory", 2, true]] as const) {
      const file = join(work, `abort-${v}-${format}-${processes}`);
      const ac = new AbortController();
      let rowsAtAbort = -1;
      const p = dump(conn(c, db), {
        ...base,
        format,
        file,
        jobs,
        processes,
        signal: ac.signal,
        onProgress: (pr) => {
          if (pr.table === "big" && pr.rows > 0 && !ac.signal.aborted) {
            rowsAtAbort = pr.rows;
            ac.abort();
          }
        },
      });
      await assert.rejects(p, (e: unknown) => {
        assert.equal((e as Error).name, "AbortError", String(e));
        return true;
      });
      assert.ok(rowsAtAbort > 0 && rowsAtAbort < 100000, `aborted mid-table (${rowsAtAbort} rows)`);
      if (format === "plain") assert.equal(existsSync(file) || existsSync(`${file}.partial`), false);
      else {
        const left = readdirSync(file);
        assert.ok(!left.includes("toc.json") && left.every((f) => !f.startsWith("1.") && !f.endsWith(".partial")), left.join(","));
      }
      // Every connection of the dump (leader, workers) is gone once it rejected; the server may take a moment to notice.
      let n = await sessions();
      for (let i = 0; i < 50 && n !== "0"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        n = await sessions();
      }
      assert.equal(n, "0", `${format} jobs=${jobs} processes=${processes}: sessions left`);
    }
    // A signal already aborted: rejected before connecting; a caller's reason is passed on.
    const ac = new AbortController();
    ac.abort(new RangeError("changed my mind"));
    await assert.rejects(dump(conn(c, db), { ...base, file: join(work, `abort-${v}-early.sql`), signal: ac.signal }), /changed my mind/);
    assert.equal(existsSync(join(work, `abort-${v}-early.sql.partial`)), false);
  });

  test(`restore() stops on its AbortSignal mid-table: rejects with the abort reason, the table's COPY is rolled back, no session is left (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "restabort");
    await psql(c, "CREATE TABLE small (a int); INSERT INTO small VALUES (1); CREATE TABLE big (a int, t text); INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g", {
      database: db,
    });
    const dir = join(work, `restabort-${v}`);
    await dump(conn(c, db), { ...base, format: "directory", file: dir });
    for (const jobs of [1, 2]) {
      const dst = await createDatabase(c, "restabort");
      const ac = new AbortController();
      const p = restore(dir, conn(c, dst), {
        ...base,
        jobs,
        signal: ac.signal,
        onProgress: (pr) => {
          // At the start of big's COPY: give the data a moment to flow, then abort.
          if (pr.table === "big" && !pr.done) setTimeout(() => ac.abort(), 20);
        },
      });
      await assert.rejects(p, (e: unknown) => {
        assert.equal((e as Error).name, "AbortError", String(e));
        return true;
      });
      assert.equal((await psql(c, "SELECT count(*) FROM big", { database: dst })).trim(), "0");
      let n = "";
      for (let i = 0; i < 50 && n !== "0"; i++) {
        if (i) await new Promise((r) => setTimeout(r, 100));
        n = (await psql(c, `SELECT count(*) FROM pg_stat_activity WHERE datname = '${dst}' AND pid <> pg_backend_pid()`, { database: dst })).trim();
      }
      assert.equal(n, "0", `restore jobs=${jobs}: sessions left`);
    }
  });

  test(`dump() directory, dataFormat auto (the default): binary COPY for tables of wide rows, text for narrow or never analysed ones; restore() reads both (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "autofmt");
    await psql(c, `CREATE TABLE wide (id int, s text, at timestamptz); INSERT INTO wide SELECT g, repeat(md5(g::text), 6), '2024-01-01'::timestamptz + g * interval '1 s' FROM generate_series(1, 3000) g;
      CREATE TABLE narrow (id int, v int); INSERT INTO narrow SELECT g, g % 7 FROM generate_series(1, 3000) g;
      CREATE TABLE fresh (id int, s text) WITH (autovacuum_enabled = off); INSERT INTO fresh SELECT g, repeat('y', 300) FROM generate_series(1, 3000) g;
      CREATE TABLE toasted (id int, b bytea); ALTER TABLE toasted ALTER COLUMN b SET STORAGE EXTERNAL;
      INSERT INTO toasted SELECT g, decode(repeat(md5(g::text), 320), 'hex') FROM generate_series(1, 200) g;
      ANALYZE wide; ANALYZE narrow; ANALYZE toasted`, { database: db });
    const dir = join(work, `autofmt-${v}`);
    await dump(conn(c, db), { ...base, format: "directory", file: dir, jobs: 2 });
    const toc = await readToc(dir);
    // fresh has wide rows but no statistics (reltuples -1): no width to go by, so text as pg_dump.
    // toasted's rows are narrow in the table itself; their 5 kB values are in its TOAST table.
    assert.deepEqual(Object.fromEntries(toc.data.map((d) => [d.table, d.format ?? "text"])), { fresh: "text", narrow: "text", toasted: "binary", wide: "binary" });
    assert.equal(tableData(dir, "narrow").split("\n")[0], "1\t1");
    const dst = await createDatabase(c, "autofmt");
    await restore(dir, conn(c, dst), { ...base, jobs: 2 });
    const sum = (d: string) => psql(c, "SELECT md5(string_agg(w::text, '|' ORDER BY id)) FROM wide w UNION ALL SELECT md5(string_agg(n::text, '|' ORDER BY id)) FROM narrow n UNION ALL SELECT count(*)::text FROM fresh UNION ALL SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM toasted t", { database: d });
    assert.equal(await sum(dst), await sum(db));
  });

  test(`restore() of a binary data file into a column of another type fails naming the table, the column and the way out; the text format loads it (PostgreSQL ${v})`, { skip: unavailable(v) }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "binmis");
    await psql(c, "CREATE TABLE t (id int, s text); INSERT INTO t VALUES (1, 'one'), (2, NULL)", { database: db });
    for (const dataFormat of ["binary", "text"] as const) {
      const dir = join(work, `binmis-${v}-${dataFormat}`);
      await dump(conn(c, db), { ...base, format: "directory", file: dir, dataFormat });
      assert.equal((await readToc(dir)).data[0].format, dataFormat === "binary" ? "binary" : undefined);
      const dst = await createDatabase(c, "binmis");
      await psql(c, "CREATE TABLE t (id bigint, s text)", { database: dst });
      const p = restore(dir, conn(c, dst), { ...base, dataOnly: true });
      if (dataFormat === "text") {
        assert.equal((await p).rows, 2);
        assert.equal((await psql(c, "SELECT string_agg(id || ':' || coalesce(s, '-'), ',' ORDER BY id) FROM t", { database: dst })).trim(), "1:one,2:-");
        continue;
      }
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof DumpError, String(e));
        assert.match(e.message, /^restoring the data of table "public"\."t" failed: .*\(COPY t, line 1, column id\b.*binary COPY.*--data-format text/s);
        assert.equal(e.object, '"public"."t"');
        return true;
      });
      assert.equal((await psql(c, "SELECT count(*) FROM t", { database: dst })).trim(), "0");
    }
  });

  test(`dump() and restore() run over the FFI transport (kernel provider) with jobs=2 (PostgreSQL ${v})`, { skip: unavailable(v) ?? ffi.skip }, async () => {
    const c = await cluster(v);
    const db = await createDatabase(c, "dumpffi");
    await psql(c, "CREATE TABLE t1 (a int PRIMARY KEY, s text); INSERT INTO t1 SELECT g, md5(g::text) FROM generate_series(1, 20000) g; CREATE TABLE t2 AS SELECT * FROM t1 WHERE a < 100", {
      database: db,
    });
    const tcp = (d: string) => `host=127.0.0.1 port=${c.port} user=postgres dbname=${d} sslmode=disable`;
    const opts = { ...base, password: ROLES.superuser.password, socketFactory: ffi.factory };
    const dir = join(work, `ffi-${v}`);
    const s = await dump(tcp(db), { ...opts, format: "directory", file: dir, jobs: 2 });
    assert.equal(s.rows, 20099);
    const dst = await createDatabase(c, "dumpffi");
    await restore(dir, tcp(dst), { ...opts, jobs: 2 });
    const sum = (d: string) => psql(c, "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM t1 t", { database: d });
    assert.equal(await sum(dst), await sum(db));
  });
}
