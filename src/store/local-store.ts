import type { Readable } from 'node:stream';
import { nixEnablesCaDerivations } from '../nix/ca-derivations-setting.ts';
import { NarCursors } from '../nix/nar-cursors.ts';
import { dumpNar } from '../nix/nar-writer.ts';
import { DaemonPool, isDaemonStall } from './daemon-pool.ts';
import { DaemonError, type DaemonConnection, type PathInfo } from './daemon-connection.ts';
import { StoreDb } from './store-db.ts';
import type { SummarySource } from './store-summary.ts';
import type { StoreLocation } from './store-uri.ts';
import type { DaemonHealth } from '../base/api.ts';

// The local Nix store as the cache needs it: metadata over pooled daemon connections, and NARs
// under a GC temp root that lives on a connection of their own for exactly as long as the transfer.

export type NarSourceKind = 'daemon' | 'filesystem';

export interface LocalNar {
  info: PathInfo;
  /** The whole NAR, exactly info.narSize bytes (the caller verifies them). */
  stream(): Readable;
  /** The NAR from byte `start` (to `end`, exclusive, when given), skipping file contents before it unread (filesystem source only). */
  streamFrom?(start: number, end?: number): Readable;
  /** Drops the temp root. Safe to call more than once. */
  release(): void;
}

export interface LocalStoreOptions {
  location: StoreLocation;
  narSource?: NarSourceKind;
  poolSize?: number;
  /** Read narinfo metadata from the store's SQLite database when it is readable (default true). */
  useDb?: boolean;
  /** Told whenever metadata starts coming from the other source (the database or the daemon). */
  onMetadataSource?: (source: MetadataSource, why: string | null) => void;
  /** Deadline of one daemon call for a lookup, and of taking a NAR's temp root (see DaemonPool). */
  callTimeoutMs?: number;
}

export type MetadataSource = 'database' | 'daemon';

// The database may open later than we start (see StoreDb.open): tried again on use, at most this often.
const DB_RETRY_MIN_MS = 1_000;
const DB_RETRY_MAX_MS = 60_000;

export class LocalStore {
  readonly location: StoreLocation;
  readonly narSource: NarSourceKind;
  private readonly pool: DaemonPool;
  private db: StoreDb | null = null;
  private dbWhy: string | null = null;
  private dbRetryable = false;
  private dbRetryAt = 0;
  private dbRetryMs = DB_RETRY_MIN_MS;
  private dbAttempts = 0;
  private closed = false;
  private readonly callTimeoutMs: number;
  private readonly onMetadataSource: LocalStoreOptions['onMetadataSource'];
  /** Where dumps of recently served paths can pick up (pieces of one NAR asked for at many offsets). */
  private readonly cursors = new NarCursors();

  constructor(opts: LocalStoreOptions) {
    this.location = opts.location;
    this.narSource = opts.narSource ?? 'filesystem';
    this.callTimeoutMs = opts.callTimeoutMs ?? 5_000;
    this.pool = new DaemonPool({ socketPath: opts.location.socketPath, size: opts.poolSize ?? 4, callTimeoutMs: this.callTimeoutMs });
    this.onMetadataSource = opts.onMetadataSource;
    if (opts.useDb === false) this.dbWhy = 'disabled';
    else {
      this.dbRetryable = true;
      this.tryOpenDb();
      // The first retry comes as soon as a daemon call succeeds (health(), or any request): from then
      // on a daemon process has the database open and its -shm index exists.
      this.dbRetryAt = 0;
    }
  }

  /** Why metadata comes from the daemon rather than the database, when it does. */
  get dbUnavailable(): string | null {
    return this.db ? null : this.dbWhy;
  }

  /** Where narinfo metadata comes from right now. */
  get metadataSource(): MetadataSource {
    return this.db && !this.daemonDown ? 'database' : 'daemon';
  }

  /** Opens the database if it is not open and an attempt is due; cheap when neither. */
  private tryOpenDb(): void {
    if (this.db || !this.dbRetryable || this.closed) return;
    const now = performance.now();
    if (now < this.dbRetryAt) return;
    this.dbAttempts++;
    const opened = StoreDb.open(this.location.root);
    if (opened.db) {
      this.db = opened.db;
      this.dbWhy = null;
      this.onMetadataSource?.('database', this.dbAttempts > 1 ? `opened at attempt ${this.dbAttempts}` : null);
      return;
    }
    const first = this.dbWhy === null;
    this.dbWhy = opened.why;
    if (opened.permanent) this.dbRetryable = false;
    this.dbRetryAt = now + this.dbRetryMs;
    this.dbRetryMs = Math.min(this.dbRetryMs * 2, DB_RETRY_MAX_MS);
    if (first) this.onMetadataSource?.('daemon', opened.why);
  }

