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
import { type Clock, systemClock, type TimerHandle } from '../base/clock.ts';

// The local Nix store as the cache needs it: metadata over pooled daemon connections, and NARs
// under a GC temp root that lives on a connection of its own for as long as the transfer.
//
// Read from the filesystem, NARs of the same path served at once or one soon after another share
// that connection (its temp root), kept ROOT_LINGER_MS after the last one ends: a NAR fetched from
// several holders at once asks each holder for a dozen pieces of one path, and each new connection
// is a forked nix-daemon worker (~7 ms of its CPU, and on a loaded machine 50-400 ms before the
// piece's first byte).

/** How long a path's temp-root connection outlives the last NAR of it being served. */
const ROOT_LINGER_MS = 2000;
/** At most this many such connections wait unused; past it the longest-waiting one closes. */
const MAX_IDLE_ROOTS = 8;

/** A daemon connection holding one path's temp root, and how many NARs of the path use it now. */
interface HeldRoot {
  conn: DaemonConnection;
  info: PathInfo;
  users: number;
  idle: TimerHandle | null;
}

export type NarSourceKind = 'daemon' | 'filesystem';

export interface LocalNar {
  info: PathInfo;
  /** The whole NAR, exactly info.narSize bytes (the caller verifies them). */
  stream(): Readable;
  /** The NAR from byte `start` (to `end`, exclusive, when given), skipping file contents before it unread (filesystem source only). */
  streamFrom?(start: number, end?: number): Readable;
  /**
   * Drops the temp root. Safe to call more than once. `served`: the NAR went out whole, so another
   * piece of the path may follow soon (its root lingers); otherwise it goes at once.
   */
  release(served?: boolean): void;
}

export interface LocalStoreOptions {
  location: StoreLocation;
  narSource?: NarSourceKind;
  poolSize?: number;
  clock?: Clock;
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
  /** Temp-root connections by store path (filesystem NARs only). */
  private readonly roots = new Map<string, HeldRoot>();
  private readonly clock: Clock;

  constructor(opts: LocalStoreOptions) {
    this.location = opts.location;
    this.narSource = opts.narSource ?? 'filesystem';
    this.callTimeoutMs = opts.callTimeoutMs ?? 5_000;
    this.pool = new DaemonPool({ socketPath: opts.location.socketPath, size: opts.poolSize ?? 4, callTimeoutMs: this.callTimeoutMs });
    this.onMetadataSource = opts.onMetadataSource;
    this.clock = opts.clock ?? systemClock;
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
    const held = this.narSource === 'filesystem' ? this.roots.get(path) : undefined;
    if (held?.conn.usable) {
      // Valid since the root was taken, and still rooted.
      if (!held.info.narHash.equals(narHash)) return 'mismatch';
      held.users++;
      if (held.idle) this.clock.clearTimeout(held.idle);
      held.idle = null;
      return this.handle(held.conn, held.info, (served) => this.unuse(path, held, served));
    }
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
    if (this.narSource !== 'filesystem' || this.roots.has(path)) return this.handle(conn, info, () => conn.close());
    const root: HeldRoot = { conn, info, users: 1, idle: null };
    this.roots.set(path, root);
    conn.onClose(() => {
      if (root.idle) this.clock.clearTimeout(root.idle);
      if (this.roots.get(path) === root) this.roots.delete(path);
    });
    return this.handle(conn, info, (served) => this.unuse(path, root, served));
  }

  /** A NAR of `path` is over: after one served whole, its root's connection lingers for the next, within the bound. */
  private unuse(path: string, root: HeldRoot, served: boolean): void {
    if (--root.users > 0) return;
    if (!served || this.closed || !root.conn.usable) return root.conn.close();
    root.idle = this.clock.setTimeout(() => root.conn.close(), ROOT_LINGER_MS);
    root.idle.unref?.();
    // Re-inserted, so the map's order is that of going idle: the first idle one waited longest.
    this.roots.delete(path);
    this.roots.set(path, root);
    let idle = 0;
    for (const r of this.roots.values()) if (r.users === 0) idle++;
    for (const r of this.roots.values()) {
      if (idle <= MAX_IDLE_ROOTS) break;
      if (r.users > 0) continue;
      idle--;
      r.conn.close();
    }
  }

  /** Temp-root connections held for NARs served now or lately (for tests and the status). */
  get heldRoots(): { path: string; users: number }[] {
    return [...this.roots].map(([path, r]) => ({ path, users: r.users }));
  }

  async health(): Promise<DaemonHealth> {
    const h = await this.pool.health();
    this.daemonDown = !h.ok && !h.stalled;
    if (h.ok) this.tryOpenDb();
    return h;
  }

  close(): Promise<void> {
    this.closed = true;
    for (const r of this.roots.values()) if (r.idle) this.clock.clearTimeout(r.idle);
    this.db?.close();
    return this.pool.close();
  }

  /** `drop`: this NAR no longer needs the connection's temp root (`served`: it went out whole). */
  private handle(conn: DaemonConnection, info: PathInfo, drop: (served: boolean) => void): LocalNar {
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
    const release = (served = false) => {
      if (released) return;
      released = true;
      stopWatching();
      drop(served);
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
