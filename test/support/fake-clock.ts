import type { Clock, TimerHandle } from '../../src/base/clock.ts';

// A Clock that moves only when the test says so: advance(ms) runs every timer that falls due on the
// way, in order, each at its own time. Intervals repeat.

interface Timer extends TimerHandle {
  at: number;
  every: number | null;
  fn: () => void;
  seq: number;
}

export class FakeClock implements Clock {
  private t: number;
  private timers = new Set<Timer>();
  private seq = 0;

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, null);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(h: TimerHandle): void {
    this.timers.delete(h as Timer);
  }

  clearInterval(h: TimerHandle): void {
    this.timers.delete(h as Timer);
  }

  /** Timers waiting now. */
  get pending(): number {
    return this.timers.size;
  }

  /**
   * Time passes with no timer run: this process's event loop was stalled (a loaded machine). The
   * timers that fell due run, late, at the next advance().
   */
  jump(ms: number): void {
    this.t += ms;
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: Timer | null = null;
      for (const tm of this.timers) if (tm.at <= end && (!next || tm.at < next.at || (tm.at === next.at && tm.seq < next.seq))) next = tm;
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      if (next.every === null) this.timers.delete(next);
      else next.at += next.every;
      next.fn();
    }
    this.t = end;
  }

  private add(fn: () => void, ms: number, every: number | null): Timer {
    const tm: Timer = { at: this.t + Math.max(0, ms), every, fn, seq: this.seq++, unref: () => tm };
    this.timers.add(tm);
    return tm;
  }
}
