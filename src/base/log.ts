// Logs go to stderr as one line each, so the daemon's stdout stays free for command output.
//
// Warnings and errors are rate-limited per kind of message: anything a LAN client can cause repeatedly
// (a transfer cut, a bad request) must not be able to fill the log. A message's kind is its text with
// numbers and store hashes blanked out; each kind gets a few lines per minute, and the rest of that
// minute is summed up in one "suppressed" line when it ends.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  /** Lets hot paths skip building debug lines nobody will see. */
  readonly debugEnabled: boolean;
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  child(scope: string): Logger;
}

export function isLogLevel(s: string): s is LogLevel {
  return s in ORDER;
}

export interface RateLimitOptions {
  /** Lines of one kind let through per window. */
  perWindow: number;
  windowMs: number;
  /** Kinds tracked at once (the oldest window is summed up early past this). */
  maxKinds?: number;
  now?: () => number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { perWindow: 10, windowMs: 60_000, maxKinds: 1000 };

interface Window {
  started: number;
  count: number;
  suppressed: number;
  level: LogLevel;
  scope: string;
  sample: string;
  timer: NodeJS.Timeout | null;
}

/** The part of a message that says what happened, without which path, peer or how many bytes. */
export function messageKind(msg: string): string {
  return msg
    .replace(/\b[0-9a-df-np-sv-z]{32}\b/g, '<hash>')
    .replace(/\d+/g, '#')
    .slice(0, 200);
}

export class LogRateLimiter {
  private readonly limits: Required<RateLimitOptions>;
  private readonly windows = new Map<string, Window>();
  private readonly write: (lvl: LogLevel, scope: string, msg: string) => void;

  constructor(write: (lvl: LogLevel, scope: string, msg: string) => void, limits: RateLimitOptions = DEFAULT_RATE_LIMIT) {
    this.write = write;
    this.limits = { maxKinds: 1000, now: () => Date.now(), ...limits };
  }

  log(lvl: LogLevel, scope: string, msg: string): void {
    const key = `${lvl}\0${scope}\0${messageKind(msg)}`;
    const now = this.limits.now();
    let w = this.windows.get(key);
    if (w && now - w.started >= this.limits.windowMs) {
      this.close(key, w);
      w = undefined;
    }
    if (!w) {
      if (this.windows.size >= this.limits.maxKinds) {
        const [oldKey, old] = this.windows.entries().next().value!;
        this.close(oldKey, old);
      }
      w = { started: now, count: 0, suppressed: 0, level: lvl, scope, sample: msg, timer: null };
      this.windows.set(key, w);
    }
    if (w.count < this.limits.perWindow) {
      w.count++;
      this.write(lvl, scope, msg);
      return;
    }
    w.suppressed++;
    w.sample = msg;
    if (!w.timer) {
      const win = w;
      // The summary must come even if the messages stop; it never keeps the process alive.
      win.timer = setTimeout(() => this.close(key, win), Math.max(0, this.limits.windowMs - (now - win.started)));
      win.timer.unref?.();
    }
  }

  /** Writes every pending summary now (at shutdown, or in tests). */
  flush(): void {
    for (const [k, w] of [...this.windows]) this.close(k, w);
  }

  private close(key: string, w: Window): void {
    if (this.windows.get(key) !== w) return;
    this.windows.delete(key);
    if (w.timer) clearTimeout(w.timer);
    if (w.suppressed > 0) {
      const secs = Math.round(this.limits.windowMs / 1000);
      this.write(w.level, w.scope, `suppressed ${w.suppressed} more like this in ${secs} s; the last: ${w.sample}`);
    }
  }
}

export function createLogger(
  level: LogLevel = 'info',
  scope = 'peernix',
  sink: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  rateLimit: RateLimitOptions | null = DEFAULT_RATE_LIMIT,
): Logger {
  const write = (lvl: LogLevel, sc: string, msg: string) => sink(`${new Date().toISOString()} ${lvl.padEnd(5)} [${sc}] ${msg}`);
  const limiter = rateLimit ? new LogRateLimiter(write, rateLimit) : null;
  return makeLogger(level, scope, write, limiter);
}

function makeLogger(level: LogLevel, scope: string, write: (lvl: LogLevel, scope: string, msg: string) => void, limiter: LogRateLimiter | null): Logger {
  const min = ORDER[level];
  const emit = (lvl: LogLevel, msg: string) => {
    if (ORDER[lvl] < min) return;
    if (limiter && ORDER[lvl] >= ORDER.warn) limiter.log(lvl, scope, msg);
    else write(lvl, scope, msg);
  };
  return {
    debugEnabled: min <= ORDER.debug,
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    // Children share the parent's limiter, so a flood is counted once whatever logs it.
    child: (s) => makeLogger(level, `${scope}:${s}`, write, limiter),
  };
}

export const silentLogger: Logger = {
  debugEnabled: false,
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
