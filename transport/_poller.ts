/**
 * The poller: one per provider per process, waiting in `rpoll` for every parked descriptor.
 *
 * rsocket descriptors are invisible to the OS event loop, so sockets make their data calls
 * synchronously (non-blocking) and, on would-block, park here with the events they wait for.
 * The poller then waits in `rpoll` over all parked descriptors plus a wake-up eventfd:
 *
 * - **Off-thread wait.** The wait runs on a helper thread (`_wait.ts`: Deno `nonblocking`
 *   symbol, koffi `.async` on Node and on Bun), so timers and other I/O go on. One multiplexed
 *   poll is in flight at a time, never one per socket (koffi's pool has four threads shared
 *   with fs and dns).
 * - **Wake-up.** Parking a new descriptor, changing what one waits for, dropping the last ref'ed
 *   one or stopping signals the eventfd, so the pending poll returns and the set is rebuilt.
 * - **Busy-polling.** With `pollingTime` (µs, like rsocket's own `polling_time`) the poller first
 *   spins on `rpoll(…, 0)` for that long before it parks: CPU for latency.
 * - **Process lifetime.** A pending off-thread call keeps the process alive, so one is made only
 *   while some parked descriptor is ref'ed. With only unref'ed descriptors the poller polls with
 *   timeout 0 from an unref'ed timer every {@linkcode IDLE_TICK_MS}, and an idle process exits.
 * - **Fairness.** Each round ends with `setImmediate` (while busy-polling, at least every
 *   millisecond), so a socket that is always ready cannot starve timers.
 * - **Hysteresis.** After a round that found data, the poller re-checks for two more
 *   event-loop turns before parking: a flowing stream or a quick reply rarely pays for the helper
 *   thread's wake-up.
 *
 * @module
 */
import process from "node:process";
import { setImmediate, setTimeout } from "node:timers";
import {
  openProvider,
  POLLIN,
  PollSet,
  type ProviderKind,
  type RsocketProvider,
  type WakeUp,
} from "../ffi/mod.ts";
import { type OffThreadPoll, offThreadPoll } from "./_wait.ts";

/**
 * Event-loop turns the poller re-checks with `rpoll(…, 0)` after a round that found data,
 * before it parks on the helper thread (a turn costs a few µs, a park and wake-up tens).
 */
const HOT_ROUNDS = 2;

/** Poll period (ms) while only unref'ed descriptors are parked. */
export const IDLE_TICK_MS = 5;

/** What a parked descriptor waits for, and whom to tell. */
export interface Watch {
  /** The descriptor. */
  readonly fd: number;
  /** POLLIN / POLLOUT mask wanted now; 0 = not parked. */
  events: number;
  /** Whether waiting on this descriptor keeps the process alive. */
  ref: boolean;
  /** Busy-poll budget in µs before parking on the helper thread (0 = none). */
  pollingTime: number;
  /**
   * Called with the revents once the descriptor is ready (`events` is cleared before), or with
   * -1 and the error when polling itself failed.
   */
  ready(revents: number, error?: unknown): void;
}

const pollers = new WeakMap<RsocketProvider, Poller>();

/** The poller of `provider`, created on first use (nothing starts until a descriptor parks). */
export function pollerFor(provider: RsocketProvider): Poller {
  let p = pollers.get(provider);
  if (!p) pollers.set(provider, p = new Poller(provider));
  return p;
}

/**
 * The counters of the poller of `provider` (a kind opens that provider), for benchmarks and
 * diagnostics: e.g. off-thread parks and wake-ups per message.
 *
 * @example
 * ```ts
 * const { parks, wakeUps } = pollerStats("kernel");
 * ```
 */
export function pollerStats(provider: ProviderKind | RsocketProvider = "rdma"): PollerStats {
  return pollerFor(typeof provider === "string" ? openProvider(provider) : provider).stats;
}

