// Places in a NAR dump where a later dump of the same tree can pick up without walking what lies
// before. A dump from a byte offset otherwise lstats every entry before it (nar-writer.ts); a NAR
// fetched in pieces from several holders at once asks each holder for a dozen offsets of the same
// path, so every piece past the first re-walked most of the tree (13 pieces of a 52.5 MB Python
// library: 183 ms of CPU against 63 ms for one whole dump).
//
// A cursor is taken at the start of a directory entry: the directories open there (their sorted
// names, and which entry of each is in progress) and the entry's NAR offset. Store paths don't
// change while a GC temp root holds them, and the key names the path and its NarHash, so a cursor
// stays true for as long as it is kept. Bounded: a few cursors per path, a few paths.

export interface NarCursor {
  /** NAR offset where the entry frames.at(-1).index of the innermost directory starts. */
  at: number;
  /** The root directory first; in each, the entry in progress (in the innermost: the one starting at `at`). */
  frames: { names: Buffer[]; index: number }[];
}

export class NarCursors {
  private readonly byKey = new Map<string, NarCursor[]>();
  private readonly maxKeys: number;
  private readonly maxPerKey: number;

  constructor(opts: { maxKeys?: number; maxPerKey?: number } = {}) {
    this.maxKeys = opts.maxKeys ?? 16;
    this.maxPerKey = opts.maxPerKey ?? 512;
  }

  /** The cursor nearest before `offset` (at or before it), or undefined. */
  find(key: string, offset: number): NarCursor | undefined {
    const list = this.byKey.get(key);
    if (!list) return undefined;
    // Recently used paths stay.
    this.byKey.delete(key);
    this.byKey.set(key, list);
    const i = this.indexAfter(list, offset) - 1;
    return i >= 0 ? list[i] : undefined;
  }

  note(key: string, cursor: NarCursor): void {
    let list = this.byKey.get(key);
    if (!list) {
      list = [];
      this.byKey.set(key, list);
      if (this.byKey.size > this.maxKeys) this.byKey.delete(this.byKey.keys().next().value!);
    }
    const i = this.indexAfter(list, cursor.at);
    if (i > 0 && list[i - 1].at === cursor.at) return;
    // Past the bound, a path keeps the cursors it has: a dump from further on walks a little more.
    if (list.length >= this.maxPerKey) return;
    list.splice(i, 0, cursor);
  }

  /** The index of the first cursor past `offset`. */
  private indexAfter(list: NarCursor[], offset: number): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].at <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
