/**
 * Connection settings as libpq reads them: connection strings (keyword/value and
 * `postgresql://` URIs), connection service files, the `PG*` environment variables, built-in
 * defaults and the password file, plus pg-rdma's `with_rsocket` (also `WITH_RSOCKET` in the
 * environment and in services), after Postgres Pro Enterprise.
 *
 * Precedence, as in libpq: what the connection string (or keyword record) says, then the
 * service it names (or `PGSERVICE` names), then the environment, then the defaults. Values are
 * checked as libpq checks them and errors are worded as libpq words them, so `psql` and pg-rdma
 * say the same about the same input.
 *
 * Choices where libpq depends on how it was built:
 * - the default unix-socket directory is libpq's own `/tmp` ({@link DEFAULT_SOCKET_DIR}), not
 *   Debian's `/var/run/postgresql`; pass `host=/var/run/postgresql` there;
 * - the system service file is `/etc/postgresql-common/pg_service.conf` unless `PGSYSCONFDIR`
 *   says otherwise (Debian's choice);
 * - no GSSAPI: `gssencmode` defaults to `disable` and `gssencmode=require` is refused.
 *
 * @example
 * ```ts
 * import { resolveConnInfo } from "./conninfo.ts";
 * const info = resolveConnInfo("postgresql://app:secret@db1,db2/shop?port=5433&sslmode=require", { env: {} });
 * info.hosts; // [{ host: "db1", port: 5433, kind: "tcp" }, { host: "db2", port: 5433, kind: "tcp" }]
 * String(info); // "user=app password=******** dbname=shop host=db1,db2 port=5433 sslmode=require"
 * ```
 *
 * @module
 */
import { homedir, userInfo } from "node:os";
import process from "node:process";
import { ConnectionStringError } from "./errors.ts";
import { KEYWORD_SPECS, KEYWORD_TABLE, type KeywordSpec } from "./_keywords.ts";
import {
  isConnectionString,
  parseKeywordValue,
  parseUri,
  storeValue,
  uriPrefixLength,
} from "./_parse.ts";
import { applyService, DEFAULT_SYSCONFDIR } from "./_service.ts";
import { readPgpass } from "./_pgpass.ts";

export { DEFAULT_SYSCONFDIR, isConnectionString, KEYWORD_TABLE, type KeywordSpec };

/** One server to try, expanded from the host, hostaddr and port lists. */
export interface HostSpec {
  /**
   * As given: a host name, an IP, or a unix-socket directory (starts with "/" or "@"). When only
   * `hostaddr` was given for this entry, the address; when neither, {@link DEFAULT_SOCKET_DIR}.
   */
  host: string;
  /** hostaddr for this entry, when given */
  hostaddr?: string;
  /** The port (the port of a unix socket names its file, `.s.PGSQL.<port>`). */
  port: number;
  /**
   * "unix" when host is a directory (or empty host and no hostaddr: the default socket directory
   * {@link DEFAULT_SOCKET_DIR}), else "tcp" (also whenever hostaddr is given).
   */
  kind: "tcp" | "unix";
}

/** Resolved connection settings. */
export interface ConnInfo {
  /**
   * Every keyword with a value after precedence (connection string > service > environment >
   * built-in defaults), libpq keyword names, e.g. options.sslmode === "prefer". Keywords nothing
   * set are absent. `user` defaults to the OS user, `dbname` to the user (to `"replication"` for
   * physical replication, as pg_receivewal and pg_basebackup do), `with_rsocket` to `"false"` and
   * is normalised to `"true"`, `"false"` or `"prefer"`.
   */
  readonly options: Readonly<Record<string, string>>;
  /**
   * The host list expanded from host/hostaddr/port (libpq rules: comma-separated lists, a single
   * port applies to all hosts, counts must match otherwise).
   */
  readonly hosts: readonly HostSpec[];
  /** String form with passwords redacted (`password=********`), for printing. */
  toString(): string;
}

/** Every libpq 18 connection keyword, plus `with_rsocket`. */
export const KEYWORDS: readonly string[] = Object.freeze(KEYWORD_TABLE.map((k) => k.keyword));

