/**
 * One conformance suite for `net.Socket`-compatible transports, run unchanged against the
 * runtime's own `node:net` (the reference) and against our rsocket Duplex on the `kernel`
 * provider (tests/transport_conformance_*.test.ts). It registers flat `test()` calls whose names
 * start with the implementation's name.
 *
 * @module
 */
import { test as nodeTest } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import process from "node:process";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { moduleCommand } from "../_fixture/runtime.ts";

/** The socket surface the suite uses (what net.Socket and RsocketSocket both have). */
export interface SuiteSocket extends Duplex {
  readonly connecting: boolean;
  readonly pending: boolean;
  readonly readyState: string;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  address(): object;
  setTimeout(ms: number, cb?: () => void): this;
  setNoDelay(on?: boolean): this;
  setKeepAlive(on?: boolean, delay?: number): this;
  ref(): this;
  unref(): this;
}

/** The server surface the suite uses. */
export interface SuiteServer {
  listen(port: number, host: string, cb?: () => void): unknown;
  address(): unknown;
  close(cb?: (err?: Error) => void): unknown;
  on(event: "error", l: (e: Error) => void): unknown;
}

/** One implementation under test. */
export interface SocketImplementation {
  /** Prefix of every test name. */
  readonly name: string;
  /** An unconnected socket that starts connecting, like `net.createConnection`. */
  connect(port: number, host: string, opts?: { allowHalfOpen?: boolean }): SuiteSocket;
  /** A server like `net.createServer`. */
  createServer(
    opts: { allowHalfOpen?: boolean },
    onConnection: (s: SuiteSocket) => void,
  ): SuiteServer;
  /** Argument naming this implementation for `unref_child.ts`. */
  readonly child: string;
  /**
   * Bytes the backpressure test pushes: 1 GiB for the transport under test, less for the
   * reference (the GiB-scale case is kept to one per runtime for CI time).
   */
  readonly backpressureBytes: number;
  /** Why the suite cannot run here (e.g. no FFI), or undefined. */
  readonly skip?: string;
}

const HOST = "127.0.0.1";

/**
 * What the running test opened: closed after it, pass or fail, so a failed assertion cannot
 * leave a listening server that keeps the test process alive.
 */
const opened: (() => void)[] = [];

/** Rejects after `ms` with a message naming what did not happen, so nothing hangs. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

async function listen(
  impl: SocketImplementation,
  onConnection: (s: SuiteSocket) => void,
  opts: { allowHalfOpen?: boolean } = {},
): Promise<{ port: number; close(): Promise<void> }> {
  const srv = impl.createServer(opts, (s) => {
    s.on("error", () => {}); // resets are part of some tests
    opened.push(() => s.destroy());
    onConnection(s);
  });
  opened.push(() => void srv.close());
  await new Promise<void>((resolve, reject) => {
    srv.on("error", reject);
    srv.listen(0, HOST, () => resolve());
  });
  const port = (srv.address() as { port: number }).port;
  return { port, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
}

function connected(s: SuiteSocket): Promise<void> {
  return within(
    new Promise<void>((resolve, reject) => {
      s.once("connect", () => resolve());
      s.once("error", reject);
    }),
    5000,
    "connect",
  );
}

function pattern(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Writes `total` bytes of `chunk` repeats honouring backpressure; resolves when all are taken. */
async function pump(
  s: Duplex,
  chunk: Uint8Array,
  total: number,
  onFull?: () => void,
): Promise<void> {
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!s.write(chunk)) {
      onFull?.();
      await new Promise<void>((resolve, reject) => {
        const ok = () => (s.off("error", bad), s.off("close", bad), resolve());
        const bad = (
          e?: unknown,
        ) => (s.off("drain", ok), reject(e ?? new Error("closed while writing")));
        s.once("drain", ok);
        s.once("error", bad);
        s.once("close", bad);
      });
    }
  }
}

/**
 * A full garbage collection, where the runtime lets us have one (Node and Deno via V8's
 * `--expose-gc` set at run time, Bun via `Bun.gc`). The memory test samples resident memory
 * after collecting, so it measures what is retained, not garbage awaiting the collector (Deno
 * lets some 200 MiB of dead socket buffers pile up before it collects, even with node:net).
 */
function collector(): () => void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun) return () => bun.gc(true);
  try {
    setFlagsFromString("--expose-gc");
    const gc = (globalThis as { gc?: () => void }).gc ?? runInNewContext("gc") as () => void;
    if (typeof gc === "function") return gc;
  } catch { /* fall through */ }
  return () => {};
}

