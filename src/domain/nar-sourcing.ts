import type { Readable } from 'node:stream';
import type { FallbackReason } from '../base/api.ts';
import type { LocalSource, NarBody, NarRequestOptions } from '../cache/backend.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import { encodeNix32 } from '../nix/nix32.ts';
import type { Candidate, Found, HedgedOpener } from '../peers/hedged-open.ts';
import type { Peer, PeerRegistry } from '../peers/registry.ts';
import { type AffinityCache, type AffinityEntry, LOCAL } from './affinity.ts';
import { reportFallback } from './fallback-report.ts';
import type { MismatchCuts } from './mismatch-cuts.ts';
import type { NarInfoLookup } from './narinfo-lookup.ts';
import type { PeerNarBodies } from './peer-nar-body.ts';

// Where a NAR's body comes from, in the order resolver.ts describes: a refused resume, the affinity
// entry's source, the local store, any peer with the same NarHash, the entry's peer waited for.

export interface NarSourcingOptions {
  local: LocalSource;
  registry: PeerRegistry;
  affinity: AffinityCache;
  events: EventLog;
  log: Logger;
  hedged: HedgedOpener;
  lookup: Pick<NarInfoLookup, 'remember'>;
  bodies: PeerNarBodies;
  mismatchCuts: MismatchCuts;
}

/** How long a NAR waits for the peer whose narinfo Nix holds, while that peer is alive but busy. */
const HOLDER_WAIT_MS = 30_000;
const HOLDER_RETRY_MS = 250;
const HOLDER_RETRY_MAX_MS = 2000;

export class NarSourcing {
  private readonly opts: NarSourcingOptions;

  constructor(opts: NarSourcingOptions) {
    this.opts = opts;
  }

  async nar(hashPart: string, narHash: Buffer, opts: NarRequestOptions = {}): Promise<NarBody | null> {
    const { signal } = opts;
    if (signal?.aborted) return this.clientLeft(hashPart);
    const narHash32 = encodeNix32(narHash);
    if (opts.resume && this.opts.mismatchCuts.refusesResume(hashPart, narHash32)) {
      // The client holds a prefix that failed verification (it reached it before the final hash
      // check): any correct suffix would still fail its own check. A 404 makes Nix drop this
      // substituter for the path cleanly ("substitute gone") and move on.
      this.opts.log.warn(`NAR ${hashPart}: refusing to resume a transfer that was cut for wrong bytes`);
      const entry = this.opts.affinity.get(hashPart);
      this.fallback(entry?.storePath ?? hashPart, entry, null, 'mismatch', 'not-found');
      return null;
    }
    const found = this.opts.affinity.get(hashPart);
    const entry = found && found.narHash32 === narHash32 ? found : undefined;
    const tried = new Set<string>();
    let reason: FallbackReason = 'none';

    if (entry && entry.source !== LOCAL) {
      const peer = this.opts.registry.get(entry.source);
      if (!peer || peer.state === 'gone') reason = 'peer-gone';
      else if (!this.opts.registry.live().includes(peer) || !entry.peerNarUrl) reason = 'peer-failed';
      else {
        // Hedged like any peer: a stalled entry peer must not hold the NAR up for the header timeout.
        const first: Candidate = { peer, url: entry.peerNarUrl, storePath: entry.storePath, narSize: entry.narSize, answer: null };
        const got = await this.opts.hedged.open(hashPart, narHash32, tried, 0, first, signal);
        if (signal?.aborted) return this.clientLeft(hashPart, got?.opened.stream);
        if (got?.candidate === first) {
          this.opts.affinity.hit(hashPart);
          return this.opts.bodies.body(hashPart, entry.storePath, narHash, entry.narSize, got.opened, tried);
        }
        reason = 'peer-failed';
        if (got) return this.servedByOtherPeer(hashPart, narHash, entry, reason, got, tried);
      }
    }

    const local = await this.openLocal(hashPart, narHash);
    if (signal?.aborted) {
      if (typeof local !== 'string') local.release('aborted');
      return this.clientLeft(hashPart);
    }
    if (typeof local !== 'string') {
      const storePath = local.storePath;
      if (entry?.source !== LOCAL || !entry) {
        this.opts.affinity.record({ hashPart, storePath, source: LOCAL, sourceName: 'this machine', peerNarUrl: null, narHash32, narSize: local.narSize });
        if (entry) this.fallback(storePath, entry, 'this machine', reason, 'served');
      }
      this.opts.affinity.hit(hashPart);
      return local;
    }
    if (entry?.source === LOCAL) reason = local === 'mismatch' ? 'mismatch' : 'gc';

    // Any peer that holds this store path with exactly this NarHash serves identical bytes.
    const found2 = await this.opts.hedged.open(hashPart, narHash32, tried, 0, undefined, signal);
    if (signal?.aborted) return this.clientLeft(hashPart, found2?.opened.stream);
    if (found2) return this.servedByOtherPeer(hashPart, narHash, entry, reason, found2, tried);

    // The peer whose narinfo Nix holds may just be busy or have missed a probe: while it is still
    // there (and not caught lying), a NAR waits for it rather than fail the user's build with a 404.
    const holder = entry && entry.source !== LOCAL && entry.peerNarUrl ? this.opts.registry.get(entry.source) : undefined;
    // Once more even if it was just tried (a timeout on a congested link is no proof it is gone),
    // but not when its probes fail and nothing has come from it lately (a cut link): that 404 is quick.
    // It is waited for at its own pace: a holder busy at its stream cap (503) or slow to send headers
    // while it still answers probes or sends bytes is tried again, with a growing pause, for up to
    // HOLDER_WAIT_MS — a 404 here fails a substitution Nix was promised.
    const health = this.opts.registry.health;
    const alive = (p: Peer) => p.state !== 'gone' && !health.isBad(p) && (p.failures === 0 || health.heardWithin(p, 2000));
    if (entry && holder && alive(holder)) {
      const last: Candidate = { peer: holder, url: entry.peerNarUrl!, storePath: entry.storePath, narSize: entry.narSize, answer: null };
      const until = health.clock.now() + HOLDER_WAIT_MS;
      for (let pause = HOLDER_RETRY_MS; ; pause = Math.min(HOLDER_RETRY_MAX_MS, pause * 2)) {
        const opened = await this.opts.hedged.openOne(last, last.narSize, 0, signal);
        if (signal?.aborted) return this.clientLeft(hashPart, opened?.stream);
        if (opened) {
          tried.add(holder.id);
          this.opts.affinity.hit(hashPart);
          return this.opts.bodies.body(hashPart, entry.storePath, narHash, entry.narSize, opened, tried);
        }
        if (health.clock.now() + pause >= until || !alive(holder)) break;
        this.opts.log.info(`NAR ${entry.storePath}: its holder ${holder.name} is busy or slow; trying it again in ${pause} ms`);
        await this.pause(pause, signal);
        if (signal?.aborted) return this.clientLeft(hashPart);
      }
    }
    if (entry) this.fallback(entry.storePath, entry, null, reason, 'not-found');
    return null;
  }

