import type { PeerState } from '../base/api.ts';

// A peer's liveness, judged by what it actually answers. A passing /nix-cache-info probe is not
// enough: a peer can answer that and stall every lookup (a wedged daemon, a dropped link that
// keeps old state). So:
//   - a lookup it leaves unanswered (a timeout, or silence for stallMs while nothing else arrives
//     from it) is a strike: every other lookup waiting on it is released at once, and it is not
//     asked again until a backoff that doubles with each strike has passed;
//   - only an answered lookup clears the strikes; a probe can bring the peer back only once the
//     backoff is over, and then its next real lookup decides;
//   - a peer that served wrong bytes is kept out for hours (until the user clears it).
//   - a lookup left unanswered for a few round trips has the peer's link checked with a TCP connect
//     (reach-check.ts): a cut link is a strike within tens of milliseconds, where waiting for stallMs
//     would make every miss its summary falsely admits wait half a second; a peer whose kernel
//     answers is only busy, and keeps stallMs.

export interface HealthOptions {
  /** First backoff after a strike; doubles per strike. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A lookup with no sign of life from its peer for this long is a stall. */
  stallMs: number;
  /** How long a peer that served wrong bytes stays out. */
  badPeerMs: number;
  /** Failed probes in a row before a peer counts as gone. */
  goneAfterProbes: number;
  /** Silence on a lookup before its peer's link is checked: at least this, or twice its RTT floor. */
  reachAfterMs: number;
  /** How long that check's connect may take: at least this, or four times the peer's RTT floor. */
  reachTimeoutMs: number;
  /** A passed check is believed this long: a busy peer is not connected to on every slow lookup. */
  reachMemoryMs: number;
}

export const DEFAULT_HEALTH: HealthOptions = {
  backoffBaseMs: 2000,
  backoffMaxMs: 10 * 60_000,
  stallMs: 500,
  badPeerMs: 6 * 60 * 60_000,
  goneAfterProbes: 3,
  reachAfterMs: 10,
  reachTimeoutMs: 25,
  reachMemoryMs: 250,
};

/** Whether the peer's host answers a connect within timeoutMs (see reach-check.ts). */
export type ReachCheck<P> = (peer: P, timeoutMs: number) => Promise<boolean>;

/** The health fields of a registry peer. */
export interface PeerHealthFields {
  state: PeerState;
  rttMs: number | null;
  /** The quickest recent probe: the link's round trip with the least of the peer's own work in it. */
  rttFloorMs: number | null;
  failures: number; // probes failed in a row
  strikes: number; // lookups left unanswered since it last answered one
  retryAt: number; // epoch ms: not brought back before this
  lastHeard: number; // epoch ms of its last answer or NAR byte
  lastSeen: number; // epoch ms of its last passing probe
  badUntil: number; // served wrong bytes: not asked until then
  badSince: number;
  badReason: string | null;
}

export function freshHealth(now = Date.now()): PeerHealthFields {
  return { state: 'suspect', rttMs: null, rttFloorMs: null, failures: 0, strikes: 0, retryAt: 0, lastHeard: 0, lastSeen: now, badUntil: 0, badSince: 0, badReason: null };
}

interface Outstanding {
  start: number;
  abort: () => void;
  timer: NodeJS.Timeout;
  quick: NodeJS.Timeout | null;
}

/** Moves peers between states; `onTransition` hears every change of `state` (and of bad marks). */
export class PeerHealth<P extends PeerHealthFields> {
  readonly opts: HealthOptions;
  private readonly outstanding = new Map<P, Set<Outstanding>>();
  private readonly onTransition: (peer: P, before: PeerState, why: string) => void;
  private readonly reach: ReachCheck<P> | null;
  /** Peers whose link is being checked, and until when a passed check holds. */
  private readonly reaching = new Set<P>();
  private readonly reachedUntil = new WeakMap<P, number>();

  constructor(opts: Partial<HealthOptions>, onTransition: (peer: P, before: PeerState, why: string) => void, reach: ReachCheck<P> | null = null) {
    this.opts = { ...DEFAULT_HEALTH, ...opts };
    this.onTransition = onTransition;
    this.reach = reach;
  }

  /** Worth asking now: up and not caught serving wrong bytes. */
  askable(p: P, now = Date.now()): boolean {
    return p.state === 'up' && p.badUntil <= now;
  }

  backoffMs(strikes: number): number {
    return Math.min(this.opts.backoffMaxMs, this.opts.backoffBaseMs * 2 ** Math.max(0, Math.min(30, strikes - 1)));
  }

  /** Bytes or an answer came from the peer: it is alive, whatever its lookups are doing. */
  heard(p: P): void {
    p.lastHeard = Date.now();
  }

  /** It answered a lookup (yes or no) in time. */
  answered(p: P): void {
    p.lastHeard = Date.now();
    p.strikes = 0;
  }

