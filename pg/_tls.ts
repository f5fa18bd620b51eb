/**
 * TLS for the client: which attempts `sslmode` implies, the SSLRequest handshake (or direct TLS
 * with ALPN "postgresql", PostgreSQL 17+), and wrapping the already-connected socket with
 * `node:tls` `connect({ socket })`. Measured: Deno 2.9, Bun 1.4 and Node 20 all wrap an existing
 * `node:net` socket this way, verify against a given CA and expose the peer certificate's DER
 * (needed for SCRAM-SHA-256-PLUS).
 *
 * libpq semantics kept: with a root certificate file present the chain is verified in every
 * sslmode (so `require` behaves like `verify-ca`, and `prefer` retries without TLS on failure);
 * `sslrootcert=system` uses the runtime's trusted roots and demands `verify-full`; SNI is sent
 * unless `sslsni=0` or the host is an IP address; the client refuses bytes that arrive
 * unencrypted right after the server's `S` (CVE-2021-23222).
 *
 * @module
 */
import { createPrivateKey } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from "node:tls";
import { SSL_REQUEST } from "./_codec.ts";

/** Failure of TLS setup; the message follows libpq's. */
export class TlsError extends Error {
  override name = "TlsError";
}

/** What to do about TLS for one host, decided from the options before connecting. */
export interface TlsPlan {
  mode: "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
  /** Attempts in order: with TLS, without. */
  attempts: ("tls" | "plain")[];
  direct: boolean;
  verify: "none" | "ca" | "full";
  ca?: Uint8Array;
  cert?: Uint8Array;
  key?: Uint8Array;
  /** `sslpassword`: passphrase of an encrypted `sslkey`. */
  passphrase?: string;
  minVersion?: string;
  maxVersion?: string;
}

const MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
const PROTO: Record<string, string> = { "TLSv1": "TLSv1", "TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3" };

function readFile(kind: string, path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new TlsError(`could not read ${kind} file "${path}": ${(e as Error).message}`, { cause: e });
  }
}

/** Decides the TLS attempts for a connection from libpq options (`sslmode`, `sslrootcert`, ...). */
export function planTls(o: Readonly<Record<string, string | undefined>>, unix: boolean, home: string | undefined = safeHome()): TlsPlan {
  const mode = (o.sslmode ?? "prefer") as TlsPlan["mode"];
  if (!MODES.includes(mode)) throw new TlsError(`invalid sslmode value: "${mode}"`);
  const negotiation = o.sslnegotiation ?? "postgres";
  if (negotiation !== "postgres" && negotiation !== "direct") throw new TlsError(`invalid sslnegotiation value: "${negotiation}"`);
  const direct = negotiation === "direct";
  // TLS is never used over a unix socket (libpq skips it there).
  if (unix || mode === "disable") return { mode, attempts: ["plain"], direct: false, verify: "none" };
  if (direct && (mode === "allow" || mode === "prefer")) {
    throw new TlsError(`weak sslmode "${mode}" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")`);
  }
  const plan: TlsPlan = {
    mode,
    attempts: mode === "allow" ? ["plain", "tls"] : mode === "prefer" ? ["tls", "plain"] : ["tls"],
    direct,
    verify: mode === "verify-full" ? "full" : mode === "verify-ca" ? "ca" : "none",
  };
  const dir = home ? join(home, ".postgresql") : undefined;
  const rootcert = o.sslrootcert ?? (dir ? join(dir, "root.crt") : undefined);
  if (rootcert === "system") {
    if (mode !== "verify-full") throw new TlsError(`weak sslmode "${mode}" may not be used with sslrootcert=system (use "verify-full")`);
  } else if (rootcert && existsSync(rootcert)) {
    // libpq verifies the chain whenever a root certificate is there, whatever the sslmode
    // (require then behaves like verify-ca; prefer falls back to no TLS if verification fails).
    plan.ca = readFile("root certificate", rootcert);
    if (plan.verify === "none") plan.verify = "ca";
  } else if (plan.verify !== "none") {
    throw new TlsError(`root certificate file "${rootcert ?? "~/.postgresql/root.crt"}" does not exist\nEither provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification.`);
  }
  const cert = o.sslcert ?? (dir ? join(dir, "postgresql.crt") : undefined);
  const key = o.sslkey ?? (dir ? join(dir, "postgresql.key") : undefined);
  if (cert && existsSync(cert)) {
    plan.cert = readFile("certificate", cert);
    if (!key || !existsSync(key)) throw new TlsError(`certificate present, but not private key file "${key}"`);
    checkKeyPermissions(key);
    plan.key = readFile("private key", key);
    if (o.sslpassword) plan.passphrase = o.sslpassword;
    // Load it here so that a wrong sslpassword reads the same in every runtime (Deno's TLS
    // silently drops a key it cannot decrypt; Bun throws an OpenSSL code).
    try {
      createPrivateKey({ key: Buffer.from(plan.key), passphrase: plan.passphrase ?? "" });
    } catch (e) {
      throw new TlsError(`could not load private key file "${key}": ${(e as Error).message}`, { cause: e });
    }
  }
  for (const [opt, field] of [["ssl_min_protocol_version", "minVersion"], ["ssl_max_protocol_version", "maxVersion"]] as const) {
    const v = o[opt];
    if (v === undefined || v === "") continue;
    const canon = Object.keys(PROTO).find((k) => k.toLowerCase() === v.toLowerCase()); // libpq: case-insensitive
    if (!canon) throw new TlsError(`invalid ${opt} value: "${v}"`);
    plan[field] = PROTO[canon];
  }
  plan.minVersion ??= "TLSv1.2";
  return plan;
}

