import { type Clock, systemClock, type TimerHandle } from './clock.ts';

// One wake-up for the process's periodic chores where their cadences meet (#26 idle cost). An idle
// Peernix has a handful of them — the registry's round and the network watch every 2 s, the
// daemon's health, the store and trust fallbacks — each on a timer of its own, so each woke the
// process at its own moment. On a busy machine a wake-up costs far more than the chore (an idle
// bare Node that wakes once a second costs 0.05–0.08 % of a core there). Here every chore runs at
// the multiples of its period counted from one origin, so chores of 2 s and 4 s run in the same
// wake-up, and one timer waits for the next of them.

export interface Ticker {
  /** Runs `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

interface Chore {
  ms: number;
  due: number;
  fn: () => void;
}

export class Beat implements Ticker {
  private readonly clock: Clock;
  private readonly origin: number;
  private readonly chores = new Set<Chore>();
  private timer: TimerHandle | null = null;
  private timerDue = Infinity;

  constructor(clock: Clock = systemClock) {
    this.clock = clock;
    this.origin = clock.now();
  }

  every(ms: number, fn: () => void): () => void {
    const chore: Chore = { ms, due: this.nextMultiple(ms, this.clock.now()), fn };
    this.chores.add(chore);
    this.arm();
    return () => {
      this.chores.delete(chore);
      if (this.chores.size === 0) this.disarm();
    };
  }

  /** Chores waiting (for tests and the status of a stop). */
  get size(): number {
    return this.chores.size;
  }

  /** The first multiple of `ms` from the origin after `now`. */
  private nextMultiple(ms: number, now: number): number {
    return this.origin + (Math.floor((now - this.origin) / ms) + 1) * ms;
  }

  private arm(): void {
    let due = Infinity;
    for (const c of this.chores) due = Math.min(due, c.due);
    if (due === this.timerDue && this.timer) return;
    this.disarm();
    if (due === Infinity) return;
    this.timerDue = due;
    this.timer = this.clock.setTimeout(() => this.run(), Math.max(0, due - this.clock.now()));
    this.timer.unref?.();
  }

  private disarm(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.timerDue = Infinity;
  }

  private run(): void {
    this.timer = null;
    this.timerDue = Infinity;
    // A timer may fire a hair early on another clock's reckoning: what is due within a millisecond runs now.
    const now = this.clock.now() + 1;
    for (const c of [...this.chores]) {
      if (c.due > now || !this.chores.has(c)) continue;
      c.due = this.nextMultiple(c.ms, now);
      try {
        c.fn();
      } catch (e) {
        // One chore's failure must not stop the others (nor the beat).
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    this.arm();
  }
}

/** The process's beat, for whatever runs on the system clock. */
export const processBeat = new Beat();

/** Timers on `clock` as a Ticker (a test's clock keeps its own timers); none given: the process's beat. */
export function tickerOf(clock?: Clock): Ticker {
  if (!clock) return processBeat;
  return {
    every(ms, fn) {
      const t = clock.setInterval(fn, ms);
      t.unref?.();
      return () => clock.clearInterval(t);
    },
  };
}