/** libpq's DEFAULT_PGSOCKET_DIR as PostgreSQL ships it (Debian builds theirs with /var/run/postgresql). */
export const DEFAULT_SOCKET_DIR = "/tmp";

/** libpq's DEF_PGPORT. */
export const DEFAULT_PORT = 5432;

const REDACTED = "********";

type Env = Record<string, string | undefined>;

function fail(message: string, keyword?: string): never {
  throw new ConnectionStringError(message, { keyword });
}

/**
 * Parses a connection string, keyword/value (`host=db port=5433 user='a b'`) or URI
 * (`postgresql://user:pw@db:5433/name?sslmode=require`, also `postgres://`), and returns only
 * what it says: no service, no environment, no defaults, no checks of the values (libpq's
 * PQconninfoParse()). Later keywords override earlier ones.
 *
 * @throws {ConnectionStringError} on a syntax error or an unknown keyword, e.g.
 *   `invalid URI query parameter: "uzer"`, `missing "=" after "host" in connection info string`.
 *
 * @example
 * ```ts
 * parseConnectionString("postgres://%2Fvar%2Frun%2Fpostgresql/app?ssl=true");
 * // { host: "/var/run/postgresql", dbname: "app", sslmode: "require" }
 * ```
 */
export function parseConnectionString(s: string): Record<string, string> {
  if (typeof s !== "string") throw new TypeError("connection string must be a string");
  return uriPrefixLength(s) > 0 ? parseUri(s) : parseKeywordValue(s);
}

/** Options for {@link resolveConnInfo} and {@link lookupPassword}. */
export interface ResolveOptions {
  /** The environment to read (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** The home directory for `~/.pg_service.conf` and `~/.pgpass` (default `$HOME`, then the OS's). */
  homeDir?: string;
}

function homeOf(env: Env, homeDir: string | undefined): string | undefined {
  if (homeDir !== undefined) return homeDir;
  if (env.HOME) return env.HOME;
  try {
    return homedir();
  } catch {
    return undefined;
  }
}

function osUser(env: Env): string {
  try {
    const name = userInfo().username;
    if (name) return name;
  } catch {
    // no passwd entry (containers): fall back to the environment, as shells do
  }
  const name = env.USER ?? env.LOGNAME;
  if (name) return name;
  throw new ConnectionStringError("could not look up local user name", { keyword: "user" });
}

/** Keyword record input (PQconnectdbParams with expand_dbname): empty values count as unset. */
function fromRecord(input: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  let expanded = false;
  for (const [keyword, value] of Object.entries(input)) {
    if (value === undefined || value === null || value === "") continue;
    if (typeof value !== "string") {
      throw new TypeError(`connection option "${keyword}" must be a string`);
    }
    // The first dbname that is itself a connection string is expanded in its place.
    if (keyword === "dbname" && !expanded && isConnectionString(value)) {
      expanded = true;
      for (const [k, v] of Object.entries(parseConnectionString(value))) {
        delete out[k];
        out[k] = v;
      }
      continue;
    }
    delete out[keyword === "requiressl" ? "sslmode" : keyword];
    storeValue(out, keyword, value, false, false);
  }
  return out;
}

/** libpq's pqParseIntParam(): optional whitespace, sign, digits, whitespace; an int32. */
function parseIntParam(value: string, keyword: string): number {
  const m = /^[ \t\n\r\v\f]*([+-]?\d+)[ \t\n\r\v\f]*$/.exec(value);
  const n = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(n) || n > 2147483647 || n < -2147483648) {
    fail(`invalid integer value "${value}" for connection option "${keyword}"`, keyword);
  }
  return n;
}

function oneOf(options: Record<string, string>, keyword: string, allowed: readonly string[]): void {
  const v = options[keyword];
  if (v !== undefined && !allowed.includes(v)) fail(`invalid ${keyword} value: "${v}"`, keyword);
}

