/**
 * `pg/`: the libpq-style PostgreSQL client of pg-rdma. Connection strings, service file and
 * .pgpass (conninfo), authentication (trust, password, md5, SCRAM-SHA-256[-PLUS]), TLS, simple
 * and extended queries, pipelining, type decoding, row streaming, COPY, cancel, notices and
 * LISTEN/NOTIFY. Runs over any connected Duplex a {@link SocketFactory} returns. `with_rsocket`
 * picks rsockets (transport/, loaded only then) or the runtime's TCP; `client.transport` says
 * which was used and why.
 *
 * @example
 * ```ts
 * import { connect } from "./mod.ts";
 * const client = await connect("postgres://app@db/app?sslmode=verify-full");
 * const { rows } = await client.query("SELECT $1::int AS n", [42]);
 * await client.close();
 * ```
 *
 * @module
 */
import { lookupPassword, optionSource, resolveConnInfo, type ConnInfo, type ResolveOptions } from "./conninfo.ts";
import { type Client, type ClientOptions, connectWith, type SocketFactory, type TransportChoice } from "./client.ts";

export {
  Client,
  type ClientOptions,
  connectWith,
  CopyBoth,
  type CopyDataBatch,
  CopyOut,
  type FieldDescription,
  type HostTarget,
  netSocketFactory,
  type Notice,
  type Notification,
  PreparedStatement,
  type QueryOptions,
  type QueryResult,
  type ResolvedConnInfo,
  type Row,
  type SocketFactory,
  type SocketTarget,
  type StreamOptions,
  type TransportChoice,
} from "./client.ts";
export { type ConnInfo, type HostSpec, lookupPassword, parseConnectionString, resolveConnInfo } from "./conninfo.ts";
export { ConnectionError, ConnectionStringError, type ErrorFields, PostgresError, ProtocolError } from "./errors.ts";
export {
  decodeBinary,
  decodeText,
  defaultTypes,
  encodeText,
  Interval,
  OID,
  type TypeOptions,
  type TypeParser,
  TypeRegistry,
} from "./types.ts";

/** Options of {@link connect}: client options plus where conninfo reads env and files from. */
export interface ConnectOptions extends ClientOptions, ResolveOptions {}

/**
 * Connects like libpq's PQconnectdb: resolves `input` (connection string, URI or keyword record)
 * with the service file and PG* environment variables, takes the password from the options,
 * the connection string or ~/.pgpass, and tries the hosts in order. Rejects with
 * `ConnectionStringError` for bad settings, `ConnectionError` when no host would do.
 *
 * @example
 * ```ts
 * const client = await connect("host=/var/run/postgresql dbname=app");
 * ```
 */
export async function connect(input?: string | Record<string, string | undefined> | ConnInfo, options: ConnectOptions = {}): Promise<Client> {
  const info = isConnInfo(input) ? input : resolveConnInfo(input, { env: options.env, homeDir: options.homeDir });
  const { factory, choice } = options.socketFactory
    ? { factory: options.socketFactory, choice: { transport: "custom" as const, reason: "socket factory given by the caller" } }
    : await chooseTransport(info, options.env ?? process.env);
  const client = await connectWith(info, {
    ...options,
    socketFactory: factory,
    lookupPassword: options.lookupPassword ?? ((h) => lookupPassword(info, h, { env: options.env, homeDir: options.homeDir })),
  });
  client.transport = choice;
  return client;
}

/**
 * Applies `with_rsocket` (connection string or service, else `WITH_RSOCKET`, else false) the
 * way transport/select.ts decides. With `false`, the runtime's own sockets are used and neither
 * `transport/` nor `ffi/` is loaded, so this client also runs where no FFI exists. Only `true` or
 * `prefer` load the transport layer, on first use. `PG_RDMA_PROVIDER=kernel` in the environment
 * runs the rsocket path over libc's sockets (the test vehicle on machines without RDMA).
 */
async function chooseTransport(
  info: ConnInfo,
  env: Record<string, string | undefined>,
): Promise<{ factory: SocketFactory | undefined; choice: TransportChoice }> {
  const value = info.options.with_rsocket ?? "false";
  const source = optionSource(info, "with_rsocket") ?? "default";
  if (value === "false") {
    return { factory: undefined, choice: { transport: "tcp", reason: source === "default" ? "native TCP by default" : `native TCP: with_rsocket=false in the ${source}` } };
  }
  const transport = await import("../transport/mod.ts");
  const decision = source === "environment"
    ? transport.selectTransport({ env: { WITH_RSOCKET: value } })
    : transport.selectTransport({ setting: value, env: {} });
  if (decision.transport === "tcp") return { factory: undefined, choice: { transport: "tcp", reason: decision.reason } };
  const provider = env.PG_RDMA_PROVIDER === "kernel" ? "kernel" : "rdma";
  if (env.PG_RDMA_PROVIDER && env.PG_RDMA_PROVIDER !== "kernel" && env.PG_RDMA_PROVIDER !== "rdma") {
    throw new TypeError(`invalid PG_RDMA_PROVIDER value: "${env.PG_RDMA_PROVIDER}" (expected rdma or kernel)`);
  }
  return {
    factory: transport.rsocketFactory({ provider }),
    choice: { transport: "rsocket", provider, reason: provider === "kernel" ? `${decision.reason}, on the kernel provider (PG_RDMA_PROVIDER=kernel)` : decision.reason },
  };
}

function isConnInfo(x: unknown): x is ConnInfo {
  return typeof x === "object" && x !== null && "hosts" in x && "options" in x && Array.isArray((x as ConnInfo).hosts);
}