  /**
   * The database's answer, when it can give one at once: a PathInfo, or null for no such path.
   * Undefined means ask pathInfoByHashPart(). The database answers only while the daemon is up: a
   * narinfo is a promise of a NAR, and NARs need the daemon (for the temp root).
   */
  pathInfoFromDb(hashPart: string): PathInfo | null | undefined {
    if (this.daemonDown) return undefined;
    this.tryOpenDb();
    return this.db?.byHashPart(hashPart);
  }

  /** The store's rows for its summary (store-summary.ts), from the database; null while it can't be read. */
  readonly summarySource: SummarySource = {
    rowsAfter: (afterId) => {
      this.tryOpenDb();
      return this.db?.hashPartsAfter(afterId) ?? null;
    },
    count: () => this.db?.pathCount() ?? null,
  };

  async pathInfoByHashPart(hashPart: string): Promise<PathInfo | null> {
    // While the daemon is down the daemon path fails and the listener says 503.
    const fromDb = this.pathInfoFromDb(hashPart);
    if (fromDb !== undefined) return fromDb;
    return this.daemonCall(async () => {
      const path = await this.pool.queryPathFromHashPart(hashPart);
      return path ? this.pool.queryPathInfo(path) : null;
    });
  }

  /**
   * The daemon's realisations of one derivation output, as JSON texts (see DaemonConnection.queryRealisation).
   * Read each time: realisations are asked for only by Nixes with ca-derivations, rarely.
   */
  realisation(id: string): Promise<string[] | null> {
    return this.daemonCall(() => this.pool.queryRealisation(id, { caEnabled: nixEnablesCaDerivations() }));
  }

  /** Whether a store path is valid here now (a realisation is served only with its output). */
  isValidPath(path: string): Promise<boolean> {
    return this.daemonCall(() => this.pool.isValidPath(path));
  }

  private daemonDownNow = false;
  /**
   * Told whenever this handle finds the daemon down or up again: other handles on the same daemon
   * (the share listener's worker threads) learn it by daemonFound(), so every loop answers alike.
   */
  onDaemonChange?: (down: boolean) => void;

  private get daemonDown(): boolean {
    return this.daemonDownNow;
  }

  private set daemonDown(down: boolean) {
    if (down === this.daemonDownNow) return;
    this.daemonDownNow = down;
    this.onDaemonChange?.(down);
  }

  /** What another handle on the same daemon found (not passed on again). */
  daemonFound(down: boolean): void {
    this.daemonDownNow = down;
  }

  private async daemonCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const v = await fn();
      this.daemonDown = false;
      return v;
    } catch (e) {
      if (e instanceof DaemonError && e.fatal && !isDaemonStall(e)) this.daemonDown = true;
      throw e;
    }
  }

  /**
   * The NAR of the path with this hash part, if it exists with exactly this NarHash; otherwise why not.
   * The temp root is taken before validity is checked, so a path found valid stays valid until release().
   */
  async openNar(hashPart: string, narHash: Buffer): Promise<LocalNar | 'missing' | 'mismatch'> {
    const known = this.pathInfoFromDb(hashPart);
    const path = known === undefined ? await this.daemonCall(() => this.pool.queryPathFromHashPart(hashPart)) : known?.path;
    if (!path) return 'missing';
    const conn = await this.daemonCall(() => this.pool.openDedicated());
    let info: PathInfo | null;
    // A stalled daemon holds this NAR only up to the deadline: it fails cleanly (503), and a later try
    // after the daemon resumes takes a fresh connection.
    const deadline = setTimeout(
      () =>
        conn.closeWith(
          new DaemonError(`nix-daemon did not take the temp root for ${path} within ${this.callTimeoutMs} ms (stalled)`, { fatal: true, code: 'ETIMEDOUT' }),
        ),
      this.callTimeoutMs,
    );
    try {
      // Pipelined on one connection: the daemon runs them in order, root first.
      const [, found] = await this.daemonCall(() => Promise.all([conn.addTempRoot(path), conn.queryPathInfo(path)]));
      info = found;
    } catch (e) {
      conn.close();
      throw e;
    } finally {
      clearTimeout(deadline);
    }
    if (!info || !info.narHash.equals(narHash)) {
      conn.close();
      return info ? 'mismatch' : 'missing';
    }
    return this.handle(conn, info);
  }

  async health(): Promise<DaemonHealth> {
    const h = await this.pool.health();
    this.daemonDown = !h.ok && !h.stalled;
    if (h.ok) this.tryOpenDb();
    return h;
  }

  close(): Promise<void> {
    this.closed = true;
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
      streamFrom:
        this.narSource === 'filesystem'
          ? (start, end) => (body = dumpNar(fsPath, { start, end, cursors: { memo: this.cursors, key: `${info.path} ${info.narHash.toString('hex')}` } }))
          : undefined,
    };
  }
}