const BOOL_TRUE = ["true", "on", "yes", "1"];
const BOOL_FALSE = ["false", "off", "no", "0"];
// with_rsocket also takes the one-letter spellings transport/select.ts takes.
const RSOCKET_TRUE = [...BOOL_TRUE, "t", "y"];
const RSOCKET_FALSE = [...BOOL_FALSE, "f", "n"];
const AUTH_METHODS = ["password", "md5", "gss", "sspi", "scram-sha-256", "oauth", "none"];
const TLS_VERSIONS = ["tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"];
const PROTOCOL_VERSIONS: Record<string, number> = { "3.0": 3_0000, "3.2": 3_0002, latest: 3_0002 };

/** require_auth: a list of methods, all negated with "!" or none. */
function checkRequireAuth(value: string | undefined): void {
  if (!value) return;
  let negated = false;
  const seen = new Set<string>();
  value.split(",").forEach((part, i) => {
    let method = part;
    if (method.startsWith("!")) {
      if (i === 0) negated = true;
      else if (!negated) {
        fail(
          `negative require_auth method "${part}" cannot be mixed with non-negative methods`,
          "require_auth",
        );
      }
      method = method.slice(1);
    } else if (negated) {
      fail(`require_auth method "${part}" cannot be mixed with negative methods`, "require_auth");
    }
    if (!AUTH_METHODS.includes(method)) fail(`invalid require_auth value: "${method}"`, "require_auth");
    if (seen.has(method)) {
      fail(`require_auth method "${part}" is specified more than once`, "require_auth");
    }
    seen.add(method);
  });
}

type Check = (o: Record<string, string>) => void;

