import type { StatusView } from '../base/api.ts';
import type { Logger } from '../base/log.ts';
import { readNixTrust, type NixTrust, type TrustPolicy } from './trust.ts';

// This machine's Nix trust settings (trusted-public-keys, require-sigs), which peers' answers are
// judged by: read at start and every minute. Unreadable settings keep the last ones read (none at
// first: nothing from a peer is trusted) and say why in the status.

export type TrustView = NonNullable<StatusView['trust']>;

export interface TrustWatchOptions {
  log: Logger;
  /** The status shows something new. */
  changed: () => void;
  read?: () => NixTrust;
  everyMs?: number;
}

export class TrustWatch {
  policy: TrustPolicy = { requireSigs: true, keys: [] };
  view: TrustView = { source: null, keys: 0, requireSigs: true, error: 'not read yet' };
  private readonly opts: TrustWatchOptions;
  private readonly timer: NodeJS.Timeout;

  constructor(opts: TrustWatchOptions) {
    this.opts = opts;
    this.refresh();
    this.timer = setInterval(() => this.refresh(), opts.everyMs ?? 60_000);
    this.timer.unref();
  }

  refresh(): void {
    let next: TrustView;
    try {
      const read = (this.opts.read ?? readNixTrust)();
      this.policy = read.policy;
      next = { source: read.source, keys: read.policy.keys.length, requireSigs: read.policy.requireSigs, error: null };
    } catch (e) {
      next = { ...this.view, error: (e as Error).message };
    }
    if (JSON.stringify(next) === JSON.stringify(this.view)) return;
    this.view = next;
    const log = this.opts.log;
    if (next.error) log.warn(`cannot read this machine's Nix trust settings (trusted-public-keys, require-sigs): ${next.error}`);
    else log.info(`Nix trust settings from ${next.source}: ${next.keys} trusted key(s), require-sigs ${next.requireSigs}`);
    this.opts.changed();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