  /**
   * The client hung up before its answer: a NAR nobody wants is neither served nor a fallback (no
   * event, no affinity change), and a peer stream opened for it in the meantime is let go at once.
   */
  private clientLeft(hashPart: string, opened?: Readable): null {
    opened?.destroy();
    this.opts.log.debug(`NAR ${hashPart}: the client left before it was found; no longer looking`);
    return null;
  }

  /** Waits `ms` on the health clock, or until the client leaves. */
  private pause(ms: number, signal?: AbortSignal): Promise<void> {
    const clock = this.opts.registry.health.clock;
    return new Promise((resolve) => {
      const done = () => {
        clock.clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = clock.setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private servedByOtherPeer(
    hashPart: string,
    narHash: Buffer,
    entry: AffinityEntry | undefined,
    reason: FallbackReason,
    found: Found,
    tried: Set<string>,
  ): NarBody {
    const { candidate, opened } = found;
    if (candidate.answer) this.opts.lookup.remember(hashPart, candidate.answer);
    this.opts.affinity.hit(hashPart);
    this.fallback(candidate.storePath, entry, candidate.peer.name, reason, 'served');
    return this.opts.bodies.body(hashPart, candidate.storePath, narHash, candidate.narSize, opened, tried);
  }

  private fallback(storePath: string, entry: AffinityEntry | undefined, to: string | null, reason: FallbackReason, outcome: 'served' | 'not-found'): void {
    reportFallback(this.opts.log, this.opts.events, storePath, entry, to, reason, outcome);
  }

  private async openLocal(hashPart: string, narHash: Buffer) {
    try {
      return await this.opts.local.openLocal(hashPart, narHash);
    } catch (e) {
      this.opts.log.warn(`local store: ${(e as Error).message}`);
      return 'missing' as const;
    }
  }
}
