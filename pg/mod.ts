/**
 * `pg/`: the libpq-style PostgreSQL client of pg-rdma. Connection strings, service file and
 * .pgpass (conninfo), authentication (trust, password, md5, SCRAM-SHA-256[-PLUS]), TLS, simple
 * and extended queries, pipelining, type decoding, row streaming, COPY, cancel, notices and
 * LISTEN/NOTIFY. Runs over any connected Duplex a {@link SocketFactory} returns; imports no FFI.
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
import { lookupPassword, resolveConnInfo, type ConnInfo, type ResolveOptions } from "./conninfo.ts";
import { type Client, type ClientOptions, connectWith } from "./client.ts";

export {
  Client,
  type ClientOptions,
  connectWith,
  CopyBoth,
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
  return await connectWith(info, {
    ...options,
    lookupPassword: options.lookupPassword ?? ((h) => lookupPassword(info, h, { env: options.env, homeDir: options.homeDir })),
  });
}

function isConnInfo(x: unknown): x is ConnInfo {
  return typeof x === "object" && x !== null && "hosts" in x && "options" in x && Array.isArray((x as ConnInfo).hosts);
}
