/**
 * Error classes of the `pg/` client, one per family of conditions a caller is meant to catch.
 *
 * - {@link ConnectionStringError}: a connection string, keyword record, service file or
 *   environment variable that cannot be turned into connection settings. Its message is worded
 *   like libpq's, so what `psql` would say about the same input is what you read here.
 *
 * @module
 */

/**
 * Thrown when connection settings cannot be parsed or resolved: malformed keyword/value or URI
 * syntax, an unknown keyword, a value libpq would reject (`invalid sslmode value: "foo"`), a
 * service that is not defined, or a setting that pg-rdma does not implement.
 *
 * `keyword` names the connection option at fault when there is one. Where libpq's message would
 * quote a password (a URI's `user:password@`, a malformed `password=` value in a URI), it shows
 * `********` instead.
 *
 * @example
 * ```ts
 * import { parseConnectionString } from "./conninfo.ts";
 * import { ConnectionStringError } from "./errors.ts";
 * try {
 *   parseConnectionString("host=db uzer=me");
 * } catch (e) {
 *   if (e instanceof ConnectionStringError) console.error(e.message); // invalid connection option "uzer"
 * }
 * ```
 */
export class ConnectionStringError extends Error {
  /** The connection option at fault, when the error is about one (e.g. `"sslmode"`). */
  readonly keyword: string | undefined;

  constructor(message: string, options?: { keyword?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ConnectionStringError";
    this.keyword = options?.keyword;
  }
}

// --- Errors of the protocol client (pg/client.ts) ---------------------------------------------

/** Fields of an ErrorResponse / NoticeResponse, keyed by their one-letter protocol codes. */
export const ERROR_FIELDS = {
  S: "severity",
  V: "severityNonLocalized",
  C: "code",
  M: "message",
  D: "detail",
  H: "hint",
  P: "position",
  p: "internalPosition",
  q: "internalQuery",
  W: "where",
  s: "schema",
  t: "table",
  c: "column",
  d: "dataType",
  n: "constraint",
  F: "file",
  L: "line",
  R: "routine",
} as const;

/** The decoded fields of an ErrorResponse or NoticeResponse (protocol section 53.8). */
export interface ErrorFields {
  severity?: string;
  severityNonLocalized?: string;
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

/**
 * An error reported by the server (ErrorResponse), with every field it carries. `code` is the
 * SQLSTATE, e.g. `"42P01"`.
 *
 * @example
 * ```ts
 * try { await client.query("SELECT * FROM missing"); }
 * catch (e) { if (e instanceof PostgresError && e.code === "42P01") { ... } }
 * ```
 */
export class PostgresError extends Error implements ErrorFields {
  override name = "PostgresError";
  severity: string;
  severityNonLocalized?: string;
  code: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;

  /** Builds the error from decoded ErrorResponse fields. */
  constructor(fields: ErrorFields, options?: ErrorOptions) {
    super(fields.message ?? "unknown server error", options);
    this.severity = fields.severity ?? "ERROR";
    this.code = fields.code ?? "XX000";
    for (const key of Object.values(ERROR_FIELDS)) {
      if (key === "message" || key === "severity" || key === "code") continue;
      const v = fields[key];
      if (v !== undefined) (this as Record<string, unknown>)[key] = v;
    }
  }
}

/**
 * The connection could not be established, or was lost. The message follows libpq's wording
 * (`connection to server at "127.0.0.1", port 5432 failed: ...`, one line per host tried);
 * `cause` holds the underlying error (a socket error, the server's {@link PostgresError}, a TLS
 * error, ...); `code` is the SQLSTATE when the server refused us (e.g. `28P01`).
 */
export class ConnectionError extends Error {
  override name = "ConnectionError";
  /** SQLSTATE of the server's refusal, when there was one. */
  code?: string;
  constructor(message: string, options?: ErrorOptions & { code?: string }) {
    super(message, options);
    if (options?.code) this.code = options.code;
  }
}

/** The peer sent bytes that are not the PostgreSQL protocol (garbage, an unexpected message). */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}