const checkSslmode: Check = (o) => {
  oneOf(o, "sslmode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]);
};
const checkSslnegotiation: Check = (o) => {
  oneOf(o, "sslnegotiation", ["postgres", "direct"]);
  if (o.sslnegotiation === "direct" && ["disable", "allow", "prefer"].includes(o.sslmode)) {
    fail(
      `weak sslmode "${o.sslmode}" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")`,
      "sslmode",
    );
  }
};
const checkSystemRoot: Check = (o) => {
  if (o.sslrootcert === "system" && o.sslmode !== "verify-full") {
    fail(
      `weak sslmode "${o.sslmode}" may not be used with sslrootcert=system (use "verify-full")`,
      "sslmode",
    );
  }
};
const checkTlsVersions: Check = (o) => {
  for (const k of ["ssl_min_protocol_version", "ssl_max_protocol_version"]) {
    const v = o[k];
    if (v && !TLS_VERSIONS.includes(v.toLowerCase())) fail(`invalid "${k}" value: "${v}"`, k);
  }
  const min = TLS_VERSIONS.indexOf(o.ssl_min_protocol_version?.toLowerCase());
  const max = TLS_VERSIONS.indexOf(o.ssl_max_protocol_version?.toLowerCase());
  if (min >= 0 && max >= 0 && min > max) {
    fail("invalid SSL protocol version range", "ssl_min_protocol_version");
  }
};
const checkProtocolVersions: Check = (o) => {
  for (const k of ["min_protocol_version", "max_protocol_version"]) {
    const v = o[k];
    if (v !== undefined && !Object.hasOwn(PROTOCOL_VERSIONS, v)) fail(`invalid ${k} value: "${v}"`, k);
  }
  const min = o.min_protocol_version, max = o.max_protocol_version;
  if (min && max && PROTOCOL_VERSIONS[min] > PROTOCOL_VERSIONS[max]) {
    fail(`"min_protocol_version" is greater than "max_protocol_version"`, "min_protocol_version");
  }
};
const checkGssencmode: Check = (o) => {
  oneOf(o, "gssencmode", ["disable", "prefer", "require"]);
  if (o.gssencmode === "require") {
    fail(`gssencmode value "require" invalid when GSSAPI support is not compiled in`, "gssencmode");
  }
};
const checkReplication: Check = (o) => {
  if (o.replication === undefined) return;
  const v = o.replication.toLowerCase();
  if (v !== "database" && !BOOL_TRUE.includes(v) && !BOOL_FALSE.includes(v)) {
    fail(`invalid replication value: "${o.replication}"`, "replication");
  }
};
const checkIntegers: Check = (o) => {
  for (const k of INTEGER_KEYWORDS) if (o[k]) parseIntParam(o[k], k);
};
const checkUnsupported: Check = (o) => {
  for (const spec of KEYWORD_TABLE) {
    const v = o[spec.keyword];
    if (spec.supported || v === undefined || !(spec.needs ?? ((x) => x !== ""))(v)) continue;
    const shown = spec.secret ? "" : ` value "${v}"`;
    fail(
      `connection option "${spec.keyword}"${shown} is not supported: ${spec.unsupported}`,
      spec.keyword,
    );
  }
};

const INTEGER_KEYWORDS = [
  "connect_timeout",
  "keepalives",
  "keepalives_idle",
  "keepalives_interval",
  "keepalives_count",
  "tcp_user_timeout",
];

/**
 * The checks libpq makes in connectOptions2(), in its order (so that of several faults, the one
 * libpq reports is the one we report), then pg-rdma's own: replication and integer values (which
 * libpq leaves to the server or to connect time) and keywords pg-rdma does not implement.
 */
const CHECKS: readonly Check[] = [
  (o) => checkRequireAuth(o.require_auth),
  (o) => oneOf(o, "channel_binding", ["disable", "prefer", "require"]),
  checkSslmode,
  checkSslnegotiation,
  checkSystemRoot,
  checkTlsVersions,
  (o) => oneOf(o, "sslcertmode", ["disable", "allow", "require"]),
  checkGssencmode,
  (o) =>
    oneOf(o, "target_session_attrs", ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"]),
  (o) => oneOf(o, "load_balance_hosts", ["disable", "random"]),
  checkProtocolVersions,
  checkReplication,
  checkIntegers,
  checkUnsupported,
];

/** Where a resolved value came from. */
export type OptionSource = "connection string" | "service" | "environment" | "default";

/**
 * Where the value of `keyword` in `info` came from (the connection string or keyword record, a
 * service, the environment, or a default), e.g. to say why `with_rsocket` is what it is.
 * Undefined when the keyword has no value, or `info` did not come from {@link resolveConnInfo}.
 *
 * @example
 * ```ts
 * const info = resolveConnInfo("host=db", { env: { WITH_RSOCKET: "prefer" } });
 * optionSource(info, "with_rsocket"); // "environment"
 * optionSource(info, "host"); // "connection string"
 * ```
 */
export function optionSource(info: ConnInfo, keyword: string): OptionSource | undefined {
  return info instanceof ResolvedConnInfo ? info.sourceOf(keyword) : undefined;
}

/** with_rsocket: libpq-style booleans, or "prefer" (RDMA when possible, else TCP). */
function normaliseWithRsocket(value: string): string {
  const v = value.trim().toLowerCase();
  if (RSOCKET_TRUE.includes(v)) return "true";
  if (RSOCKET_FALSE.includes(v)) return "false";
  if (v === "prefer") return "prefer";
  fail(`invalid with_rsocket value: "${value}"`, "with_rsocket");
}

/**
 * How a connection asks for replication: "physical" (`replication=true`, also on/yes/1),
 * "logical" (`replication=database`), or undefined for a normal connection.
 */
export function replicationMode(info: ConnInfo): "physical" | "logical" | undefined {
  const v = info.options.replication?.toLowerCase();
  if (v === undefined) return undefined;
  if (v === "database") return "logical";
  return BOOL_TRUE.includes(v) ? "physical" : undefined;
}

/** A port as libpq reads it when it connects. */
function parsePort(text: string): number {
  const port = parseIntParam(text, "port");
  if (port < 1 || port > 65535) fail(`invalid port number: "${text}"`, "port");
  return port;
}

/**
 * libpq's connectOptions2(): one entry per host, ports matched to hosts. Port numbers are read
 * only with `parsePorts` (libpq reads them when it connects, after checking everything else).
 */
function expandHosts(o: Record<string, string>, parsePorts: boolean): HostSpec[] {
  const hostaddrs = o.hostaddr ? o.hostaddr.split(",") : undefined;
  const hostnames = o.host ? o.host.split(",") : undefined;
  const count = hostaddrs?.length ?? hostnames?.length ?? 1;
  if (hostaddrs && hostnames && hostnames.length !== count) {
    fail(`could not match ${hostnames.length} host names to ${count} hostaddr values`, "host");
  }
  let ports: string[] = [];
  if (o.port) {
    ports = o.port.split(",");
    if (ports.length === 1) ports = new Array<string>(count).fill(ports[0]);
    else if (ports.length !== count) {
      fail(`could not match ${ports.length} port numbers to ${count} hosts`, "port");
    }
  }
  const hosts: HostSpec[] = [];
  for (let i = 0; i < count; i++) {
    const hostaddr = hostaddrs?.[i] ?? "";
    const name = hostnames?.[i] ?? "";
    const portText = ports[i] ?? "";
    const port = portText === "" || !parsePorts ? DEFAULT_PORT : parsePort(portText);
    if (hostaddr !== "") hosts.push({ host: name || hostaddr, hostaddr, port, kind: "tcp" });
    else if (name !== "") {
      hosts.push({ host: name, port, kind: name[0] === "/" || name[0] === "@" ? "unix" : "tcp" });
    } else hosts.push({ host: DEFAULT_SOCKET_DIR, port, kind: "unix" });
  }
  return hosts;
}

/** Quotes a value for a keyword/value string when it needs it. */
function quote(value: string): string {
  if (value !== "" && !/[\s'\\]/.test(value)) return value;
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

const INSPECT = Symbol.for("nodejs.util.inspect.custom");
const DENO_INSPECT = Symbol.for("Deno.customInspect");

class ResolvedConnInfo implements ConnInfo {
  readonly options: Readonly<Record<string, string>>;
  readonly hosts: readonly HostSpec[];
  readonly #fromDefaults: ReadonlySet<string>;
  readonly #sources: ReadonlyMap<string, OptionSource>;

  constructor(
    options: Record<string, string>,
    hosts: HostSpec[],
    fromDefaults: Set<string>,
    sources: Map<string, OptionSource>,
  ) {
    this.options = Object.freeze(options);
    this.hosts = Object.freeze(hosts.map((h) => Object.freeze(h)));
    this.#fromDefaults = fromDefaults;
    this.#sources = sources;
  }

  /** Where the value of `keyword` came from. */
  sourceOf(keyword: string): OptionSource | undefined {
    return this.options[keyword] === undefined ? undefined : this.#sources.get(keyword);
  }

  /** The options, secrets replaced by `********`. */
  redacted(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.options)) {
      out[k] = KEYWORD_SPECS.get(k)?.secret && v !== "" ? REDACTED : v;
    }
    return out;
  }

  /** `keyword=value` pairs in libpq's keyword order, built-in defaults left out, secrets redacted. */
  toString(): string {
    const r = this.redacted();
    return KEYWORDS.filter((k) => r[k] !== undefined && !this.#fromDefaults.has(k))
      .map((k) => `${k}=${r[k] === REDACTED ? REDACTED : quote(r[k])}`)
      .join(" ");
  }

  toJSON(): { options: Record<string, string>; hosts: readonly HostSpec[] } {
    return { options: this.redacted(), hosts: this.hosts };
  }

  [INSPECT](): string {
    return `ConnInfo(${this.toString()})`;
  }

  [DENO_INSPECT](): string {
    return `ConnInfo(${this.toString()})`;
  }
}

/**
 * Resolves connection settings fully: the input (a connection string, or a keyword record as
 * PQconnectdbParams takes it, where an empty value counts as unset and a `dbname` that is a
 * connection string is expanded), then the service file, then the environment (`PG*` variables
 * and `WITH_RSOCKET`), then the defaults; checks every value as libpq does; expands the host list.
 *
 * @throws {ConnectionStringError} with libpq's wording, e.g. `invalid sslmode value: "foo"`,
 *   `could not match 2 port numbers to 3 hosts`, `definition of service "x" not found`.
 *
 * @example
 * ```ts
 * const info = resolveConnInfo({ host: "db", user: "app" }, { env: { PGPORT: "5433" } });
 * info.hosts[0]; // { host: "db", port: 5433, kind: "tcp" }
 * info.options.dbname; // "app"
 * ```
 */
export function resolveConnInfo(
  input?: string | Record<string, string | undefined>,
  opts?: ResolveOptions,
): ConnInfo {
  const env: Env = opts?.env ?? process.env;
  const home = homeOf(env, opts?.homeDir);
  let options: Record<string, string>;
  if (input === undefined || input === null) options = {};
  else if (typeof input === "string") options = parseConnectionString(input);
  else if (typeof input === "object") options = fromRecord(input);
  else throw new TypeError("connection settings must be a string or a keyword record");

  const sources = new Map<string, OptionSource>(Object.keys(options).map((k) => [k, "connection string"]));
  const fromDefaults = new Set<string>();
  const service = options.service ?? env.PGSERVICE;
  if (service !== undefined) applyService(service, options, env, home, (k) => sources.set(k, "service"));

  let sslmodeFromDefault = false;
  for (const spec of KEYWORD_TABLE) {
    const k = spec.keyword;
    if (options[k] !== undefined) continue;
    const fromEnv = spec.env === undefined ? undefined : env[spec.env];
    if (fromEnv !== undefined) {
      options[k] = fromEnv;
      sources.set(k, "environment");
    } else if (k === "sslmode" && env.PGREQUIRESSL?.[0] === "1") {
      options[k] = "require"; // the deprecated PGREQUIRESSL, as libpq still reads it
      sources.set(k, "environment");
    } else if (spec.fallback !== undefined) {
      options[k] = spec.fallback;
      sources.set(k, "default");
      fromDefaults.add(k);
      if (k === "sslmode") sslmodeFromDefault = true;
    }
  }
  // With the system CA store, the default is to verify the host name (libpq 16+).
  if (sslmodeFromDefault && options.sslrootcert === "system") {
    options.sslmode = "verify-full";
    fromDefaults.delete("sslmode");
  }
  if (!options.user) {
    options.user = osUser(env);
    sources.set("user", "default");
  }
  if (!options.dbname) {
    const r = options.replication?.toLowerCase();
    options.dbname = r !== undefined && BOOL_TRUE.includes(r) ? "replication" : options.user;
    sources.set("dbname", "default");
  }
  options.with_rsocket = normaliseWithRsocket(options.with_rsocket);

  expandHosts(options, false);
  for (const check of CHECKS) check(options);
  const hosts = expandHosts(options, true);
  return new ResolvedConnInfo(options, hosts, fromDefaults, sources);
}

/** Options for {@link lookupPassword}. */
export interface LookupPasswordOptions extends ResolveOptions {
  /** Receives libpq's warning when the password file is ignored (e.g. group-readable). */
  onWarning?: (msg: string) => void;
}

/**
 * Looks up the password for one host entry in the password file: `options.passfile` (set from
 * `PGPASSFILE` by {@link resolveConnInfo}), else `~/.pgpass`. libpq's rules: lines
 * `host:port:database:user:password`, `*` matches anything, `\:` and `\\` are literal, the first
 * matching line wins; a unix socket in {@link DEFAULT_SOCKET_DIR} matches `localhost`; a file
 * that is not a plain file or that group or others may access is ignored (with a warning to
 * `onWarning`). The connection's own `password` is not consulted: use it first.
 *
 * Returns undefined when there is no match; throws nothing.
 *
 * @example
 * ```ts
 * const info = resolveConnInfo("host=db user=app");
 * const password = info.options.password ?? lookupPassword(info, info.hosts[0]);
 * ```
 */
export function lookupPassword(
  info: ConnInfo,
  host: HostSpec,
  opts?: LookupPasswordOptions,
): string | undefined {
  try {
    const env: Env = opts?.env ?? process.env;
    let path = info.options.passfile || env.PGPASSFILE;
    if (!path) {
      const home = homeOf(env, opts?.homeDir);
      if (!home) return undefined;
      path = `${home}/.pgpass`;
    }
    let name = host.host || host.hostaddr || "";
    if (name === "" || name === DEFAULT_SOCKET_DIR) name = "localhost";
    return readPgpass(path, {
      host: name,
      port: String(host.port),
      dbname: info.options.dbname ?? "",
      user: info.options.user ?? "",
    }, opts?.onWarning);
  } catch {
    return undefined;
  }
}
