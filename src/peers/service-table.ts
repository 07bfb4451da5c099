// The bounded table of mDNS services discovery tracks. Any LAN host can announce as many services as
// it likes and never say goodbye, so the table has three defences:
//   - a bound overall and a smaller one per announcing address, so one host cannot fill it;
//   - an expiry: a service not heard from (announced or answering our queries) within its record TTL
//     (clamped, and never shorter than two of our query rounds) is dropped, unless its peer answers
//     over HTTP (with known-answer suppression a known live service no longer answers our queries);
//   - an eviction order that gives up unproven, unreachable, long-unheard entries first and never
//     drops a proven one to make room for a newcomer. Within one address's quota a newcomer replaces
//     only an entry that is unusable or has gone quiet, so a host re-announcing hundreds of names
//     churns nothing (each admission costs a health check and an identity challenge).
// Time is passed in, so the rules can be tested without waiting.

export interface TableEntry {
  key: string;
  source: string | null; // the address its announcements come from
  seenAt: number;
  expiresAt: number;
}

export interface ServiceTableOptions {
  max: number;
  perSource: number;
  /** 2 = identity proven, 1 = usable (has an address, answers), 0 = neither. Higher is kept longer. */
  standing: (key: string) => number;
  minLifetimeMs: number;
  maxLifetimeMs: number;
  staleMs: number; // not heard from for this long: may be replaced by a newcomer from the same address
}

export type Admission<T> = { admitted: true; evicted: T[] } | { admitted: false; evicted: [] };

export class ServiceTable<T extends TableEntry> {
  private readonly entries = new Map<string, T>();
  private readonly limits: ServiceTableOptions;

  constructor(limits: ServiceTableOptions) {
    this.limits = limits;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): T | undefined {
    return this.entries.get(key);
  }

  values(): T[] {
    return [...this.entries.values()];
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  private lifetimeMs(ttlSeconds: number | undefined): number {
    const ttl = typeof ttlSeconds === 'number' && Number.isFinite(ttlSeconds) && ttlSeconds > 0 ? ttlSeconds * 1000 : 0;
    return Math.min(this.limits.maxLifetimeMs, Math.max(this.limits.minLifetimeMs, ttl));
  }

  /** The service was heard from again. */
  touch(entry: T, now: number, ttlSeconds?: number): void {
    entry.seenAt = now;
    entry.expiresAt = now + this.lifetimeMs(ttlSeconds);
  }

  /** Makes room for `entry` if the rules allow it; the caller reports the evicted ones as gone. */
  admit(entry: T): Admission<T> {
    if (this.entries.has(entry.key)) return { admitted: true, evicted: [] };
    const evicted: T[] = [];
    const fromSource = [...this.entries.values()].filter((e) => e.source === entry.source);
    if (fromSource.length >= this.limits.perSource) {
      const victim = this.weakest(fromSource, entry.seenAt - this.limits.staleMs);
      if (!victim) return { admitted: false, evicted: [] };
      this.entries.delete(victim.key);
      evicted.push(victim);
    } else if (this.entries.size >= this.limits.max) {
      const victim = this.weakest([...this.entries.values()]);
      if (!victim) return { admitted: false, evicted: [] };
      this.entries.delete(victim.key);
      evicted.push(victim);
    }
    this.entries.set(entry.key, entry);
    return { admitted: true, evicted };
  }

  /**
   * Removes and returns every entry whose lifetime is over, but for those `alive` vouches for (their
   * peer answers over HTTP): those get another lifetime, and keep their `seenAt`.
   */
  expire(now: number, alive: (key: string) => boolean = () => false): T[] {
    const gone: T[] = [];
    for (const e of this.entries.values()) {
      if (e.expiresAt > now) continue;
      if (alive(e.key)) e.expiresAt = now + this.limits.minLifetimeMs;
      else gone.push(e);
    }
    for (const e of gone) this.entries.delete(e.key);
    return gone;
  }

  // The entry to give up first: lowest standing, then the longest unheard. Proven ones are never given
  // up; with `quietSince`, only unusable entries or ones not heard from since then are.
  private weakest(candidates: T[], quietSince?: number): T | null {
    let worst: T | null = null;
    let worstStanding = 0;
    for (const e of candidates) {
      const s = this.limits.standing(e.key);
      if (s >= 2) continue;
      if (quietSince !== undefined && s > 0 && e.seenAt > quietSince) continue;
      if (!worst || s < worstStanding || (s === worstStanding && e.seenAt < worst.seenAt)) {
        worst = e;
        worstStanding = s;
      }
    }
    return worst;
  }
}
