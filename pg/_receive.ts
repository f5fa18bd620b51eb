/**
 * The receive path of the client's own plain sockets. In Node and Deno ({@link Receiver}), reads
 * go through `net.Socket`'s `onread` option into memory we choose, instead of a fresh runtime
 * buffer per read pushed through a Readable and a `data` event. In Bun (`Bun.connect`,
 * `_bun_socket.ts`; {@link FreeingReceiver}) every read comes in fresh memory, and a lent one is
 * released as soon as its holders are done, where the pool would have taken it back.
 *
 * Two kinds of read:
 * - **Owned** (the default): the read lands in one scratch buffer and is copied out at its exact
 *   length. The chunk belongs to its reader for good, as a `data` chunk does: a view of it may be
 *   kept by anyone (a row's bytea, a user's type parser).
 * - **Lent**: when the request at the head of the queue promised to finish with the bytes it was
 *   handed before it asks for more (`CopyOut.reusing()`, `copyBoth(..., { reuse: true })`), the
 *   read lands in a buffer from a small pool, is handed over without a copy, and goes back to the
 *   pool once every holder released it ({@link Lease}). A lent chunk whose bytes reach anything
 *   that may keep them (a DataRow, a frame during startup, another request) is marked
 *   `given`: its buffer is then never reused, which is what the owned kind costs anyway.
 *
 * Measured on 2 GiB over a unix socket, one CPU, reader and writer in one process (CPU ms, the
 * `data` event / owned-style fresh buffer / one reused buffer): Node 634-760 / 437 / 299, Deno
 * 710-772 / 522 / 364. The `data` path pays a fresh zero-filled 64 KiB buffer, the Readable's
 * push and an event per read; the page faults of fresh memory show in the kernel too.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";

/** Bytes asked of the kernel per read (as `net.Socket` does by default). */
export const READ_SIZE = 64 * 1024;
/** Lent buffers out at once at most; past that reads are owned (copied) until some come back. */
const MAX_LENT = 32;

/**
 * Busy-polling after bulk reads: keeps this thread's event loop from sleeping until `ms` after
 * the latest lent read, by a chain of `setImmediate` turns (while one is pending the loop polls
 * its sockets without blocking, and timers and other I/O run as usual). A client that sleeps
 * between reads is woken by the server's next send, and on a virtual machine that wake-up (an
 * interrupt to a halted CPU) is paid by the sending backend. Measured on the dump bench's one-job
 * dump (Node 20, 2 vCPUs, pinned, 0.2 ms): 460-1,100 wake-up interrupts to the client's CPU per
 * dump instead of 53,000-71,000, and the backend's CPU 9% lower, for about 2 s more client CPU.
 * The same trade as rsocket's `polling_time` and the FFI poller's hot rounds: CPU of the client
 * for less work on the server.
 */
let hotUntil = 0;
let spinning = false;
function turn(): void {
  if (performance.now() < hotUntil) setImmediate(turn);
  else spinning = false;
}
/** @internal Whether the event loop is being kept from sleeping now (tests). */
export function busyPolling(): boolean {
  return spinning;
}
function keepHot(ms: number): void {
  hotUntil = performance.now() + ms;
  if (!spinning) {
    spinning = true;
    setImmediate(turn);
  }
}

/** A lent read buffer and who still holds views of it. */
export interface Lease {
  readonly buffer: Uint8Array;
  /** Holders: the client while it frames the chunk, then each request that kept a view. */
  refs: number;
  /** Its bytes reached something that may keep them: never reused. */
  given: boolean;
  readonly from: LeaseOwner;
}

/** Where a lease goes back to once its last holder let go. */
export interface LeaseOwner {
  _returned(l: Lease): void;
}

/** Receive counters (see {@link LendingReceiver.stats}). */
export interface ReceiveStats {
  lent: number;
  owned: number;
  buffers: number;
  given: number;
  outstanding: number;
  /** Lent chunks whose memory was released at once (FreeingReceiver). */
  freed: number;
}