  /**
   * A request to it failed or went unanswered: out until the backoff is over, waiting lookups
   * released. A `soft` failure (a timeout) of a peer heard from within stallMs is congestion, not
   * death: a peer busy streaming NARs over a slow link is kept. Returns whether it counted.
   */
  strike(p: P, why: string, soft = false): boolean {
    if (soft && Date.now() - p.lastHeard < this.opts.stallMs) return false;
    p.strikes++;
    p.retryAt = Date.now() + this.backoffMs(p.strikes);
    this.releaseAll(p);
    this.set(p, p.state === 'gone' ? 'gone' : 'suspect', why);
    return true;
  }

  /** The result of a health probe. */
  probed(p: P, ok: boolean, rttMs: number | null): void {
    const now = Date.now();
    if (ok) {
      p.rttMs = rttMs;
      // Drifts up 10% a probe, so a link that really got slower is followed within a minute or so.
      if (rttMs !== null) p.rttFloorMs = p.rttFloorMs === null ? rttMs : Math.min(rttMs, p.rttFloorMs * 1.1 + 0.1);
      p.failures = 0;
      p.lastSeen = now;
      // A probe shows the peer is there, not that it answers lookups: after a strike it comes back
      // only once the backoff is over, and its next lookup decides. A liar stays out until cleared.
      if (now >= p.retryAt && p.badUntil <= now) this.set(p, 'up', 'health check passed');
    } else {
      p.failures++;
      p.rttMs = null;
      this.set(p, p.failures >= this.opts.goneAfterProbes ? 'gone' : 'suspect', 'health check failed');
    }
  }

  markBad(p: P, reason: string): void {
    const now = Date.now();
    if (p.badUntil <= now) p.badSince = now;
    p.badUntil = now + this.opts.badPeerMs;
    p.badReason = reason;
    this.strike(p, reason);
  }

  /** The user vouches for the peer again. */
  clearBad(p: P): boolean {
    const was = p.badUntil > Date.now();
    p.badUntil = 0;
    p.badSince = 0;
    p.badReason = null;
    // Its strikes came from the same wrong bytes: the next passing probe brings it back.
    p.strikes = 0;
    p.retryAt = 0;
    return was;
  }

  /**
   * A lookup to `p` is starting; `abort` ends it. It counts as a stall (a strike, releasing every
   * lookup waiting on `p`) if nothing at all arrives from `p` within stallMs (or the given allowance).
   * Call the returned function when it ends.
   */
  track(p: P, abort: () => void, stallMs = this.opts.stallMs): () => void {
    let set = this.outstanding.get(p);
    if (!set) this.outstanding.set(p, (set = new Set()));
    const o: Outstanding = {
      start: Date.now(),
      abort,
      timer: setTimeout(() => {
        if (p.lastHeard < o.start && set.has(o)) this.strike(p, `no answer for ${stallMs} ms`);
      }, stallMs),
      quick: null,
    };
    o.timer.unref();
    if (this.reach) {
      const after = Math.min(this.opts.stallMs, Math.max(this.opts.reachAfterMs, 2 * (p.rttFloorMs ?? 0)));
      o.quick = setTimeout(() => {
        if (p.lastHeard < o.start && set.has(o)) this.checkReach(p, o.start);
      }, after);
      o.quick.unref();
    }
    set.add(o);
    return () => {
      clearTimeout(o.timer);
      if (o.quick) clearTimeout(o.quick);
      set.delete(o);
      if (set.size === 0 && this.outstanding.get(p) === set) this.outstanding.delete(p);
    };
  }

  forget(p: P): void {
    this.releaseAll(p);
  }

  /** One connect per peer at a time; its failure strikes the peer if it stayed silent meanwhile. */
  private checkReach(p: P, since: number): void {
    if (this.reaching.has(p) || (this.reachedUntil.get(p) ?? 0) > Date.now()) return;
    this.reaching.add(p);
    const timeoutMs = Math.min(this.opts.stallMs, Math.max(this.opts.reachTimeoutMs, 4 * (p.rttFloorMs ?? 0)));
    void this.reach!(p, timeoutMs).then((ok) => {
      this.reaching.delete(p);
      if (ok) this.reachedUntil.set(p, Date.now() + this.opts.reachMemoryMs);
      else if (p.lastHeard < since && this.outstanding.get(p)?.size) this.strike(p, `its host did not answer a connect within ${timeoutMs} ms (link down?)`);
    });
  }

  private releaseAll(p: P): void {
    const set = this.outstanding.get(p);
    if (!set) return;
    this.outstanding.delete(p);
    for (const o of set) {
      clearTimeout(o.timer);
      if (o.quick) clearTimeout(o.quick);
      o.abort();
    }
  }

  private set(p: P, to: PeerState, why: string): void {
    const before = p.state;
    p.state = to;
    if (before !== to) this.onTransition(p, before, why);
  }
}
