// The connection keywords: libpq 18's PQconninfoOptions table (same order, same environment
// variables, same built-in defaults as a libpq built with OpenSSL and without GSSAPI, which is
// what pg-rdma is), plus pg-rdma's own `with_rsocket`. Measured against libpq 5.18's
// PQconndefaults(); see tests/pg_conninfo.test.ts.

/** One connection keyword: where its value may come from and whether pg-rdma implements it. */
export interface KeywordSpec {
  /** The keyword as written in a connection string, e.g. `"sslmode"`. */
  readonly keyword: string;
  /** The environment variable that supplies it when nothing else does, e.g. `"PGSSLMODE"`. */
  readonly env?: string;
  /** libpq's built-in default (applied after the environment). */
  readonly fallback?: string;
  /** A secret: shown as `********` when printed. */
  readonly secret?: boolean;
  /**
   * `true` when pg-rdma honours the keyword. `false` when it does not, or not every value of it:
   * a value that would need the missing feature (see `needs`) is an error, never ignored.
   */
  readonly supported: boolean;
  /** For keywords pg-rdma does not implement: why, shown in the error. */
  readonly unsupported?: string;
  /**
   * For unsupported keywords: whether a value needs the missing feature (then it is an error).
   * Default: any value but `""`.
   */
  readonly needs?: (value: string) => boolean;
}

const NO_GSS = "pg-rdma has no GSSAPI/Kerberos support";
const NO_OAUTH = "pg-rdma does not implement OAuth bearer authentication";
const NODE_TCP = "Deno, Node and Bun expose no such socket option";