function safeHome(): string | undefined {
  try {
    return homedir();
  } catch {
    return undefined;
  }
}

function checkKeyPermissions(path: string): void {
  const st = statSync(path);
  const uid = typeof process.getuid === "function" ? process.getuid() : -1;
  const bad = st.uid === uid ? (st.mode & 0o077) !== 0 : st.uid === 0 ? (st.mode & 0o037) !== 0 : false;
  if (bad) {
    throw new TlsError(`private key file "${path}" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root`);
  }
}

/** Reads exactly one byte (the reply to SSLRequest); more bytes at once are an attack. */
function readOneByte(socket: Duplex, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const done = (f: () => void) => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      signal.removeEventListener("abort", onAbort);
      f();
    };
    const onData = (chunk: Uint8Array) => {
      socket.pause();
      done(() => {
        if (chunk.length > 1) reject(new TlsError("received unencrypted data after SSL request"));
        else resolve(chunk[0]);
      });
    };
    const onError = (e: Error) => done(() => reject(e));
    const onClose = () => done(() => reject(new TlsError("server closed the connection unexpectedly during the SSL request")));
    const onAbort = () => done(() => reject(signal.reason));
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.resume();
  });
}

/**
 * Negotiates TLS on a connected socket. Returns the TLS socket, or undefined when the server
 * declined (`N`) and the plan allows going on in the clear (the caller keeps the raw socket).
 */
export async function startTls(socket: Duplex, plan: TlsPlan, host: string, sni: boolean, signal: AbortSignal): Promise<TLSSocket | undefined> {
  if (!plan.direct) {
    socket.write(SSL_REQUEST);
    const reply = await readOneByte(socket, signal);
    if (reply === 0x4e /* N */) {
      if (plan.attempts.includes("plain")) return undefined;
      throw new TlsError("server does not support SSL, but SSL was required");
    }
    if (reply === 0x45 /* E: pre-7.0 server or an error */) throw new TlsError("server does not support SSL, but SSL was required (it answered the SSL request with an error)");
    if (reply !== 0x53 /* S */) throw new TlsError(`received invalid response to SSL negotiation: ${String.fromCharCode(reply)}`);
  }
  const servername = sni && isIP(host) === 0 && host !== "" ? host : undefined;
  return await new Promise<TLSSocket>((resolve, reject) => {
    let t: TLSSocket;
    try {
      t = tlsConnect({
        socket,
        servername,
        ca: plan.ca ? Buffer.from(plan.ca) : undefined,
        cert: plan.cert ? Buffer.from(plan.cert) : undefined,
        key: plan.key ? Buffer.from(plan.key) : undefined,
        passphrase: plan.passphrase,
        rejectUnauthorized: plan.verify !== "none",
        // Host names are checked below, after the chain, so the message can be libpq's.
        checkServerIdentity: () => undefined,
        minVersion: plan.minVersion as "TLSv1.2" | undefined,
        maxVersion: plan.maxVersion as "TLSv1.3" | undefined,
        ALPNProtocols: plan.direct ? ["postgresql"] : undefined,
      });
    } catch (e) {
      reject(new TlsError(`SSL error: ${(e as Error).message}`, { cause: e }));
      return;
    }
    const cleanup = () => {
      t.off("secureConnect", onSecure);
      t.off("error", onError);
      signal.removeEventListener("abort", onAbort);
    };
    const onError = (e: Error) => {
      cleanup();
      t.destroy();
      reject(new TlsError(`SSL error: ${e.message}`, { cause: e }));
    };
    const onAbort = () => {
      cleanup();
      t.destroy();
      reject(signal.reason);
    };
    const onSecure = () => {
      cleanup();
      if (plan.direct && t.alpnProtocol !== "postgresql") {
        t.destroy();
        reject(new TlsError("SSL connection was established without ALPN protocol negotiation extension"));
        return;
      }
      if (plan.verify === "full") {
        const cert = t.getPeerCertificate();
        const err = checkServerIdentity(host, cert);
        if (err) {
          t.destroy();
          reject(new TlsError(mismatchMessage(cert, host), { cause: err }));
          return;
        }
      }
      resolve(t);
    };
    t.once("secureConnect", onSecure);
    t.once("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function mismatchMessage(cert: PeerCertificate, host: string): string {
  const names = (cert.subjectaltname ?? "").split(", ").filter(Boolean).map((n) => n.replace(/^(DNS|IP Address):/, ""));
  if (names.length === 0 && cert.subject?.CN) names.push(String(cert.subject.CN));
  if (names.length === 0) return `could not get server's host name from server certificate`;
  if (names.length === 1) return `server certificate for "${names[0]}" does not match host name "${host}"`;
  const others = names.length - 1;
  return `server certificate for "${names[0]}" (and ${others} other name${others > 1 ? "s" : ""}) does not match host name "${host}"`;
}

/** DER of the server certificate of a TLS socket. */
export function peerCertificateDer(t: TLSSocket): Uint8Array | undefined {
  const raw = t.getPeerCertificate()?.raw;
  return raw ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
}
