import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../base/log.ts';
import { isClaimRequest, SlotClaimsHost } from '../base/nar-slot-claims.ts';
import type { NarSlots } from '../base/nar-slots.ts';
import { PortDuplex } from '../base/port-duplex.ts';
import type { AskerClass } from '../cache/asker-class.ts';
import type { CacheHandlerOptions } from '../cache/cache-handler.ts';
import type { HttpListener } from '../cache/http-listener.ts';
import { MAX_HEADER_BYTES } from '../cache/http-listener.ts';
import type { PeernixMetrics } from '../metrics/metrics.ts';
import type { LocalStore } from '../store/local-store.ts';
import type { PathScopes } from '../store/path-scope.ts';
import type { FromWorker, ShareWorkerData, ToWorker } from './share-loop-messages.ts';

// Every core for the share listener: besides the main thread, `threads` worker threads (share-worker.ts)
// each listen on the same port with SO_REUSEPORT, and the kernel spreads connections over them. A NAR
// stream is syscalls (the file's reads, the socket's writes) on its loop, so the loops' streams move
// bytes on as many cores. What must stay one stays in the main thread and crosses by message: the NAR
// slots (caps global, claimed per NAR), the summaries, registry and metrics (relayed requests), the
// transfers, events and counts (reported). Sharing on and off moves every loop together: a bind that
// fails in any closes all. Where SO_REUSEPORT is refused (not Linux), the main thread serves alone.

/**
 * What shareThreads "auto" picks (the setting's default is 0): on Linux the cores beyond the second, up
 * to 3; none elsewhere. Measured on 2 cores (bench/serve-vs-nginx.ts), a thread beside the main one
 * served 16 connections no faster and spent more CPU per byte: the receivers and the rest of the
 * machine need the second core (again on 8 Dec 2026: 16 connections, one thread beside the main one,
 * 0.46 CPU s/GiB against 0.40 for the main thread alone). Each thread costs about 17 MB of RSS idle (its
 * own V8 isolate and modules) and some 20 MB under load, with its chunk pool, sinks' allowance and young
 * generation kept small (chunk-pool.ts, response-sink.ts, spawn below).
 */
export function defaultShareThreads(platform = process.platform, cores = availableParallelism()): number {
  return platform === 'linux' ? Math.max(0, Math.min(cores - 2, 3)) : 0;
}

const YOUNG_GENERATION_MB = 6;

export interface ShareLoopsOptions {
  threads: number;
  worker: Omit<ShareWorkerData, 'loop' | 'teamKeys'>;
  teamKeys: () => ReadonlySet<string>;
  /** Calls back on each change of the team (its 'team' events); returns the unsubscribe. */
  watchTeam: (changed: () => void) => () => void;
  narSlots: NarSlots;
  /** The main thread's store handle: whether the daemon is down, as any loop found it, reaches every loop. */
  store: Pick<LocalStore, 'onDaemonChange' | 'daemonFound'>;
  /** The main thread's route handler, for the relayed requests (it classes their asker by relayedAsker). */
  serve: (req: IncomingMessage, res: ServerResponse) => void;
  onNarSent: NonNullable<CacheHandlerOptions['onNarSent']>;
  trackNar: NonNullable<CacheHandlerOptions['trackNar']>;
  metrics: PeernixMetrics;
  scopes: PathScopes;
  log: Logger;
}

interface TrackRow {
  bytes: number;
  wireBytes: number | null;
  handle: { end(o: 'ok' | 'failed' | 'aborted'): void } | null;
}

interface Loop {
  worker: Worker;
  claims: SlotClaimsHost;
  pipes: Map<number, PortDuplex>;
  transfers: Map<number, TrackRow>;
  ops: Map<number, (m: { error?: string; value?: number }) => void>;
  gone: boolean;
}

// The asker class the loop that took a relayed request found; nothing else can set it.
const relayedAskers = new WeakMap<object, AskerClass>();

/** The class a worker found for a request it relayed here, or null for the main thread's own requests. */
export function relayedAsker(req: IncomingMessage): AskerClass | null {
  return relayedAskers.get(req.socket) ?? null;
}

