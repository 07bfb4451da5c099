import type { Clock } from '../base/clock.ts';
import type { LocalSource } from '../cache/backend.ts';
import { narUrl } from '../cache/routes.ts';
import type { Logger } from '../base/log.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { parseStorePath } from '../nix/store-path.ts';
import { waitUntil, type Lookup, type PeerAnswer } from '../peers/hedged-open.ts';
import { PeerError, type PeerClient } from '../peers/peer-client.ts';
import type { Peer, PeerRegistry } from '../peers/registry.ts';
import { type AffinityCache, LOCAL } from './affinity.ts';
import type { GoLookups } from './go-lookup.ts';
import { judgeNarInfo, type TrustPolicy, type Verdict } from './trust.ts';

// Finding a narinfo: the local store first, then every live peer at once. Identical lookups share one
// fan-out (Nix asks narinfo then NAR at once), and a miss is remembered for a while.

export interface NarInfoLookupOptions {
  local: LocalSource;
  registry: PeerRegistry;
  client: PeerClient;
  affinity: AffinityCache;
  log: Logger;
  trust: () => TrustPolicy;
  go: GoLookups;
  negativeTtlMs: number;
  lookupReuseMs: number;
  /** A peer's store summary on a path: false = certainly not there (not asked), null = no summary to go by. */
  mayHave?: (peer: Peer, hashPart: string) => boolean | null;
}

export class NarInfoLookup {
  private readonly negative = new Map<string, number>();
  private readonly lookups = new Map<string, Lookup>();

  private readonly opts: NarInfoLookupOptions;

  constructor(opts: NarInfoLookupOptions) {
    this.opts = opts;
    // A new peer may have what we just missed. Finished lookups go too: reusing one would repeat
    // the miss without asking the newcomer.
    opts.registry.on('up', (peer: Peer) => {
      this.negative.clear();
      for (const [hashPart, l] of this.lookups) if (l.done) this.lookups.delete(hashPart);
      opts.go.learnDialect(peer);
    });
  }

  /**
   * The registry's health clock (monotonic): remembered misses and shared lookups expire on it, so a
   * wall clock set back keeps none of them longer and unit tests drive it.
   */
  private get clock(): Clock {
    return this.opts.registry.health.clock;
  }

  /** Forgets remembered misses a peer's summary now admits: these paths, or (none given) all. */
  forgetMisses(hashParts?: readonly string[]): void {
    if (!hashParts) return this.negative.clear();
    for (const h of hashParts) this.negative.delete(h);
  }

  async find(hashPart: string): Promise<NarInfo | null> {
    const local = await this.localNarInfo(hashPart);
    if (local) {
      this.opts.affinity.record({
        hashPart,
        storePath: local.storePath,
        source: LOCAL,
        sourceName: 'this machine',
        peerNarUrl: null,
        narHash32: local.narHash.slice('sha256:'.length), // the local backend writes it in nix32
        narSize: local.narSize,
      });
      return local;
    }
    const answer = await this.lookupPeers(hashPart, (a) => judgeNarInfo(a.info, this.opts.trust()));
    if (!answer) return null;
    this.remember(hashPart, answer);
    return answer.info;
  }

  /** Records a peer's answer as where this path's NAR comes from. */
  remember(hashPart: string, a: PeerAnswer): void {
    this.opts.affinity.record({
      hashPart,
      storePath: a.info.storePath,
      source: a.peer.id,
      sourceName: a.peer.name,
      peerNarUrl: a.narUrl,
      narHash32: a.narHash32,
      narSize: a.info.narSize,
    });
  }

  private async localNarInfo(hashPart: string): Promise<NarInfo | null> {
    try {
      return await this.opts.local.narInfo(hashPart);
    } catch (e) {
      // The local daemon being down must not stop us finding the path on a peer.
      this.opts.log.warn(`local store: ${(e as Error).message}`);
      return null;
    }
  }

