import { existsSync } from 'node:fs';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { PathInfo } from './daemon-connection.ts';
import { HashPartFilter } from './hash-part-filter.ts';
import { WalIndexWatch } from './wal-index.ts';

// Read-only lookups in the store's own SQLite database, the fast path for narinfos: one indexed
// query instead of two daemon round trips (~30 µs against ~160 µs). The daemon reads the very same
// rows, so the answer is as authoritative as its own; NARs and GC temp roots still go through the
// daemon. Anything unexpected (no access, a schema we don't know, a busy database) returns
// undefined and the caller asks the daemon instead.
//
// Answers by hash part are kept until the database is next written (see wal-index.ts), so a narinfo
// asked again costs no query, and a path added or deleted is seen by the very next request. Misses
// are mostly answered by a filter of all hash parts in the store (hash-part-filter.ts), brought up
// to date after every write: rows are only ever added with a higher id (the schema's AUTOINCREMENT),
// so reading the rows above the highest id seen is enough. Deleted paths linger in the filter and
// cost the query they always did, until the filter is rebuilt.

const MAX_ANSWERS = 10_000;
const MIN_REBUILD = 10_000; // rebuild the filter once this many rows (or as many as it was built from) came since

export class StoreDb {
  private readonly db: DatabaseSync;
  private readonly byHash: StatementSync;
  private readonly byPath: StatementSync;
  private readonly refs: StatementSync;
  private readonly rowsAfter: StatementSync;
  private count: StatementSync | null = null;
  private wal: WalIndexWatch | null = null;
  private readonly answers = new Map<string, PathInfo | null>();
  private answersGeneration: number | null = null;
  private filter: HashPartFilter | null = null;
  private filterMaxId = 0;
  private filterBuiltFrom = 0;
  private filterAddedSince = 0;
  private nothingAfter: { afterId: number; generation: number } | null = null;
  private counted: { generation: number; n: number } | null = null;

  private constructor(db: DatabaseSync) {
    this.db = db;
    this.byHash = db.prepare(
      'SELECT id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca FROM ValidPaths WHERE path >= ? AND path < ? LIMIT 1',
    );
    this.byPath = db.prepare('SELECT id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca FROM ValidPaths WHERE path = ?');
    this.refs = db.prepare('SELECT v.path AS path FROM Refs r JOIN ValidPaths v ON r.reference = v.id WHERE r.referrer = ?');
    this.rowsAfter = db.prepare('SELECT id, path FROM ValidPaths WHERE id > ? ORDER BY id');
  }

  /**
   * Opens `<root>/nix/var/nix/db/db.sqlite` read-only, or returns null with why, and whether trying
   * again later may succeed. It may: a user who cannot write the database directory (anyone but
   * root) can read a WAL database only while its `-shm` index exists, and SQLite deletes that when
   * the last connection closes; the nix-daemon's per-connection processes hold one open while any
   * client (Peernix's own pool included) is connected, and once ours is open it keeps the file.
   */
  static open(root: string): { db: StoreDb | null; why: string | null; permanent?: boolean } {
    const file = `${root}/nix/var/nix/db/db.sqlite`;
    if (!existsSync(file)) return { db: null, why: `${file} does not exist` };
    // Looked up at run time: a runtime without node:sqlite (an older Electron) still runs, on the daemon.
    const sqlite = process.getBuiltinModule?.('node:sqlite') as typeof import('node:sqlite') | undefined;
    if (!sqlite) return { db: null, why: 'this Node has no node:sqlite', permanent: true };
    let db: DatabaseSync | null = null;
    try {
      db = new sqlite.DatabaseSync(file, { readOnly: true, timeout: 50 });
      const store = new StoreDb(db);
      store.byPath.get('/nix/store/x'); // proves the schema is one we can read
      // Only now: with no other connection open, the index file is (re)created by that first read.
      // And only in WAL mode: a -shm file left over from it would otherwise never change again.
      const mode = (db!.prepare('PRAGMA journal_mode').get() as { journal_mode?: string } | undefined)?.journal_mode;
      store.wal = mode === 'wal' ? WalIndexWatch.open(file) : null;
      if (store.wal) store.byHashPart('0'.repeat(32)); // builds the filter now rather than on a request
      return { db: store, why: null };
    } catch (e) {
      // Closed, not left to the GC: an open handle would hold the file (and its locks) until then.
      try {
        db?.close();
      } catch {
        // never opened
      }
      return { db: null, why: `${file}: ${(e as Error).message}` };
    }
  }