/** What the client attaches to: the receive side of a socket it opened itself. */
export interface ReceiveSource {
  attach(sink: ReceiveSink, lendable: () => boolean): void;
  readonly stats: ReceiveStats;
  /** See {@link Receiver.busyPollMs}. */
  busyPollMs: number;
}

/** Drops one hold of `l`; the last one returns its buffer to the pool (unless given away). */
export function unlease(l: Lease): void {
  if (--l.refs === 0) l.from._returned(l);
}

/** What the client attaches: every read as a chunk, lent (with its lease) or owned (no lease). */
export type ReceiveSink = (chunk: Uint8Array, lease: Lease | undefined) => void;

/**
 * What both receivers share: the sink the client attached, and the bookkeeping of lent reads
 * (counters, the lease, busy-polling, a lease coming back). A subclass decides what a returned,
 * not given away, buffer becomes ({@link LendingReceiver.recycle}).
 */
abstract class LendingReceiver implements LeaseOwner, ReceiveSource {
  protected sink: ReceiveSink | undefined;
  protected lendable: () => boolean = () => false;
  /** Lent reads whose holders have not all let go yet. */
  protected out = 0;
  /** Buffers a pool made (Receiver). */
  protected made = 0;
  /** Lent reads whose memory was released (FreeingReceiver). */
  protected freed = 0;
  #lent = 0;
  #owned = 0;
  #given = 0;

  /** After a lent read, keep the event loop polling this long (ms) before it may sleep; 0: off. */
  busyPollMs = 0;

  /**
   * Reads so far, lent and copied out (owned); buffers the pool made; lent buffers given away;
   * lent buffers not back yet (0 once every holder let go); lent buffers released.
   */
  get stats(): ReceiveStats {
    return { lent: this.#lent, owned: this.#owned, buffers: this.made, given: this.#given, outstanding: this.out, freed: this.freed };
  }

  abstract attach(sink: ReceiveSink, lendable: () => boolean): void;

  /** Hands `chunk`, lying in `buffer`, to the sink as lent; `buffer` comes back through {@link _returned}. */
  protected lend(chunk: Uint8Array, buffer: Uint8Array): void {
    this.out++;
    this.#lent++;
    if (this.busyPollMs > 0) keepHot(this.busyPollMs);
    const lease: Lease = { buffer, refs: 1, given: false, from: this };
    try {
      this.sink!(chunk, lease);
    } finally {
      unlease(lease);
    }
  }

  /** Counts a read handed over as owned. */
  protected countOwned(): void {
    this.#owned++;
  }

  /** @internal {@link unlease} of the last holder. */
  _returned(l: Lease): void {
    this.out--;
    if (l.given) this.#given++;
    else this.recycle(l.buffer);
  }

  /** A lent buffer every holder let go of, and not given away. */
  protected abstract recycle(buffer: Uint8Array): void;
}

/** The `onread` side of one socket. */
export class Receiver extends LendingReceiver {
  // Node Buffers, as a `data` chunk is: utf8() decodes them with their native utf8Slice.
  #scratch = Buffer.allocUnsafeSlow(READ_SIZE);
  #free: Uint8Array[] = [];
  // The buffer handed to the runtime for the next read, if lent (a read may also fail or find
  // nothing, and then the runtime asks again: the same one is offered).
  #offered: Uint8Array | undefined;
  #early: Uint8Array[] = [];

