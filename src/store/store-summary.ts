import { randomBytes } from 'node:crypto';
import { BloomFilter } from 'bloomfilter';
import { encodeSummary, MAX_DELTA_PATHS, type SummaryDelta } from '../wire/summary-wire.ts';
import { settleOnce } from '../base/settle-once.ts';

// This store's summary for peers: a Bloom filter of every hash part in the store, brought up to
// date from the store's rows added since the last look (ids only grow), one generation per batch.
// Recent batches are kept so a peer that is a few generations behind gets only what was added.
// Deleted paths can't leave a Bloom filter: they stay as false positives (costing a peer one
// request each) until there are enough of them, or the store outgrew the filter, and it is rebuilt
// under a new epoch — peers then fetch it whole.

export interface SummarySource {
  /** Rows added after `afterId`, in id order; null while the store can't be read. */
  rowsAfter(afterId: number): { id: number; hashPart: string; path?: string }[] | null;
  /** How many paths the store holds now; null while it can't be read. */
  count(): number | null;
}

export interface StoreSummaryOptions {
  falsePositiveRate?: number; // default 1 %
  headroom?: number; // room for growth before a rebuild, as a factor of the paths at build time (default 1.1)
  /** Rebuild once this share of the filter's paths is gone (default 10 %, at least 1000 paths). */
  staleShare?: number;
  /**
   * Which rows this summary admits (scoped-summaries.ts); default all. With it, deletions are not
   * counted (the store's count is not this summary's): it is rebuilt on growth and when rules change.
   */
  admit?: (row: { hashPart: string; path?: string }) => boolean;
}

export class StoreSummary {
  private readonly source: SummarySource;
  private readonly fpRate: number;
  private readonly headroom: number;
  private readonly staleShare: number;
  private readonly admit: ((row: { hashPart: string; path?: string }) => boolean) | null;
  private filter: BloomFilter | null = null;
  private epoch = '';
  private generation = 0;
  private maxId = 0;
  private inFilter = 0;
  private capacity = 0;
  private batches: { generation: number; hashParts: string[] }[] = [];
  private batchedPaths = 0;
  private encoded: Buffer | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(source: SummarySource, opts: StoreSummaryOptions = {}) {
    this.source = source;
    this.fpRate = opts.falsePositiveRate ?? 0.01;
    this.headroom = opts.headroom ?? 1.1;
    this.staleShare = opts.staleShare ?? 0.1;
    this.admit = opts.admit ?? null;
  }

  /** Builds it anew now (the rules of what it admits changed). */
  rebuildNow(): boolean {
    return this.rebuild();
  }

  /** Takes in what the store gained (and rebuilds when deletions or growth call for it); true when the summary changed. */
  refresh(checkDeletions = false): boolean {
    if (!this.filter) return this.rebuild();
    if (checkDeletions && !this.admit) {
      const count = this.source.count();
      if (count !== null && this.inFilter - count > Math.max(1000, this.staleShare * this.inFilter)) return this.rebuild();
    }
    const all = this.source.rowsAfter(this.maxId);
    if (!all || all.length === 0) return false;
    const rows = this.admit ? all.filter(this.admit) : all;
    if (this.inFilter + rows.length > this.capacity) return this.rebuild();
    // Rows it does not admit are passed over for good (until a rebuild judges them again).
    this.maxId = all.at(-1)!.id;
    if (rows.length === 0) return false;
    const added: string[] = [];
    for (const row of rows) {
      this.filter.add(row.hashPart);
      added.push(row.hashPart);
    }
    this.inFilter += added.length;
    this.generation++;
    this.batches.push({ generation: this.generation, hashParts: added });
    this.batchedPaths += added.length;
    while (this.batchedPaths > MAX_DELTA_PATHS && this.batches.length > 0) this.batchedPaths -= this.batches.shift()!.hashParts.length;
    this.changed();
    return true;
  }

  get ready(): boolean {
    return this.filter !== null;
  }

  current(): { epoch: string; generation: number } {
    return { epoch: this.epoch, generation: this.generation };
  }

  /** The whole summary as it goes on the wire (encoded once per generation). */
  full(): Buffer | null {
    if (!this.filter) return null;
    this.encoded ??= encodeSummary({ epoch: this.epoch, generation: this.generation, paths: this.inFilter, filter: this.filter });
    return this.encoded;
  }

  /** What was added after `generation` of `epoch`; null when only the whole summary will do. */
  deltaSince(epoch: string, generation: number): SummaryDelta | null {
    if (!this.filter || epoch !== this.epoch || generation > this.generation) return null;
    const first = this.batches[0]?.generation ?? this.generation + 1;
    if (generation < first - 1 && generation !== this.generation) return null;
    const hashParts = this.batches.filter((b) => b.generation > generation).flatMap((b) => b.hashParts);
    return { epoch, from: generation, to: this.generation, hashParts };
  }

  /** Resolves when the summary moves past `generation` of `epoch`, or after `ms`. */
  waitForChange(epoch: string, generation: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (epoch !== this.epoch || generation !== this.generation) return Promise.resolve();
    return settleOnce<void>({ ms, onTimeout: () => undefined, signal }, (settle) => {
      const changed = () => settle();
      this.waiters.add(changed);
      return () => this.waiters.delete(changed);
    });
  }

  private rebuild(): boolean {
    const all = this.source.rowsAfter(0);
    if (!all) return false;
    const rows = this.admit ? all.filter(this.admit) : all;
    this.capacity = Math.max(1024, Math.ceil(rows.length * this.headroom));
    const filter = BloomFilter.withTargetError(this.capacity, this.fpRate);
    for (const row of rows) filter.add(row.hashPart);
    this.filter = filter;
    this.epoch = randomBytes(8).toString('hex');
    this.generation = 0;
    this.maxId = all.at(-1)?.id ?? 0;
    this.inFilter = rows.length;
    this.batches = [];
    this.batchedPaths = 0;
    this.changed();
    return true;
  }

  private changed(): void {
    this.encoded = null;
    for (const w of [...this.waiters]) w();
  }
}