  /** The valid path with this hash part: PathInfo, null when there is none, undefined on error. */
  byHashPart(hashPart: string): PathInfo | null | undefined {
    // The generation is read before the query: a write landing in between changes it, so an answer
    // is never reused past a write it might not have seen.
    const generation = this.wal?.current() ?? null;
    if (generation === null || generation !== this.answersGeneration) {
      this.answers.clear();
      this.answersGeneration = generation;
      if (generation !== null) this.refreshFilter();
    } else {
      const known = this.answers.get(hashPart);
      if (known !== undefined) return known;
    }
    // The filter is as fresh as the generation just read; without one it cannot be trusted.
    if (generation !== null && this.filter && !this.filter.mayContain(hashPart)) return null;
    const answer = this.query(() => this.byHash.get(`/nix/store/${hashPart}`, `/nix/store/${hashPart}.`));
    if (generation !== null && answer !== undefined) {
      if (this.answers.size >= MAX_ANSWERS) this.answers.clear();
      this.answers.set(hashPart, answer);
    }
    return answer;
  }

  /** Hash parts of the rows added after `afterId`, in id order (this store's summary); null when the database can't be read. */
  hashPartsAfter(afterId: number): { id: number; hashPart: string; path: string }[] | null {
    // Asked twice a second while sharing: with no write since it last found nothing, nothing is new
    // (idle cost, #26). The generation is read before the query, as in byHashPart.
    const generation = this.wal?.current() ?? null;
    if (generation !== null && this.nothingAfter?.afterId === afterId && this.nothingAfter.generation === generation) return [];
    try {
      const out: { id: number; hashPart: string; path: string }[] = [];
      for (const row of this.rowsAfter.iterate(afterId) as Iterable<{ id: number; path: string }>)
        out.push({ id: row.id, hashPart: row.path.slice('/nix/store/'.length, '/nix/store/'.length + 32), path: row.path });
      this.nothingAfter = out.length === 0 && generation !== null ? { afterId, generation } : null;
      return out;
    } catch {
      return null;
    }
  }

  /** How many valid paths the store holds; null when the database can't be read. */
  pathCount(): number | null {
    // A count is a scan of the table: not repeated while nothing was written.
    const generation = this.wal?.current() ?? null;
    if (generation !== null && this.counted?.generation === generation) return this.counted.n;
    try {
      this.count ??= this.db.prepare('SELECT count(*) AS n FROM ValidPaths');
      const n = Number((this.count.get() as { n: number }).n);
      this.counted = generation !== null ? { generation, n } : null;
      return n;
    } catch {
      return null;
    }
  }

  byStorePath(path: string): PathInfo | null | undefined {
    return this.query(() => this.byPath.get(path));
  }

  close(): void {
    this.wal?.close();
    try {
      this.db.close();
    } catch {
      // already closed
    }
  }

  private refreshFilter(): void {
    try {
      if (!this.filter || this.filterAddedSince > Math.max(MIN_REBUILD, this.filterBuiltFrom)) {
        const fresh = new HashPartFilter();
        const { maxId, rows } = this.addRowsAfter(fresh, 0);
        this.filter = fresh;
        this.filterMaxId = maxId;
        this.filterBuiltFrom = rows;
        this.filterAddedSince = 0;
      } else {
        const { maxId, rows } = this.addRowsAfter(this.filter, this.filterMaxId);
        this.filterMaxId = maxId;
        this.filterAddedSince += rows;
      }
    } catch {
      this.filter = null; // every lookup queries, as before
    }
  }

  private addRowsAfter(filter: HashPartFilter, afterId: number): { maxId: number; rows: number } {
    let maxId = afterId;
    let rows = 0;
    for (const row of this.rowsAfter.iterate(afterId) as Iterable<{ id: number; path: string }>) {
      filter.add(row.path.slice('/nix/store/'.length));
      maxId = row.id;
      rows++;
    }
    return { maxId, rows };
  }

  // A row's references never change while its id lives, and ids are never reused (AUTOINCREMENT),
  // so they are read once.
  private readonly refsById = new Map<number, string[]>();

  private referencesOf(id: number): string[] {
    let refs = this.refsById.get(id);
    if (!refs) {
      refs = (this.refs.all(id) as { path: string }[]).map((r) => r.path).sort();
      if (this.refsById.size >= 50_000) this.refsById.delete(this.refsById.keys().next().value!);
      this.refsById.set(id, refs);
    }
    return refs;
  }

  private query(get: () => unknown): PathInfo | null | undefined {
    try {
      const row = get() as Row | undefined;
      if (!row) return null;
      const hash = /^sha256:([0-9a-f]{64})$/.exec(row.hash);
      if (!hash || typeof row.narSize !== 'number' || row.narSize <= 0) return undefined;
      const refs = this.referencesOf(row.id);
      return {
        path: row.path,
        deriver: row.deriver || null,
        narHash: Buffer.from(hash[1], 'hex'),
        references: refs,
        registrationTime: Number(row.registrationTime),
        narSize: row.narSize,
        ultimate: row.ultimate === 1,
        sigs: row.sigs ? row.sigs.split(' ').filter(Boolean) : [],
        ca: row.ca || null,
      };
    } catch {
      return undefined;
    }
  }
}

interface Row {
  id: number;
  path: string;
  hash: string;
  registrationTime: number;
  deriver: string | null;
  narSize: number | null;
  ultimate: number | null;
  sigs: string | null;
  ca: string | null;
}
