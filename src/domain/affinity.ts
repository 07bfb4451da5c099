import type { CacheEntryView } from '../base/api.ts';

// hash part → where its narinfo was last served from, with the NarHash that was promised. The NAR
// route tries this source first; it is a fast path and a record for the user, never the only way to
// find a NAR (the NAR URL alone is enough for that).

export const LOCAL = 'local';

export interface AffinityEntry {
  hashPart: string;
  storePath: string;
  source: string; // LOCAL or a peer id
  sourceName: string;
  peerNarUrl: string | null; // where that peer serves the NAR (its narinfo's URL, absolute)
  narHash32: string; // nix32 without the "sha256:" prefix
  narSize: number;
  createdAt: number;
  updatedAt: number;
  hits: number;
}

export class AffinityCache {
  // A Map keeps insertion order: re-inserting on use makes it an LRU.
  private readonly entries = new Map<string, AffinityEntry>();
  private readonly limit: number;
  private readonly onChange: () => void;

  constructor(limit = 20_000, onChange: () => void = () => {}) {
    this.limit = limit;
    this.onChange = onChange;
  }

  get(hashPart: string): AffinityEntry | undefined {
    return this.entries.get(hashPart);
  }

  record(e: Omit<AffinityEntry, 'createdAt' | 'updatedAt' | 'hits'>): AffinityEntry {
    const now = Date.now();
    const old = this.entries.get(e.hashPart);
    this.entries.delete(e.hashPart);
    const entry: AffinityEntry = { ...e, createdAt: old?.createdAt ?? now, updatedAt: now, hits: old?.hits ?? 0 };
    this.entries.set(e.hashPart, entry);
    if (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
    this.onChange();
    return entry;
  }

  hit(hashPart: string): void {
    const e = this.entries.get(hashPart);
    if (!e) return;
    e.hits++;
    this.onChange();
  }

  views(): CacheEntryView[] {
    return [...this.entries.values()].reverse().map((e) => ({
      hashPart: e.hashPart,
      storePath: e.storePath,
      name: e.storePath.slice('/nix/store/'.length + 33),
      source: e.source,
      sourceName: e.sourceName,
      narHash: `sha256:${e.narHash32}`,
      narSize: e.narSize,
      createdAt: e.createdAt,
      updatedAt: e.updatedAt,
      hits: e.hits,
    }));
  }
}
