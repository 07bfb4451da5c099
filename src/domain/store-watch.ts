import type { DaemonHealth } from '../base/api.ts';
import type { EventLog } from '../base/events.ts';
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
  /** Told when the daemon goes down, stalls or comes back. */
  events?: Pick<EventLog, 'emit'>;
}

const DAEMON_EVERY_MS = 5_000;
const NOT_CHECKED = 'not checked yet';
const SUMMARY_EVERY_MS = 500;
const DELETIONS_EVERY_TICKS = 20;

export class StoreWatch {
  daemon: DaemonHealth = { ok: false, version: null, error: NOT_CHECKED };
  private readonly opts: StoreWatchOptions;
  private timers: NodeJS.Timeout[] = [];
  private summaryTicks = 0;
  private checking = false;

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
    if (this.opts.sharing()) this.opts.summary.refresh(++this.summaryTicks % DELETIONS_EVERY_TICKS === 0);
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }
}
