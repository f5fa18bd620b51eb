/**
 * The authentication exchange of the startup phase, I/O-free: feed it each Authentication
 * (`R`) message body, send what it returns. Enforces `require_auth` and `channel_binding` the way
 * libpq does (same rules, same messages) before answering anything, so a password is never sent
 * to a server the user did not agree to send it to.
 *
 * @module
 */
import { md5Password, ScramClient, ScramError } from "./_scram.ts";
import { passwordMessage, saslInitialResponse, saslResponse } from "./_codec.ts";

/** Authentication request codes (protocol 53.7, AuthenticationXXX). */
export const AUTH = {
  ok: 0,
  kerberosV5: 2,
  cleartext: 3,
  md5: 5,
  gss: 7,
  gssContinue: 8,
  sspi: 9,
  sasl: 10,
  saslContinue: 11,
  saslFinal: 12,
} as const;

/** An authentication failure decided on the client side; its message is libpq's. */
export class AuthError extends Error {
  override name = "AuthError";
}

const METHODS = ["password", "md5", "gss", "sspi", "scram-sha-256", "none"] as const;
type Method = (typeof METHODS)[number];

/** Parsed `require_auth`: which methods may answer, and whether an exchange must happen. */
export interface AuthPolicy {
  raw: string | undefined;
  allowed: ReadonlySet<Method>;
  channelBinding: "disable" | "prefer" | "require";
}

/** Parses `require_auth` and `channel_binding` with libpq's rules and messages. */
export function parseAuthPolicy(requireAuth: string | undefined, channelBinding: string | undefined): AuthPolicy {
  const cb = channelBinding ?? "prefer";
  if (cb !== "disable" && cb !== "prefer" && cb !== "require") throw new AuthError(`invalid channel_binding value: "${cb}"`);
  if (requireAuth === undefined || requireAuth === "") return { raw: undefined, allowed: new Set(METHODS), channelBinding: cb };
  const parts = requireAuth.split(",").map((s) => s.trim());
  const negated = parts[0].startsWith("!");
  const named = new Set<Method>();
  for (const p of parts) {
    if (p.startsWith("!") !== negated) {
      throw new AuthError(negated
        ? `require_auth method "${p}" cannot be mixed with negative methods`
        : `negative require_auth method "${p}" cannot be mixed with non-negative methods`);
    }
    const m = negated ? p.slice(1) : p;
    if (!(METHODS as readonly string[]).includes(m)) throw new AuthError(`invalid require_auth value: "${m}"`);
    if (named.has(m as Method)) throw new AuthError(`require_auth method "${m}" is specified more than once`);
    named.add(m as Method);
  }
  const allowed = negated ? new Set(METHODS.filter((m) => !named.has(m))) : named;
  return { raw: requireAuth, allowed, channelBinding: cb };
}

/** What the connection knows that authentication needs. */
export interface AuthContext {
  user: string;
  /** Asked for lazily: only when the server wants a password. */
  password: () => string | undefined | Promise<string | undefined>;
  /** `tls-server-end-point` hash when TLS is in use, undefined otherwise. */
  tlsEndPoint: () => Uint8Array | undefined;
  tls: boolean;
}

const REASON: Record<number, string> = {
  [AUTH.ok]: "server did not complete authentication",
  [AUTH.cleartext]: "server requested a cleartext password",
  [AUTH.md5]: "server requested a hashed password",
  [AUTH.gss]: "server requested GSSAPI authentication",
  [AUTH.gssContinue]: "server requested GSSAPI authentication",
  [AUTH.sspi]: "server requested SSPI authentication",
  [AUTH.sasl]: "server requested SASL authentication",
  [AUTH.saslContinue]: "server requested SASL authentication",
  [AUTH.saslFinal]: "server requested SASL authentication",
  [AUTH.kerberosV5]: "server requested an unknown authentication type",
};

/** Drives one authentication exchange. */
export class Authenticator {
  #policy: AuthPolicy;
  #ctx: AuthContext;
  #scram: ScramClient | undefined;
  #finished = false; // the client completed some exchange (sent a password / verified SCRAM)
  /** Name of the method used, for diagnostics ("trust", "password", "md5", "SCRAM-SHA-256[-PLUS]"). */
  method = "trust";

  constructor(policy: AuthPolicy, ctx: AuthContext) {
    this.#policy = policy;
    this.#ctx = ctx;
  }

  /** Whether SCRAM-PLUS channel binding was used and verified. */
  get channelBound(): boolean {
    return this.#scram?.channelBound === true && this.#scram.completed;
  }

