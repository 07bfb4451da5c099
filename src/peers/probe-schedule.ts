import type { PeerHealthFields } from './health.ts';

// When each peer is probed: the registry's timer asks every round which peers are due (registry.ts
// probes them and judges the answers).
//
// An announced host that has never answered a probe (a stale record, a pointer at someone else's
// host) is probed less and less often — 2 s, 4 s, … up to 5 min — and only a few such hosts per round,
// so a flood of announcements costs a bounded number of requests, not one per record every round.
const UNANSWERED_BACKOFF_BASE_MS = 2000;
const UNANSWERED_BACKOFF_MAX_MS = 5 * 60_000;
const UNANSWERED_PER_ROUND = 8;

// Idle cost (#26): an up peer that answered lately needs no probe every round. An up peer is probed
// every 10 s, or less often in a large mesh so that all of them together take about one probe every
// 3 s (at most every 60 s each): N idle hosts cost each a probe sent and one answered every 3 s,
// not N every 2 s. A peer that is not up is probed every round as before; a dead one says goodbye
// over mDNS or is struck by the first lookup it leaves unanswered, so health needs no faster probes.
const UP_PROBE_MIN_MS = 10_000;
const UP_PROBE_SPACING_MS = 3000;
const UP_PROBE_MAX_MS = 60_000;
// A peer in steady contact (its summary's long poll answers at least every so often) is probed only
// once that contact is this late: a probe would tell nothing the answers don't.
const CONTACT_GRACE_MS = 5000;
// Until then it is probed every 10 s, whatever the mesh's size, for its first few passing probes: their
// quickest is the RTT floor that times the link check of a silent lookup (health.ts), and a single
// probe, made while the connection was new or the machine busy, sets it too high to beat the stall
// timer. At 10 s they also keep one connection (a listener keeps an idle one 30 s), not a TLS
// handshake each; the mesh's spacing applies after.
const FLOOR_PROBES = 5;

export interface ProbeScheduleOptions<P> {
  /** The registry's round. */
  roundMs: number;
  /** Found by announcement: such a peer is probed every round only once it has answered as a cache. */
  announced: (peer: P) => boolean;
}

export class ProbeSchedule<P extends Pick<PeerHealthFields, 'state' | 'seenAt' | 'lastHeard'>> {
  private readonly opts: ProbeScheduleOptions<P>;
  /** Peers that have answered as a cache: how many probes passed so (counted up to FLOOR_PROBES). */
  private readonly answered = new WeakMap<P, number>();
  /** Announced peers that never did: when each may be probed next. */
  private readonly unanswered = new WeakMap<P, { next: number; misses: number }>();
  /** Peers in steady contact (contact()): how often they answer at the least. */
  private readonly contactEvery = new WeakMap<P, number>();

  constructor(opts: ProbeScheduleOptions<P>) {
    this.opts = opts;
  }

  /** The round's probes: every peer that has answered before and is due, and a few due announced hosts that never did. */
  due(peers: Iterable<P>, now: number): P[] {
    const due: P[] = [];
    const unproven: P[] = [];
    const all = [...peers];
    const upEvery = this.upProbeMs(all);
    for (const p of all) {
      if (!this.opts.announced(p) || this.answered.has(p)) {
        const every =
          (this.answered.get(p) ?? FLOOR_PROBES) < FLOOR_PROBES
            ? Math.min(upEvery, this.floorEvery())
            : Math.max(upEvery, (this.contactEvery.get(p) ?? -Infinity) + CONTACT_GRACE_MS);
        if (p.state !== 'up' || now - Math.max(p.seenAt, p.lastHeard) >= every) due.push(p);
      } else if ((this.unanswered.get(p)?.next ?? -Infinity) <= now) unproven.push(p);
    }
    const next = (p: P) => this.unanswered.get(p)?.next ?? -Infinity;
    unproven.sort((a, b) => next(a) - next(b));
    return [...due, ...unproven.slice(0, UNANSWERED_PER_ROUND)];
  }

  /** It answered a probe as a cache (proved its identity, or answered as a Go host does). */
  answeredAsCache(peer: P): void {
    this.answered.set(peer, Math.min(FLOOR_PROBES, (this.answered.get(peer) ?? 0) + 1));
    this.unanswered.delete(peer);
  }

  /** A probe of it passed without showing a cache, or failed: an announced host that never answered as one backs off. */
  notACache(peer: P, now: number): void {
    if (!this.opts.announced(peer) || this.answered.has(peer)) return;
    const misses = (this.unanswered.get(peer)?.misses ?? 0) + 1;
    const wait = Math.min(UNANSWERED_BACKOFF_MAX_MS, UNANSWERED_BACKOFF_BASE_MS * 2 ** Math.min(20, misses - 1));
    this.unanswered.set(peer, { misses, next: now + wait });
  }

  /** It answers something regularly, at least every `everyMs`: not probed while that comes in time. */
  contact(peer: P, everyMs: number): void {
    this.contactEvery.set(peer, everyMs);
  }

  /** How often a peer is probed while its RTT floor is being found: 10 s (never more often than the round). */
  private floorEvery(): number {
    return Math.max(this.opts.roundMs, Math.min(UP_PROBE_MIN_MS, 5 * this.opts.roundMs));
  }

  /** How often an up peer is probed: about one probe every 3 s over all up peers, within [10 s, 60 s] (never more often than the round). */
  private upProbeMs(peers: P[]): number {
    const up = peers.filter((p) => p.state === 'up').length;
    const round = this.opts.roundMs;
    return Math.min(UP_PROBE_MAX_MS, Math.max(round, Math.min(UP_PROBE_MIN_MS, 5 * round), up * UP_PROBE_SPACING_MS));
  }
}
