import type { StatusView } from '../base/api.ts';
import type { Logger } from '../base/log.ts';
import { join } from 'node:path';
import { nixConfDir } from '../nix/nix-config.ts';
import { readNixTrust, type NixTrust, type TrustPolicy } from './trust.ts';
import { TrustFiles } from './trust-files.ts';

// This machine's Nix trust settings (trusted-public-keys, require-sigs), which peers' answers are
// judged by: read at start, again within 2 s of a change to nix.conf or any file it includes, and
// every minute. Unreadable settings keep the last ones read (none at first: nothing from a peer is
// trusted) and say why in the status.

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
  private readonly timers: NodeJS.Timeout[];
  /** The files last read (an unreadable include keeps the ones before). */
  private files = [join(nixConfDir(), 'nix.conf')];
  private readonly stamps: TrustFiles;

  constructor(opts: TrustWatchOptions) {
    this.opts = opts;
    this.refresh();
    this.stamps = new TrustFiles({ files: () => this.files, changed: () => this.refresh() });
    this.timers = [setInterval(() => this.refresh(), opts.everyMs ?? 60_000), setInterval(() => this.stamps.check(), 2_000)];
    for (const t of this.timers) t.unref();
  }

  refresh(): void {
    let next: TrustView;
    try {
      const read = (this.opts.read ?? readNixTrust)();
      this.policy = read.policy;
      this.files = read.files;
      next = { source: read.source, keys: read.policy.keys.length, requireSigs: read.policy.requireSigs, error: null, clashes: read.clashes };
    } catch (e) {
      next = { ...this.view, error: (e as Error).message };
    }
    if (JSON.stringify(next) === JSON.stringify(this.view)) return;
    this.view = next;
    const log = this.opts.log;
    if (next.error) log.warn(`cannot read this machine's Nix trust settings (trusted-public-keys, require-sigs): ${next.error}`);
    else log.info(`Nix trust settings from ${next.source}: ${next.keys} trusted key(s), require-sigs ${next.requireSigs}`);
    for (const c of next.clashes ?? [])
      log.warn(
        `${c.ignored.length + 1} trusted keys are named ${c.name}; Nix honours only ${c.honoured} and refuses paths signed by ${c.ignored.join(', ')} (give each Go peernix host its own key-name)`,
      );
    this.opts.changed();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }
}
