/**
 * SCRAM-SHA-256 (RFC 5802/7677) and SCRAM-SHA-256-PLUS with `tls-server-end-point` channel
 * binding (RFC 5929), plus the md5 password hash; all via node:crypto, which Deno, Bun and Node
 * share. I/O-free: messages in and out as bytes.
 *
 * SASLprep (RFC 4013) as libpq applies it: a pure-ASCII password passes through unchanged
 * (libpq's shortcut); otherwise non-ASCII spaces become U+0020, "commonly mapped to nothing"
 * characters are removed and the result is NFKC-normalised; if that leaves a prohibited
 * character (controls, private use, surrogates, non-characters), the password is used as raw
 * UTF-8, as libpq does. The bidirectional-text check of RFC 3454 section 6 is not done (a
 * password failing it is sent normalised instead of raw).
 *
 * @module
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** md5 password response: "md5" + md5hex(md5hex(password + user) + salt). */
export function md5Password(user: string, password: string, salt: Uint8Array): string {
  const inner = createHash("md5").update(password + user, "utf8").digest("hex");
  return "md5" + createHash("md5").update(inner, "utf8").update(salt).digest("hex");
}

// RFC 3454 C.1.2 non-ASCII spaces.
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
// RFC 3454 B.1 commonly mapped to nothing.
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
// Prohibited output (RFC 3454 C.2-C.9): controls, private use, surrogates, non-characters, tags.
// deno-lint-ignore no-control-regex
const PROHIBITED = /[\u0000-\u001F\u007F-\u009F\u0340\u0341\u06DD\u070F\u180E\u200E\u200F\u202A-\u202E\u2028\u2029\u2060-\u2063\u206A-\u206F\u2FF0-\u2FFB\uD800-\uDFFF\uE000-\uF8FF\uFFF9-\uFFFD]|[\u{F0000}-\u{10FFFF}]|[\u{E0001}\u{E0020}-\u{E007F}]/u;

/** SASLprep as libpq does it; see the module doc. */
export function saslprep(password: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const mapped = password.replace(NON_ASCII_SPACE, " ").replace(MAPPED_TO_NOTHING, "").normalize("NFKC");
  if (mapped === "" || PROHIBITED.test(mapped)) return password;
  return mapped;
}

function hmac(key: Uint8Array, data: string | Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

function b64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return btoa(s);
}

function unb64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Error in the SCRAM exchange (bad server message, failed server proof). */
export class ScramError extends Error {
  override name = "ScramError";
}

/**
 * One SCRAM client exchange. `channelBinding`: the `tls-server-end-point` hash for
 * SCRAM-SHA-256-PLUS; `"y"` when the client could bind but the server offered no PLUS;
 * undefined for no TLS.
 */
export class ScramClient {
  readonly mechanism: string;
  #password: string;
  #nonce: string;
  #gs2: string;
  #cbData: Uint8Array | undefined;
  #clientFirstBare: string;
  #serverSignature: Uint8Array | undefined;
  #done = false;

  /** `nonce` and `user` are for test vectors; PostgreSQL takes the user from the startup packet. */
  constructor(password: string, channelBinding: Uint8Array | "y" | undefined, nonce = b64(new Uint8Array(randomBytes(18))), user = "") {
    this.#password = password;
    this.#nonce = nonce;
    if (channelBinding instanceof Uint8Array) {
      this.mechanism = "SCRAM-SHA-256-PLUS";
      this.#gs2 = "p=tls-server-end-point,,";
      this.#cbData = channelBinding;
    } else {
      this.mechanism = "SCRAM-SHA-256";
      this.#gs2 = channelBinding === "y" ? "y,," : "n,,";
    }
    // The user name is taken from the startup message; libpq sends it empty.
    this.#clientFirstBare = `n=${user.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${this.#nonce}`;
  }

  /** Whether this exchange binds to the TLS channel. */
  get channelBound(): boolean {
    return this.#cbData !== undefined;
  }

  /** Whether the server's final message was verified. */
  get completed(): boolean {
    return this.#done;
  }

