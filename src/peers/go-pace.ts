import type { Clock } from '../base/clock.ts';
import type { PeerHealthFields } from './health.ts';

// A Go peer makes each narinfo by running nix-store four times, and looks for what it lacks on its own
// peers over UDP for up to 2 s before it says 404 (zw3rk/peernix main.go: generateNarInfo,
// findPeerForHash): slow answers are its normal, not a stall.
// So a lookup also asks it over UDP (go-has-path.ts), where it answers "yes" after one nix-store run
// and never "no". Until a "yes" comes, its silence is taken as the miss it will be after a while:
// GO_SILENCE_MS on an idle host, longer for a host whose "yes" answers or probes come slowly now
// (fading with time), since a hit cut short is a 404 that Nix remembers for an hour. After a "yes",
// the narinfo is waited for up to GO_HELD_MS. It is never struck as stalled meanwhile.
const GO_SILENCE_MS = 600;
/** Below the 2 s a Go host spends asking its peers before its 404: silence is never waited out longer. */
const GO_SILENCE_MAX_MS = 1800;
/** Silence is waited out this many times the peer's recent slowest "yes" (or probe). */
const GO_SILENCE_FACTOR = 2;
/** A slow "yes" counts half as much after this long. */
const GO_SLOW_HALF_LIFE_MS = 30_000;
/** Silence on a lookup before a Go peer is struck as stalled. */
export const GO_STALL_MS = 2500;
/**
 * After a "yes", the narinfo is waited for while the peer keeps answering: it is cut once the peer has
 * been silent for GO_HELD_MS, or GO_HELD_FACTOR times its recent slowest yes→narinfo time if longer
 * (never past GO_HELD_MAX_MS), and then struck like any unanswered lookup.
 */
const GO_HELD_MS = 2400;
const GO_HELD_FACTOR = 3;
/**
 * Its narinfo costs about this many of the nix-store runs its "yes" cost one of: a "yes" that came
 * slowly (a loaded host) promises a narinfo slower still, even with no narinfo of its seen before.
 */
const GO_NARINFO_RUNS = 5;
const GO_HELD_MAX_MS = 20_000;
/** The longest a narinfo request to a Go peer may take at all (its held wait decides before). */
export const GO_LOOKUP_MAX_MS = 60_000;

interface Slowest {
  ms: number;
  at: number;
}

/** How long a lookup waits on each Go peer, from how slowly it has answered lately (times on `clock`). */
export class GoPace<P extends Pick<PeerHealthFields, 'rttMs'>> {
  private readonly clock: Pick<Clock, 'now'>;
  /** Slowest recent UDP "yes" answers (see silenceMs). */
  private readonly slowYes = new WeakMap<P, Slowest>();
  /** Slowest recent narinfo after a "yes" (see heldMs). */
  private readonly slowHeld = new WeakMap<P, Slowest>();

  constructor(clock: Pick<Clock, 'now'>) {
    this.clock = clock;
  }

  /** How long a Go peer that said "yes" (after `yesMs`) may stay silent before its narinfo is given up. */
  heldMs(peer: P, yesMs = 0): number {
    return Math.min(GO_HELD_MAX_MS, Math.max(GO_HELD_MS, GO_HELD_FACTOR * Math.max(this.fading(this.slowHeld, peer), GO_NARINFO_RUNS * yesMs)));
  }

  /** Its narinfo came `ms` after its "yes". */
  held(peer: P, ms: number): void {
    if (ms > this.fading(this.slowHeld, peer)) this.slowHeld.set(peer, { ms, at: this.clock.now() });
  }

  /** How long a lookup takes its silence (no UDP "yes") for a miss. */
  silenceMs(peer: P): number {
    const slowest = Math.max(this.fading(this.slowYes, peer), peer.rttMs ?? 0);
    return Math.min(GO_SILENCE_MAX_MS, Math.max(GO_SILENCE_MS, GO_SILENCE_FACTOR * slowest));
  }

  /** It said "yes" over UDP `ms` after it was asked. */
  yes(peer: P, ms: number): void {
    if (ms > this.fading(this.slowYes, peer)) this.slowYes.set(peer, { ms, at: this.clock.now() });
  }

  private fading(map: WeakMap<P, Slowest>, peer: P): number {
    const slow = map.get(peer);
    return slow ? slow.ms * 0.5 ** ((this.clock.now() - slow.at) / GO_SLOW_HALF_LIFE_MS) : 0;
  }
}
