// The kernel provider over loopback: the same code paths the rdma provider takes (only the
// library and the symbol names differ), exercised end to end with real sockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  MSG_DONTWAIT,
  MSG_PEEK,
  openProvider,
  POLLIN,
  POLLOUT,
  PollSet,
  RsocketError,
  SHUT_WR,
  SO_KEEPALIVE,
  SO_RCVBUF,
  SO_REUSEADDR,
  type SockAddr,
  SOL_SOCKET,
  TCP_KEEPCNT,
  TCP_KEEPIDLE,
  TCP_NODELAY,
  WOULD_BLOCK,
} from "../ffi/mod.ts";

const k = openProvider("kernel");

// IPv6 loopback: present when the kernel lists ::1 on lo.
const noIPv6 = existsSync("/proc/net/if_inet6") &&
    /^0{31}1 /m.test(readFileSync("/proc/net/if_inet6", "utf8"))
  ? undefined
  : "no ::1 on this machine (IPv6 loopback disabled)";

const openFds = () => readdirSync("/proc/self/fd").length;

/** A listening socket on the loopback address of `family`, with its bound address. */
function listener(family: "IPv4" | "IPv6" = "IPv4"): { fd: number; addr: SockAddr } {
  const fd = k.socket(family === "IPv4" ? AF_INET : AF_INET6);
  k.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  k.bind(fd, { family, address: family === "IPv4" ? "127.0.0.1" : "::1", port: 0 });
  k.listen(fd, 16);
  return { fd, addr: k.getsockname(fd) };
}

/** Waits (blocking this thread, bounded) until `fd` reports one of `events`. */
function waitFor(fd: number, events: number, ms = 5000): number {
  const set = new PollSet();
  set.add(fd, events);
  assert.equal(k.poll(set, ms), 1, `fd ${fd} not ready for ${events} within ${ms} ms`);
  return set.revents(0);
}

/** A connected non-blocking pair made the way the transport makes one. */
function pair(family: "IPv4" | "IPv6" = "IPv4"): { client: number; server: number; close(): void } {
  const l = listener(family);
  const client = k.socket(family === "IPv4" ? AF_INET : AF_INET6);
  k.setNonBlocking(client);
  const now = k.connect(client, l.addr);
  if (!now) {
    assert.ok(waitFor(client, POLLOUT) & POLLOUT);
    k.finishConnect(client);
  }
  waitFor(l.fd, POLLIN);
  const server = k.accept(l.fd);
  assert.ok(server >= 0);
  k.close(l.fd);
  k.setNonBlocking(server);
  return { client, server, close: () => (k.close(client), k.close(server), undefined) };
}

test("kernel provider: non-blocking connect, POLLOUT, SO_ERROR, accept, and both addresses (IPv4)", () => {
  const l = listener();
  const c = k.socket(AF_INET);
  k.setNonBlocking(c);
  assert.equal(k.fcntl(c, 3 /* F_GETFL */) & 0x800, 0x800);
  const connected = k.connect(c, l.addr);
  assert.equal(typeof connected, "boolean");
  assert.ok(waitFor(c, POLLOUT) & POLLOUT);
  k.finishConnect(c);
  const s = k.accept(l.fd);
  assert.ok(k.isOpen(s));
  assert.deepEqual(k.getpeername(c), l.addr);
  assert.deepEqual(k.getsockname(s), l.addr);
  assert.deepEqual(k.getpeername(s), k.getsockname(c));
  assert.equal(k.getsockname(c).address, "127.0.0.1");
  k.setNonBlocking(l.fd);
  assert.equal(k.accept(l.fd), WOULD_BLOCK);
  for (const fd of [c, s, l.fd]) assert.equal(k.close(fd), true);
});

test("kernel provider: getsockname/getpeername decode IPv6 (::1)", { skip: noIPv6 }, () => {
  const p = pair("IPv6");
  const local = k.getsockname(p.client), peer = k.getpeername(p.client);
  assert.equal(local.family, "IPv6");
  assert.equal(local.address, "::1");
  assert.equal(peer.address, "::1");
  assert.deepEqual(k.getpeername(p.server), local);
  assert.equal(k.getsockname(p.server).port, peer.port);
  assert.equal(k.send(p.client, Uint8Array.of(6)), 1);
  waitFor(p.server, POLLIN);
  const b = new Uint8Array(4);
  assert.equal(k.recv(p.server, b), 1);
  assert.equal(b[0], 6);
  p.close();
});