/** Statistics, for tests and benchmarks. */
export interface PollerStats {
  /** Off-thread polls made. */
  parks: number;
  /** Times the wake-up descriptor was signalled. */
  wakeUps: number;
  /** Rounds that spun on `rpoll(…, 0)` (busy-polling) before parking. */
  spins: number;
  /** Rounds that found a descriptor ready while spinning. */
  spinHits: number;
  /** Rounds that polled from the unref'ed idle timer. */
  idleTicks: number;
  /** `rpoll(…, 0)` calls made on the main thread (rounds, hot re-checks and spins). */
  polls: number;
  /** Ready descriptors handed to their sockets. */
  dispatches: number;
}

/** One provider's poller. Use {@linkcode pollerFor}. */
export class Poller {
  #p: RsocketProvider;
  #wait: OffThreadPoll | undefined;
  /** Descriptors in the pending off-thread poll, and closes deferred until it returns. */
  #inFlight = new Set<number>();
  #closeLater: number[] = [];
  #watches = new Map<number, Watch>();
  #wake: WakeUp | undefined;
  #set = new PollSet();
  #running = false;
  /** An off-thread poll is pending, over a set that included only ref'ed-or-not watches. */
  #parked = false;
  #signalled = false;
  /** Resolves the unref'ed idle sleep early. */
  #nudge: (() => void) | undefined;
  #stats: PollerStats = {
    parks: 0,
    wakeUps: 0,
    spins: 0,
    spinHits: 0,
    idleTicks: 0,
    polls: 0,
    dispatches: 0,
  };

  /** @internal Use {@linkcode pollerFor}. */
  constructor(provider: RsocketProvider) {
    this.#p = provider;
  }

  /** Counters since creation. */
  get stats(): Readonly<PollerStats> {
    return { ...this.#stats };
  }

  /** Number of parked descriptors. */
  get size(): number {
    return this.#watches.size;
  }

  /** True while an off-thread poll is pending. */
  get parked(): boolean {
    return this.#parked;
  }

  /** True while the poll loop runs (some descriptor is parked). */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Parks, re-parks or (with `events` 0) removes `w` after its `events` or `ref` changed. A
   * pending off-thread poll is woken so the next round sees the change.
   */
  update(w: Watch): void {
    if (w.events === 0) {
      if (this.#watches.get(w.fd) === w) {
        this.#watches.delete(w.fd);
        // Nothing to poll for any more: let the pending poll return so the loop can end (and
        // the process exit). Otherwise a stale entry only costs one spurious wake-up, later.
        if (this.#watches.size === 0 || w.ref) this.#wakeUp();
      }
      return;
    }
    this.#watches.set(w.fd, w);
    this.#wakeUp();
    if (!this.#running) {
      this.#running = true;
      // Start in a macrotask: registrations made in this turn join the first round.
      setImmediate(() => void this.#loop());
    }
  }

  /**
   * Unparks and closes `fd`. If a pending off-thread poll includes it, the close waits until
   * that poll returns (woken now), so no thread ever polls a freed rsocket.
   */
  close(fd: number): void {
    const w = this.#watches.get(fd);
    if (w) {
      w.events = 0;
      this.update(w);
    }
    if (this.#parked && this.#inFlight.has(fd)) {
      this.#closeLater.push(fd);
      this.#wakeUp();
    } else this.#p.close(fd);
  }

  /** Removes `fd` (closing sockets call this before `close`). */
  forget(fd: number): void {
    const w = this.#watches.get(fd);
    if (w) {
      w.events = 0;
      this.update(w);
    }
  }

  #wakeUp(): void {
    this.#nudge?.();
    if (this.#parked && !this.#signalled && this.#wake) {
      this.#signalled = true;
      this.#stats.wakeUps++;
      this.#wake.signal();
    }
  }

  async #loop(): Promise<void> {
    try {
      let lastTurn = performance.now(), hot = 0;
      while (this.#watches.size > 0) {
        const set = this.#build();
        let n = this.#p.poll(set, 0);
        this.#stats.polls++;
        const spin = this.#spinBudget();
        const spinning = spin > 0;
        if (n === 0) {
          if (spinning) {
            this.#stats.spins++;
            const until = performance.now() + spin / 1000;
            while (n === 0 && performance.now() < until) {
              n = this.#p.poll(set, 0);
              this.#stats.polls++;
            }
            if (n > 0) this.#stats.spinHits++;
          }
        }
        if (n === 0 && hot > 0) {
          // The last round found data: a stream is probably flowing, and one more event-loop
          // turn costs less than a round trip through the helper thread. Check again then.
          hot--;
          await new Promise<void>((resolve) => setImmediate(resolve));
          lastTurn = performance.now();
          continue;
        }
        if (n === 0) {
          if (this.#anyRef()) {
            this.#parked = true;
            this.#stats.parks++;
            this.#wait ??= offThreadPoll(this.#p);
            for (let i = 1; i < set.size; i++) this.#inFlight.add(set.fd(i));
            try {
              n = await this.#wait(set, -1);
            } finally {
              this.#parked = false;
              this.#inFlight.clear();
              for (const fd of this.#closeLater.splice(0)) this.#p.close(fd);
            }
          } else {
            this.#stats.idleTicks++;
            await this.#idle();
            continue;
          }
        }
        if (this.#signalled) {
          this.#signalled = false;
          this.#wake!.drain();
        }
        if (n > 0) {
          hot = HOT_ROUNDS;
          this.#dispatch(set);
        }
        // Yield a full turn, so timers and other I/O run between rounds; while busy-polling,
        // only every millisecond (a turn costs microseconds, which is what spinning saves),
        // else just let the reactions to this round's data run first.
        if (spinning && performance.now() - lastTurn < 1) await Promise.resolve();
        else {
          await new Promise<void>((resolve) => setImmediate(resolve));
          lastTurn = performance.now();
        }
      }
    } catch (e) {
      // A failing poll is a broken provider: hand the error to every parked socket.
      const all = [...this.#watches.values()];
      this.#watches.clear();
      for (const w of all) {
        w.events = 0;
        try {
          w.ready(-1, e);
        } catch { /* the socket destroys itself; nothing more to do here */ }
      }
    } finally {
      this.#running = false;
      // A watch registered while the last round was finishing must not be stranded.
      if (this.#watches.size > 0) {
        this.#running = true;
        setImmediate(() => void this.#loop());
      }
    }
  }

  #build(): PollSet {
    const set = this.#set;
    set.clear();
    this.#wake ??= this.#p.createWakeUp();
    set.add(this.#wake.fd, POLLIN);
    for (const w of this.#watches.values()) set.add(w.fd, w.events);
    return set;
  }

  #spinBudget(): number {
    let max = 0;
    for (const w of this.#watches.values()) if (w.pollingTime > max) max = w.pollingTime;
    return max;
  }

  #anyRef(): boolean {
    for (const w of this.#watches.values()) if (w.ref) return true;
    return false;
  }

  #idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        if (this.#nudge === done) this.#nudge = undefined;
        resolve();
      };
      const t = setTimeout(done, IDLE_TICK_MS);
      t.unref();
      // Parking a socket (maybe a ref'ed one) ends the sleep at once.
      this.#nudge = done;
    });
  }

  #dispatch(set: PollSet): void {
    // Entry 0 is the wake-up descriptor.
    for (let i = 1; i < set.size; i++) {
      const revents = set.revents(i);
      if (revents === 0) continue;
      const w = this.#watches.get(set.fd(i));
      if (!w || w.events === 0) continue;
      this.#watches.delete(w.fd);
      w.events = 0;
      this.#stats.dispatches++;
      try {
        w.ready(revents);
      } catch (e) {
        // A listener threw (e.g. in `data`): surface it as an uncaught exception, as with
        // node:net, instead of tearing down the poller and every other socket.
        process.nextTick(() => {
          throw e;
        });
      }
    }
  }
}