  #check(code: number): void {
    const p = this.#policy;
    if (p.raw !== undefined) {
      const method: Method | undefined = code === AUTH.ok ? undefined
        : code === AUTH.cleartext ? "password"
        : code === AUTH.md5 ? "md5"
        : code === AUTH.gss || code === AUTH.gssContinue ? "gss"
        : code === AUTH.sspi ? "sspi"
        : code === AUTH.sasl || code === AUTH.saslContinue || code === AUTH.saslFinal ? "scram-sha-256"
        : undefined;
      let ok: boolean;
      if (code === AUTH.ok) ok = this.#finished || p.allowed.has("none");
      else ok = method !== undefined && p.allowed.has(method);
      if (!ok) throw new AuthError(`authentication method requirement "${p.raw}" failed: ${REASON[code] ?? "server requested an unknown authentication type"}`);
    }
    if (p.channelBinding === "require") {
      if (code === AUTH.ok) {
        if (!this.channelBound) throw new AuthError("channel binding required, but server authenticated client without channel binding");
      } else if (code !== AUTH.sasl && code !== AUTH.saslContinue && code !== AUTH.saslFinal) {
        throw new AuthError("channel binding required but not supported by server's authentication request");
      }
    }
  }

  async #password(): Promise<string> {
    const pw = await this.#ctx.password();
    if (pw === undefined || pw === "") throw new AuthError("fe_sendauth: no password supplied");
    return pw;
  }

  /**
   * Handles one AuthenticationXXX message: `code` and the rest of its body. Returns the message
   * to send, `"ok"` when authentication is complete, or undefined when nothing is to be sent.
   */
  async handle(code: number, data: Uint8Array): Promise<Uint8Array | "ok" | undefined> {
    this.#check(code);
    switch (code) {
      case AUTH.ok:
        if (this.#scram && !this.#scram.completed) throw new AuthError("server sent AuthenticationOk before the SCRAM exchange completed");
        return "ok";
      case AUTH.cleartext:
        this.method = "password";
        this.#finished = true;
        return passwordMessage(await this.#password());
      case AUTH.md5:
        this.method = "md5";
        this.#finished = true;
        return passwordMessage(md5Password(this.#ctx.user, await this.#password(), data.subarray(0, 4)));
      case AUTH.sasl:
        return saslInitialResponse(...await this.#saslInit(data));
      case AUTH.saslContinue:
        if (!this.#scram) throw new AuthError("server sent SASLContinue before SASL was started");
        try {
          return saslResponse(this.#scram.final(data));
        } catch (e) {
          throw new AuthError((e as Error).message, { cause: e });
        }
      case AUTH.saslFinal:
        if (!this.#scram) throw new AuthError("server sent SASLFinal before SASL was started");
        try {
          this.#scram.verify(data);
        } catch (e) {
          throw new AuthError(e instanceof ScramError ? e.message : String(e), { cause: e });
        }
        this.#finished = true;
        return undefined;
      case AUTH.gss:
      case AUTH.sspi:
      case AUTH.gssContinue:
        throw new AuthError(`${code === AUTH.sspi ? "SSPI" : "GSSAPI"} authentication is not supported by this client`);
      case AUTH.kerberosV5:
        throw new AuthError("Kerberos 5 authentication not supported");
      default:
        throw new AuthError(`authentication method ${code} not supported`);
    }
  }

  async #saslInit(data: Uint8Array): Promise<[string, Uint8Array]> {
    const mechs: string[] = [];
    let p = 0;
    const dec = new TextDecoder();
    while (p < data.length && data[p] !== 0) {
      const end = data.indexOf(0, p);
      if (end < 0) break;
      mechs.push(dec.decode(data.subarray(p, end)));
      p = end + 1;
    }
    const cb = this.#policy.channelBinding;
    let binding: Uint8Array | "y" | undefined;
    if (mechs.includes("SCRAM-SHA-256-PLUS") && cb !== "disable") {
      if (!this.#ctx.tls) throw new AuthError("server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection");
      binding = this.#ctx.tlsEndPoint();
      if (!binding) throw new AuthError("could not compute the channel binding data of the server certificate");
    } else if (mechs.includes("SCRAM-SHA-256")) {
      if (cb === "require") throw new AuthError("channel binding is required, but server did not offer an authentication method that supports channel binding");
      binding = this.#ctx.tls && cb !== "disable" ? "y" : undefined;
    } else {
      throw new AuthError("none of the server's SASL authentication mechanisms are supported");
    }
    this.#scram = new ScramClient(await this.#password(), binding);
    this.method = this.#scram.mechanism;
    return [this.#scram.mechanism, this.#scram.first()];
  }
}
