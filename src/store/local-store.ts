import type { Readable } from 'node:stream';
import { dumpNar } from '../nix/nar-writer.ts';
import { DaemonPool } from './daemon-pool.ts';
import { DaemonError, type DaemonConnection, type PathInfo } from './daemon-connection.ts';
import { StoreDb } from './store-db.ts';
import type { StoreLocation } from './store-uri.ts';

// The local Nix store as the cache needs it: metadata over pooled daemon connections, and NARs
// under a GC temp root that lives on a connection of their own for exactly as long as the transfer.

export type NarSourceKind = 'daemon' | 'filesystem';

export interface LocalNar {
  info: PathInfo;
  /** The whole NAR, exactly info.narSize bytes (the caller verifies them). */
  stream(): Readable;
  /** The NAR from byte `start`, skipping file contents before it unread (filesystem source only). */
  streamFrom?(start: number): Readable;
  /** Drops the temp root. Safe to call more than once. */
  release(): void;
}

export interface LocalStoreOptions {
  location: StoreLocation;
  narSource?: NarSourceKind;
  poolSize?: number;
  /** Read narinfo metadata from the store's SQLite database when it is readable (default true). */
  useDb?: boolean;
}

export class LocalStore {
  readonly location: StoreLocation;
  readonly narSource: NarSourceKind;
  private readonly pool: DaemonPool;
  private readonly db: StoreDb | null;
  /** Why metadata comes from the daemon rather than the database, when it does. */
  readonly dbUnavailable: string | null;

  constructor(opts: LocalStoreOptions) {
    this.location = opts.location;
    this.narSource = opts.narSource ?? 'filesystem';
    this.pool = new DaemonPool({ socketPath: opts.location.socketPath, size: opts.poolSize ?? 4 });
    const opened = opts.useDb === false ? { db: null, why: 'disabled' } : StoreDb.open(opts.location.root);
    this.db = opened.db;
    this.dbUnavailable = opened.why;
  }

  /**
   * The database's answer, when it can give one at once: a PathInfo, or null for no such path.
   * Undefined means ask pathInfoByHashPart(). The database answers only while the daemon is up: a
   * narinfo is a promise of a NAR, and NARs need the daemon (for the temp root).
   */
  pathInfoFromDb(hashPart: string): PathInfo | null | undefined {
    return this.daemonDown ? undefined : this.db?.byHashPart(hashPart);
  }

  async pathInfoByHashPart(hashPart: string): Promise<PathInfo | null> {
    // While the daemon is down the daemon path fails and the listener says 503.
    const fromDb = this.pathInfoFromDb(hashPart);
    if (fromDb !== undefined) return fromDb;
    return this.daemonCall(async () => {
      const path = await this.pool.queryPathFromHashPart(hashPart);
      return path ? this.pool.queryPathInfo(path) : null;
    });
  }

  private daemonDown = false;

  private async daemonCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const v = await fn();
      this.daemonDown = false;
      return v;
    } catch (e) {
      if (e instanceof DaemonError && e.fatal) this.daemonDown = true;
      throw e;
    }
  }

  /**
   * The NAR of the path with this hash part, if it exists with exactly this NarHash; otherwise why not.
   * The temp root is taken before validity is checked, so a path found valid stays valid until release().
   */
  async openNar(hashPart: string, narHash: Buffer): Promise<LocalNar | 'missing' | 'mismatch'> {
    const known = this.daemonDown ? undefined : this.db?.byHashPart(hashPart);
    const path = known === undefined ? await this.daemonCall(() => this.pool.queryPathFromHashPart(hashPart)) : known?.path;
    if (!path) return 'missing';
    const conn = await this.daemonCall(() => this.pool.openDedicated());
    let info: PathInfo | null;
    try {
      // Pipelined on one connection: the daemon runs them in order, root first.
      const [, found] = await Promise.all([conn.addTempRoot(path), conn.queryPathInfo(path)]);
      info = found;
    } catch (e) {
      conn.close();
      throw e;
    }
    if (!info || !info.narHash.equals(narHash)) {
      conn.close();
      return info ? 'mismatch' : 'missing';
    }
    return this.handle(conn, info);
  }

  async health(): Promise<{ ok: boolean; version: string | null; error: string | null }> {
    const h = await this.pool.health();
    this.daemonDown = !h.ok;
    return h;
  }

  close(): Promise<void> {
    this.db?.close();
    return this.pool.close();
  }

  private handle(conn: DaemonConnection, info: PathInfo): LocalNar {
    let released = false;
    let body: Readable | null = null;
    // The temp root lives exactly as long as this connection. If the daemon goes away mid-transfer
    // the path is no longer protected from GC, so the transfer is cut (Nix resumes it with a Range).
    const stopWatching = conn.onClose(() => {
      if (released) return;
      if (this.narSource === 'filesystem' || !body) this.daemonDown = true; // until a daemon call succeeds again
      if (body && !body.destroyed && this.narSource === 'filesystem') {
        body.destroy(new Error('nix-daemon connection holding the GC temp root closed'));
      }
    });
    const release = () => {
      if (released) return;
      released = true;
      stopWatching();
      conn.close();
    };
    const fsPath = this.location.root + info.path;
    return {
      info,
      release,
      stream: () => {
        body = this.narSource === 'filesystem' ? dumpNar(fsPath) : conn.narFromPath(info.path, info.narSize);
        return body;
      },
      streamFrom: this.narSource === 'filesystem' ? (start) => (body = dumpNar(fsPath, { start })) : undefined,
    };
  }
}
