import type { DaemonHealth } from '../base/api.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import type { LocalStore } from '../store/local-store.ts';
import type { StoreSummary } from '../store/store-summary.ts';
import { tickerOf } from '../base/beat.ts';
import { type Clock, systemClock } from '../base/clock.ts';
import { FolderWatch, type FolderWatchOptions } from '../store/folder-watch.ts';

// Keeps what the status says about the local store current: the nix-daemon's health every 6 s (on the
// process's beat, base/beat.ts, with the other 2 s chores: one wake-up for them all), and,
// while sharing, this store's summary for peers — paths added here reach peers' summaries within
// moments: the database's newest rows are looked at when the kernel says its folder was written
// (folder-watch.ts), every 10 s in case it didn't, and twice a second while the folder can't be
// watched — as before, when that was the only way (idle cost, #26). Deletions need a count, a scan
// of the table: at most every 10 s.

export interface StoreWatchOptions {
  store: Pick<LocalStore, 'health'> & Partial<Pick<LocalStore, 'location'>>;
  summary: Pick<StoreSummary, 'refresh'>;
  sharing: () => boolean;
  log: Logger;
  /** The status shows something new. */
  changed: () => void;
  /** Told when the daemon goes down, stalls or comes back. */
  events?: Pick<EventLog, 'emit'>;
  /** The store database's folder (`<root>/nix/var/nix/db`); default from the store's location. */
  dbFolder?: string;
  clock?: Clock;
  /** Sets a folder watch (folder-watch.ts); for tests. */
  watch?: FolderWatchOptions['watch'];
}

const DAEMON_EVERY_MS = 6_000;
const NOT_CHECKED = 'not checked yet';
const UNWATCHED_EVERY_MS = 500;
const FALLBACK_EVERY_MS = 10_000;
const DELETIONS_EVERY_MS = 10_000;

export class StoreWatch {
  daemon: DaemonHealth = { ok: false, version: null, error: NOT_CHECKED };
  private readonly opts: StoreWatchOptions;
  private stopDaemonChecks: (() => void) | null = null;
  private readonly folder: FolderWatch | null;
  private readonly clock: Clock;
  private deletionsAt = -Infinity;
  private checking = false;

  constructor(opts: StoreWatchOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    const dbFolder = opts.dbFolder ?? (opts.store.location ? `${opts.store.location.root}/nix/var/nix/db` : null);
    this.folder = dbFolder
      ? new FolderWatch({
          folders: () => [dbFolder],
          onChange: () => this.refreshSummary(),
          fallbackMs: FALLBACK_EVERY_MS,
          unwatchedMs: UNWATCHED_EVERY_MS,
          clock: opts.clock,
          watch: opts.watch,
        })
      : null;
  }

  /** Whether the kernel tells when the database is written (else it is looked at twice a second). */
  get watchingDb(): boolean {
    return this.folder?.watching ?? false;
  }

  /** Checks the daemon once (the status is right from the start), then keeps watching. */
  async start(): Promise<void> {
    await this.refreshDaemon();
    this.refreshSummary();
    this.stopDaemonChecks = tickerOf(this.opts.clock).every(DAEMON_EVERY_MS, () => void this.refreshDaemon());
    this.folder?.start();
  }

  private async refreshDaemon(): Promise<void> {
    // One check at a time: a stalled daemon answers the check only at its deadline.
    if (this.checking) return;
    this.checking = true;
    let h: DaemonHealth;
    try {
      h = await this.opts.store.health();
    } finally {
      this.checking = false;
    }
    const before = this.daemon;
    const changed = h.ok !== before.ok || h.error !== before.error;
    const first = before.error === NOT_CHECKED;
    this.daemon = h;
    if (changed) {
      if (!h.ok) this.opts.log.warn(`nix-daemon ${h.stalled ? 'stalled' : 'unreachable'}: ${h.error}`);
      else if (!first) this.opts.log.info('nix-daemon answers again');
      // Events mark what changed state, not each new wording of the same failure.
      if (!first && (h.ok !== before.ok || !!h.stalled !== !!before.stalled)) {
        this.opts.events?.emit({ type: 'daemon', state: h.ok ? 'ok' : h.stalled ? 'stalled' : 'down', detail: h.error });
      }
      this.opts.changed();
    }
  }

  private refreshSummary(): void {
    if (!this.opts.sharing()) return;
    const now = this.clock.now();
    const deletions = now - this.deletionsAt >= DELETIONS_EVERY_MS;
    if (deletions) this.deletionsAt = now;
    this.opts.summary.refresh(deletions);
  }

  stop(): void {
    this.stopDaemonChecks?.();
    this.folder?.stop();
  }
}
