// The sockaddr codec, byte by byte: sockaddr_in (16 bytes) and sockaddr_in6 (28 bytes) as Linux
// lays them out, family in host order (little-endian here), port in network order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeSockAddr, encodeSockAddr } from "../ffi/mod.ts";
import { formatIPv6, parseIPv6 } from "../ffi/_sockaddr.ts";

test("encodeSockAddr() lays out sockaddr_in: family 2 LE, port BE, address, 8 zero bytes", () => {
  const b = encodeSockAddr({ family: "IPv4", address: "192.168.1.20", port: 5432 });
  assert.deepEqual([...b], [2, 0, 0x15, 0x38, 192, 168, 1, 20, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test("encodeSockAddr() lays out sockaddr_in6: family 10, port BE, flowinfo BE, address, scope LE", () => {
  const b = encodeSockAddr({
    family: "IPv6",
    address: "fe80::1:2",
    port: 443,
    flowInfo: 0x12345,
    scopeId: 3,
  });
  assert.equal(b.length, 28);
  assert.deepEqual(
    [...b],
    [
      10,
      0,
      0x01,
      0xbb,
      0,
      0x01,
      0x23,
      0x45,
      0xfe,
      0x80,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      0,
      2,
      3,
      0,
      0,
      0,
    ],
  );
});

test("encodeSockAddr() writes into a caller's buffer at its subarray offset", () => {
  const big = new Uint8Array(40).fill(0xee);
  const out = encodeSockAddr({ family: "IPv4", address: "10.0.0.1", port: 1 }, big.subarray(4));
  assert.equal(out.byteOffset, 4);
  assert.deepEqual([...big.subarray(0, 4)], [0xee, 0xee, 0xee, 0xee]);
  assert.deepEqual([...big.subarray(4, 20)], [2, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(big[20], 0xee);
});

test("decodeSockAddr() reads sockaddr_in and sockaddr_in6 back", () => {
  const v4 = Uint8Array.from([2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeSockAddr(v4), { family: "IPv4", address: "127.0.0.1", port: 8080 });
  const v6 = new Uint8Array(28);
  v6.set([10, 0, 0xff, 0xff, 0, 0, 0, 7]);
  v6[23] = 1;
  v6[24] = 2;
  assert.deepEqual(decodeSockAddr(v6), {
    family: "IPv6",
    address: "::1",
    port: 65535,
    flowInfo: 7,
    scopeId: 2,
  });
});

test("IPv6 text round-trips in RFC 5952 form", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["2001:DB8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
    ["::ffff:10.1.2.3", "::ffff:10.1.2.3"],
    ["fe80::", "fe80::"],
  ];
  for (const [input, text] of cases) {
    const b = parseIPv6(input);
    assert.ok(b, input);
    assert.equal(formatIPv6(b), text, input);
  }
});

test("encodeSockAddr() rejects bad addresses, ports and families with TypeError/RangeError", () => {
  assert.throws(() => encodeSockAddr({ family: "IPv4", address: "256.0.0.1", port: 1 }), TypeError);
  assert.throws(
    () => encodeSockAddr({ family: "IPv4", address: "::1", port: 1 }),
    /not an IPv4 address/,
  );
  assert.throws(
    () => encodeSockAddr({ family: "IPv6", address: "1::2::3", port: 1 }),
    /not an IPv6 address/,
  );
  assert.throws(
    () => encodeSockAddr({ family: "IPv6", address: "1:2:3:4:5:6:7:8:9", port: 1 }),
    TypeError,
  );
  assert.throws(
    () => encodeSockAddr({ family: "IPv4", address: "1.2.3.4", port: 65536 }),
    RangeError,
  );
  assert.throws(
    () => encodeSockAddr({ family: "IPv4", address: "1.2.3.4", port: 1.5 }),
    RangeError,
  );
  assert.throws(
    () => encodeSockAddr({ family: "unix", address: "/tmp/x", port: 0 } as never),
    /family must be/,
  );
  assert.throws(
    () => encodeSockAddr({ family: "IPv4", address: "1.2.3.4", port: 1 }, new Uint8Array(8)),
    RangeError,
  );
});

test("decodeSockAddr() rejects an unknown family and a short length", () => {
  assert.throws(
    () => decodeSockAddr(Uint8Array.from([1, 0, 0, 0])),
    /unsupported address family 1/,
  );
  assert.throws(
    () => decodeSockAddr(new Uint8Array(28).fill(0).map((_, i) => (i === 0 ? 10 : 0)), 16),
    /28 bytes/,
  );
});
