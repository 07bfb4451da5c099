import { join } from 'node:path';
import { ChangeBatcher, type Topic } from '../base/change-batcher.ts';
import { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import { LAN_TOTALS_FILE, LanTotals } from './lan-totals.ts';
import { TransferTracker } from './transfers.ts';

// What the dashboard and the CLI follow as it happens: the event log, transfers in progress and the
// LAN totals, and the one feed of changes they all go out on. Events go out at once, re-read notices
// batched per tick, and transfers with the totals as one live change at most every 250 ms (a NAR
// streaming at full speed would otherwise send a change per chunk).

const LIVE_EVERY_MS = 250;

export class Activity {
  readonly changes = new ChangeBatcher();
  readonly events = new EventLog();
  readonly lanTotals: LanTotals;
  readonly transfers: TransferTracker;
  private liveTimer: NodeJS.Timeout | null = null;

  constructor(opts: { stateDir: string; log: Logger }) {
    this.events.subscribe((event) => this.changes.now({ topic: 'event', event }));
    this.lanTotals = new LanTotals({ file: join(opts.stateDir, LAN_TOTALS_FILE), log: opts.log.child('totals') });
    this.lanTotals.follow((l) => this.events.subscribe(l));
    this.transfers = new TransferTracker({ onUpdate: () => this.liveSoon(), onFlow: (direction, n) => this.lanTotals.flow(direction, n) });
    this.lanTotals.onChange(() => this.liveSoon());
  }

  /** A notice that a part of the snapshot changed (sent once per tick however often it is given). */
  notifySoon(topic: Topic): void {
    this.changes.soon(topic);
  }

  private liveSoon(): void {
    this.liveTimer ??= setTimeout(() => {
      this.liveTimer = null;
      this.changes.now({ topic: 'transfers', transfers: this.transfers.views(), lan: this.lanTotals.view() });
    }, LIVE_EVERY_MS);
    this.liveTimer.unref();
  }

  close(): void {
    this.changes.close();
    this.transfers.close();
    if (this.liveTimer) clearTimeout(this.liveTimer);
    this.lanTotals.close();
  }
}
