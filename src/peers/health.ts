import type { PeerState } from '../base/api.ts';
import { systemClock, type Clock, type TimerHandle } from '../base/clock.ts';
import { SampledLoopLag, type LoopLag } from '../base/loop-lag.ts';

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
//   - silence is counted only while this process was awake to hear it (loop-lag.ts): on a loaded
//     machine our event loop can be away for hundreds of milliseconds, and a timer that fires after
//     such a stall must not blame the peer whose answer sits unread in our socket. A stall timer
//     decides only after pending I/O has been read (setImmediate), and re-arms for the silence we
//     slept through; a failed link check during which we were stalled proves nothing.
//   - a lookup the peer has promised to answer (a Go host's UDP "yes") is not released when the peer
//     is struck for another lookup: it keeps its own deadline, at the peer's own pace.
// All of its times are on a monotonic clock (an injected Clock): a wall clock set back a day must not
// keep a peer out for a day.

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

/** Failed waits in a row our own stalls may excuse before the next counts (see wasAway). */
export const MAX_EXCUSED = 3;

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
  retryAt: number; // health clock (monotonic) ms: not brought back before this
  lastHeard: number; // health clock ms of its last answer or NAR byte
  lastSeen: number; // epoch ms of its last passing probe (shown to the user)
  seenAt: number; // health clock ms of its last passing probe (what decisions compare)
  badUntil: number; // health clock ms: served wrong bytes, not asked until then
  badSince: number; // health clock ms
  badReason: string | null;
}

export function freshHealth(now = Date.now()): PeerHealthFields {
  return {
    state: 'suspect',
    rttMs: null,
    rttFloorMs: null,
    failures: 0,
    strikes: 0,
    retryAt: -Infinity,
    lastHeard: -Infinity,
    lastSeen: now,
    seenAt: -Infinity,
    badUntil: -Infinity,
    badSince: -Infinity,
    badReason: null,
  };
}

interface Outstanding {
  start: number;
  abort: () => void;
  /** The peer promised this answer: a strike for another lookup does not release it. */
  promised: () => boolean;
  timer: TimerHandle | null;
  quick: TimerHandle | null;
  endLag: () => void;
}

export interface HealthDeps {
  clock?: Clock;
  /** This process's own stalls (default: a sampler on `clock`, running only while lookups wait). */
  lag?: LoopLag;
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
  /** Failed waits in a row that a stall of ours excused, per peer. */
  private readonly excused = new WeakMap<P, number>();

  readonly clock: Clock;
  readonly lag: LoopLag;

  constructor(
    opts: Partial<HealthOptions>,
    onTransition: (peer: P, before: PeerState, why: string) => void,
    reach: ReachCheck<P> | null = null,
    deps: HealthDeps = {},
  ) {
    this.opts = { ...DEFAULT_HEALTH, ...opts };
    this.onTransition = onTransition;
    this.reach = reach;
    this.clock = deps.clock ?? systemClock;
    this.lag = deps.lag ?? new SampledLoopLag({ clock: this.clock });
  }

  /** Worth asking now: up and not caught serving wrong bytes. */
  askable(p: P, now = this.clock.now()): boolean {
    return p.state === 'up' && p.badUntil <= now;
  }

  /** Caught serving wrong bytes, and not yet cleared or expired. */
  isBad(p: P): boolean {
    return p.badUntil > this.clock.now();
  }

  /** Bytes or an answer came from it within the last `ms`. */
  heardWithin(p: P, ms: number): boolean {
    return this.clock.now() - p.lastHeard < ms;
  }

  /** Epoch ms of a time on the health clock, for showing to people and other machines. */
  wallTime(t: number): number {
    return Math.round(Date.now() - (this.clock.now() - t));
  }

  /** Of the last `ms` before now, how long the peer was silent while we were awake to hear it. */
  private awakeSilence(p: P, since: number): number {
    const now = this.clock.now();
    const from = Math.max(since, p.lastHeard);
    return now - from - this.lag.stalledBetween(from, now);
  }

  backoffMs(strikes: number): number {
    return Math.min(this.opts.backoffMaxMs, this.opts.backoffBaseMs * 2 ** Math.max(0, Math.min(30, strikes - 1)));
  }

  /** Bytes or an answer came from the peer: it is alive, whatever its lookups are doing. */
  heard(p: P): void {
    p.lastHeard = this.clock.now();
  }

  /** It answered a lookup (yes or no) in time. */
  answered(p: P): void {
    p.lastHeard = this.clock.now();
    p.strikes = 0;
  }

  /**
   * A request to it failed or went unanswered: out until the backoff is over, waiting lookups
   * released. A `soft` failure (a timeout) of a peer heard from within stallMs is congestion, not
   * death: a peer busy streaming NARs over a slow link is kept, and so is one whose silence fell
   * in time our own loop was stalled. Returns whether it counted.
   */
  strike(p: P, why: string, soft = false): boolean {
    if (soft && this.awakeSilence(p, -Infinity) < this.opts.stallMs) return false;
    p.strikes++;
    p.retryAt = this.clock.now() + this.backoffMs(p.strikes);
    this.releaseAll(p);
    this.set(p, p.state === 'gone' ? 'gone' : 'suspect', why);
    return true;
  }