  /** client-first-message. */
  first(): Uint8Array {
    return enc.encode(this.#gs2 + this.#clientFirstBare);
  }

  /** Takes server-first-message, returns client-final-message. */
  final(serverFirstBytes: Uint8Array): Uint8Array {
    const serverFirst = dec.decode(serverFirstBytes);
    const attrs = parseAttrs(serverFirst);
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (attrs.has("e")) throw new ScramError(`SCRAM error from server: ${attrs.get("e")}`);
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) throw new ScramError("malformed SCRAM message (server-first-message)");
    if (!nonce.startsWith(this.#nonce) || nonce.length <= this.#nonce.length) throw new ScramError("invalid SCRAM response (nonce mismatch)");
    const gs2 = enc.encode(this.#gs2);
    const cb = this.#cbData ? concat(gs2, this.#cbData) : gs2;
    const withoutProof = `c=${b64(cb)},r=${nonce}`;
    const salted = new Uint8Array(pbkdf2Sync(saslprep(this.#password), unb64(salt), iterations, 32, "sha256"));
    const clientKey = hmac(salted, "Client Key");
    const storedKey = new Uint8Array(createHash("sha256").update(clientKey).digest());
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = clientKey.map((b, i) => b ^ signature[i]);
    this.#serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return enc.encode(`${withoutProof},p=${b64(proof)}`);
  }

  /** Verifies server-final-message; throws when the server did not prove it knows the password. */
  verify(serverFinalBytes: Uint8Array): void {
    const attrs = parseAttrs(dec.decode(serverFinalBytes));
    if (attrs.has("e")) throw new ScramError(`SCRAM error from server: ${attrs.get("e")}`);
    const v = attrs.get("v");
    if (!v || !this.#serverSignature) throw new ScramError("malformed SCRAM message (server-final-message)");
    const got = unb64(v);
    if (got.length !== this.#serverSignature.length || !timingSafeEqual(got, this.#serverSignature)) {
      throw new ScramError("incorrect server signature");
    }
    this.#done = true;
  }
}

function parseAttrs(s: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of s.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) m.set(part[0], part.slice(2));
  }
  return m;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// Signature algorithm OIDs (DER content bytes, hex) → digest used for tls-server-end-point.
// RFC 5929 section 4.1: MD5 and SHA-1 are replaced by SHA-256.
const SIG_HASH: Record<string, string> = {
  "2a864886f70d010104": "sha256", // md5WithRSAEncryption
  "2a864886f70d010105": "sha256", // sha1WithRSAEncryption
  "2a864886f70d01010b": "sha256", // sha256WithRSAEncryption
  "2a864886f70d01010c": "sha384",
  "2a864886f70d01010d": "sha512",
  "2a864886f70d01010e": "sha224",
  "2a8648ce3d040301": "sha224", // ecdsa-with-SHA224
  "2a8648ce3d040302": "sha256",
  "2a8648ce3d040303": "sha384",
  "2a8648ce3d040304": "sha512",
  "2a8648ce3d0401": "sha256", // ecdsa-with-SHA1
  "2a8648ce380403": "sha256", // dsa-with-sha1
  "608648016503040302": "sha256", // dsa-with-sha256
};

/**
 * The `tls-server-end-point` channel binding data: the hash of the server certificate (DER),
 * with the hash of the certificate's signature algorithm (SHA-256 for MD5/SHA-1).
 */
export function serverEndPointHash(der: Uint8Array): Uint8Array {
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm SEQUENCE { OID, ... }, sig }
  let p = 0;
  const readHeader = (): { tag: number; len: number } => {
    const tag = der[p++];
    let len = der[p++];
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[p++];
    }
    if (p + len > der.length || tag === undefined) throw new ScramError("could not parse the server certificate");
    return { tag, len };
  };
  readHeader(); // Certificate
  const tbs = readHeader();
  p += tbs.len;
  readHeader(); // AlgorithmIdentifier
  const oid = readHeader();
  if (oid.tag !== 6) throw new ScramError("could not parse the server certificate's signature algorithm");
  const key = Array.from(der.subarray(p, p + oid.len), (b) => b.toString(16).padStart(2, "0")).join("");
  const algo = SIG_HASH[key];
  if (!algo) throw new ScramError(`could not find digest for the server certificate's signature algorithm (OID bytes ${key})`);
  return new Uint8Array(createHash(algo).update(der).digest());
}
