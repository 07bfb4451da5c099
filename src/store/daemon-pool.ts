// A small set of long-lived, pipelined daemon connections for metadata queries.
//
// Each daemon connection is served by its own forked daemon process, so a few connections give
// parallelism on the daemon side while pipelining hides round trips on ours. Connections are
// opened lazily and replaced when they die; a daemon restart just means the next call connects
// again. NAR transfers never use pooled connections: they hold temp roots and consume the
// connection (see openDedicated).

import { DaemonConnection, DaemonError } from './daemon-connection.ts';
import type { PathInfo } from './daemon-connection.ts';
import type { DaemonHealth } from '../base/api.ts';

export interface DaemonPoolOptions {
  socketPath: string;
  /** Maximum pooled connections. Default 4. */
  size?: number;
  /** Connect + handshake deadline per connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** A pooled connection that makes no progress for this long is declared dead. Default 60 s. */
  opTimeoutMs?: number;
}

// A path that cannot exist, for a cheap round trip in health().
const PROBE_PATH = '/nix/store/00000000000000000000000000000000-peernix-health-probe';

export class DaemonPool {
  readonly socketPath: string;
  readonly size: number;
  private readonly connectTimeoutMs: number;
  private readonly opTimeoutMs: number;
  private readonly conns: DaemonConnection[] = [];
  private readonly connecting = new Set<Promise<DaemonConnection>>();
  private readonly dedicated = new Set<DaemonConnection>();
  private isClosed = false;
  private spread = 0;

  constructor(opts: DaemonPoolOptions) {
    this.socketPath = opts.socketPath;
    this.size = Math.max(1, Math.floor(opts.size ?? 4));
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.opTimeoutMs = opts.opTimeoutMs ?? 60_000;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  queryPathFromHashPart(hashPart: string): Promise<string | null> {
    return this.run((c) => c.queryPathFromHashPart(hashPart));
  }

  queryPathInfo(path: string): Promise<PathInfo | null> {
    return this.run((c) => c.queryPathInfo(path));
  }

  isValidPath(path: string): Promise<boolean> {
    return this.run((c) => c.isValidPath(path));
  }

  queryRealisation(id: string, opts: { caEnabled?: boolean } = {}): Promise<string[] | null> {
    return this.run((c) => c.queryRealisation(id, opts));
  }

  /**
   * A fresh connection outside the pool, for one NAR transfer: temp roots registered on it live
   * exactly as long as it does. The caller closes it (narFromPath does so by itself). The pool
   * still closes it on close().
   */
  async openDedicated(): Promise<DaemonConnection> {
    this.assertOpen();
    const conn = await DaemonConnection.connect(this.socketPath, { timeoutMs: this.connectTimeoutMs });
    if (this.isClosed) {
      conn.close();
      this.assertOpen();
    }
    this.dedicated.add(conn);
    conn.onClose(() => this.dedicated.delete(conn));
    return conn;
  }

  /** One real round trip to the daemon. Never throws. */
  async health(): Promise<DaemonHealth> {
    try {
      let version: string | null = null;
      await this.run(async (c) => {
        await c.isValidPath(PROBE_PATH);
        version = c.daemonVersion;
      });
      return { ok: true, version, error: null };
    } catch (err) {
      return { ok: false, version: null, error: (err as Error).message };
    }
  }

  /** Close every connection (pooled and dedicated); later calls reject. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    const all = [...this.conns, ...this.dedicated];
    for (const c of all) c.close();
    // Connections still being established are closed as soon as they arrive.
    const pendingConnects = [...this.connecting].map((p) =>
      p.then(
        (c) => c.close(),
        () => {},
      ),
    );
    await Promise.all([...all.map((c) => c.whenClosed()), ...pendingConnects]);
    this.conns.length = 0;
    this.dedicated.clear();
  }

  // --- internals ---

  private assertOpen(): void {
    if (this.isClosed) throw new DaemonError('daemon pool is closed', { fatal: true, code: 'ECLOSED' });
  }

  private async run<T>(fn: (c: DaemonConnection) => Promise<T>): Promise<T> {
    this.assertOpen();
    const conn = await this.acquire();
    try {
      return await fn(conn);
    } catch (err) {
      // Retry only when the connection died under the call (daemon restarted, process killed);
      // errors about the request itself are the caller's answer.
      if (!(err instanceof DaemonError) || !err.fatal || this.isClosed || err.code === 'EINVAL') throw err;
      const fresh = await this.openPooled();
      try {
        return await fn(fresh);
      } finally {
        if (!this.conns.includes(fresh)) fresh.close();
      }
    }
  }

  private acquire(): Promise<DaemonConnection> {
    this.prune();
    let best: DaemonConnection | null = null;
    for (const c of this.conns) {
      if (c.pending === 0) return Promise.resolve(c);
      if (!best || c.pending < best.pending) best = c;
    }
    if (this.conns.length + this.connecting.size < this.size) return this.openPooled();
    if (best) return Promise.resolve(best);
    // Every slot is still connecting: spread callers over those attempts.
    const attempts = [...this.connecting];
    return attempts[this.spread++ % attempts.length];
  }

  /** Open a connection and keep it in the pool if there is room (a retry may find none). */
  private openPooled(): Promise<DaemonConnection> {
    const p = DaemonConnection.connect(this.socketPath, {
      timeoutMs: this.connectTimeoutMs,
      opTimeoutMs: this.opTimeoutMs,
    }).then((conn) => {
      this.connecting.delete(p);
      if (this.isClosed) {
        conn.close();
        this.assertOpen();
      }
      this.prune();
      if (this.conns.length < this.size) {
        this.conns.push(conn);
        conn.onClose(() => this.prune());
      } else {
        // Used once by the caller, which closes it; tracked so close() can reach it meanwhile.
        this.dedicated.add(conn);
        conn.onClose(() => this.dedicated.delete(conn));
      }
      return conn;
    });
    this.connecting.add(p);
    p.catch(() => this.connecting.delete(p));
    return p;
  }

  private prune(): void {
    for (let i = this.conns.length - 1; i >= 0; i--) {
      if (!this.conns[i].usable) this.conns.splice(i, 1);
    }
  }
}
