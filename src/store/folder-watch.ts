import fs from 'node:fs';
import path from 'node:path';
import { type Ticker, tickerOf } from '../base/beat.ts';
import { type Clock, systemClock, type TimerHandle } from '../base/clock.ts';

// Says when something in a few folders may have changed, so that a watcher looks when there is
// something to see rather than on a fast timer (idle cost, #26: the store database twice a second and
// nix.conf's stamps every 2 s were most of an idle node's own timers).
//
// The kernel tells (inotify through fs.watch, on the folders so that a file replaced or created is
// seen too). It can stay silent: a change made through another mount namespace or on a network file
// system, a folder that doesn't exist yet, inotify's watch limit. So it is also told on a slow tick,
// and on a fast one while any folder can't be watched. Whoever listens looks cheaply at what it cares
// about; being told is never proof of a change.
//
// A write seen by the kernel may become visible a moment later (SQLite publishes a commit in its
// WAL index through shared memory, which inotify doesn't see), so an event is followed by a second
// look a little later.

export interface FolderWatchOptions {
  /** The folders to watch, asked again at each tick (they may change, or appear). */
  folders: () => string[];
  /** Something may have changed; `tick` when it is the timer's turn rather than an event. */
  onChange: (why: 'event' | 'tick') => void;
  /** A look this often even with every folder watched (default 10 s). */
  fallbackMs?: number;
  /** A look this often while some folder can't be watched (default 500 ms). */
  unwatchedMs?: number;
  /** Events this close together are told once (default 100 ms). */
  settleMs?: number;
  /** The second look after an event (default 1 s). */
  againMs?: number;
  clock?: Clock;
  /** Sets a watch on one folder; throws when it can't. Default: fs.watch. */
  watch?: (folder: string, onEvent: () => void, onError: () => void) => { close(): void };
}

/** fs.watch on a folder, not keeping the process alive. */
export function watchFolder(folder: string, onEvent: () => void, onError: () => void): { close(): void } {
  const w = fs.watch(folder, { persistent: false }, () => onEvent());
  w.on('error', onError);
  return w;
}

/** The folder itself if it exists, else its nearest existing ancestor; null when none is a folder. */
export function nearestExisting(folder: string): string | null {
  for (let at = path.resolve(folder); ; at = path.dirname(at)) {
    try {
      if (fs.statSync(at).isDirectory()) return at;
      return null; // a file where a folder should be: nothing to wait for
    } catch {
      if (at === path.dirname(at)) return null;
    }
  }
}

export class FolderWatch {
  private readonly opts: FolderWatchOptions;
  private readonly clock: Clock;
  // null: could not be watched. standIn: the folder doesn't exist yet and its nearest existing
  // ancestor is watched instead, so its creation is an event (retrying a missing folder on every tick
  // cost a failed inotify_add_watch and an exception each time, and kept the fast tick going).
  private readonly watches = new Map<string, { close(): void; standIn: boolean } | null>();
  private readonly ticker: Ticker;
  private stopTick: (() => void) | null = null;
  private tickEvery = 0;
  private settleTimer: TimerHandle | null = null;
  private againTimer: TimerHandle | null = null;
  private stopped = false;

  constructor(opts: FolderWatchOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.ticker = tickerOf(opts.clock);
  }

  /** Sets the watches and the tick. */
  start(): void {
    this.sync();
    this.schedule();
  }

  /** Whether every folder is watched now (false: the fast tick stands in). */
  get watching(): boolean {
    return this.watches.size > 0 && [...this.watches.values()].every((w) => w !== null);
  }

  stop(): void {
    this.stopped = true;
    this.stopTick?.();
    this.stopTick = null;
    for (const t of [this.settleTimer, this.againTimer]) if (t) this.clock.clearTimeout(t);
    this.settleTimer = this.againTimer = null;
    for (const w of this.watches.values()) w?.close();
    this.watches.clear();
  }

  /** Watches exactly the folders asked for now, trying again those that failed before. */
  private sync(): void {
    const wanted = new Set(this.opts.folders());
    for (const [folder, w] of this.watches)
      if (!wanted.has(folder) || w === null || (w.standIn && fs.existsSync(folder))) {
        w?.close();
        this.watches.delete(folder);
      }
    for (const folder of wanted) {
      if (this.watches.has(folder)) continue;
      const target = nearestExisting(folder);
      try {
        if (target === null) throw new Error(`nothing of ${folder} exists`);
        const w = (this.opts.watch ?? watchFolder)(
          target,
          () => this.event(),
          () => this.lost(folder),
        );
        this.watches.set(folder, { close: () => w.close(), standIn: target !== folder });
      } catch {
        this.watches.set(folder, null);
      }
    }
  }

  /** A watch broke (its folder was removed or moved): the fast tick stands in until it can be set again. */
  private lost(folder: string): void {
    if (this.stopped) return;
    this.watches.get(folder)?.close();
    this.watches.set(folder, null);
    this.schedule();
    this.event();
  }

  private event(): void {
    if (this.stopped || this.settleTimer) return;
    this.settleTimer = this.later(() => {
      this.settleTimer = null;
      // A folder that was missing may exist now: watch it rather than its ancestor.
      if ([...this.watches.values()].some((w) => w?.standIn)) this.sync();
      this.opts.onChange('event');
      if (this.againTimer) this.clock.clearTimeout(this.againTimer);
      this.againTimer = this.later(() => {
        this.againTimer = null;
        this.opts.onChange('event');
      }, this.opts.againMs ?? 1000);
    }, this.opts.settleMs ?? 100);
  }

  /** The tick for the current state of the watches (on the process's beat, base/beat.ts). */
  private schedule(): void {
    if (this.stopped) return;
    const every = this.watching ? (this.opts.fallbackMs ?? 10_000) : (this.opts.unwatchedMs ?? 500);
    if (this.stopTick && every === this.tickEvery) return;
    this.stopTick?.();
    this.tickEvery = every;
    this.stopTick = this.ticker.every(every, () => {
      this.sync();
      this.opts.onChange('tick');
      this.schedule();
    });
  }

  private later(fn: () => void, ms: number): TimerHandle {
    const t = this.clock.setTimeout(fn, ms);
    t.unref?.();
    return t;
  }
}
