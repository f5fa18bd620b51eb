// Connection-string syntax, as libpq's fe-connect.c reads it: keyword/value strings
// (conninfo_parse) and postgresql:// URIs (conninfo_uri_parse_options, conninfo_uri_parse_params,
// conninfo_uri_decode). Only syntax here: values are checked later, when settings are resolved,
// as libpq checks them when it connects. Error messages are libpq's, word for word.
import { ConnectionStringError } from "./errors.ts";
import { KEYWORD_SPECS } from "./_keywords.ts";

const URI_PREFIXES = ["postgresql://", "postgres://"] as const;

/** Length of the URI designator `s` starts with (case-sensitive, as in libpq), or 0. */
export function uriPrefixLength(s: string): number {
  for (const p of URI_PREFIXES) if (s.startsWith(p)) return p.length;
  return 0;
}

/** libpq's recognized_connection_string(): a URI, or anything with an "=" in it. */
export function isConnectionString(s: string): boolean {
  return uriPrefixLength(s) > 0 || s.includes("=");
}

/** C's isspace() in the "C" locale. */
function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\v" || c === "\f";
}

function fail(message: string, keyword?: string): never {
  throw new ConnectionStringError(message, { keyword });
}

/**
 * Stores one value as libpq's conninfo_storeval() does: the legacy `requiressl` becomes sslmode;
 * an unknown keyword is an error unless `ignoreMissing` (then false is returned).
 */
export function storeValue(
  out: Record<string, string>,
  keyword: string,
  value: string,
  ignoreMissing: boolean,
  decode: boolean,
): boolean {
  if (keyword === "requiressl") {
    keyword = "sslmode";
    value = value[0] === "1" ? "require" : "prefer";
  }
  if (!KEYWORD_SPECS.has(keyword)) {
    if (ignoreMissing) return false;
    fail(`invalid connection option "${keyword}"`, keyword);
  }
  out[keyword] = decode ? uriDecode(value, shownValue(keyword, value)) : value;
  return true;
}

/** A value as an error message may show it: secrets (passwords) as `********`. */
function shownValue(keyword: string, value: string): string {
  return KEYWORD_SPECS.get(keyword)?.secret ? "********" : value;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  return -1;
}

/**
 * Percent-decoding over UTF-8 bytes (libpq decodes bytes; a sequence that is not UTF-8 comes out
 * as U+FFFD). `%00` is refused, as libpq does, since C strings cannot hold it. Like libpq 17+,
 * spaces around a value are dropped and a space inside one is an error (write `%20`).
 */
export function uriDecode(str: string, shown: string = str): string {
  if (!str.includes("%") && !str.includes(" ")) return str;
  const bytes = utf8Encoder.encode(str);
  const n = bytes.length;
  const out = new Uint8Array(n);
  let o = 0;
  let i = 0;
  while (bytes[i] === 0x20) i++;
  while (i < n) {
    const b = bytes[i];
    if (b === 0x20) break;
    if (b !== 0x25) {
      out[o++] = b;
      i++;
      continue;
    }
    const hi = hexValue(bytes[i + 1]);
    const lo = hi < 0 ? -1 : hexValue(bytes[i + 2]);
    if (lo < 0) fail(`invalid percent-encoded token: "${shown}"`);
    const c = (hi << 4) | lo;
    if (c === 0) fail(`forbidden value %00 in percent-encoded value: "${shown}"`);
    out[o++] = c;
    i += 3;
  }
  while (bytes[i] === 0x20) i++;
  if (i < n) fail(`unexpected spaces found in "${shown}", use percent-encoded spaces (%20) instead`);
  return utf8Decoder.decode(out.subarray(0, o));
}

/** Keyword/value form: `host=db port=5433 password='it''s'` (libpq's conninfo_parse). */
export function parseKeywordValue(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const n = s.length;
  let i = 0;
  while (i < n) {
    while (i < n && isSpace(s[i])) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && s[i] !== "=" && !isSpace(s[i])) i++;
    const name = s.slice(start, i);
    while (i < n && isSpace(s[i])) i++;
    if (s[i] !== "=") fail(`missing "=" after "${name}" in connection info string`, name);
    i++;
    while (i < n && isSpace(s[i])) i++;
    let value = "";
    if (s[i] !== "'") {
      // Unquoted: ends at whitespace; a backslash takes the next character literally.
      while (i < n) {
        const c = s[i];
        if (isSpace(c)) {
          i++;
          break;
        }
        if (c === "\\") {
          i++;
          if (i < n) value += s[i++];
        } else {
          value += c;
          i++;
        }
      }
    } else {
      i++;
      for (;;) {
        if (i >= n) fail("unterminated quoted string in connection info string", name);
        const c = s[i];
        if (c === "\\") {
          i++;
          if (i < n) value += s[i++];
          continue;
        }
        i++;
        if (c === "'") break;
        value += c;
      }
    }
    storeValue(out, name, value, false, false);
  }
  return out;
}