/** Every keyword pg-rdma accepts, in libpq's order; `with_rsocket` last. */
export const KEYWORD_TABLE: readonly KeywordSpec[] = [
  { keyword: "service", env: "PGSERVICE", supported: true },
  { keyword: "user", env: "PGUSER", supported: true },
  { keyword: "password", env: "PGPASSWORD", secret: true, supported: true },
  { keyword: "passfile", env: "PGPASSFILE", supported: true },
  { keyword: "channel_binding", env: "PGCHANNELBINDING", fallback: "prefer", supported: true },
  { keyword: "connect_timeout", env: "PGCONNECT_TIMEOUT", supported: true },
  { keyword: "dbname", env: "PGDATABASE", supported: true },
  { keyword: "host", env: "PGHOST", supported: true },
  { keyword: "hostaddr", env: "PGHOSTADDR", supported: true },
  { keyword: "port", env: "PGPORT", fallback: "5432", supported: true },
  {
    keyword: "client_encoding",
    env: "PGCLIENTENCODING",
    supported: false,
    unsupported: "pg-rdma always speaks UTF8 with the server",
    needs: (v) => !/^(auto|utf-?8|unicode)?$/i.test(v),
  },
  { keyword: "options", env: "PGOPTIONS", supported: true },
  { keyword: "application_name", env: "PGAPPNAME", supported: true },
  { keyword: "fallback_application_name", supported: true },
  { keyword: "keepalives", supported: true },
  { keyword: "keepalives_idle", supported: true },
  { keyword: "keepalives_interval", supported: false, unsupported: NODE_TCP },
  { keyword: "keepalives_count", supported: false, unsupported: NODE_TCP },
  {
    keyword: "tcp_user_timeout",
    supported: false,
    unsupported: NODE_TCP,
    needs: (v) => v.trim() !== "" && Number(v) !== 0,
  },
  { keyword: "sslmode", env: "PGSSLMODE", fallback: "prefer", supported: true },
  { keyword: "sslnegotiation", env: "PGSSLNEGOTIATION", fallback: "postgres", supported: true },
  {
    keyword: "sslcompression",
    env: "PGSSLCOMPRESSION",
    fallback: "0",
    supported: false,
    unsupported: "TLS compression is not available in pg-rdma",
    needs: (v) => v[0] === "1", // libpq: on when it starts with "1"
  },
  { keyword: "sslcert", env: "PGSSLCERT", supported: true },
  { keyword: "sslkey", env: "PGSSLKEY", supported: true },
  // libpq 18 leaves this unset and uses "allow"; we write the effective value down.
  {
    keyword: "sslcertmode",
    env: "PGSSLCERTMODE",
    fallback: "allow",
    supported: false,
    unsupported: "the runtimes' TLS does not tell whether the server asked for a certificate",
    needs: (v) => v === "require",
  },
  { keyword: "sslpassword", secret: true, supported: true },
  { keyword: "sslrootcert", env: "PGSSLROOTCERT", supported: true },
  {
    keyword: "sslcrl",
    env: "PGSSLCRL",
    supported: false,
    unsupported: "pg-rdma does not check certificate revocation lists (not every runtime's TLS can)",
  },
  {
    keyword: "sslcrldir",
    env: "PGSSLCRLDIR",
    supported: false,
    unsupported: "pg-rdma does not read certificate revocation list directories",
  },
  { keyword: "sslsni", env: "PGSSLSNI", fallback: "1", supported: true },
  {
    keyword: "requirepeer",
    env: "PGREQUIREPEER",
    supported: false,
    unsupported: "Deno, Node and Bun cannot read the peer credentials of a unix socket",
  },
  { keyword: "require_auth", env: "PGREQUIREAUTH", supported: true },
  {
    keyword: "min_protocol_version",
    env: "PGMINPROTOCOLVERSION",
    supported: false,
    unsupported: "pg-rdma speaks protocol 3.0",
    needs: (v) => v !== "" && v !== "3.0",
  },
  { keyword: "max_protocol_version", env: "PGMAXPROTOCOLVERSION", supported: true },
  {
    keyword: "ssl_min_protocol_version",
    env: "PGSSLMINPROTOCOLVERSION",
    fallback: "TLSv1.2",
    supported: true,
  },
  { keyword: "ssl_max_protocol_version", env: "PGSSLMAXPROTOCOLVERSION", supported: true },
  // gssencmode is validated on its own (libpq's wording for "require" without GSSAPI).
  {
    keyword: "gssencmode",
    env: "PGGSSENCMODE",
    fallback: "disable",
    supported: false,
    unsupported: NO_GSS,
    needs: (v) => v === "require",
  },
  {
    keyword: "krbsrvname",
    env: "PGKRBSRVNAME",
    fallback: "postgres",
    supported: false,
    unsupported: NO_GSS,
    needs: (v) => v !== "" && v !== "postgres",
  },
  { keyword: "gsslib", env: "PGGSSLIB", supported: false, unsupported: NO_GSS },
  {
    keyword: "gssdelegation",
    env: "PGGSSDELEGATION",
    fallback: "0",
    supported: false,
    unsupported: NO_GSS,
    needs: (v) => v[0] === "1",
  },
  { keyword: "replication", supported: true },
  {
    keyword: "target_session_attrs",
    env: "PGTARGETSESSIONATTRS",
    fallback: "any",
    supported: true,
  },
  { keyword: "load_balance_hosts", env: "PGLOADBALANCEHOSTS", fallback: "disable", supported: true },
  {
    keyword: "scram_client_key",
    secret: true,
    supported: false,
    unsupported: "pg-rdma does not implement SCRAM pass-through keys",
  },
  {
    keyword: "scram_server_key",
    secret: true,
    supported: false,
    unsupported: "pg-rdma does not implement SCRAM pass-through keys",
  },
  { keyword: "oauth_issuer", supported: false, unsupported: NO_OAUTH },
  { keyword: "oauth_client_id", supported: false, unsupported: NO_OAUTH },
  { keyword: "oauth_client_secret", secret: true, supported: false, unsupported: NO_OAUTH },
  { keyword: "oauth_scope", supported: false, unsupported: NO_OAUTH },
  {
    keyword: "sslkeylogfile",
    supported: false,
    unsupported: "pg-rdma does not implement TLS key logging",
  },
  // pg-rdma (after Postgres Pro Enterprise): use rsockets (RDMA) instead of TCP.
  { keyword: "with_rsocket", env: "WITH_RSOCKET", fallback: "false", supported: true },
];

/** Keyword → its spec. */
export const KEYWORD_SPECS: ReadonlyMap<string, KeywordSpec> = new Map(
  KEYWORD_TABLE.map((k) => [k.keyword, k]),
);
