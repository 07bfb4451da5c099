// A small set of long-lived, pipelined daemon connections for metadata queries.
//
// Each daemon connection is served by its own forked daemon process, so a few connections give
// parallelism on the daemon side while pipelining hides round trips on ours. Connections are
// opened lazily and replaced when they die; a daemon restart just means the next call connects
// again. NAR transfers never use pooled connections: they hold temp roots and consume the
// connection (see openDedicated).
//
// A daemon can also stall without going away (stopped, wedged on a lock, swapped out): a lookup then
// must not queue behind a request that will not be answered. A call fails once its connection has
// answered nothing for the call deadline, and a busy connection that answered nothing for the stall
// threshold gets no new callers: it leaves the pool (answering what it already has, if it ever does)
// and a fresh connection takes its place.
// A fresh connection is served by a fresh worker process, so a stall of one worker (the one streaming
// a NAR, say) costs lookups nothing; a stall of the whole daemon turns lookups into prompt errors.

import { DaemonConnection, DaemonError } from './daemon-connection.ts';
import type { PathInfo } from './daemon-connection.ts';
import type { DaemonHealth } from '../base/api.ts';
import { type Clock, systemClock } from '../base/clock.ts';

export interface DaemonPoolOptions {
  socketPath: string;
  /** Maximum pooled connections. Default 4. */
  size?: number;
  /** Connect + handshake deadline per connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** A pooled connection that makes no progress for this long is declared dead. Default 60 s. */
  opTimeoutMs?: number;
  /** Deadline of one metadata call, connecting included. Default 5 s. */
  callTimeoutMs?: number;
  /** A busy connection that answered nothing for this long takes no new callers. Default 1 s. */
  stallMs?: number;
  clock?: Clock;
}

/** The error of a call past its deadline: the daemon accepts but does not answer. */
export function isDaemonStall(err: unknown): boolean {
  return err instanceof DaemonError && err.code === 'ETIMEDOUT';
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
  /** Left the pool while stalled: closed once they answer all they were asked, or at their op timeout. */
  private readonly stalled = new Set<DaemonConnection>();
  /** Calls in flight on each connection. */
  private readonly inFlight = new Map<DaemonConnection, number>();
  /** When each busy connection last answered (or, idle before, was asked): the daemon answers in order. */
  private readonly progress = new Map<DaemonConnection, number>();
  private readonly callTimeoutMs: number;
  private readonly stallMs: number;
  private readonly clock: Clock;
  private isClosed = false;
  private spread = 0;

  constructor(opts: DaemonPoolOptions) {
    this.socketPath = opts.socketPath;
    this.size = Math.max(1, Math.floor(opts.size ?? 4));
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.opTimeoutMs = opts.opTimeoutMs ?? 60_000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5_000;
    this.stallMs = opts.stallMs ?? 1_000;
    this.clock = opts.clock ?? systemClock;
  }

  /** Connections that left the pool stalled and have not answered yet (for tests and the status). */
  get stalledConnections(): number {
    return this.stalled.size;
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
      return { ok: false, version: null, error: (err as Error).message, ...(isDaemonStall(err) ? { stalled: true } : {}) };
    }
  }

  /** Close every connection (pooled and dedicated); later calls reject. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    const all = [...this.conns, ...this.dedicated, ...this.stalled];
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
    this.stalled.clear();
  }

  // --- internals ---

  private assertOpen(): void {
    if (this.isClosed) throw new DaemonError('daemon pool is closed', { fatal: true, code: 'ECLOSED' });
  }

  /**
   * One call with its deadline: once the connection it waits on has answered nothing for
   * callTimeoutMs (connecting included), the caller gets ETIMEDOUT, whatever the daemon does later.
   * A connection that keeps answering (a long queue on a busy machine) is no stall.
   */
  private async run<T>(fn: (c: DaemonConnection) => Promise<T>): Promise<T> {
    this.assertOpen();
    return new Promise<T>((resolve, reject) => {
      let on: DaemonConnection | null = null;
      let done = false;
      const started = this.clock.now();
      const check = () => {
        if (done) return;
        const quietSince = Math.max(started, on ? (this.progress.get(on) ?? started) : started);
        const left = quietSince + this.callTimeoutMs - this.clock.now();
        if (left > 0) {
          timer = this.clock.setTimeout(check, left);
          timer.unref?.();
          return;
        }
        done = true;
        reject(
          new DaemonError(`nix-daemon at ${this.socketPath} did not answer within ${this.callTimeoutMs} ms (stalled)`, { fatal: true, code: 'ETIMEDOUT' }),
        );
      };
      let timer = this.clock.setTimeout(check, this.callTimeoutMs);
      timer.unref?.();
      this.attempt(fn, (c) => (on = c)).then(
        (value) => {
          if (done) return;
          done = true;
          this.clock.clearTimeout(timer);
          resolve(value);
        },
        (err) => {
          if (done) return;
          done = true;
          this.clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private async attempt<T>(fn: (c: DaemonConnection) => Promise<T>, onConn: (c: DaemonConnection) => void): Promise<T> {
    const conn = await this.acquire();
    onConn(conn);
    try {
      return await this.tracked(conn, fn);
    } catch (err) {
      // Retry only when the connection died under the call (daemon restarted, process killed);
      // errors about the request itself are the caller's answer.
      if (!(err instanceof DaemonError) || !err.fatal || this.isClosed || err.code === 'EINVAL') throw err;
      const fresh = await this.openPooled();
      onConn(fresh);
      try {
        return await this.tracked(fresh, fn);
      } finally {
        if (!this.conns.includes(fresh)) fresh.close();
      }
    }
  }

  private async tracked<T>(conn: DaemonConnection, fn: (c: DaemonConnection) => Promise<T>): Promise<T> {
    const n = this.inFlight.get(conn) ?? 0;
    if (n === 0) this.progress.set(conn, this.clock.now());
    this.inFlight.set(conn, n + 1);
    try {
      return await fn(conn);
    } finally {
      const left = (this.inFlight.get(conn) ?? 1) - 1;
      this.progress.set(conn, this.clock.now());
      if (left > 0) this.inFlight.set(conn, left);
      else {
        this.inFlight.delete(conn);
        this.progress.delete(conn);
        // A stalled connection that caught up is closed rather than kept: the pool has its replacement.
        if (this.stalled.delete(conn)) conn.close();
      }
    }
  }

  /** Moves busy connections that answered nothing for the stall threshold out of the pool. */
  private setAsideStalled(): void {
    const now = this.clock.now();
    for (let i = this.conns.length - 1; i >= 0; i--) {
      const c = this.conns[i];
      const since = this.progress.get(c);
      if (since === undefined || now - since < this.stallMs) continue;
      this.conns.splice(i, 1);
      this.stalled.add(c);
      c.onClose(() => this.stalled.delete(c));
    }
    // Bounded: a daemon stalled for good would otherwise cost a socket per round of replacements.
    while (this.stalled.size > this.size) {
      const oldest = this.stalled.values().next().value!;
      this.stalled.delete(oldest);
      oldest.close();
    }
  }

  private acquire(): Promise<DaemonConnection> {
    this.prune();
    this.setAsideStalled();
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