/** Resolves on `close` (events.once would reject on an `error` emitted first). */
function closeOf(s: { once(e: "close", l: () => void): unknown }): Promise<void> {
  return new Promise<void>((resolve) => s.once("close", () => resolve()));
}

/** Registers the suite's tests for `impl`. */
export function socketSuite(impl: SocketImplementation): void {
  const n = impl.name;
  const skip = impl.skip;
  const dial = (port: number, host: string, opts?: { allowHalfOpen?: boolean }) => {
    const s = impl.connect(port, host, opts);
    opened.push(() => s.destroy());
    return s;
  };
  const test = (name: string, options: { skip?: string }, fn: () => Promise<void>) =>
    nodeTest(name, options, async () => {
      try {
        await fn();
      } finally {
        for (const close of opened.splice(0)) {
          try {
            close();
          } catch { /* already closed */ }
        }
      }
    });

  test(
    `${n}: connect() emits connect and ready, and the socket knows both addresses`,
    { skip },
    async () => {
      const srv = await listen(impl, (s) => s.once("data", () => s.end()));
      const s = dial(srv.port, HOST);
      assert.equal(s.connecting, true);
      assert.equal(s.pending, true);
      assert.equal(s.readyState, "opening");
      let ready = false;
      s.once("ready", () => (ready = true));
      await connected(s);
      await new Promise((r) => setImmediate(r));
      assert.equal(ready, true);
      assert.equal(s.connecting, false);
      assert.equal(s.pending, false);
      assert.equal(s.readyState, "open");
      assert.equal(s.remoteAddress, HOST);
      assert.equal(s.remotePort, srv.port);
      assert.equal(s.localAddress, HOST);
      assert.ok((s.localPort ?? 0) > 0);
      assert.deepEqual(s.address(), { address: HOST, family: "IPv4", port: s.localPort });
      s.setNoDelay(true).setKeepAlive(true, 1000);
      const closed = closeOf(s);
      s.resume();
      s.write("bye");
      await within(closed, 5000, "close after the server ended");
      assert.equal(s.readyState, "closed");
      await srv.close();
    },
  );

  test(`${n}: a refused connection fails with ECONNREFUSED and closes`, { skip }, async () => {
    const srv = await listen(impl, () => {});
    await srv.close();
    const s = dial(srv.port, HOST);
    let connects = 0;
    s.on("connect", () => connects++);
    const closed = closeOf(s);
    const [err] = await within(once(s, "error"), 5000, "error") as [NodeJS.ErrnoException];
    assert.equal(err.code, "ECONNREFUSED");
    await within(closed, 5000, "close");
    assert.equal(connects, 0);
    assert.equal(s.destroyed, true);
  });

  test(
    `${n}: setTimeout() emits timeout on an idle socket and leaves it open`,
    { skip },
    async () => {
      const srv = await listen(impl, () => {});
      const s = dial(srv.port, HOST);
      await connected(s);
      const t0 = performance.now();
      s.setTimeout(80);
      await within(once(s, "timeout"), 3000, "timeout");
      const waited = performance.now() - t0;
      assert.ok(waited >= 70, `timeout after ${waited.toFixed(1)} ms`);
      assert.equal(s.destroyed, false);
      assert.equal(s.readyState, "open");
      s.setTimeout(0);
      s.destroy();
      await srv.close();
    },
  );

  test(`${n}: 256 MiB each way at once arrive intact (SHA-256)`, { skip }, async () => {
    const size = 256 << 20;
    const up = pattern(256 * 1024, 1), down = pattern(256 * 1024, 2);
    const expect = (chunk: Uint8Array) => {
      const h = createHash("sha256");
      for (let i = 0; i < size; i += chunk.length) h.update(chunk);
      return h.digest("hex");
    };
    let serverDigest: Promise<string> | undefined;
    const srv = await listen(impl, (s) => {
      const h = createHash("sha256");
      let got = 0;
      serverDigest = new Promise((resolve) => {
        s.on("data", (d: Uint8Array) => (h.update(d), got += d.length));
        s.on("end", () => resolve(`${got}:${h.digest("hex")}`));
      });
      void pump(s, down, size).then(() => s.end());
    }, { allowHalfOpen: true });
    const c = dial(srv.port, HOST, { allowHalfOpen: true });
    await connected(c);
    const h = createHash("sha256");
    let got = 0;
    const done = new Promise<void>((resolve) => c.on("end", resolve));
    const closed = closeOf(c);
    c.on("data", (d: Uint8Array) => (h.update(d), got += d.length));
    await within(pump(c, up, size), 120_000, "256 MiB to be written");
    c.end();
    await within(done, 120_000, "256 MiB to arrive");
    assert.equal(got, size);
    assert.equal(h.digest("hex"), expect(down));
    assert.equal(
      await within(serverDigest!, 10_000, "the server's digest"),
      `${size}:${expect(up)}`,
    );
    assert.equal(c.bytesRead, size);
    assert.equal(c.bytesWritten, size);
    await within(closed, 5000, "close");
    await srv.close();
  });

  test(
    `${n}: backpressure: write() returns false, drain follows, memory stays bounded and timers keep firing while ${
      impl.backpressureBytes >> 20
    } MiB go to a slow reader`,
    { skip },
    async () => {
      const total = impl.backpressureBytes;
      const gc = collector();
      // Two halves. First half: the reader pauses 200 ms at the start and 5 ms every 32 MiB,
      // and at each pause a garbage collection runs before resident memory is read (RSS is a
      // high-water mark, and without collections Deno lets ~80-200 MiB of dead socket buffers
      // pile up, node:net's too). Second half: no forced collection (one takes up to 100+ ms
      // and its sweeping runs on after it); from 200 ms after the last one, timer gaps count.
      let received = 0, buffered = 0, rssMax = 0, quietUntil = Infinity;
      const half = total / 2;
      const sample = () => {
        if (received >= half) return;
        gc();
        rssMax = Math.max(rssMax, process.memoryUsage().rss);
      };
      const srv = await listen(impl, (s) => {
        s.pause();
        let next = 32 << 20;
        setTimeout(() => (sample(), s.resume()), 200);
        s.on("data", (d: Uint8Array) => {
          received += d.length;
          buffered = Math.max(buffered, s.readableLength);
          if (received >= half && quietUntil === Infinity) quietUntil = performance.now() + 200;
          if (received >= next) {
            next += 32 << 20;
            s.pause();
            setTimeout(() => (sample(), s.resume()), 5);
          }
        });
      });
      const c = dial(srv.port, HOST);
      await connected(c);
      gc();
      const rss0 = process.memoryUsage().rss;
      // A stalled event loop burns this process's CPU for the whole gap; a gap during which
      // the process hardly ran is the OS scheduling others (2 shared cores), not a stall.
      let gapMax = 0, preempted = 0, last = performance.now(), cpu = process.cpuUsage();
      let fulls = 0, drains = 0;
      const iv = setInterval(() => {
        const now = performance.now(), used = process.cpuUsage(cpu);
        cpu = process.cpuUsage();
        const gap = now - last, ranMs = (used.user + used.system) / 1000;
        if (now > quietUntil && last > quietUntil) {
          if (gap < 20 || ranMs >= gap / 2) gapMax = Math.max(gapMax, gap);
          else preempted++;
        }
        last = now;
        buffered = Math.max(buffered, c.writableLength);
      }, 5);
      c.on("drain", () => drains++);
      const chunk = pattern(64 * 1024, 3);
      const t0 = performance.now();
      try {
        await within(pump(c, chunk, total, () => fulls++), 300_000, `${total} bytes to be written`);
        await within(
          new Promise<void>((resolve) => {
            const check = setInterval(
              () => received >= total && (clearInterval(check), resolve()),
              5,
            );
          }),
          60_000,
          "the reader to catch up",
        );
      } finally {
        clearInterval(iv);
      }
      const secs = (performance.now() - t0) / 1000;
      assert.equal(received, total);
      assert.ok(fulls > 0, "write() never returned false");
      assert.ok(drains >= fulls, `${fulls} full writes but ${drains} drains`);
      const grew = (rssMax - rss0) / 2 ** 20;
      assert.ok(grew < 64, `resident memory grew by ${grew.toFixed(1)} MiB`);
      assert.ok(buffered < 4 << 20, `${buffered} bytes queued in the streams`);
      // A gap over 20 ms between 5 ms ticks means a stalled event loop.
      assert.ok(
        gapMax < 20,
        `timers stalled for ${gapMax.toFixed(1)} ms (${
          (total / 2 ** 20 / secs).toFixed(0)
        } MiB/s; ${preempted} longer gaps while preempted)`,
      );
      c.destroy();
      await srv.close();
    },
  );

  test(
    `${n}: half-close: the peer still answers after end(), and both sides see end`,
    { skip },
    async () => {
      let serverSawEnd = false;
      const srv = await listen(impl, (s) => {
        const parts: Uint8Array[] = [];
        s.on("data", (d: Uint8Array) => parts.push(new Uint8Array(d)));
        s.on("end", () => {
          serverSawEnd = true;
          const text = new TextDecoder().decode(Buffer.concat(parts));
          s.end(`got ${text.length}: ${text.toUpperCase()}`);
        });
      }, { allowHalfOpen: true });
      const c = dial(srv.port, HOST, { allowHalfOpen: true });
      await connected(c);
      c.end("hello half-close");
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(c.readyState, "readOnly");
      const parts: Uint8Array[] = [];
      const ended = once(c, "end"), closed = closeOf(c);
      c.on("data", (d: Uint8Array) => parts.push(new Uint8Array(d)));
      await within(ended, 5000, "end");
      assert.equal(serverSawEnd, true);
      assert.equal(new TextDecoder().decode(Buffer.concat(parts)), "got 16: HELLO HALF-CLOSE");
      await within(closed, 5000, "close");
      await srv.close();
    },
  );

  test(
    `${n}: a peer reset mid-stream ends in ECONNRESET/EPIPE or close, never a hang`,
    { skip },
    async () => {
      const srv = await listen(impl, (s) => {
        // Destroying with unread bytes queued makes the kernel answer with RST.
        s.once("data", () => setTimeout(() => s.destroy(), 20));
      });
      const c = dial(srv.port, HOST);
      await connected(c);
      let error: NodeJS.ErrnoException | undefined;
      c.on("error", (e) => (error = e));
      c.resume();
      const chunk = pattern(64 * 1024, 4);
      await within(pump(c, chunk, 1 << 30).catch(() => {}), 10_000, "the writer to stop");
      await within<unknown>(c.destroyed ? Promise.resolve() : closeOf(c), 10_000, "close");
      if (error) {
        assert.ok(
          ["ECONNRESET", "EPIPE"].includes(error.code ?? ""),
          `unexpected ${error.code}`,
        );
      }
      assert.equal(c.destroyed, true);
      await srv.close();
    },
  );

  test(
    `${n}: destroy() during a pending write closes promptly and fails the write`,
    { skip },
    async () => {
      let server: SuiteSocket | undefined;
      const srv = await listen(impl, (s) => {
        s.pause(); // no reads: the client's write stays pending
        server = s;
      });
      const c = dial(srv.port, HOST);
      await connected(c);
      // 64 MiB queued at once: far more than the kernel buffers, so writes stay pending.
      const chunk = pattern(256 * 1024, 5);
      const results: (Error | null | undefined)[] = [];
      for (let i = 0; i < 256; i++) c.write(chunk, (e) => results.push(e));
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(results.length < 256, "every write completed: nothing was pending");
      const closed = closeOf(c);
      c.destroy();
      await within(closed, 5000, "close");
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(results.some((e) => e instanceof Error), "no pending write failed");
      // Once it reads again, the server side sees the end of the stream and closes too.
      const serverClosed = closeOf(server!);
      server!.resume();
      await within(serverClosed, 10_000, "the server side to close");
      await srv.close();
    },
  );

  test(`${n}: 256 concurrent connections each echo their own bytes`, { skip }, async () => {
    const srv = await listen(impl, (s) => s.pipe(s));
    const one = async (i: number) => {
      const c = dial(srv.port, HOST);
      await connected(c);
      const msg = pattern(4096, 1000 + i);
      const parts: Uint8Array[] = [];
      c.on("data", (d: Uint8Array) => parts.push(new Uint8Array(d)));
      const closed = closeOf(c);
      c.end(msg);
      await closed;
      assert.deepEqual(new Uint8Array(Buffer.concat(parts)), msg, `connection ${i}`);
    };
    await within(Promise.all(Array.from({ length: 256 }, (_, i) => one(i))), 60_000, "256 echoes");
    await srv.close();
  });

  test(`${n}: an unref()ed connected socket lets the process exit`, { skip }, async () => {
    const sockets: SuiteSocket[] = [];
    const srv = await listen(impl, (s) => sockets.push(s)); // holds the connection open
    const [cmd, args] = moduleCommand("./unref_child.ts", import.meta.url);
    const child = spawn(cmd, [...args, impl.child, String(srv.port)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const t0 = performance.now();
    const exited = once(child, "exit");
    try {
      const [code] = await within(exited, 15_000, "the child to exit") as [number];
      assert.equal(code, 0, out);
    } finally {
      child.kill();
    }
    assert.match(out, /connected/);
    // Startup of a runtime takes most of this; a held-open process would hit the 15 s limit.
    assert.ok(performance.now() - t0 < 15_000);
    // The server may accept only after the child is gone: the connection waits in the backlog.
    await within(
      new Promise<void>((resolve) => {
        const check = setInterval(() => sockets.length && (clearInterval(check), resolve()), 5);
      }),
      5000,
      "the server to accept the child's connection",
    );
    for (const s of sockets) s.destroy();
    await srv.close();
  });
}
