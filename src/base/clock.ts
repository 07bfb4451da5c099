// Time as the code that decides by it sees it: a monotonic "now" for intervals, expiries and backoffs
// (wall time jumps with NTP and with a user setting the date; a miss remembered "until 12:00" must not
// last a day because the clock went back), and the timers that go with it. Code that decides by time
// takes a Clock, so its unit tests drive one (test/support/fake-clock.ts) instead of sleeping.

export interface TimerHandle {
  unref?(): unknown;
}

export interface Clock {
  /** Monotonic milliseconds; only differences mean anything. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};