  /** The result of a health probe. */
  probed(p: P, ok: boolean, rttMs: number | null): void {
    const now = this.clock.now();
    if (ok) {
      this.unexcuse(p);
      p.rttMs = rttMs;
      // Drifts up 10% a probe, so a link that really got slower is followed within a minute or so.
      if (rttMs !== null) p.rttFloorMs = p.rttFloorMs === null ? rttMs : Math.min(rttMs, p.rttFloorMs * 1.1 + 0.1);
      p.failures = 0;
      p.lastSeen = this.wallTime(now);
      p.seenAt = now;
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
    const now = this.clock.now();
    if (p.badUntil <= now) p.badSince = now;
    p.badUntil = now + this.opts.badPeerMs;
    p.badReason = reason;
    this.strike(p, reason);
  }

  /** The user vouches for the peer again. */
  clearBad(p: P): boolean {
    const was = this.isBad(p);
    p.badUntil = -Infinity;
    p.badSince = -Infinity;
    p.badReason = null;
    // Its strikes came from the same wrong bytes: the next passing probe brings it back.
    p.strikes = 0;
    p.retryAt = -Infinity;
    return was;
  }

  /**
   * A lookup to `p` is starting; `abort` ends it. It counts as a stall (a strike, releasing every
   * lookup waiting on `p` but the promised ones) if nothing at all arrives from `p` within stallMs (or
   * the given allowance) of time we were awake. Call the returned function when it ends.
   */
  track(p: P, abort: () => void, stallMs = this.opts.stallMs, promised: () => boolean = () => false): () => void {
    let set = this.outstanding.get(p);
    if (!set) this.outstanding.set(p, (set = new Set()));
    const o: Outstanding = { start: this.clock.now(), abort, promised, timer: null, quick: null, endLag: this.lag.hold() };
    const judge = () => {
      o.timer = null;
      // Answers that came while we were away are read before the peer is judged.
      setImmediate(() => {
        if (!set.has(o) || p.lastHeard >= o.start) return;
        const awake = this.awakeSilence(p, o.start);
        if (awake < stallMs) {
          o.timer = this.clock.setTimeout(judge, stallMs - awake);
          o.timer.unref?.();
        } else this.strike(p, `no answer for ${stallMs} ms`);
      });
    };
    o.timer = this.clock.setTimeout(judge, stallMs);
    o.timer.unref?.();
    if (this.reach) {
      const after = Math.min(this.opts.stallMs, Math.max(this.opts.reachAfterMs, 2 * (p.rttFloorMs ?? 0)));
      o.quick = this.clock.setTimeout(() => {
        setImmediate(() => {
          if (p.lastHeard < o.start && set.has(o)) this.checkReach(p, o.start);
        });
      }, after);
      o.quick.unref?.();
    }
    set.add(o);
    return () => {
      this.clear(o);
      set.delete(o);
      if (set.size === 0 && this.outstanding.get(p) === set) this.outstanding.delete(p);
    };
  }

  private clear(o: Outstanding): void {
    if (o.timer) this.clock.clearTimeout(o.timer);
    if (o.quick) this.clock.clearTimeout(o.quick);
    o.timer = o.quick = null;
    o.endLag();
  }

  forget(p: P): void {
    this.releaseAll(p, true);
  }

  /** One connect per peer at a time; its failure strikes the peer if it stayed silent meanwhile. */
  private checkReach(p: P, since: number): void {
    if (this.reaching.has(p) || (this.reachedUntil.get(p) ?? -Infinity) > this.clock.now()) return;
    this.reaching.add(p);
    const timeoutMs = Math.min(this.opts.stallMs, Math.max(this.opts.reachTimeoutMs, 4 * (p.rttFloorMs ?? 0)));
    const asked = this.clock.now();
    void this.reach!(p, timeoutMs).then((ok) => {
      this.reaching.delete(p);
      const now = this.clock.now();
      if (ok) {
        this.reachedUntil.set(p, now + this.opts.reachMemoryMs);
        this.unexcuse(p);
      }
      // A connect that timed out while our own loop was away proves nothing of the link: the stall
      // timer still decides.
      else if (this.wasAway(p, asked, now, timeoutMs)) return;
      else if (p.lastHeard < since && this.outstanding.get(p)?.size)
        this.strike(p, `its host did not answer a connect within ${Math.round(timeoutMs)} ms (link down?)`);
    });
  }

  /**
   * Whether a wait of `waitMs` for `p` that ended (failed) at `to` fell partly in our own stall, so it
   * proves nothing. On a machine that stalls all the time nearly every wait does, and a peer whose link
   * was cut would never be struck: after MAX_EXCUSED such failures in a row the next counts anyway (a
   * live peer answers one of them in the awake time between stalls).
   */
  wasAway(p: P, from: number, to: number, waitMs: number): boolean {
    const away = this.lag.stalledBetween(from, to);
    if (away === 0 || to - from - away >= waitMs) {
      this.excused.delete(p);
      return false;
    }
    const n = (this.excused.get(p) ?? 0) + 1;
    if (n > MAX_EXCUSED) {
      this.excused.delete(p);
      return false;
    }
    this.excused.set(p, n);
    return true;
  }

  /** A wait for `p` succeeded: its excuses start again. */
  private unexcuse(p: P): void {
    this.excused.delete(p);
  }

  /** Ends the lookups waiting on `p`, but (unless `all`) not those it promised to answer. */
  private releaseAll(p: P, all = false): void {
    const set = this.outstanding.get(p);
    if (!set) return;
    for (const o of [...set]) {
      if (!all && o.promised()) continue;
      set.delete(o);
      this.clear(o);
      o.abort();
    }
    if (set.size === 0) this.outstanding.delete(p);
  }

  private set(p: P, to: PeerState, why: string): void {
    const before = p.state;
    p.state = to;
    if (before !== to) this.onTransition(p, before, why);
  }
}
