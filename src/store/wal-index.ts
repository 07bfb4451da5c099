import fs from 'node:fs';

// Tells whether the store database may have changed, for the price of one 96-byte read instead of
// a query (a SQLite read transaction costs ~10 µs here, most of a narinfo's time in Peernix).
//
// Nix keeps its database in WAL mode. SQLite's WAL index (`db.sqlite-shm`, format documented at
// sqlite.org/walformat.html) starts with a 48-byte header that every write transaction and every
// checkpoint rewrites (change counter, last valid frame, salts, checksums), stored twice so that a
// reader can tell a half-written copy. Same header → no write since; anything odd → "can't tell".

const HEADER = 48;
const IS_INIT = 12; // byte offset of isInit in the header
const RECHECK_FILE_MS = 1000;

export class WalIndexWatch {
  private readonly path: string;
  private fd: number;
  private readonly buf = Buffer.alloc(2 * HEADER);
  private readonly last = Buffer.alloc(HEADER);
  private generation = 0;
  private fileCheckedAt = performance.now();

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /** Watches `<dbFile>-shm`; null when there is none (a database not in WAL mode). */
  static open(dbFile: string): WalIndexWatch | null {
    const path = `${dbFile}-shm`;
    try {
      return new WalIndexWatch(path, fs.openSync(path, 'r'));
    } catch {
      return null;
    }
  }

  /**
   * A number that stays the same exactly as long as the database has not been written; null when
   * the header cannot be trusted right now (being rewritten, not initialised, unreadable).
   */
  current(): number | null {
    // SQLite removes the index only when the last connection closes, and ours stays open; still, a
    // replaced file would freeze the header, so the file itself is re-checked now and then.
    if (performance.now() - this.fileCheckedAt > RECHECK_FILE_MS && !this.reopenIfReplaced()) return null;
    let n: number;
    try {
      n = fs.readSync(this.fd, this.buf, 0, this.buf.length, 0);
    } catch {
      return null;
    }
    if (n < this.buf.length) return null;
    const first = this.buf.subarray(0, HEADER);
    if (first[IS_INIT] !== 1 || !first.equals(this.buf.subarray(HEADER))) return null;
    if (!first.equals(this.last)) {
      first.copy(this.last);
      this.generation++;
    }
    return this.generation;
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }

  private reopenIfReplaced(): boolean {
    this.fileCheckedAt = performance.now();
    try {
      const open = fs.fstatSync(this.fd);
      const now = fs.statSync(this.path);
      if (open.ino === now.ino && open.dev === now.dev) return true;
      const fd = fs.openSync(this.path, 'r');
      this.close();
      this.fd = fd;
      this.generation++;
      this.last.fill(0);
      return true;
    } catch {
      return false;
    }
  }
}
