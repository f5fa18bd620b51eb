/**
 * Transport selection: the one function that decides between rsockets and the runtime's native
 * TCP for a connection, the way Postgres Pro Enterprise's libpq does, plus `prefer`.
 *
 * | `with_rsocket` (or `WITH_RSOCKET`) | decision |
 * |---|---|
 * | `true` | rsockets; with no RDMA device the connection fails with the ENODEV error, never TCP |
 * | `false` (default) | native TCP |
 * | `prefer` (ours) | rsockets when an rsocket can be created, else TCP with one notice on stderr |
 *
 * The connection string (or service) wins over the environment, as for every libpq setting.
 * The decision carries its reason, so callers can show which transport was used and why.
 *
 * @module
 */
import { match } from "ts-pattern";
import type { Duplex } from "node:stream";
import process from "node:process";
import { AF_INET, openProvider } from "../ffi/mod.ts";
import { checkRsocketOptions, type RsocketOptions, RsocketSocket } from "./socket.ts";

/** What `with_rsocket` may say, normalised. */
export type WithRsocket = "true" | "false" | "prefer";

/** The chosen transport and why. */
export interface TransportDecision {
  transport: "rsocket" | "tcp";
  /** Where the setting came from. */
  source: "connection string" | "environment" | "default";
  /** The normalised setting. */
  setting: WithRsocket;
  /** One sentence a person can read: why this transport. */
  reason: string;
}

/** Result of probing for rsockets: ok, or the error that says why not. */
export type RsocketProbe = { ok: true } | { ok: false; error: Error };

const TRUE = new Set(["true", "on", "yes", "1", "t", "y"]);
const FALSE = new Set(["false", "off", "no", "0", "f", "n"]);

/**
 * Normalises a `with_rsocket` value; throws a TypeError naming the value when it is none of
 * true/false/prefer (or libpq's boolean spellings on/off/yes/no/1/0).
 */
export function parseWithRsocket(value: string, where = "with_rsocket"): WithRsocket {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return "true";
  if (FALSE.has(v)) return "false";
  if (v === "prefer") return "prefer";
  throw new TypeError(`invalid ${where} value: "${value}" (expected true, false or prefer)`);
}

let noticed = false;

/**
 * Decides the transport for one connection.
 *
 * @param setting `with_rsocket` from the connection string or service, when given there. Pass
 *   it only when it came from there (pg's `optionSource(info, "with_rsocket")` says so): a
 *   value conninfo filled in from `WITH_RSOCKET` or its default must not outrank the
 *   environment rule here.
 * @param env the environment, for `WITH_RSOCKET` (default: `process.env`).
 * @param probe tells whether an rsocket can be created here; called only for `prefer`
 *   (default: {@linkcode probeRsocket}).
 * @param notice where `prefer`'s one fallback notice goes (default: stderr, once per process).
 *
 * @example
 * ```ts
 * const d = selectTransport({ setting: "prefer", probe: () => ({ ok: false, error: new Error("no RDMA device") }) });
 * d.transport; // "tcp"
 * ```
 */
export function selectTransport(opts: {
  setting?: string;
  env?: Record<string, string | undefined>;
  probe?: () => RsocketProbe;
  notice?: (message: string) => void;
} = {}): TransportDecision {
  const env = opts.env ?? process.env;
  const [raw, source] = opts.setting !== undefined && opts.setting !== ""
    ? [opts.setting, "connection string" as const]
    : env.WITH_RSOCKET !== undefined && env.WITH_RSOCKET !== ""
    ? [env.WITH_RSOCKET, "environment" as const]
    : ["false", "default" as const];
  const setting = parseWithRsocket(raw, source === "environment" ? "WITH_RSOCKET" : "with_rsocket");
  const from = source === "default" ? "by default" : `by with_rsocket=${raw} in the ${source}`;
  return match(setting)
    .with("true", (): TransportDecision => ({ transport: "rsocket", source, setting, reason: `rsockets requested ${from}` }))
    .with("false", (): TransportDecision => ({ transport: "tcp", source, setting, reason: `native TCP ${from}` }))
    .with("prefer", (): TransportDecision => {
      const probe = (opts.probe ?? probeRsocket)();
      if (probe.ok) return { transport: "rsocket", source, setting, reason: `rsockets available, preferred ${from}` };
      const reason = `rsockets preferred ${from}, but unavailable (${probe.error.message}); using native TCP`;
      const notice = opts.notice ?? ((m: string) => {
        if (!noticed) process.stderr.write(`pg-rdma: notice: ${m}\n`);
        noticed = true;
      });
      notice(reason);
      return { transport: "tcp", source, setting, reason };
    })
    .exhaustive();
}

/**
 * The default probe: can an rsocket be created here? Opens librdmacm, creates one socket and
 * closes it; any failure (no library, ENODEV: no device) is the reason it cannot.
 *
 * @example
 * ```ts
 * const p = probeRsocket();
 * if (!p.ok) console.error(p.error.message); // "rsocket() failed: no RDMA device is present (ENODEV) ..."
 * ```
 */
export function probeRsocket(): RsocketProbe {
  try {
    const rdma = openProvider("rdma");
    rdma.close(rdma.socket(AF_INET));
    return { ok: true };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
  }
}

/** Where a socket should connect. Unix: `path` is the socket file (`<dir>/.s.PGSQL.<port>`). */
export type SocketTarget =
  | { kind: "tcp"; host: string; port: number; hostaddr?: string }
  | { kind: "unix"; path: string };

/**
 * Makes a CONNECTED `node:stream` Duplex (net.Socket-like) for a target: the contract of pg/'s
 * client, which also uses it for cancel requests. Abort `signal` to give up (connect_timeout).
 */
export type SocketFactory = (
  target: SocketTarget,
  opts: { signal: AbortSignal; keepAlive?: { idle?: number } },
) => Duplex | Promise<Duplex>;

/**
 * A socket factory that connects over rsockets (`provider` `rdma` by default, `kernel` for TCP
 * through the same code) with the given tuning. `hostaddr` is used when present, else `host`
 * (resolved with `dns.lookup`). Unix targets are refused with a TypeError: rsockets have none.
 * The socket has Nagle off and, when asked, keepalives after `keepAlive.idle` seconds.
 *
 * @example
 * ```ts
 * const factory = rsocketFactory({ provider: "rdma", sqSize: 256, inlineSize: 128 });
 * const s = await factory({ kind: "tcp", host: "10.0.0.2", port: 5432 }, { signal: AbortSignal.timeout(5000) });
 * ```
 */
export function rsocketFactory(options: RsocketOptions = {}): SocketFactory {
  // Validate now, so a bad option fails where it is written, not at the first connection.
  checkRsocketOptions(options);
  return (target, { signal, keepAlive }) => {
    if (target.kind === "unix") {
      throw new TypeError(
        `rsockets have no unix-domain sockets: cannot connect to "${target.path}"; use a TCP host, or native TCP (with_rsocket=false)`,
      );
    }
    return new Promise<Duplex>((resolve, reject) => {
      const s = new RsocketSocket({ ...options, signal });
      const onError = (e: Error) => reject(e);
      s.once("error", onError);
      s.connect({
        ...options,
        host: target.hostaddr || target.host,
        port: target.port,
        noDelay: true,
        keepAlive: keepAlive !== undefined,
        keepAliveInitialDelay: (keepAlive?.idle ?? 0) * 1000,
      }, () => {
        s.off("error", onError);
        resolve(s);
      });
    });
  };
}
