import type { Readable } from 'node:stream';
import { dumpNar } from '../nix/nar-writer.ts';
import { DaemonPool } from './daemon-pool.ts';
import type { DaemonConnection, PathInfo } from './daemon-connection.ts';
import type { StoreLocation } from './store-uri.ts';

// The local Nix store as the cache needs it: metadata over pooled daemon connections, and NARs
// under a GC temp root that lives on a connection of their own for exactly as long as the transfer.

export type NarSourceKind = 'daemon' | 'filesystem';

export interface LocalNar {
  info: PathInfo;
  /** The whole NAR, exactly info.narSize bytes (the caller verifies them). */
  stream(): Readable;
  /** Drops the temp root. Safe to call more than once. */
  release(): void;
}

export interface LocalStoreOptions {
  location: StoreLocation;
  narSource?: NarSourceKind;
  poolSize?: number;
}

export class LocalStore {
  readonly location: StoreLocation;
  readonly narSource: NarSourceKind;
  private readonly pool: DaemonPool;

  constructor(opts: LocalStoreOptions) {
    this.location = opts.location;
    this.narSource = opts.narSource ?? 'daemon';
    this.pool = new DaemonPool({ socketPath: opts.location.socketPath, size: opts.poolSize ?? 4 });
  }

  async pathInfoByHashPart(hashPart: string): Promise<PathInfo | null> {
    const path = await this.pool.queryPathFromHashPart(hashPart);
    if (!path) return null;
    return this.pool.queryPathInfo(path);
  }

  async pathInfo(path: string): Promise<PathInfo | null> {
    return this.pool.queryPathInfo(path);
  }

  /**
   * The NAR of the path with this hash part, if it exists with exactly this NarHash; otherwise why not.
   * The temp root is taken before validity is checked, so a path found valid stays valid until release().
   */
  async openNar(hashPart: string, narHash: Buffer): Promise<LocalNar | 'missing' | 'mismatch'> {
    const path = await this.pool.queryPathFromHashPart(hashPart);
    if (!path) return 'missing';
    const conn = await this.pool.openDedicated();
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

  health(): Promise<{ ok: boolean; version: string | null; error: string | null }> {
    return this.pool.health();
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private handle(conn: DaemonConnection, info: PathInfo): LocalNar {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      conn.close();
    };
    return {
      info,
      release,
      stream: () => {
        if (this.narSource === 'filesystem') return dumpNar(this.location.root + info.path);
        return conn.narFromPath(info.path, info.narSize);
      },
    };
  }
}