test("kernel provider: 64 MiB crosses loopback intact (sha256) with MSG_DONTWAIT and poll", () => {
  const size = 64 * 1024 * 1024;
  const src = new Uint8Array(size);
  let x = 0x9e3779b9;
  const words = new Uint32Array(src.buffer);
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  const want = createHash("sha256").update(src).digest("hex");
  const p = pair();
  const got = createHash("sha256");
  const rbuf = new Uint8Array(256 * 1024);
  let sent = 0, received = 0;
  const set = new PollSet();
  const deadline = Date.now() + 120_000;
  while (received < size) {
    assert.ok(Date.now() < deadline, "transfer stalled");
    let progress = false;
    if (sent < size) {
      const n = k.send(
        p.client,
        src.subarray(sent, Math.min(size, sent + 1024 * 1024)),
        MSG_DONTWAIT,
      );
      if (n !== WOULD_BLOCK) sent += n, progress = true;
    }
    const m = k.recv(p.server, rbuf, MSG_DONTWAIT);
    assert.notEqual(m, 0, "unexpected end of stream");
    if (m !== WOULD_BLOCK) got.update(rbuf.subarray(0, m)), received += m, progress = true;
    if (!progress) {
      set.clear();
      set.add(p.server, POLLIN);
      if (sent < size) set.add(p.client, POLLOUT);
      k.poll(set, 1000);
    }
  }
  assert.equal(received, size);
  assert.equal(got.digest("hex"), want);
  p.close();
});

test("kernel provider: writev gathers and readv scatters, subarray offsets honoured", () => {
  const p = pair();
  const enc = new TextEncoder();
  const backing = enc.encode("xxHELLOxx");
  const n = k.writev(p.client, [
    backing.subarray(2, 7),
    enc.encode(", "),
    new Uint8Array(0),
    enc.encode("world"),
  ]);
  assert.equal(n, 12);
  waitFor(p.server, POLLIN);
  const a = new Uint8Array(16).fill(0x2e), b = new Uint8Array(20);
  const m = k.readv(p.server, [a.subarray(3, 8), b]);
  assert.equal(m, 12);
  assert.equal(new TextDecoder().decode(a), "...HELLO........");
  assert.equal(new TextDecoder().decode(b.subarray(0, 7)), ", world");
  assert.equal(k.readv(p.server, [b]), WOULD_BLOCK);
  p.close();
});

test("kernel provider: read/write, recvfrom/sendto and recvmsg/sendmsg on a connected stream", () => {
  const p = pair();
  assert.equal(k.write(p.client, Uint8Array.of(1, 2, 3)), 3);
  waitFor(p.server, POLLIN);
  const b = new Uint8Array(8);
  assert.equal(k.recv(p.server, b, MSG_PEEK), 3);
  assert.equal(k.read(p.server, b), 3);
  assert.deepEqual([...b.subarray(0, 3)], [1, 2, 3]);
  assert.equal(k.sendto(p.server, Uint8Array.of(4, 5)), 2);
  waitFor(p.client, POLLIN);
  const r = k.recvfrom(p.client, b);
  assert.equal(r.bytes, 2);
  assert.deepEqual([...b.subarray(0, 2)], [4, 5]);
  assert.equal(k.sendmsg(p.client, [Uint8Array.of(7), Uint8Array.of(8, 9)]), 3);
  waitFor(p.server, POLLIN);
  const x = new Uint8Array(2), y = new Uint8Array(2);
  const msg = k.recvmsg(p.server, [x, y]);
  assert.equal(msg.bytes, 3);
  assert.deepEqual([...x, y[0]], [7, 8, 9]);
  assert.equal(k.recvfrom(p.client, b).bytes, WOULD_BLOCK);
  p.close();
});

test("kernel provider: shutdown(SHUT_WR) ends one direction only", () => {
  const p = pair();
  k.shutdown(p.client, SHUT_WR);
  waitFor(p.server, POLLIN);
  const b = new Uint8Array(4);
  assert.equal(k.recv(p.server, b), 0, "the server reads end of stream");
  assert.equal(k.send(p.server, Uint8Array.of(42)), 1, "the other direction still works");
  waitFor(p.client, POLLIN);
  assert.equal(k.recv(p.client, b), 1);
  assert.equal(b[0], 42);
  assert.throws(
    () => k.send(p.client, Uint8Array.of(1)),
    (e: RsocketError) => e.code === "EPIPE" && e.syscall === "send",
  );
  p.close();
});

test("kernel provider: setsockopt/getsockopt round trips", () => {
  const fd = k.socket(AF_INET);
  k.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, true);
  assert.equal(k.getsockopt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
  k.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 0);
  assert.equal(k.getsockopt(fd, IPPROTO_TCP, TCP_NODELAY), 0);
  k.setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  assert.equal(k.getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  k.setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, 37);
  assert.equal(k.getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 37);
  k.setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, 4);
  assert.equal(k.getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
  k.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, 65536);
  // Linux doubles the value it stores for bookkeeping.
  assert.equal(k.getsockopt(fd, SOL_SOCKET, SO_RCVBUF), 131072);
  const raw = new Uint8Array(4);
  new DataView(raw.buffer).setInt32(0, 1, true);
  k.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, raw);
  const out = new Uint8Array(8);
  assert.equal(k.getsockoptBytes(fd, SOL_SOCKET, SO_REUSEADDR, out), 4);
  assert.equal(out[0], 1);
  assert.throws(
    () => k.setsockopt(fd, SOL_SOCKET, 9999, 1),
    (e: RsocketError) => e.code === "ENOPROTOOPT",
  );
  k.close(fd);
});

