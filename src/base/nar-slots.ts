// Admission for NAR streams, the one kind of slot both directions use: at most `total` at once and
// `perAddress` for one address (a client's, when serving; a peer's origin, when fetching). A request
// over either cap waits in a bounded queue (first come, first served among those that fit) and is
// turned away if no slot frees up in time, so a flood of clients costs a fixed number of daemon
// connections, file descriptors and buffers, never one per client; and a peer is never asked for more
// NARs at once than its share.

import { type Clock, systemClock, type TimerHandle } from './clock.ts';

export interface NarSlotOptions {
  total: number;
  perAddress: number;
  /** Requests that may wait at once (Infinity: no bound); 0 turns every request over a cap away at once. */
  queue: number;
  waitMs: number;
  /** Times the queue waits (default: the system clock). */
  clock?: Clock;
}

export interface NarSlot {
  /** Gives the slot back (to the next waiter that fits). Idempotent. */
  release(): void;
}

/** 'busy': the caps stayed full; 'gone': the caller's signal aborted; 'closed': close() was called. */
export type Admission = { slot: NarSlot } | { refused: 'busy' | 'gone' | 'closed' };

/** What a NAR route needs of admission: these slots, or a claim on them from another event loop (nar-slot-claims.ts). */
export interface NarAdmission {
  acquire(address: string, signal?: AbortSignal): Admission | Promise<Admission>;
}

interface Waiter {
  address: string;
  grant: (slot: NarSlot) => void;
  finish: (a: Admission) => void;
  timer: TimerHandle;
  done: boolean;
}

export class NarSlots implements NarAdmission {
  private readonly limits: NarSlotOptions;
  private readonly clock: Clock;
  private active = 0;
  private readonly byAddress = new Map<string, number>();
  private readonly waiting: Waiter[] = [];
  /** Requests turned away because no slot came up; for logs and tests. */
  refused = 0;
  private closed = false;

  constructor(limits: NarSlotOptions) {
    this.limits = limits;
    this.clock = limits.clock ?? systemClock;
  }

  get inUse(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  inUseBy(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }

  /**
   * A slot now, a slot after waiting, or a refusal: 'busy' when the caps stayed full, 'gone' when
   * `signal` aborted (the client left) while waiting, 'closed' once close() was called.
   */
  acquire(address: string, signal?: AbortSignal): Admission | Promise<Admission> {
    if (this.closed) return { refused: 'closed' };
    // Whoever waits does not fit (admitWaiting runs on every release), so a request that fits now
    // jumps no one.
    if (this.fits(address)) return { slot: this.take(address) };
    if (this.waiting.length >= this.limits.queue) {
      this.refused++;
      return { refused: 'busy' };
    }
    return new Promise<Admission>((resolve) => {
      const waiter: Waiter = {
        address,
        done: false,
        grant: (slot) => finish({ slot }),
        finish: (a) => finish(a),
        timer: this.clock.setTimeout(() => {
          this.refused++;
          finish({ refused: 'busy' });
        }, this.limits.waitMs),
      };
      const onAbort = () => finish({ refused: 'gone' });
      const finish = (a: Admission) => {
        if (waiter.done) return;
        waiter.done = true;
        this.clock.clearTimeout(waiter.timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(a);
      };
      if (signal?.aborted) return finish({ refused: 'gone' });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Ends every wait at once ('closed') and refuses every later request: the owner is stopping. */
  close(): void {
    this.closed = true;
    for (const w of [...this.waiting]) w.finish({ refused: 'closed' });
  }

  private fits(address: string): boolean {
    return this.active < this.limits.total && this.inUseBy(address) < this.limits.perAddress;
  }

  private take(address: string): NarSlot {
    this.active++;
    this.byAddress.set(address, this.inUseBy(address) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        const n = this.inUseBy(address) - 1;
        if (n > 0) this.byAddress.set(address, n);
        else this.byAddress.delete(address);
        this.admitWaiting();
      },
    };
  }

  // A waiter whose address is under its cap may stand behind one whose address is full.
  private admitWaiting(): void {
    for (let i = 0; i < this.waiting.length && this.active < this.limits.total; ) {
      const w = this.waiting[i];
      if (this.fits(w.address)) {
        w.grant(this.take(w.address)); // removes w from the queue
      } else i++;
    }
  }
}