  /**
   * Asks every live peer at once and resolves with the first answer `judge` calls trusted, or else the
   * first it calls acceptable once all have answered. Identical lookups share one fan-out.
   */
  private async lookupPeers(hashPart: string, judge: (a: PeerAnswer) => Verdict): Promise<PeerAnswer | null> {
    const state = this.fanOut(hashPart);
    if (!state) return null;
    await waitUntil(state, () => state.list.some((a) => judge(a) === 'trusted'));
    return state.list.find((a) => judge(a) === 'trusted') ?? state.list.find((a) => judge(a) === 'acceptable') ?? null;
  }

  /**
   * The fan-out for this hash part: the one in flight or (unless `fresh`) just finished, else a new
   * one. Null on a remembered miss.
   */
  fanOut(hashPart: string, fresh = false): Lookup | null {
    const now = this.clock.now();
    const until = this.negative.get(hashPart);
    if (until !== undefined) {
      if (until > now) return null;
      this.negative.delete(hashPart);
    }
    const existing = this.lookups.get(hashPart);
    if (existing && (!existing.done || (!fresh && existing.doneAt + this.opts.lookupReuseMs > now))) return existing;
    const state: Lookup = { list: [], done: false, doneAt: 0, waiters: new Set() };
    this.lookups.set(hashPart, state);
    const wake = () => {
      for (const w of state.waiters) w();
    };
    // Only peers whose summary admits the path (or that publish none) are asked: most misses ask nobody.
    const candidates = this.opts.mayHave ? this.opts.registry.live().filter((p) => this.opts.mayHave!(p, hashPart) !== false) : this.opts.registry.live();
    const asks = candidates.map(async (peer) => {
      // A stall of this peer (registry health) releases this lookup and every other one waiting on it.
      const stop = new AbortController();
      const go = peer.dialect === 'go' ? this.opts.go.begin(peer, hashPart, stop.signal) : null;
      // What the peer promised ("yes" over UDP) is not released when it is struck for another lookup.
      const untrack = this.opts.registry.trackLookup(
        peer,
        () => stop.abort(),
        () => go?.saidYes() ?? false,
      );
      try {
        const info = await this.opts.client.narInfo(peer.url, hashPart, go?.signal ?? stop.signal, this.opts.registry.lookupMs(peer));
        go?.answered();
        this.opts.registry.reportAnswer(peer);
        const answer = info && validAnswer(peer, hashPart, info);
        if (answer) {
          state.list.push(answer);
          wake();
        }
      } catch (e) {
        this.opts.log.debug(`peer ${peer.name}: ${(e as Error).message}`);
        // A Go peer's "not_found" over UDP is its answer: a miss, not a failure to strike it for.
        if (go?.saidNotFound()) this.opts.registry.reportAnswer(peer);
        else if (!stop.signal.aborted)
          this.opts.registry.reportLookupFailure(peer, (e as Error).message, e instanceof PeerError && e.kind === 'timeout', go?.saidYes() ?? false);
      } finally {
        go?.end();
        untrack();
      }
    });
    void Promise.all(asks).then(() => {
      state.done = true;
      state.doneAt = this.clock.now();
      if (state.list.length === 0) this.negative.set(hashPart, state.doneAt + this.opts.negativeTtlMs);
      wake();
      this.clock.setTimeout(() => this.lookups.get(hashPart) === state && this.lookups.delete(hashPart), this.opts.lookupReuseMs).unref?.();
    });
    return state;
  }
}

/** A peer's narinfo is used only if it is for exactly this path and its NAR lives on that peer. */
function validAnswer(peer: Peer, hashPart: string, info: NarInfo): PeerAnswer | null {
  try {
    if (parseStorePath(info.storePath).hashPart !== hashPart) return null;
    if (info.compression !== 'none') return null; // we stream and verify plain NARs only
    const url = new URL(info.url, peer.url + '/');
    if (url.origin !== new URL(peer.url).origin) return null; // never let a peer point us elsewhere
    const narHash32 = formatSha256Nix32(parseSha256(info.narHash)).slice('sha256:'.length);
    // Signatures pass through untouched; only the URL changes, once, so the NAR comes back through us.
    return { peer, info: { ...info, url: narUrl(hashPart, narHash32) }, narHash32, narUrl: url.href };
  } catch {
    return null;
  }
}
