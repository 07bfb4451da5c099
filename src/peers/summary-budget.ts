// What following peers' summaries may cost, per address: bytes and CPU per minute, and how many
// identities at one address are followed at all.
//
// Threat: one host may announce many identities (mDNS lets it name as many as it likes), each
// answering every poll with a new multi-MiB summary; decoding and counting them was a CPU flood
// that slowed every lookup. The budget is kept per address, not per identity, so new identities
// don't buy a new budget; an address over it is followed no more until its last minute is under
// again, and its peers are asked directly, as peers without summaries are.

export interface SummaryBudgetOptions {
  /** Summary bytes taken from one address in any minute. */
  bytesPerMinute: number;
  /** Milliseconds spent decoding and checking one address's summaries in any minute. */
  cpuMsPerMinute: number;
  /** Identities at one address whose summaries are followed; more are looked up directly. */
  identitiesPerAddress: number;
  /** Monotonic milliseconds (tests drive it). */
  now: () => number;
}

// A genuine peer sends one whole summary (at most 4 MiB, for about three million paths) when it is
// first followed or its store was rebuilt, and deltas of a few hashes after that.
export const DEFAULT_SUMMARY_BUDGET: SummaryBudgetOptions = {
  bytesPerMinute: 16 * 1024 * 1024,
  cpuMsPerMinute: 1000,
  identitiesPerAddress: 4,
  now: () => performance.now(),
};

const WINDOW_MS = 60_000;
const THIS_MACHINE = new Set(['127.0.0.1', '[::1]', 'localhost']);

interface Spend {
  at: number;
  bytes: number;
  cpuMs: number;
}

export class SummaryBudget {
  readonly opts: SummaryBudgetOptions;
  private readonly spends = new Map<string, Spend[]>();
  private readonly followed = new Map<string, Set<string>>();

  constructor(opts: Partial<SummaryBudgetOptions> = {}) {
    this.opts = { ...DEFAULT_SUMMARY_BUDGET, ...opts };
  }

  /** Whether identity `id` at `address` may be followed; it holds its place until release(). */
  admit(address: string, id: string): boolean {
    // Several Peernix processes on this very machine are a test or a developer's setup, and the
    // bytes and CPU they send are still budgeted together.
    if (THIS_MACHINE.has(address)) return true;
    let ids = this.followed.get(address);
    if (!ids) this.followed.set(address, (ids = new Set()));
    if (ids.has(id)) return true;
    if (ids.size >= this.opts.identitiesPerAddress) return false;
    ids.add(id);
    return true;
  }

  release(address: string, id: string): void {
    const ids = this.followed.get(address);
    ids?.delete(id);
    if (ids?.size === 0) this.followed.delete(address);
  }

  charge(address: string, bytes: number, cpuMs: number): void {
    let list = this.spends.get(address);
    if (!list) this.spends.set(address, (list = []));
    list.push({ at: this.opts.now(), bytes, cpuMs });
  }

  /** Why `address` is over its budget for the last minute, or null when it is not. */
  over(address: string): string | null {
    const list = this.spends.get(address);
    if (!list) return null;
    const since = this.opts.now() - WINDOW_MS;
    while (list.length > 0 && list[0].at <= since) list.shift();
    if (list.length === 0) {
      this.spends.delete(address);
      return null;
    }
    let bytes = 0;
    let cpuMs = 0;
    for (const s of list) {
      bytes += s.bytes;
      cpuMs += s.cpuMs;
    }
    if (bytes > this.opts.bytesPerMinute)
      return `its address sent ${Math.round(bytes / 1048576)} MiB of summaries in a minute (budget ${Math.round(this.opts.bytesPerMinute / 1048576)} MiB)`;
    if (cpuMs > this.opts.cpuMsPerMinute)
      return `its address's summaries took ${Math.round(cpuMs)} ms of CPU in a minute (budget ${this.opts.cpuMsPerMinute} ms)`;
    return null;
  }
}
