import type { AffinityCache } from './affinity.ts';
import type { CacheBackend, LocalSource, NarBody, NarRequestOptions } from '../cache/backend.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { HedgedOpener } from '../peers/hedged-open.ts';
import type { PeerClient } from '../peers/peer-client.ts';
import type { Peer, PeerRegistry } from '../peers/registry.ts';
import type { NarWatchOptions } from '../peers/resuming-nar.ts';
import type { SwarmTuning } from '../peers/swarm-nar.ts';
import { GoLookups } from './go-lookup.ts';
import { MismatchCuts } from './mismatch-cuts.ts';
import { NarInfoLookup } from './narinfo-lookup.ts';
import { NarSourcing } from './nar-sourcing.ts';
import { PeerNarBodies } from './peer-nar-body.ts';
import type { TransferTracker } from './transfers.ts';
import type { TrustPolicy } from './trust.ts';

// Where the substituter listener's answers come from. Every way a request can end is here:
//   narinfo: local store → (negative cache) → all live peers in parallel → 404
//   NAR:     (a resume of a transfer cut for wrong bytes → 404) → the affinity entry's source →
//            local store → any live peer with the same NarHash → the entry's peer, if still there,
//            however busy → 404
//          the client leaving at any point before the answer ends the search: null, nothing recorded
// A NAR is never refused just because we don't remember its narinfo: the URL names the store hash
// and the NarHash, which is all any source needs. Opening it on peers is hedged (peers/hedged-open.ts).

export interface ResolverOptions {
  /** This machine's store, through the cache layer (signed narinfos, NAR bodies). */
  local: LocalSource;
  registry: PeerRegistry;
  client: PeerClient;
  affinity: AffinityCache;
  events: EventLog;
  /** Shows NARs from peers while they stream (the window's transfers in progress). */
  transfers?: Pick<TransferTracker, 'begin'>;
  log: Logger;
  trust: () => TrustPolicy;
  negativeTtlMs?: number;
  hedgeMs?: number;
  /** A finished lookup answers identical ones for this long (Nix asks narinfo then NAR at once). */
  lookupReuseMs?: number;
  /** How long a transfer cut for wrong bytes refuses resumes. */
  mismatchMemoryMs?: number;
  /** Drip watchdog for proxied NARs (see resuming-nar.ts). */
  narWatch?: Partial<NarWatchOptions>;
  /** Large NARs from several holders at once (see swarm-nar.ts); false: always one holder at a time. */
  swarm?: Partial<SwarmTuning> | false;
  /** A peer's store summary on a path: false = certainly not there (not asked), null = no summary to go by. */
  mayHave?: (peer: Peer, hashPart: string) => boolean | null;
  /** The UDP port Go peernix hosts answer "has_path?" on (go-has-path.ts); default 9999. */
  goUdpPort?: number;
  /** A lookup neither this store nor any peer could answer (the LAN totals count these). */
  onMiss?: () => void;
}

/**
 * The substituter listener's backend, composed of the two jobs: finding a narinfo (narinfo-lookup.ts,
 * go-lookup.ts) and sourcing a NAR's body (nar-sourcing.ts, peer-nar-body.ts, mismatch-cuts.ts).
 */
export class Resolver implements CacheBackend {
  private readonly go: GoLookups;
  private readonly lookup: NarInfoLookup;
  private readonly sourcing: NarSourcing;
  private readonly onMiss?: () => void;

  constructor(opts: ResolverOptions) {
    // `?? default`, not spread defaults: an option passed as undefined would otherwise turn the
    // negative cache off (NaN expiry) and the hedge timer into 1ms.
    const negativeTtlMs = opts.negativeTtlMs ?? 5000;
    const hedgeMs = opts.hedgeMs ?? 300;
    const lookupReuseMs = opts.lookupReuseMs ?? 1000;
    const mismatchMemoryMs = opts.mismatchMemoryMs ?? 60 * 60_000;
    const { local, registry, client, affinity, events, log } = opts;
    this.onMiss = opts.onMiss;
    this.go = new GoLookups(registry, opts.goUdpPort);
    this.lookup = new NarInfoLookup({
      local,
      registry,
      client,
      affinity,
      log,
      trust: opts.trust,
      go: this.go,
      negativeTtlMs,
      lookupReuseMs,
      mayHave: opts.mayHave,
    });
    const hedged = new HedgedOpener({ registry, client, log, hedgeMs, lookup: (h, fresh) => this.lookup.fanOut(h, fresh) });
    // The registry's health clock (monotonic): a wall clock set back keeps no refused resume longer.
    const mismatchCuts = new MismatchCuts(() => registry.health.clock.now(), mismatchMemoryMs);
    const bodies = new PeerNarBodies({
      registry,
      client,
      affinity,
      events,
      log,
      hedged,
      lookup: this.lookup,
      mismatchCuts,
      transfers: opts.transfers,
      narWatch: opts.narWatch,
      swarm: opts.swarm,
    });
    this.sourcing = new NarSourcing({ local, registry, affinity, events, log, hedged, lookup: this.lookup, bodies, mismatchCuts });
  }

  /** Forgets remembered misses a peer's summary now admits: these paths, or (none given) all. */
  forgetMisses(hashParts?: readonly string[]): void {
    this.lookup.forgetMisses(hashParts);
  }

  async narInfo(hashPart: string): Promise<NarInfo | null> {
    const info = await this.lookup.find(hashPart);
    if (!info) this.onMiss?.();
    return info;
  }

  nar(hashPart: string, narHash: Buffer, opts: NarRequestOptions = {}): Promise<NarBody | null> {
    return this.sourcing.nar(hashPart, narHash, opts);
  }

  /** Learns a Go peer's protocol when it comes up (see go-lookup.ts). */
  learnGoDialect(peer: Peer): void {
    this.go.learnDialect(peer);
  }
}