/** Position of `s[index]` as libpq counts it: 1-based, in bytes of UTF-8. */
function bytePosition(s: string, index: number): number {
  return utf8Encoder.encode(s.slice(0, index)).length + 1;
}

/** URI query parameters (libpq's conninfo_uri_parse_params). */
function parseUriParams(params: string, out: Record<string, string>): void {
  const n = params.length;
  let i = 0;
  while (i < n) {
    let eq = -1;
    let j = i;
    for (;;) {
      const c = params[j];
      if (c === "=") {
        if (eq >= 0) {
          fail(`extra key/value separator "=" in URI query parameter: "${params.slice(i, eq)}"`);
        }
        eq = j++;
      } else if (c === "&" || j >= n) {
        break;
      } else {
        j++;
      }
    }
    if (eq < 0) {
      fail(`missing key/value separator "=" in URI query parameter: "${params.slice(i, j)}"`);
    }
    let keyword = uriDecode(params.slice(i, eq));
    const raw = params.slice(eq + 1, j);
    let value = uriDecode(raw, shownValue(keyword, raw));
    i = j < n ? j + 1 : j;
    // JDBC compatibility, as in libpq: ssl=true means sslmode=require (and nothing else does).
    if (keyword === "ssl" && value === "true") {
      keyword = "sslmode";
      value = "require";
    }
    if (!storeValue(out, keyword, value, true, false)) {
      fail(`invalid URI query parameter: "${keyword}"`, keyword);
    }
  }
}

/**
 * URI form: `postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]`
 * (libpq's conninfo_uri_parse_options). Hosts in `[...]` are IPv6 addresses; every part is
 * percent-decoded, parameter names included.
 */
export function parseUri(uri: string): Record<string, string> {
  const out: Record<string, string> = {};
  const n = uri.length;
  const start = uriPrefixLength(uri);
  const at = (k: number): string => (k < n ? uri[k] : "");
  // The URI as error messages show it: libpq's messages quote it whole, but not its password.
  let shown = uri;
  let p = start;

  // user[:password]@ is present when an "@" comes before any "/".
  while (p < n && uri[p] !== "@" && uri[p] !== "/") p++;
  if (at(p) === "@") {
    let q = start;
    while (uri[q] !== ":" && uri[q] !== "@") q++;
    const user = uri.slice(start, q);
    if (user) storeValue(out, "user", user, false, true);
    if (uri[q] === ":") {
      const from = q + 1;
      while (uri[q] !== "@") q++;
      const password = uri.slice(from, q);
      if (password) {
        storeValue(out, "password", password, false, true);
        shown = `${uri.slice(0, from)}********${uri.slice(q)}`;
      }
    }
    p = q + 1;
  } else {
    p = start;
  }

  // host[:port] pairs separated by commas; the lists keep one slot per host.
  let hosts = "";
  let ports = "";
  let prev: string;
  for (;;) {
    if (at(p) === "[") {
      const from = ++p;
      while (p < n && uri[p] !== "]") p++;
      if (p >= n) {
        fail(
          `end of string reached when looking for matching "]" in IPv6 host address in URI: "${shown}"`,
        );
      }
      if (p === from) fail(`IPv6 host address may not be empty in URI: "${shown}"`);
      hosts += uri.slice(from, p++);
      const c = at(p);
      if (c !== "" && c !== ":" && c !== "/" && c !== "?" && c !== ",") {
        fail(
          `unexpected character "${c}" at position ${
            bytePosition(uri, p)
          } in URI (expected ":" or "/"): "${shown}"`,
        );
      }
    } else {
      const from = p;
      while (p < n && !":/?,".includes(uri[p])) p++;
      hosts += uri.slice(from, p);
    }
    prev = at(p);
    if (prev === ":") {
      const from = ++p;
      while (p < n && !"/?,".includes(uri[p])) p++;
      ports += uri.slice(from, p);
      prev = at(p);
    }
    if (prev !== ",") break;
    p++;
    hosts += ",";
    ports += ",";
  }
  if (hosts) storeValue(out, "host", hosts, false, true);
  if (ports) storeValue(out, "port", ports, false, true);

  if (prev !== "" && prev !== "?") {
    const from = ++p;
    while (p < n && uri[p] !== "?") p++;
    prev = at(p);
    // An empty dbname is not stored: it would hide PGDATABASE.
    const dbname = uri.slice(from, p);
    if (dbname) storeValue(out, "dbname", dbname, false, true);
  }
  if (prev !== "") parseUriParams(uri.slice(p + 1), out);
  return out;
}
