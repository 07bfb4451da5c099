import type { DaemonHealth } from '../base/api.ts';
import type { Logger } from '../base/log.ts';
import type { LocalStore } from '../store/local-store.ts';
import type { StoreSummary } from '../store/store-summary.ts';

// Keeps what the status says about the local store current: the nix-daemon's health every 5 s, and,
// while sharing, this store's summary for peers — paths added here reach peers' summaries within
// moments: a look at the database's newest rows twice a second (an indexed query that finds nothing
// most of the time), and every 10 s a count for deletions.

export interface StoreWatchOptions {
  store: Pick<LocalStore, 'health'>;
  summary: Pick<StoreSummary, 'refresh'>;
  sharing: () => boolean;
  log: Logger;
  /** The status shows something new. */
  changed: () => void;
}

const DAEMON_EVERY_MS = 5_000;
const SUMMARY_EVERY_MS = 500;
const DELETIONS_EVERY_TICKS = 20;

export class StoreWatch {
  daemon: DaemonHealth = { ok: false, version: null, error: 'not checked yet' };
  private readonly opts: StoreWatchOptions;
  private timers: NodeJS.Timeout[] = [];
  private summaryTicks = 0;

  constructor(opts: StoreWatchOptions) {
    this.opts = opts;
  }

  /** Checks the daemon once (the status is right from the start), then keeps watching. */
  async start(): Promise<void> {
    await this.refreshDaemon();
    this.refreshSummary();
    this.timers = [setInterval(() => void this.refreshDaemon(), DAEMON_EVERY_MS), setInterval(() => this.refreshSummary(), SUMMARY_EVERY_MS)];
    for (const t of this.timers) t.unref();
  }

  private async refreshDaemon(): Promise<void> {
    const h = await this.opts.store.health();
    const changed = h.ok !== this.daemon.ok || h.error !== this.daemon.error;
    this.daemon = h;
    if (changed) {
      if (!h.ok) this.opts.log.warn(`nix-daemon unreachable: ${h.error}`);
      this.opts.changed();
    }
  }

  private refreshSummary(): void {
    if (this.opts.sharing()) this.opts.summary.refresh(++this.summaryTicks % DELETIONS_EVERY_TICKS === 0);
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }
}