test("kernel provider: poll honours its timeout and returns 0 with nothing ready", () => {
  const p = pair();
  const set = new PollSet();
  set.add(p.server, POLLIN);
  let t = performance.now();
  assert.equal(k.poll(set, 0), 0);
  // Returns at once; the bound only has to tell "did not wait" from the 60 ms below on a loaded
  // CI machine, where a descheduled process can lose tens of milliseconds.
  const immediate = performance.now() - t;
  assert.ok(immediate < 50, `poll(0) took ${immediate} ms`);
  t = performance.now();
  assert.equal(k.poll(set, 60), 0);
  const took = performance.now() - t;
  assert.ok(took >= 55 && took < 1000, `poll(60) took ${took} ms`);
  assert.equal(set.revents(0), 0);
  set.add(p.client, POLLOUT);
  assert.equal(k.poll(set, 1000), 1);
  assert.equal(set.revents(1) & POLLOUT, POLLOUT);
  p.close();
});

test("kernel provider: select reports a readable descriptor", () => {
  const p = pair();
  assert.deepEqual(k.select([p.server], [], [], 0), { read: [], write: [], except: [] });
  k.send(p.client, Uint8Array.of(1));
  const r = k.select([p.server], [p.client], [], 1000);
  assert.deepEqual(r.read, [p.server]);
  assert.deepEqual(r.write, [p.client]);
  p.close();
});

test("kernel provider: a refused connection surfaces as ECONNREFUSED (blocking and non-blocking)", () => {
  const l = listener();
  const addr = l.addr;
  k.close(l.fd); // nobody listens on addr now
  const a = k.socket(AF_INET);
  assert.throws(() => k.connect(a, addr), (e: unknown) => {
    assert.ok(e instanceof RsocketError);
    assert.equal(e.code, "ECONNREFUSED");
    assert.equal(e.errno, 111);
    assert.equal(e.syscall, "connect");
    assert.match(e.message, /connection refused/);
    return true;
  });
  k.close(a);
  const b = k.socket(AF_INET);
  k.setNonBlocking(b);
  if (!k.connect(b, addr)) {
    waitFor(b, POLLOUT);
    assert.throws(
      () => k.finishConnect(b),
      (e: RsocketError) => e.code === "ECONNREFUSED" && e.syscall === "connect",
    );
  }
  k.close(b);
});

test("kernel provider: calls on a closed or unknown descriptor throw EBADF in JS; close twice is harmless", () => {
  const p = pair();
  const fd = p.client;
  assert.equal(k.close(fd), true);
  assert.equal(k.close(fd), false);
  const b = new Uint8Array(4);
  const ebadf = (e: unknown) => e instanceof RsocketError && e.code === "EBADF" && e.errno === 9;
  assert.throws(() => k.recv(fd, b), ebadf);
  assert.throws(() => k.send(fd, b), ebadf);
  assert.throws(() => k.readv(fd, [b]), ebadf);
  assert.throws(() => k.getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE), ebadf);
  assert.throws(() => k.getpeername(fd), ebadf);
  assert.throws(() => k.recv(987654, b), ebadf);
  const set = new PollSet();
  set.add(fd, POLLIN);
  assert.throws(() => k.poll(set, 0), ebadf);
  assert.equal(k.close(987654), false);
  assert.equal(k.close(p.server), true);
});

test("kernel provider: bad arguments are TypeError/RangeError, not native calls", () => {
  const fd = k.socket(AF_INET);
  assert.throws(() => k.recv(fd, [1, 2] as never), TypeError);
  assert.throws(() => k.recv(1.5, new Uint8Array(1)), TypeError);
  assert.throws(() => k.writev(fd, [new Uint8Array(1), "x" as never]), /buffers\[1\]/);
  assert.throws(() => k.bind(fd, { family: "IPv4", address: "localhost", port: 0 }), TypeError);
  assert.throws(() => k.poll({} as never, 0), TypeError);
  assert.throws(() => openProvider("tcp" as never), TypeError);
  assert.throws(
    () => k.iomap(fd, new Uint8Array(8), 2),
    (e: RsocketError) => e.code === "ENOSYS" && /no kernel twin/.test(e.message),
  );
  k.close(fd);
});

test("kernel provider: 1,000 socket/close cycles leak no descriptors", () => {
  const before = openFds();
  for (let i = 0; i < 1000; i++) {
    const fd = k.socket(i % 2 ? AF_INET6 : AF_INET);
    k.close(fd);
    assert.equal(k.close(fd), false);
  }
  const w = k.createWakeUp();
  w.close();
  w.close();
  assert.equal(openFds(), before);
});
