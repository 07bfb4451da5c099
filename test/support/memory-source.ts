import { randomBytes } from 'node:crypto';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import type { SummarySource } from '../../src/store/store-summary.ts';

export const randomHashPart = () => encodeNix32(randomBytes(20));

/** A store's rows in memory: ids only grow, deletions leave gaps, as in Nix's ValidPaths. */
export class MemorySource implements SummarySource {
  rows: { id: number; hashPart: string }[] = [];
  nextId = 1;
  /** Adds n new paths; their hash parts. */
  add(n: number): string[] {
    const added = Array.from({ length: n }, randomHashPart);
    for (const h of added) this.rows.push({ id: this.nextId++, hashPart: h });
    return added;
  }
  remove(n: number): void {
    this.rows.splice(0, n);
  }
  rowsAfter(afterId: number) {
    return this.rows.filter((r) => r.id > afterId);
  }
  count() {
    return this.rows.length;
  }
}
