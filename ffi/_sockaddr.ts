/**
 * `struct sockaddr_in` / `sockaddr_in6` encoder and decoder (I/O-free). Linux layout:
 *
 * ```
 * sockaddr_in  (16 bytes): u16 family (host order) | u16 port (network order) | 4 address bytes | 8 zero
 * sockaddr_in6 (28 bytes): u16 family | u16 port (network order) | u32 flowinfo (network order)
 *                          | 16 address bytes | u32 scope_id (host order)
 * ```
 *
 * Host order is little-endian on x86_64 and aarch64 Linux, the only targets.
 *
 * @module
 */
import { AF_INET, AF_INET6 } from "./constants.ts";

/** An IPv4 or IPv6 socket address, as Node's `socket.address()` shapes it. */
export interface SockAddr {
  readonly family: "IPv4" | "IPv6";
  /** Dotted quad (`127.0.0.1`) or IPv6 text (`::1`, `fe80::1`, `::ffff:10.0.0.1`). */
  readonly address: string;
  readonly port: number;
  /** IPv6 flow label (default 0). */
  readonly flowInfo?: number;
  /** IPv6 scope (interface index for link-local addresses; default 0). */
  readonly scopeId?: number;
}

/** Size of `sockaddr_in`. */
export const SOCKADDR_IN_SIZE = 16;
/** Size of `sockaddr_in6`, and of the buffer that can hold either. */
export const SOCKADDR_IN6_SIZE = 28;

/** Parses a dotted quad into 4 bytes, or returns undefined. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    // Decimal only, no leading zeros (inet_pton rejects octal-looking forms too).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Parses IPv6 text (with `::`, an embedded dotted quad, no zone) into 16 bytes, or undefined. */
export function parseIPv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0].includes(".")) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i] >> 8;
    out[2 * i + 1] = all[i] & 0xff;
  }
  return out;
}

/** Formats 16 bytes as RFC 5952 text: lowercase, longest zero run (≥ 2 groups) as `::`. */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i] << 8) | b[2 * i + 1]);
  // IPv4-mapped (::ffff:a.b.c.d) prints with a dotted quad, as inet_ntop and Node do.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

function checkPort(port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${String(port)}`);
  }
  return port;
}

/**
 * Encodes a socket address into `out` (at least 16 bytes for IPv4, 28 for IPv6; a fresh buffer
 * when omitted) and returns the bytes used (a view of `out`).
 *
 * @example
 * ```ts
 * const b = encodeSockAddr({ family: "IPv4", address: "127.0.0.1", port: 5432 });
 * // b.length === 16, b[2] === 0x15, b[3] === 0x38
 * ```
 */
export function encodeSockAddr(addr: SockAddr, out?: Uint8Array): Uint8Array {
  if (addr === null || typeof addr !== "object") {
    throw new TypeError("a socket address must be an object");
  }
  const port = checkPort(addr.port);
  if (typeof addr.address !== "string") throw new TypeError("address must be a string");
  if (addr.family === "IPv4") {
    const ip = parseIPv4(addr.address);
    if (!ip) throw new TypeError(`not an IPv4 address: ${JSON.stringify(addr.address)}`);
    const b = out ? out.subarray(0, SOCKADDR_IN_SIZE) : new Uint8Array(SOCKADDR_IN_SIZE);
    if (b.length < SOCKADDR_IN_SIZE) {
      throw new RangeError("buffer too small for sockaddr_in (16 bytes)");
    }
    b.fill(0);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port, false);
    b.set(ip, 4);
    return b;
  }
  if (addr.family === "IPv6") {
    const ip = parseIPv6(addr.address);
    if (!ip) throw new TypeError(`not an IPv6 address: ${JSON.stringify(addr.address)}`);
    const flow = addr.flowInfo ?? 0, scope = addr.scopeId ?? 0;
    if (!Number.isInteger(flow) || flow < 0 || flow > 0xffffffff) {
      throw new RangeError("flowInfo must be a 32-bit unsigned integer");
    }
    if (!Number.isInteger(scope) || scope < 0 || scope > 0xffffffff) {
      throw new RangeError("scopeId must be a 32-bit unsigned integer");
    }
    const b = out ? out.subarray(0, SOCKADDR_IN6_SIZE) : new Uint8Array(SOCKADDR_IN6_SIZE);
    if (b.length < SOCKADDR_IN6_SIZE) {
      throw new RangeError("buffer too small for sockaddr_in6 (28 bytes)");
    }
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    v.setUint16(0, AF_INET6, true);
    v.setUint16(2, port, false);
    v.setUint32(4, flow, false);
    b.set(ip, 8);
    v.setUint32(24, scope, true);
    return b;
  }
  throw new TypeError(
    `family must be "IPv4" or "IPv6", got ${JSON.stringify((addr as { family?: unknown }).family)}`,
  );
}

/**
 * Decodes a `sockaddr_in`/`sockaddr_in6` of `length` bytes (the socklen_t the call returned).
 * Throws RangeError for a family other than AF_INET/AF_INET6 or a length too short for it.
 */
export function decodeSockAddr(bytes: Uint8Array, length = bytes.length): SockAddr {
  if (length < 2 || bytes.length < length) {
    throw new RangeError(`sockaddr of ${length} bytes is too short`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = v.getUint16(0, true);
  if (family === AF_INET) {
    if (length < SOCKADDR_IN_SIZE) {
      throw new RangeError(`sockaddr_in needs 16 bytes, got ${length}`);
    }
    return {
      family: "IPv4",
      address: `${bytes[4]}.${bytes[5]}.${bytes[6]}.${bytes[7]}`,
      port: v.getUint16(2, false),
    };
  }
  if (family === AF_INET6) {
    if (length < SOCKADDR_IN6_SIZE) {
      throw new RangeError(`sockaddr_in6 needs 28 bytes, got ${length}`);
    }
    return {
      family: "IPv6",
      address: formatIPv6(bytes.subarray(8, 24)),
      port: v.getUint16(2, false),
      flowInfo: v.getUint32(4, false),
      scopeId: v.getUint32(24, true),
    };
  }
  throw new RangeError(`unsupported address family ${family} (only AF_INET=2 and AF_INET6=10)`);
}
