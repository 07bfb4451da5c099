import { Agent, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { BloomFilter } from 'bloomfilter';
import type { PeerSummaryState, PeerSummaryView } from '../base/api.ts';
import { type Clock, systemClock } from '../base/clock.ts';
import type { Logger } from '../base/log.ts';
import { getHeaders, readBounded, type Pools } from './http-get.ts';
import { SummaryBudget } from './summary-budget.ts';
import {
  decodeDelta,
  decodeSummary,
  DELTA_TYPE,
  MAX_DELTA_PATHS,
  MAX_SUMMARY_BYTES,
  SUMMARY_PATH,
  SUMMARY_TYPE,
  SummaryFormatError,
} from '../wire/summary-wire.ts';

// The other peers' store summaries, each followed with one long poll: the peer answers as soon as
// its store changed (a path added there is known here within moments) and otherwise every `waitS`
// seconds, which also shows the summary is current and the peer alive: each answer is contact
// (`onContact`), so peer health needs no probes of its own while they come (#26 idle cost). The resolver asks a peer about a path only if
// its summary says "maybe"; without a usable summary (not a Peernix, not loaded yet, stale,
// refused) the answer is null and the peer is asked as before. A summary is only ever a hint —
// nothing is served on its word.
//
// Summaries are hostile input: bounded in size, a filter that admits nearly everything is refused,
// and so is a peer whose summary changes faster than any store does, or whose address spends more
// than its budget of bytes and CPU or announces more identities than are followed (summary-budget.ts).

export interface PeerSummariesOptions {
  log: Logger;
  userAgent?: string;
  /** A summary now admits other paths: `hashParts` newly added (a delta), or none given (anything may have changed). */
  onChange?: (hashParts?: readonly string[]) => void;
  /** The peer answered a poll: it is alive, and will answer again within `contactEveryMs`. */
  onContact?: (id: string, contactEveryMs: number) => void;
  waitS?: number; // long-poll wait asked of peers (default 45 s; a peer may answer sooner)
  staleMs?: number; // without contact for this long a summary is not used (default waitS + 15 s)
  maxUpdatesPerMinute?: number; // default 120
  maxFill?: number; // share of bits set above which a filter says nothing (default 0.6)
  retryUnsupportedMs?: number; // default 5 min
  refusedMs?: number; // how long a peer whose summary was refused goes without one (default 5 min)
  budget?: SummaryBudget; // per address: bytes and CPU per minute, identities followed
  /** Paces the polls (default: the system's); a budget made here reads its time too. */
  clock?: Clock;
  /**
   * A team member's URL as the team channel (peer-client.ts): its summary admits team paths too and
   * is served only there, so it never crosses the LAN in clear. Null for anyone else (plain).
   */
  channel?: (url: string) => { url: string; pool: Pools } | null;
}

const MIN_INTERVAL_MS = 250;
/** The long poll's wait asked of peers by default: the route's cap (summary-route.ts) must allow it. */
export const DEFAULT_WAIT_S = 45;
/** A waiting request's deadline beyond the wait asked. */
const ANSWER_GRACE_MS = 10_000;

interface Followed {
  id: string;
  url: string;
  address: string;
  stopped: boolean;
  abort: AbortController;
  filter: BloomFilter | null;
  view: PeerSummaryView;
  contactAt: number;
  updates: number[]; // times of recent changes
}

export class PeerSummaries {
  private readonly opts: Required<Omit<PeerSummariesOptions, 'onChange' | 'onContact' | 'budget' | 'channel' | 'clock'>> &
    Pick<PeerSummariesOptions, 'onChange' | 'onContact' | 'channel'>;
  private readonly budget: SummaryBudget;
  private readonly clock: Clock;
  private readonly peers = new Map<string, Followed>();
  // A pool of its own: long polls must not hold sockets that lookups or NARs wait for.
  private readonly pool: Pools = {
    http: new Agent({ keepAlive: true, maxSockets: 2, maxFreeSockets: 1 }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: 2, maxFreeSockets: 1 }),
  };

  constructor(opts: PeerSummariesOptions) {
    // Each followed peer costs one answered request per wait, both ways: in an idle mesh, most of a
    // node's wake-ups (#26 idle cost). The route waits up to 55 s, the listener cuts a connection idle
    // for 60 s, and the request's own deadline is the wait + 10 s.
    const waitS = opts.waitS ?? DEFAULT_WAIT_S;
    this.opts = {
      userAgent: 'peernix',
      waitS,
      staleMs: (waitS + 15) * 1000,
      maxUpdatesPerMinute: 120,
      maxFill: 0.6,
      retryUnsupportedMs: 5 * 60_000,
      refusedMs: 5 * 60_000,
      ...opts,
    };
    this.clock = opts.clock ?? systemClock;
    this.budget = opts.budget ?? new SummaryBudget({ now: () => this.clock.now() });
  }

  /** Monotonic ms (the budget's clock): contact and update rates must not stretch with a wall clock set back. */
  private now(): number {
    return this.budget.opts.now();
  }

  /** Starts following a peer's summary, or restarts it when the peer moved. */
  follow(id: string, url: string): void {
    const known = this.peers.get(id);
    if (known && known.url === url) return;
    if (known) this.unfollow(id);
    const f: Followed = {
      id,
      url,
      address: addressOf(url),
      stopped: false,
      abort: new AbortController(),
      filter: null,
      view: { state: 'loading', reason: null, bytes: 0, epoch: null, generation: null, paths: 0, admittedEstimate: 0, updatedAt: null },
      contactAt: -Infinity,
      updates: [],
    };
    this.peers.set(id, f);
    if (!this.budget.admit(f.address, id)) {
      // Never followed: its lookups go to it directly, as to a peer without a summary.
      f.stopped = true;
      this.setState(f, 'refused', `more than ${this.budget.opts.identitiesPerAddress} identities at ${f.address}`);
      return;
    }
    void this.loop(f);
  }

  unfollow(id: string): void {
    const f = this.peers.get(id);
    if (!f) return;
    if (!f.stopped) this.budget.release(f.address, id);
    f.stopped = true;
    f.abort.abort();
    this.peers.delete(id);
  }

  /** true/false from a current summary; null when there is none to go by (ask the peer). */
  mayHave(id: string, hashPart: string): boolean | null {
    const f = this.peers.get(id);
    if (!f || !f.filter || f.view.state !== 'ok') return null;
    if (this.now() - f.contactAt > this.opts.staleMs) {
      this.setState(f, 'stale', `no word from the peer for ${Math.round((this.now() - f.contactAt) / 1000)} s`);
      return null;
    }
    return f.filter.test(hashPart);
  }

  view(id: string): PeerSummaryView | null {
    const f = this.peers.get(id);
    return f ? { ...f.view } : null;
  }

  close(): void {
    for (const id of [...this.peers.keys()]) this.unfollow(id);
    this.pool.http.destroy();
    this.pool.https.destroy();
  }

  private async loop(f: Followed): Promise<void> {
    let failures = 0;
    while (!f.stopped) {
      // However fast a peer answers, it is asked at most this often: a hostile one can't make us spin.
      const started = this.now();
      const over = this.budget.over(f.address);
      if (over) {
        this.refuse(f, over);
        await this.sleep(f, this.opts.refusedMs);
        continue;
      }
      try {
        const waiting = f.filter !== null && f.view.state !== 'refused';
        const url = waiting ? `${f.url}${SUMMARY_PATH}?epoch=${f.view.epoch}&since=${f.view.generation}&wait=${this.opts.waitS}` : `${f.url}${SUMMARY_PATH}`;
        const res = await this.get(url, f.abort.signal, waiting ? this.opts.waitS * 1000 + ANSWER_GRACE_MS : 10_000);
        if (f.stopped) return;
        const done = await this.take(f, res);
        failures = 0;
        if (done === 'unsupported') await this.sleep(f, this.opts.retryUnsupportedMs);
        else if (done === 'refused') await this.sleep(f, this.opts.refusedMs);
        else await this.sleep(f, MIN_INTERVAL_MS - (this.now() - started));
      } catch (e) {
        if (f.stopped) return;
        failures++;
        this.opts.log.debug(`summary of ${f.url}: ${(e as Error).message}`);
        if (f.view.state === 'loading' || failures > 2) this.setState(f, f.filter ? 'stale' : 'loading', (e as Error).message);
        await this.sleep(f, Math.min(30_000, 500 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  /** Applies one answer; says when the loop should back off. */
  private async take(f: Followed, res: IncomingMessage): Promise<'ok' | 'unsupported' | 'refused'> {
    const status = res.statusCode ?? 0;
    const type = String(res.headers['content-type'] ?? '')
      .split(';')[0]
      .trim();
    if (status === 404 || status === 405 || status === 501) {
      res.resume();
      f.filter = null;
      this.setState(f, 'unsupported', 'the peer publishes no summary');
      return 'unsupported';
    }
    if (status === 204) {
      // Its socket goes back to the pool at the response's end: the next poll, sent at once, must find
      // it there, or it opens a connection (a TLS handshake to a team member) every poll.
      await drained(res);
      f.contactAt = this.now();
      if (f.view.state === 'stale') this.setState(f, 'ok', null);
      this.contact(f);
      return 'ok';
    }
    if (status !== 200) {
      res.resume();
      throw new Error(`HTTP ${status}`);
    }
    let added: string[] | undefined; // undefined: a whole summary, which may admit anything
    let charged = 0; // body bytes, charged with the CPU that taking them cost
    let cpuFrom = 0;
    try {
      if (type === SUMMARY_TYPE) {
        const body = await readBody(res, MAX_SUMMARY_BYTES);
        charged = body.length;
        cpuFrom = this.budget.opts.now();
        const s = decodeSummary(body);
        f.filter = s.filter;
        Object.assign(f.view, { epoch: s.epoch, generation: s.generation, paths: s.paths, bytes: body.length });
      } else if (type === DELTA_TYPE) {
        const text = (await readBody(res, 128 + MAX_DELTA_PATHS * 33)).toString('latin1');
        charged = text.length;
        cpuFrom = this.budget.opts.now();
        const d = decodeDelta(text);
        if (!f.filter || d.epoch !== f.view.epoch || d.from !== f.view.generation) throw new SummaryFormatError('delta does not follow the summary we hold');
        for (const h of d.hashParts) f.filter.add(h);
        f.view.generation = d.to;
        f.view.paths += d.hashParts.length;
        added = d.hashParts;
      } else {
        res.resume();
        throw new SummaryFormatError(`unexpected Content-Type "${type.slice(0, 60)}"`);
      }
    } catch (e) {
      if (charged > 0) this.budget.charge(f.address, charged, this.budget.opts.now() - cpuFrom);
      if (e instanceof SummaryFormatError || e instanceof RangeError) return this.refuse(f, e.message);
      throw e;
    }
    const filter = f.filter!;
    const bits = filter.countBits();
    this.budget.charge(f.address, charged, this.budget.opts.now() - cpuFrom);
    const over = this.budget.over(f.address);
    if (over) return this.refuse(f, over);
    if (bits / filter.m > this.opts.maxFill)
      return this.refuse(f, `its filter admits nearly everything (${Math.round((bits / filter.m) * 100)} % of bits set)`);
    const now = this.now();
    f.contactAt = now;
    f.updates = f.updates.filter((t) => now - t < 60_000);
    f.updates.push(now);
    if (f.updates.length > this.opts.maxUpdatesPerMinute) return this.refuse(f, `its summary changed ${f.updates.length} times in a minute`);
    f.view.updatedAt = Date.now(); // shown to people
    // The filter's own estimate of what was added to it (Swamidass & Baldi), from the bits counted once.
    f.view.admittedEstimate = Math.round((-filter.m / filter.k) * Math.log(1 - bits / filter.m));
    f.view.state = 'ok';
    f.view.reason = null;
    // New content may admit paths that just missed here: always tell, not only when the state moved.
    this.opts.onChange?.(added);
    this.contact(f);
    return 'ok';
  }

  private contact(f: Followed): void {
    this.opts.onContact?.(f.id, this.opts.waitS * 1000);
  }

  private refuse(f: Followed, why: string): 'refused' {
    this.opts.log.info(`not using the summary of ${f.url}: ${why}`);
    f.filter = null;
    f.updates = [];
    Object.assign(f.view, { epoch: null, generation: null, paths: 0, bytes: 0, admittedEstimate: 0 });
    this.setState(f, 'refused', why);
    return 'refused';
  }

  private setState(f: Followed, state: PeerSummaryState, reason: string | null): void {
    if (f.view.state === state && f.view.reason === reason) return;
    f.view.state = state;
    f.view.reason = reason;
    this.opts.onChange?.();
  }

  /** Waits `ms`, or less when the peer stops being followed. */
  private async sleep(f: Followed, ms: number): Promise<void> {
    const signal = f.abort.signal;
    if (ms <= 0 || signal.aborted) return;
    // The listener goes either way: the signal lives as long as the peer is followed.
    await new Promise<void>((resolve) => {
      const done = () => {
        this.clock.clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.clock.setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private get(url: string, signal: AbortSignal, ms: number): Promise<IncomingMessage> {
    const team = this.opts.channel?.(url);
    return getHeaders(team?.url ?? url, {
      pool: team?.pool ?? this.pool,
      headers: { 'user-agent': this.opts.userAgent },
      headersMs: ms,
      signal,
      timeoutError: () => new Error(`no answer within ${ms} ms`),
    });
  }
}

function addressOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}

/** Reads a response with no body of interest to its end. */
function drained(res: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    res.once('end', resolve);
    res.once('close', resolve);
    res.resume();
  });
}

/** The body, bounded in size and time: a summary that trickles in is as useless as none. */
async function readBody(res: IncomingMessage, max: number): Promise<Buffer> {
  const timer = setTimeout(() => res.destroy(new Error('body timed out')), 30_000);
  try {
    return await readBounded(res, max, (m) => new SummaryFormatError(`answer larger than ${m} bytes`));
  } finally {
    clearTimeout(timer);
  }
}
