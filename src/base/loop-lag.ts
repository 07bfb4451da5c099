import { systemClock, type Clock, type TimerHandle } from './clock.ts';

// How long this process's event loop was stalled, and when. On a busy laptop (a build on every core)
// the loop can sit for hundreds of milliseconds between turns; a timer that says "the peer was silent
// for 500 ms" then counts our own absence as the peer's. Peer health asks how much of a window we were
// away, and strikes a peer only for silence we were awake to hear.
//
// A light sampler: a timer every `everyMs` that notes how late it ran. It runs only while someone
// holds it (a lookup is waiting on a peer), so an idle process pays nothing.

export interface LoopLag {
  /** Keeps the sampler running until the returned function is called. */
  hold(): () => void;
  /** Milliseconds of the window [from, to] (this clock's time) the loop spent stalled. */
  stalledBetween(from: number, to: number): number;
}

interface Stall {
  end: number; // when the loop came back
  ms: number; // how long it was away beyond the sampling interval
}

const KEEP = 512;

export class SampledLoopLag implements LoopLag {
  private readonly clock: Clock;
  private readonly everyMs: number;
  private readonly minMs: number;
  private holders = 0;
  private timer: TimerHandle | null = null;
  private last = 0;
  private readonly stalls: Stall[] = [];

  constructor(opts: { clock?: Clock; everyMs?: number; minMs?: number } = {}) {
    this.clock = opts.clock ?? systemClock;
    this.everyMs = opts.everyMs ?? 20;
    this.minMs = opts.minMs ?? 5;
  }

  hold(): () => void {
    this.holders++;
    if (!this.timer) {
      this.last = this.clock.now();
      this.timer = this.clock.setInterval(() => this.tick(), this.everyMs);
      this.timer.unref?.();
    }
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.holders === 0 && this.timer) {
        this.tick();
        this.clock.clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  stalledBetween(from: number, to: number): number {
    let total = 0;
    const spans = this.timer ? [...this.stalls, this.current()] : this.stalls;
    for (const s of spans) {
      const start = s.end - s.ms;
      total += Math.max(0, Math.min(to, s.end) - Math.max(from, start));
    }
    return total;
  }

  /** The stall in progress: the time since the last tick beyond one interval. */
  private current(): Stall {
    const now = this.clock.now();
    return { end: now, ms: Math.max(0, now - this.last - this.everyMs) };
  }

  private tick(): void {
    const s = this.current();
    this.last = s.end;
    if (s.ms < this.minMs) return;
    this.stalls.push(s);
    if (this.stalls.length > KEEP) this.stalls.shift();
  }
}

/** For code that runs without a sampler (never late). */
export const NO_LAG: LoopLag = { hold: () => () => {}, stalledBetween: () => 0 };
