// The off-main-thread poll (Deno nonblocking symbol, koffi .async, a Bun Worker): it returns
// when a wake-up descriptor is signalled, timers keep running meanwhile, and descriptors
// closed while it is pending are released only after it returns.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readlinkSync } from "node:fs";
import {
  AF_INET,
  openProvider,
  POLLIN,
  PollSet,
  RsocketError,
  type RsocketProvider,
  SO_REUSEADDR,
  SOL_SOCKET,
} from "../ffi/mod.ts";

const k = openProvider("kernel");

const fdOpen = (fd: number) => {
  try {
    readlinkSync(`/proc/self/fd/${fd}`);
    return true;
  } catch {
    return false;
  }
};

function connectedPair(p: RsocketProvider): [number, number] {
  const l = p.socket(AF_INET);
  p.setsockopt(l, SOL_SOCKET, SO_REUSEADDR, 1);
  p.bind(l, { family: "IPv4", address: "127.0.0.1", port: 0 });
  p.listen(l);
  const c = p.socket(AF_INET);
  p.connect(c, p.getsockname(l));
  const s = p.accept(l);
  p.close(l);
  return [c, s];
}

test("pollAsync() returns when a wake-up descriptor is signalled, and timers fire meanwhile", async () => {
  const w = k.createWakeUp();
  const [c, s] = connectedPair(k);
  const set = new PollSet();
  set.add(s, POLLIN);
  const wi = set.add(w.fd, POLLIN);
  let ticks = 0;
  const iv = setInterval(() => ticks++, 5);
  const timer = setTimeout(() => w.signal(), 300);
  const t0 = performance.now();
  const n = await k.pollAsync(set, 10_000);
  const took = performance.now() - t0;
  clearInterval(iv);
  clearTimeout(timer);
  assert.equal(n, 1);
  assert.equal(set.revents(wi) & POLLIN, POLLIN);
  assert.equal(set.revents(0), 0);
  assert.ok(took >= 250 && took < 5000, `woke after ${took} ms`);
  // ~60 ticks of 5 ms in 300 ms if the main thread stayed free; demand well over half.
  assert.ok(ticks >= 25, `only ${ticks} timer ticks during the poll`);
  w.drain();
  assert.equal(k.poll(set, 0), 0, "drained wake-up is quiet again");
  w.close();
  k.close(c);
  k.close(s);
});

test("pollAsync() reports data that arrives while it waits, and times out with 0", async () => {
  const [c, s] = connectedPair(k);
  const set = new PollSet();
  set.add(s, POLLIN);
  const t0 = performance.now();
  assert.equal(await k.pollAsync(set, 80), 0);
  assert.ok(performance.now() - t0 >= 70);
  setTimeout(() => k.send(c, Uint8Array.of(1, 2, 3)), 50);
  assert.equal(await k.pollAsync(set, 5000), 1);
  assert.equal(set.revents(0) & POLLIN, POLLIN);
  const b = new Uint8Array(8);
  assert.equal(k.recv(s, b), 3);
  k.close(c);
  k.close(s);
});

test("close() during a pending pollAsync() refuses the descriptor at once and releases it after the poll", async () => {
  const [c, s] = connectedPair(k);
  const w = k.createWakeUp();
  const set = new PollSet();
  set.add(s, POLLIN);
  set.add(w.fd, POLLIN);
  const pending = k.pollAsync(set, 10_000);
  assert.equal(k.close(s), true);
  assert.equal(k.isOpen(s), false);
  assert.throws(() => k.recv(s, new Uint8Array(1)), /EBADF/);
  assert.equal(fdOpen(s), true, "still open in the kernel while the other thread polls it");
  w.signal();
  assert.equal(await pending, 1);
  assert.equal(fdOpen(s), false, "closed once the poll returned");
  assert.equal(k.close(s), false);
  w.close();
  k.close(c);
});

test("two pollAsync() calls can be pending at once", async () => {
  const a = k.createWakeUp(), b = k.createWakeUp();
  const sa = new PollSet(), sb = new PollSet();
  sa.add(a.fd, POLLIN);
  sb.add(b.fd, POLLIN);
  const pa = k.pollAsync(sa, 10_000), pb = k.pollAsync(sb, 10_000);
  setTimeout(() => b.signal(), 20);
  setTimeout(() => a.signal(), 60);
  assert.deepEqual(await Promise.all([pa, pb]), [1, 1]);
  a.close();
  b.close();
});

test("pollAsync() surfaces the errno of a failed poll (EINVAL: more entries than RLIMIT_NOFILE)", async () => {
  const limits = readFileSync("/proc/self/limits", "utf8");
  const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1]);
  assert.ok(soft > 0 && soft < 1e7, `unexpected RLIMIT_NOFILE ${soft}`);
  const set = new PollSet();
  for (let i = 0; i <= soft; i++) set.add(-1, POLLIN); // negative fds are ignored, the count is not
  const einval = (e: unknown) =>
    e instanceof RsocketError && e.code === "EINVAL" && e.syscall === "poll";
  assert.throws(() => k.poll(set, 0), einval);
  await assert.rejects(k.pollAsync(set, 0), einval);
});

test("a wake-up closed during a pending pollAsync() is released only after the poll returns", async () => {
  const w = k.createWakeUp();
  const set = new PollSet();
  set.add(w.fd, POLLIN);
  const pending = k.pollAsync(set, 100);
  w.close();
  assert.equal(fdOpen(w.fd), true);
  assert.equal(await pending, 0);
  assert.equal(fdOpen(w.fd), false);
  assert.throws(() => k.poll(set, 0), /EBADF/);
});