  /** `onread.buffer`: where the next read lands. */
  readonly buffer = (): Uint8Array => {
    if (this.#offered) return this.#offered;
    if (this.out < MAX_LENT && this.sink !== undefined && this.lendable()) {
      const free = this.#free.pop();
      if (free !== undefined) return this.#offered = free;
      this.made++;
      return this.#offered = Buffer.allocUnsafeSlow(READ_SIZE);
    }
    return this.#scratch;
  };

  /** `onread.callback`: `n` bytes were read into `buf` (true: go on reading). */
  readonly callback = (n: number, buf: Uint8Array): boolean => {
    if (n <= 0) return true;
    if (buf === this.#offered) {
      this.#offered = undefined;
      this.lend(buf.subarray(0, n), buf);
      return true;
    }
    this.countOwned();
    const chunk = copyOut(buf, n);
    if (this.sink) this.sink(chunk, undefined);
    else this.#early.push(chunk);
    return true;
  };

  /**
   * Starts delivering to `sink` (reads that came earlier first). `lendable` says, before each
   * read, whether its bytes may be lent.
   */
  attach(sink: ReceiveSink, lendable: () => boolean): void {
    this.sink = sink;
    this.lendable = lendable;
    const early = this.#early;
    this.#early = [];
    for (const c of early) sink(c, undefined);
  }

  /** Back to the pool, if it has room. */
  protected recycle(buffer: Uint8Array): void {
    if (this.#free.length < MAX_LENT) this.#free.push(buffer);
  }
}

// `ArrayBuffer.prototype.transfer` is ES2024; a runtime without it lends nothing (every chunk is
// owned and left to the garbage collector).
const CAN_DETACH = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === "function";

/**
 * The receive side of a socket that hands every read over in fresh memory of its own (Bun's
 * `Bun.connect`, `_bun_socket.ts`), where no buffer can be chosen for the next read. A read the
 * client may lend (see {@link Receiver}) is lent as it came; once every holder let go and it was
 * not given away, its memory is released at once by detaching it
 * (`ArrayBuffer.prototype.transfer(0)`) instead of waiting for the garbage collector. The
 * allocator then hands the same, still cached memory to the next read. Measured in Bun 1.4, 2 GiB
 * read over a unix socket, two runs each: 15 800-17 500 minor page faults and 346-410 ms became
 * 1 500 and 265-271 ms. Only a chunk that is its whole ArrayBuffer is lent; the rest are owned,
 * as every chunk was before. A view kept by mistake past the release would read as empty, not as
 * other bytes: the same rules as the pool's keep it from happening.
 *
 * The socket calls {@link FreeingReceiver.deliver} for each chunk once {@link attach}ed, and
 * emits `data` as before when not.
 */
export class FreeingReceiver extends LendingReceiver {
  /** Whether the client attached (then chunks go to {@link deliver}, not to `data` listeners). */
  get attached(): boolean {
    return this.sink !== undefined;
  }

  attach(sink: ReceiveSink, lendable: () => boolean): void {
    this.sink = sink;
    this.lendable = lendable;
  }

  /** One read, in memory the caller gives up: lent when it may be, else owned. */
  deliver(chunk: Uint8Array): void {
    const whole = chunk.byteOffset === 0 && chunk.buffer.byteLength === chunk.length && chunk.buffer instanceof ArrayBuffer;
    if (CAN_DETACH && whole && this.lendable()) return this.lend(chunk, chunk);
    this.countOwned();
    this.sink!(chunk, undefined);
  }

  /** Released at once: detached, so the allocator has its memory back. */
  protected recycle(buffer: Uint8Array): void {
    try {
      (buffer.buffer as ArrayBuffer & { transfer(n: number): ArrayBuffer }).transfer(0);
      this.freed++;
    } catch {
      // Not detachable after all (a runtime's own buffer): the garbage collector frees it.
    }
  }
}

/**
 * The first `n` bytes of `buf` (a Buffer) in a Buffer of their own. Measured per read (ns, Node /
 * Deno / Bun): 100 B through `allocUnsafe`'s pool 168 / 179 / 62 against 316 / 306 / 110 for
 * `slice`; 64 KiB by `Uint8Array.prototype.slice` 6 500 / 4 700 / 2 200 against 9 400 / 7 100 /
 * 1 600 (`Buffer.prototype.slice` is a view, not a copy).
 */
function copyOut(buf: Uint8Array, n: number): Uint8Array {
  if (n <= 4096) {
    const b = Buffer.allocUnsafe(n);
    (buf as Buffer).copy(b, 0, 0, n);
    return b;
  }
  return Uint8Array.prototype.slice.call(buf, 0, n);
}

/** The key under which a socket made by the client's own factory carries its {@link ReceiveSource}. */
export const RECEIVER: unique symbol = Symbol("pg-rdma.receiver");
