/**
 * How every connecting command opens its PostgreSQL connection: the command line's keyword
 * record, then the environment, service file and defaults (libpq's precedence, in
 * `pg/conninfo.ts`); the transport `with_rsocket` asks for; and the password rules of
 * PostgreSQL's tools (`-w` never prompts, `-W` prompts before connecting, otherwise a prompt only
 * when the server asks, nothing else supplies a password, and stdin is a terminal).
 *
 * The transport layer is imported only when rsockets are asked for, so a TCP-only run loads no
 * FFI. `PG_RDMA_PROVIDER=kernel` runs "rsocket" connections over the FFI on kernel sockets (the
 * same code path without an RDMA device; the tests use it).
 *
 * @module
 */
import {
  type Client,
  type ClientOptions,
  type ConnInfo,
  connectWith,
  lookupPassword,
  resolveConnInfo,
  type SocketFactory,
} from "../pg/mod.ts";
import { optionSource } from "../pg/conninfo.ts";
import type { CommandContext } from "./_commands.ts";
import { promptPassword } from "./_prompt.ts";

/** What {@linkcode openConnection} needs from a command's context. */
export type ConnectContext = Pick<
  CommandContext,
  "connection" | "passwordPrompt" | "env" | "signal" | "stderr" | "debug"
>;

/** The rsocket provider named by `PG_RDMA_PROVIDER` (default `rdma`). */
export function providerFromEnv(env: Readonly<Record<string, string | undefined>>): "rdma" | "kernel" {
  const p = env.PG_RDMA_PROVIDER;
  if (p === undefined || p === "" || p === "rdma") return "rdma";
  if (p === "kernel") return "kernel";
  throw new TypeError(`invalid PG_RDMA_PROVIDER value: "${p}" (expected rdma or kernel)`);
}

/**
 * The socket factory `with_rsocket` asks for: `undefined` (the client's native TCP) for
 * `false`, or `prefer` when no rsocket can be created here; the rsocket factory otherwise.
 */
export async function socketFactoryFor(
  info: ConnInfo,
  ctx: Pick<ConnectContext, "env" | "debug">,
): Promise<SocketFactory | undefined> {
  const setting = info.options.with_rsocket ?? "false";
  if (setting === "false") return undefined;
  const provider = providerFromEnv(ctx.env);
  const transport = await import("../transport/mod.ts");
  const fromString = optionSource(info, "with_rsocket") === "connection string" ||
    optionSource(info, "with_rsocket") === "service";
  const decision = transport.selectTransport({
    setting: fromString ? setting : undefined,
    env: fromString ? {} : ctx.env,
    // With the kernel provider, "prefer" can always have its rsocket.
    probe: provider === "kernel" ? () => ({ ok: true }) : undefined,
    notice: () => {}, // the debug line below says it
  });
  ctx.debug(`transport: ${decision.reason}${provider === "kernel" ? " (kernel provider)" : ""}`);
  if (decision.transport !== "rsocket") return undefined;
  return transport.rsocketFactory({ provider }) as SocketFactory;
}

/**
 * Resolves the command's connection settings (plus `extra` keywords, e.g. `replication`) with
 * the environment, service file and defaults. Throws `ConnectionStringError` on bad settings.
 */
export function resolveFor(
  ctx: Pick<ConnectContext, "connection" | "env">,
  extra: Record<string, string> = {},
): ConnInfo {
  return resolveConnInfo({ ...ctx.connection, ...extra }, { env: { ...ctx.env } });
}

/**
 * The client options a command connects with: socket factory per `with_rsocket`, and the
 * password per `-w` / `-W` / prompt-when-asked. For `-W` this prompts now.
 */
export async function clientOptionsFor(
  info: ConnInfo,
  ctx: ConnectContext,
): Promise<ClientOptions & { env: Record<string, string | undefined> }> {
  const env = { ...ctx.env };
  const socketFactory = await socketFactoryFor(info, ctx);
  const prompt = () =>
    promptPassword(`Password for user ${info.options.user}: `, {
      signal: ctx.signal,
      output: ctx.stderr,
    });
  let password: ClientOptions["password"];
  if (ctx.passwordPrompt === "always") {
    password = await prompt();
  } else if (ctx.passwordPrompt === "auto") {
    // Asked only when the server wants a password: the connection string and .pgpass come first
    // (the client tries them when this returns undefined), and only a terminal is prompted.
    password = async () => {
      if (info.options.password) return undefined;
      if (info.hosts.some((h) => lookupPassword(info, h, { env }) !== undefined)) return undefined;
      const stdin = process.stdin as { isTTY?: boolean };
      return stdin.isTTY === true ? await prompt() : undefined;
    };
  }
  return {
    env,
    ...(socketFactory ? { socketFactory } : {}),
    ...(password !== undefined ? { password } : {}),
    lookupPassword: (h) => lookupPassword(info, h, { env }),
  };
}

/**
 * Opens a client the way the command line asks (see the module doc).
 *
 * @example
 * ```ts
 * const client = await openConnection(ctx);
 * try { await client.simpleQuery("SELECT 1"); } finally { await client.close(); }
 * ```
 */
export async function openConnection(
  ctx: ConnectContext,
  options: ClientOptions & { extra?: Record<string, string> } = {},
): Promise<Client> {
  const { extra, ...rest } = options;
  const info = resolveFor(ctx, extra);
  const base = await clientOptionsFor(info, ctx);
  return await connectWith(info, { ...base, ...rest });
}

/**
 * What a library that connects by itself (replication/, dump/) needs to connect as the command
 * line asks: the keyword record and the `connect` options (transport, password prompt, env).
 * `extra` (e.g. `replication: "true"`) is only used to decide those; the library adds its own.
 */
export async function libraryConnection(
  ctx: ConnectContext,
  extra: Record<string, string> = {},
): Promise<{
  connection: Record<string, string>;
  connectOptions: Omit<ClientOptions, "lookupPassword"> & { env: Record<string, string | undefined> };
}> {
  const info = resolveFor(ctx, extra);
  const { lookupPassword: _unused, ...connectOptions } = await clientOptionsFor(info, ctx);
  return { connection: { ...ctx.connection }, connectOptions };
}
