import type { StatusView } from '../base/api.ts';
import type { Logger } from '../base/log.ts';
import { dirname, join } from 'node:path';
import { tickerOf } from '../base/beat.ts';
import type { Clock } from '../base/clock.ts';
import { FolderWatch, type FolderWatchOptions } from '../store/folder-watch.ts';
import { nixConfDir } from '../nix/nix-config.ts';
import { readNixTrust, type NixTrust, type TrustPolicy } from './trust.ts';
import { TrustFiles } from './trust-files.ts';

// This machine's Nix trust settings (trusted-public-keys, require-sigs), which peers' answers are
// judged by: read at start, again as soon as the kernel says a folder holding nix.conf or a file it
// includes changed (folder-watch.ts; within 10 s should it not say, within 2 s while a folder can't be
// watched — a stat of each every 2 s was most of this part's idle cost, #26), and every minute.
// Unreadable settings keep the last ones read (none at first: nothing from a peer is trusted) and
// say why in the status.

export type TrustView = NonNullable<StatusView['trust']>;

export interface TrustWatchOptions {
  log: Logger;
  /** The status shows something new. */
  changed: () => void;
  read?: () => NixTrust;
  everyMs?: number;
  clock?: Clock;
  /** Sets a folder watch (folder-watch.ts); for tests. */
  watch?: FolderWatchOptions['watch'];
}

const FALLBACK_EVERY_MS = 10_000;
const UNWATCHED_EVERY_MS = 2_000;

export class TrustWatch {
  policy: TrustPolicy = { requireSigs: true, keys: [] };
  view: TrustView = { source: null, keys: 0, requireSigs: true, error: 'not read yet' };
  private readonly opts: TrustWatchOptions;
  private readonly stopRefresh: () => void;
  private readonly folders: FolderWatch;
  /** The files last read (an unreadable include keeps the ones before). */
  private files = [join(nixConfDir(), 'nix.conf')];
  private readonly stamps: TrustFiles;

  constructor(opts: TrustWatchOptions) {
    this.opts = opts;
    this.refresh();
    this.stamps = new TrustFiles({ files: () => this.files, changed: () => this.refresh() });
    this.stopRefresh = tickerOf(opts.clock).every(opts.everyMs ?? 60_000, () => this.refresh());
    // Told of anything in these folders (a compile, a swap file): the stamps say whether it was ours.
    this.folders = new FolderWatch({
      folders: () => [...new Set(this.files.map((f) => dirname(f)))],
      onChange: () => this.stamps.check(),
      fallbackMs: FALLBACK_EVERY_MS,
      unwatchedMs: UNWATCHED_EVERY_MS,
      clock: opts.clock,
      watch: opts.watch,
    });
    this.folders.start();
  }

  /** Whether the kernel tells of changes to the trust files' folders (else they are looked at every 2 s). */
  get watching(): boolean {
    return this.folders.watching;
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
    this.stopRefresh();
    this.folders.stop();
  }
}