export class ShareLoops {
  private readonly opts: ShareLoopsOptions;
  private readonly loops: Loop[] = [];
  private readonly relayServer;
  private nextOp = 1;
  private lastTeam: ReadonlySet<string>;
  private readonly unwatchTeam: () => void;

  constructor(opts: ShareLoopsOptions) {
    this.opts = opts;
    this.relayServer = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, opts.serve);
    this.lastTeam = opts.teamKeys();
    for (let i = 1; i <= opts.threads; i++) this.loops.push(this.spawn(i));
    // The roster hands out a new set on each change, before its event: the workers get it at once.
    this.unwatchTeam = opts.watchTeam(() => {
      const keys = opts.teamKeys();
      if (keys === this.lastTeam) return;
      this.lastTeam = keys;
      for (const l of this.loops) this.post(l, { t: 'team', keys: [...keys] });
    });
    opts.store.onDaemonChange = (down) => this.tellOthers(null, down);
  }

  private tellOthers(from: Loop | null, down: boolean): void {
    for (const l of this.loops) if (l !== from) this.post(l, { t: 'daemon', down });
  }

  get threads(): number {
    return this.loops.length;
  }

  /**
   * The share listener on every loop: `bindMain` binds the main thread's (with SO_REUSEPORT), then each
   * worker binds the same port. Any failure closes what was bound and rejects; a refused SO_REUSEPORT
   * (no such option on this platform) leaves the main thread alone, as without threads.
   */
  async bind(bindMain: (reusePort: boolean) => Promise<HttpListener>): Promise<HttpListener> {
    const live = this.loops.filter((l) => !l.gone);
    if (live.length === 0) return bindMain(false);
    let main: HttpListener;
    try {
      main = await bindMain(true);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTSUP' && code !== 'ENOPROTOOPT' && code !== 'EINVAL') throw e;
      this.opts.log.warn(`the share listener can't share its port across threads here (${code}): one thread serves it`);
      return bindMain(false);
    }
    const results = await Promise.allSettled(live.map((l) => this.op(l, { op: 'listen', host: main.host, port: main.port })));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.all([main.close(0), ...live.map((l) => this.op(l, { op: 'close', graceMs: 0 }).catch(() => {}))]);
      throw failed.reason;
    }
    const all = async (o: { op: 'close'; graceMs: number } | { op: 'cut' }) => {
      await Promise.all(live.map((l) => this.op(l, o).catch((e: Error) => this.opts.log.warn(`share loop: ${e.message}`))));
    };
    return {
      server: main.server,
      host: main.host,
      port: main.port,
      url: main.url,
      stalls: main.stalls,
      accepted: async () => [...(await main.accepted()), ...(await Promise.all(live.map((l) => this.op(l, { op: 'accepted' }).catch(() => 0))))],
      cutAll: () => {
        main.cutAll();
        void all({ op: 'cut' });
      },
      close: async (graceMs?: number) => {
        await Promise.all([main.close(graceMs), all({ op: 'close', graceMs: graceMs ?? 3000 })]);
      },
    };
  }

  async stop(): Promise<void> {
    this.unwatchTeam();
    await Promise.all(
      this.loops.map(async (l) => {
        if (l.gone) return;
        await this.op(l, { op: 'stop' }).catch(() => {});
        await l.worker.terminate();
      }),
    );
  }

  private spawn(n: number): Loop {
    const workerData: ShareWorkerData = { ...this.opts.worker, loop: n, teamKeys: [...this.opts.teamKeys()] };
    // A small young generation: a loop's garbage is mostly per-chunk stream objects that die young, and
    // V8's default lets each thread's young space grow by tens of MB under load, held on to afterwards
    // (field-share's 48 downloads at once, two threads: peak RSS 238 MB with 6 MB, 253–258 MB without).
    const worker = new Worker(workerEntry(), { workerData, name: `share-${n}`, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    const loop: Loop = {
      worker,
      claims: new SlotClaimsHost(this.opts.narSlots, (a) => this.post(loop, a)),
      pipes: new Map(),
      transfers: new Map(),
      ops: new Map(),
      gone: false,
    };
    worker.on('message', (m: FromWorker) => this.receive(loop, m));
    worker.on('error', (e) => this.opts.log.error(`share loop ${n} failed: ${e.stack ?? e.message}`));
    worker.on('exit', (code) => {
      loop.gone = true;
      // Whatever it held goes back, and what it was doing ends: the caps and the transfer list stay right.
      loop.claims.drop();
      for (const t of loop.transfers.values()) t.handle?.end('failed');
      loop.transfers.clear();
      for (const p of loop.pipes.values()) p.destroy();
      for (const settle of loop.ops.values()) settle({ error: `share loop ${n} exited (${code})` });
      loop.ops.clear();
      if (code !== 0) this.opts.log.error(`share loop ${n} exited with ${code}; its connections were cut`);
    });
    return loop;
  }

  private receive(loop: Loop, m: FromWorker): void {
    const o = this.opts;
    if (isClaimRequest(m)) return loop.claims.handle(m);
    switch (m.t) {
      case 'pipe':
        return loop.pipes.get(m.id)?.receive(m);
      case 'relay': {
        const pipe = new PortDuplex(m.id, (x) => this.post(loop, x), m.address);
        loop.pipes.set(m.id, pipe);
        pipe.once('close', () => loop.pipes.delete(m.id));
        relayedAskers.set(pipe, m.asker);
        this.relayServer.emit('connection', pipe);
        return;
      }
      case 'done':
        loop.ops.get(m.rid)?.(m);
        loop.ops.delete(m.rid);
        return;
      case 'sent':
        return o.onNarSent(m);
      case 'track': {
        const row: TrackRow = { bytes: 0, wireBytes: null, handle: null };
        loop.transfers.set(m.id, row);
        row.handle = o.trackNar({
          remoteAddress: m.remoteAddress,
          storePath: m.storePath,
          total: m.total,
          bytes: () => row.bytes,
          wireBytes: () => row.wireBytes ?? undefined,
        });
        return;
      }
      case 'progress':
        for (const [id, bytes, wire] of m.rows) {
          const row = loop.transfers.get(id);
          if (row) (row.bytes = bytes), (row.wireBytes = wire);
        }
        return;
      case 'untrack':
        loop.transfers.get(m.id)?.handle?.end(m.outcome);
        loop.transfers.delete(m.id);
        return;
      case 'metrics':
        for (const c of m.calls) {
          if (c[0] === 'countRequest') o.metrics.countRequest('share', c[1]);
          else if (c[0] === 'countAnswer') o.metrics.countAnswer('share', c[1], c[2]);
          else if (c[0] === 'observeLookup') o.metrics.observeLookup('share', c[1], c[2]);
          else if (c[0] === 'narsInFlight') o.metrics.narsInFlight[c[1] > 0 ? 'inc' : 'dec']({ listener: 'share' });
          else o.metrics.transferSeconds.observe({ listener: 'share', source: c[1], outcome: c[2] }, c[3]);
        }
        return;
      case 'daemon':
        o.store.daemonFound(m.down);
        return this.tellOthers(loop, m.down);
      case 'refused':
        return o.scopes.countRefusal(m.scope);
      case 'log':
        return o.log[m.level](m.msg);
    }
  }

  private post(loop: Loop, m: ToWorker): void {
    if (!loop.gone) loop.worker.postMessage(m);
  }

  private op(
    loop: Loop,
    o: { op: 'listen'; host: string; port: number } | { op: 'close'; graceMs: number } | { op: 'cut' | 'accepted' | 'stop' },
  ): Promise<number> {
    if (loop.gone) return Promise.reject(new Error('share loop gone'));
    const rid = this.nextOp++;
    return new Promise<number>((resolve, reject) => {
      loop.ops.set(rid, (m) => {
        if (m.error !== undefined) {
          const e = new Error(m.error) as NodeJS.ErrnoException;
          e.code = m.error.split(' ')[0];
          reject(e);
        } else resolve(m.value ?? 0);
      });
      this.post(loop, { t: 'op', rid, ...o } as ToWorker);
    });
  }
}

// Beside this file: share-worker.ts when run from source, share-worker.js in a build (scripts/build.ts).
function workerEntry(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './share-worker.ts' : './share-worker.js', import.meta.url);
}
