// How often a host announced by mDNS is probed before it has shown it is a Peernix cache.
//
// Threat: an announcement is only a pointer. Anyone on the LAN can announce any host and port (a
// printer's web page, a victim's server), and every Peernix would fetch its /nix-cache-info every
// health round, forever. Until a host has proved its identity or answered as a Go peer does, its
// probes back off (seconds, doubling, up to minutes), and all its later probes and those of other
// such hosts together are capped per second, so a flood of announcements costs a bounded trickle.

export interface UnprovenProbeOptions {
  firstDelayMs: number;
  maxDelayMs: number;
  /** Probes of unproven hosts, all together, per second. */
  perSecond: number;
  /** Monotonic milliseconds (tests drive it). */
  now: () => number;
}

export const DEFAULT_UNPROVEN_PROBES: UnprovenProbeOptions = { firstDelayMs: 2_000, maxDelayMs: 5 * 60_000, perSecond: 4, now: () => performance.now() };

export class UnprovenProbes<P extends object> {
  private readonly opts: UnprovenProbeOptions;
  private readonly next = new WeakMap<P, { at: number; delayMs: number }>();
  private readonly answered = new WeakSet<P>();
  private second = { at: -Infinity, used: 0 };

  constructor(opts: Partial<UnprovenProbeOptions> = {}) {
    this.opts = { ...DEFAULT_UNPROVEN_PROBES, ...opts };
  }

  /** Whether a probe of this not yet proven host may go now; if so, the next one waits longer. */
  allow(peer: P): boolean {
    if (this.answered.has(peer)) return true;
    const now = this.opts.now();
    const n = this.next.get(peer);
    if (!n) {
      // A host's first probe goes at once, as it is admitted (admission has limits of its own):
      // a genuine peer announced among many pointers is not kept waiting behind them.
      this.next.set(peer, { at: now + this.opts.firstDelayMs, delayMs: this.opts.firstDelayMs });
      return true;
    }
    if (now < n.at) return false;
    if (now - this.second.at >= 1000) this.second = { at: now, used: 0 };
    if (this.second.used >= this.opts.perSecond) return false;
    this.second.used++;
    const delayMs = Math.min(n.delayMs * 2, this.opts.maxDelayMs);
    this.next.set(peer, { at: now + delayMs, delayMs });
    return true;
  }

  /** The host answered as a cache (it proved its identity, or answered as a Go peer): probe it as any peer. */
  proven(peer: P): void {
    this.answered.add(peer);
    this.next.delete(peer);
  }
}
