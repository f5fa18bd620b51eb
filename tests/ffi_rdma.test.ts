// The rdma provider against the real librdmacm (Debian 12: librdmacm1 v44) on a machine with no
// RDMA device: every symbol binds, rsocket() explains ENODEV, a missing library explains itself,
// and the descriptor table keeps unknown numbers away from librdmacm (which would segfault).
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  AF_INET,
  DEFAULT_LIBRDMACM_PATHS,
  openProvider,
  POLLIN,
  PollSet,
  RSOCKET_SYMBOLS,
  RsocketError,
  type RsocketProvider,
} from "../ffi/mod.ts";
import { noEnodev, noLib } from "./_fixture/rdma.ts";

const rdma = (): RsocketProvider => openProvider("rdma");

test(
  "rdma provider binds every rsocket function of the table from librdmacm",
  { skip: noLib },
  () => {
    const p = rdma();
    const want = Object.keys(RSOCKET_SYMBOLS).map((k) => `r${k}`);
    assert.equal(want.length, 27);
    assert.deepEqual(p.symbols, want);
    assert.equal(p.kind, "rdma");
    assert.match(p.libraryPath, /librdmacm\.so/);
    assert.equal(openProvider("rdma"), p, "one provider (one descriptor table) per library");
  },
);

test("rdma provider: rsocket() without an RDMA device throws ENODEV that says how to check", {
  skip: noEnodev,
}, () => {
  assert.throws(() => rdma().socket(AF_INET), (e: unknown) => {
    assert.ok(e instanceof RsocketError);
    assert.equal(e.code, "ENODEV");
    assert.equal(e.errno, 19);
    assert.equal(e.syscall, "rsocket");
    assert.match(e.message, /no RDMA device/);
    assert.match(e.message, /ibv_devices/);
    assert.match(e.message, /rdma link/);
    return true;
  });
});

test("rdma provider: data calls on unknown descriptors throw EBADF instead of reaching librdmacm", {
  skip: noLib,
}, () => {
  const p = rdma();
  const b = new Uint8Array(16);
  for (
    const call of [
      () => p.recv(0, b),
      () => p.send(3, b),
      () => p.read(5, b),
      () => p.writev(7, [b]),
      () => p.fcntl(9, 3),
    ]
  ) {
    assert.throws(
      call,
      (e: unknown) => e instanceof RsocketError && e.code === "EBADF" && /^r/.test(e.syscall),
    );
  }
  assert.equal(
    p.close(3),
    false,
    "rclose of an unknown number is never called (it would return +9)",
  );
});

test("rdma provider: rpoll accepts a libc wake-up descriptor, on and off the main thread", {
  skip: noLib,
}, async () => {
  const p = rdma();
  const w = p.createWakeUp();
  const set = new PollSet();
  set.add(w.fd, POLLIN);
  assert.equal(p.poll(set, 0), 0);
  w.signal();
  assert.equal(p.poll(set, 0), 1);
  assert.equal(set.revents(0) & POLLIN, POLLIN);
  w.drain();
  setTimeout(() => w.signal(), 30);
  assert.equal(await p.pollAsync(set, 5000), 1);
  w.close();
});

test("libraryPath that points nowhere gives one error listing it and the install commands", () => {
  assert.throws(
    () => openProvider("rdma", { libraryPath: "/nonexistent/librdmacm.so.1" }),
    (e: unknown) => {
      assert.ok(e instanceof RsocketError);
      assert.equal(e.code, "ELIBACC");
      assert.equal(e.syscall, "dlopen");
      assert.match(e.message, /\/nonexistent\/librdmacm\.so\.1/);
      assert.match(e.message, /apt-get install librdmacm1/);
      assert.match(e.message, /dnf install librdmacm/);
      assert.ok(e.cause !== undefined);
      return true;
    },
  );
});

test("PG_RDMA_LIBRDMACM replaces the default library paths", () => {
  const saved = process.env.PG_RDMA_LIBRDMACM;
  process.env.PG_RDMA_LIBRDMACM = "/nowhere/custom-rdmacm.so";
  try {
    assert.throws(() => openProvider("rdma"), (e: unknown) => {
      assert.ok(e instanceof RsocketError);
      assert.match(e.message, /\/nowhere\/custom-rdmacm\.so/);
      assert.doesNotMatch(e.message, /^\s+librdmacm\.so\.1:/m);
      assert.match(e.message, /PG_RDMA_LIBRDMACM/);
      return true;
    });
  } finally {
    if (saved === undefined) delete process.env.PG_RDMA_LIBRDMACM;
    else process.env.PG_RDMA_LIBRDMACM = saved;
  }
  assert.deepEqual(DEFAULT_LIBRDMACM_PATHS, ["librdmacm.so.1", "librdmacm.so"]);
});

test("the FFI backend is the running runtime's own (Deno.dlopen, bun:ffi, koffi on Node)", async () => {
  const { backend } = await import("../ffi/_backend.ts");
  const { runtime } = await import("./_fixture/runtime.ts");
  assert.equal(backend().runtime, runtime);
});
