/**
 * Web-streams sockets in the shape of the WinterTC / Cloudflare sockets API
 * (`connect()` returning `{ readable, writable, opened, closed, close() }`), built over any
 * connected `node:stream` Duplex: our rsocket Duplex or the runtime's own `net.Socket`.
 *
 * - `readable` is a byte stream, so BYOB readers work; it pulls from the Duplex and pauses it
 *   when the stream's queue is full (backpressure toward the sender).
 * - `writable` resolves each write when the Duplex has taken the chunk, and waits for `drain`
 *   when the Duplex says it is full (backpressure toward the writer).
 * - Closing the writable half-closes the socket (`end()`); `close()` closes both directions.
 *
 * @module
 */
import type { Duplex } from "node:stream";

/** Addresses of a connected socket, as `opened` resolves them. */
export interface SocketInfo {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
}

/** A socket in the WinterTC / Cloudflare `connect()` shape. */
export interface WebSocketStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves once connected, with the addresses; rejects if the connection fails. */
  readonly opened: Promise<SocketInfo>;
  /** Resolves when the socket has closed; rejects if it closed on an error. */
  readonly closed: Promise<void>;
  /** Closes both directions; resolves when closed. */
  close(): Promise<void>;
}

/** Options for the readable side. */
export interface WebSocketOptions {
  /** Bytes the readable side queues before it pauses the socket. Default 256 KiB. */
  highWaterMark?: number;
}

interface ByteController {
  readonly desiredSize: number | null;
  readonly byobRequest: { respond(bytesWritten: number): void } | null;
  enqueue(chunk: Uint8Array): void;
  close(): void;
  error(e?: unknown): void;
}

interface ByteSource {
  type: "bytes";
  start(controller: ByteController): Promise<void>;
  pull(controller: ByteController): Promise<void>;
  cancel(reason?: unknown): Promise<void>;
}

interface AddressedDuplex extends Duplex {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
}

/**
 * Wraps a Duplex (or a promise of one, resolved once it is connected) as a Web-streams socket.
 *
 * @example
 * ```ts
 * import { createConnection } from "node:net";
 * import { once } from "node:events";
 * const s = createConnection(5432, "127.0.0.1");
 * const web = toWebSocket(once(s, "connect").then(() => s));
 * await web.opened;
 * ```
 */
export function toWebSocket(source: Duplex | Promise<Duplex>, options: WebSocketOptions = {}): WebSocketStream {
  const hwm = options.highWaterMark ?? 256 * 1024;
  const ready = Promise.resolve(source) as Promise<AddressedDuplex>;
  let resolveClosed!: () => void;
  let rejectClosed!: (e: unknown) => void;
  const closed = new Promise<void>((res, rej) => {
    resolveClosed = res;
    rejectClosed = rej;
  });
  closed.catch(() => {}); // observed through .closed by whoever cares
  const opened = ready.then((s) => ({
    remoteAddress: s.remoteAddress,
    remotePort: s.remotePort,
    localAddress: s.localAddress,
    localPort: s.localPort,
  }));
  opened.catch((e) => rejectClosed(e));

  let sock: AddressedDuplex | undefined;
  let failure: unknown;
  ready.then((s) => {
    sock = s;
    s.once("error", (e) => {
      failure = e;
    });
    s.once("close", () => (failure ? rejectClosed(failure) : resolveClosed()));
  }, () => {});

  // @types/node 20 lacks the byte-stream overload of the constructor: describe what we use.
  const ByteStream = ReadableStream as unknown as new (
    source: ByteSource,
    strategy: { highWaterMark: number },
  ) => ReadableStream<Uint8Array>;
  const readable = new ByteStream({
    type: "bytes",
    async start(controller) {
      const s = await ready;
      s.pause();
      s.on("data", (chunk: Uint8Array) => {
        // A byte stream takes ownership of (detaches) the buffer it is given, and a Duplex may
        // hand out views of a shared pool: give it a copy of its own.
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) s.pause();
      });
      s.once("end", () => {
        try {
          controller.close();
          controller.byobRequest?.respond(0);
        } catch { /* already closed or errored */ }
      });
      s.once("error", (e) => {
        try {
          controller.error(e);
        } catch { /* already closed */ }
      });
    },
    async pull() {
      (await ready).resume();
    },
    async cancel() {
      const s = await ready;
      // The reader gave up: stop reading; the write side stays usable (half-close).
      s.pause();
      s.removeAllListeners("data");
    },
  }, { highWaterMark: hwm });

  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      const s = await ready;
      if (!(chunk instanceof Uint8Array)) throw new TypeError("socket writes take Uint8Array chunks");
      await new Promise<void>((resolve, reject) => {
        const full = !s.write(chunk, (err) => (err ? reject(err) : resolve()));
        // The callback of a write that filled the buffer may wait for the kernel; resolve on
        // drain too so the writer sees backpressure without waiting on each byte.
        if (full) s.once("drain", resolve);
      });
    },
    async close() {
      const s = await ready;
      await new Promise<void>((resolve) => s.end(resolve));
    },
    async abort(reason) {
      (await ready).destroy(reason instanceof Error ? reason : undefined);
    },
  });

  return {
    readable,
    writable,
    opened,
    closed,
    async close() {
      const s = sock ?? await ready.catch(() => undefined);
      if (s && !s.destroyed) s.destroy();
      await closed.catch(() => {});
    },
  };
}
