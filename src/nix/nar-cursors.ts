// Places in a NAR dump where a later dump of the same tree can pick up without walking what lies
// before. A dump from a byte offset otherwise lstats every entry before it (nar-writer.ts); a NAR
// fetched in pieces from several holders at once asks each holder for a dozen offsets of the same
// path, so every piece past the first re-walked most of the tree (13 pieces of a 52.5 MB Python
// library: 183 ms of CPU against 63 ms for one whole dump).
//
// A cursor is taken at the start of a directory entry: the directories open there (their sorted
// names, and which entry of each is in progress) and the entry's NAR offset. Store paths don't
// change while a GC temp root holds them, and the key names the path and its NarHash, so a cursor
// stays true for as long as it is kept. Bounded: cursors at least half a MiB apart, a few hundred
// per path, a few paths, and directory listings of at most MAX_NAMES names held in all (a cursor
// keeps the listings of the directories open at it; a tree of huge directories gets fewer cursors).

export interface NarCursor {
  /** NAR offset where the entry frames.at(-1).index of the innermost directory starts. */
  at: number;
  /** The root directory first; in each, the entry in progress (in the innermost: the one starting at `at`). */
  frames: { names: Buffer[]; index: number }[];
}

/** Cursors closer than this to one already kept add little: the walk between them is short. */
const MIN_GAP = 512 * 1024;
const MAX_NAMES = 200_000;

export class NarCursors {
  private readonly byKey = new Map<string, { cursors: NarCursor[]; listings: Map<Buffer[], number> }>();
  private readonly maxKeys: number;
  private readonly maxPerKey: number;
  private readonly maxNames: number;
  /** Names in every listing some kept cursor holds (each listing counted once per path). */
  private names = 0;

  constructor(opts: { maxKeys?: number; maxPerKey?: number; maxNames?: number } = {}) {
    this.maxKeys = opts.maxKeys ?? 16;
    this.maxPerKey = opts.maxPerKey ?? 512;
    this.maxNames = opts.maxNames ?? MAX_NAMES;
  }

  /** Names held in listings, in all (for tests). */
  get namesHeld(): number {
    return this.names;
  }

  /** The cursor nearest before `offset` (at or before it), or undefined. */
  find(key: string, offset: number): NarCursor | undefined {
    const entry = this.byKey.get(key);
    if (!entry) return undefined;
    // Recently used paths stay.
    this.byKey.delete(key);
    this.byKey.set(key, entry);
    const i = this.indexAfter(entry.cursors, offset) - 1;
    return i >= 0 ? entry.cursors[i] : undefined;
  }

  note(key: string, cursor: NarCursor): void {
    let entry = this.byKey.get(key);
    if (!entry) {
      entry = { cursors: [], listings: new Map() };
      this.byKey.set(key, entry);
      if (this.byKey.size > this.maxKeys) this.drop(this.byKey.keys().next().value!);
    }
    const list = entry.cursors;
    const i = this.indexAfter(list, cursor.at);
    if ((i > 0 && cursor.at - list[i - 1].at < MIN_GAP) || (i < list.length && list[i].at - cursor.at < MIN_GAP)) return;
    // Past the bounds, a path keeps the cursors it has: a dump from further on walks a little more.
    if (list.length >= this.maxPerKey) return;
    let added = 0;
    for (const f of cursor.frames) if (!entry.listings.has(f.names)) added += f.names.length;
    if (this.names + added > this.maxNames) return;
    this.names += added;
    for (const f of cursor.frames) entry.listings.set(f.names, (entry.listings.get(f.names) ?? 0) + 1);
    list.splice(i, 0, cursor);
  }

  private drop(key: string): void {
    const entry = this.byKey.get(key);
    if (!entry) return;
    this.byKey.delete(key);
    for (const names of entry.listings.keys()) this.names -= names.length;
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
