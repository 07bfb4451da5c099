// The one way to wait for whichever comes first of an outcome, a deadline and an abort, for the waits
// that AbortSignal.timeout or events.once don't fit (a callback API, a waiter list). Whatever happens
// first settles the promise; everything else becomes a no-op, and the timer, the abort listener and the
// caller's own cleanup run exactly once, so a late callback or a late timer can't settle it twice or
// leak a listener per wait.

export interface SettleOnceOptions<T> {
  /** The deadline; the promise resolves with `onTimeout()` when it passes first. */
  ms: number;
  onTimeout: () => T;
  /** Also resolves, with `onAbort()`, when this aborts first. */
  signal?: AbortSignal;
  onAbort?: () => T;
  /** Don't keep the process alive for the deadline alone. */
  unref?: boolean;
}

/**
 * `start` begins the work and calls `settle` with its outcome; it may return a cleanup (destroy a
 * socket, leave a waiter list), run once whichever way the wait ends.
 */
export function settleOnce<T>(opts: SettleOnceOptions<T>, start: (settle: (value: T) => void) => (() => void) | void): Promise<T> {
  return new Promise<T>((resolve) => {
    let done = false;
    let cleanup: (() => void) | void;
    const settle = (value: T) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      cleanup?.();
      resolve(value);
    };
    const onAbort = () => settle((opts.onAbort ?? opts.onTimeout)());
    const timer = setTimeout(() => settle(opts.onTimeout()), opts.ms);
    if (opts.unref) timer.unref();
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = start(settle);
    // `start` may have settled at once, before its cleanup was known.
    if (done) cleanup?.();
  });
}
