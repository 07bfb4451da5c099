import { Agent, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { NarInfoError, parseNarInfo, type NarInfo } from '../nix/narinfo.ts';
import { getHeaders, readBounded, type Pools } from './http-get.ts';
import { FrameDecoder, FRAMES_HEADER, FRAMES_VERSION } from '../wire/nar-frames.ts';
import { getNar, HttpResponseError, type NarResponse } from './nar-get.ts';
import { skipPrefix } from './skip-prefix.ts';
import { LINK_RATE_HEADER, ReceiverLoad, RECEIVER_HELD_HEADER, watchPace } from '../wire/receiver-load.ts';
import { NarSlots } from '../base/nar-slots.ts';
import type { TeamCertificate } from '../wire/team-certificate.ts';
import { TeamAgent } from './team-agent.ts';
import { parsePublicKey } from '../nix/signing.ts';

// HTTP to other caches. Peers are hostile input: bounded bodies, tight timeouts, no retries (the
// resolver decides what to try next), nothing followed but what the peer itself serves.

export const MAX_NARINFO_BYTES = 64 * 1024;

export class PeerError extends Error {
  /** 'busy': no NAR slot on that peer came free in time, here or on its side (503); the peer did nothing wrong. */
  readonly kind: 'unreachable' | 'timeout' | 'bad-response' | 'missing' | 'busy';
  constructor(kind: PeerError['kind'], message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface PeerTimeouts {
  connectMs: number;
  narInfoMs: number; // a whole narinfo exchange from the moment it is asked: queue, connect, headers, body
  narHeadersMs: number; // from sending a NAR request (its slot is ours) to its response headers
  narIdleMs: number; // longest silence inside a NAR body
  narSlotMs: number; // longest wait for a free NAR slot on one peer
}

export const DEFAULT_TIMEOUTS: PeerTimeouts = { connectMs: 500, narInfoMs: 1500, narHeadersMs: 3000, narIdleMs: 15000, narSlotMs: 10 * 60_000 };

export interface PeerLimits {
  /** Lookup and probe connections per peer. */
  lookupSockets: number;
  /** NARs streaming from one peer at once; more wait for a slot instead of failing. */
  narSlots: number;
}

export const DEFAULT_LIMITS: PeerLimits = { lookupSockets: 16, narSlots: 32 };

/** The team channel from this side: our certificate, and the identity key a peer origin must prove (null: not a member). */
export interface TeamChannel {
  cert: TeamCertificate;
  keyOf(origin: string): string | null;
  /** Whether a raw identity key (base64) is a team member's: a peer claiming one is challenged over the channel. */
  isMember?(rawKey: string): boolean;
}

// Lookups and probes have a pool of their own, so they never queue behind NAR bodies from the
// same peer (a slow peer with 32 NARs streaming would otherwise time every lookup out and look dead).

export class PeerClient {
  private readonly timeouts: PeerTimeouts;
  private readonly userAgent: string;
  /** Also used by identity challenges, which must not queue behind NAR bodies either. */
  readonly lookupPool: Pools;
  private readonly narPool: Pools;
  private readonly slots: NarSlots;
  /** Offer NAR frames (compressed when that pays) to peers; those that aren't Peernix ignore it. */
  private readonly frames: boolean;
  /** Whether our side held recent NARs from each peer back, for the peer to judge compression by. */
  readonly receiverLoad = new ReceiverLoad();
  private readonly team: TeamChannel | null;
  /** Per member key, its own lookup and NAR pools: a socket is only ever reused for the key it proved. */
  private readonly teamPools = new Map<string, { lookup: Pools; nar: Pools; summary: Pools }>();
  private readonly limits: PeerLimits;

  constructor(
    timeouts: Partial<PeerTimeouts> = {},
    userAgent = 'peernix',
    limits: Partial<PeerLimits> = {},
    opts: { frames?: boolean; team?: TeamChannel } = {},
  ) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    this.team = opts.team ?? null;
    this.userAgent = userAgent;
    this.frames = opts.frames ?? true;
    const l = { ...DEFAULT_LIMITS, ...limits };
    this.limits = l;
    const lookup = { keepAlive: true, maxSockets: l.lookupSockets, maxFreeSockets: 4, timeout: 60_000 };
    this.lookupPool = { http: new Agent(lookup), https: new HttpsAgent(lookup) };
    // No socket limit here: NarSlots is the queue, so waiting for a slot is never mistaken for a
    // peer that does not answer.
    const nar = { keepAlive: true, maxFreeSockets: 8, timeout: 60_000 };
    this.narPool = { http: new Agent(nar), https: new HttpsAgent(nar) };
    // At most `narSlots` NARs at once per peer; the rest wait in order, without bound. Waiting is not
    // failing: a NAR whose narinfo a peer answered is served by that peer when a slot frees.
    this.slots = new NarSlots({ total: Number.POSITIVE_INFINITY, perAddress: l.narSlots, queue: Number.POSITIVE_INFINITY, waitMs: this.timeouts.narSlotMs });
  }

  /** The peer's narinfo for a hash part: a NarInfo, null when it says it hasn't it, or a PeerError. */
  async narInfo(baseUrl: string, hashPart: string, signal?: AbortSignal, ms = this.timeouts.narInfoMs): Promise<NarInfo | null> {
    const url = `${baseUrl}/${hashPart}.narinfo`;
    const { status, body } = await this.fetchSmall(url, MAX_NARINFO_BYTES, ms, signal);
    if (status === 404 || status === 410 || status === 403 || status === 401) return null;
    if (status !== 200) throw new PeerError('bad-response', `${url}: HTTP ${status}`);
    try {
      return parseNarInfo(body);
    } catch (e) {
      if (e instanceof NarInfoError) throw new PeerError('bad-response', `${url}: ${e.message}`);
      throw e;
    }
  }

  /** A peer's realisation of a derivation output (its .doi text), null when it says it hasn't one, or a PeerError. */
  async realisation(baseUrl: string, id: string, signal?: AbortSignal, ms = this.timeouts.narInfoMs): Promise<string | null> {
    // Nix's own URL form: the "!" percent-encoded.
    const url = `${baseUrl}/realisations/${id.replace('!', '%21')}.doi`;
    const { status, body } = await this.fetchSmall(url, MAX_NARINFO_BYTES, ms, signal);
    if (status === 404 || status === 410 || status === 403 || status === 401) return null;
    if (status !== 200) throw new PeerError('bad-response', `${url}: HTTP ${status}`);
    return body;
  }

  /**
   * Opens a NAR (or the rest of it from `offset`) and resolves once the peer has answered with the
   * right status and length, so the caller can still choose another source before sending headers.
   * Waits for one of the peer's NAR slots first; the header timeout starts once the request is sent.
   * A framed answer (a Peernix peer, nar-frames.ts) comes back decoded: NAR bytes, with the bytes on
   * the wire counted in the decoder's `wireBytes`.
   */
  async openNar(url: string, opts: { offset: number; expectedSize: number; signal?: AbortSignal; end?: number }): Promise<Readable> {
    // `end` (inclusive): a bounded range, one share of a NAR fetched from several holders at once
    // (swarm-nar.ts). Only a holder that honours Range is asked for one; anything but that 206 fails.
    const bounded = opts.end !== undefined && !(opts.offset === 0 && opts.end === opts.expectedSize - 1);
    const origin = originOf(url);
    const release = await this.narSlot(origin, url, opts.signal);
    let res: IncomingMessage | NarResponse;
    try {
      const headers: Record<string, string> = { 'user-agent': this.userAgent };
      if (bounded) headers.range = `bytes=${opts.offset}-${opts.end}`;
      else if (opts.offset > 0) headers.range = `bytes=${opts.offset}-`;
      const held = this.frames ? this.receiverLoad.hint(origin) : undefined;
      if (this.frames) headers[FRAMES_HEADER] = FRAMES_VERSION;
      if (held !== undefined) headers[RECEIVER_HELD_HEADER] = held;
      const link = this.frames ? this.receiverLoad.linkHint(origin) : undefined;
      if (link !== undefined) headers[LINK_RATE_HEADER] = link;
      // Plain http peers get the lean client (nar-get.ts); https keeps node:http. No connect timeout
      // of its own: on a congested link a SYN-ACK can be dropped, and the header deadline (with
      // hedging in the resolver) already bounds the wait.
      const team = this.viaTeam(url, 'nar');
      res = team
        ? await this.request(team.url, headers, team.pool, this.timeouts.narHeadersMs, opts.signal, false)
        : url.startsWith('http:')
          ? await getNar(url, {
              headers,
              headersMs: this.timeouts.narHeadersMs,
              signal: opts.signal,
              timeoutError: () => new PeerError('timeout', `${url}: no answer within ${this.timeouts.narHeadersMs} ms`),
            })
          : await this.request(url, headers, this.narPool, this.timeouts.narHeadersMs, opts.signal, false);
    } catch (e) {
      release();
      throw asPeerError(e, url);
    }
    res.once('close', release);
    const want = (bounded ? opts.end! + 1 : opts.expectedSize) - opts.offset;
    const fail = (why: string, kind: PeerError['kind'] = 'bad-response'): never => {
      res.destroy();
      throw new PeerError(kind, `${url}: ${why}`);
    };
    const status = res.statusCode ?? 0;
    // The peer is fine, it just no longer has the path (GC): the caller must not count it as down.
    if (status === 404 || status === 410 || status === 403) fail('not there any more', 'missing');
    // Its share listener is at its cap of NAR streams: another holder, not a mark against the peer.
    if (status === 503) fail('busy (HTTP 503)', 'busy');
    // A 200 to a Range request is a holder that ignores Range (the Go peernix): the whole NAR comes,
    // and the part already sent is dropped (skip-prefix.ts). Not a fault of the holder.
    const skip = opts.offset > 0 && status === 200 && !bounded ? opts.offset : 0;
    if (bounded) {
      if (status !== 206) fail(`no range support (HTTP ${status})`);
      const cr = String(res.headers['content-range'] ?? '');
      if (!cr.startsWith(`bytes ${opts.offset}-${opts.end}/`)) fail(`wrong Content-Range "${cr}"`);
    } else if (opts.offset > 0 && !skip) {
      if (status !== 206) fail(`no range support (HTTP ${status})`);
      const cr = String(res.headers['content-range'] ?? '');
      if (!cr.startsWith(`bytes ${opts.offset}-`)) fail(`wrong Content-Range "${cr}"`);
    } else if (status !== 200 && !skip) fail(`HTTP ${status}`);
    const framed = res.headers[FRAMES_HEADER];
    if (framed !== undefined && (!this.frames || framed !== FRAMES_VERSION)) fail(`frames "${String(framed).slice(0, 40)}" that were not asked for`);
    const len = res.headers['content-length'];
    if (len !== undefined && !framed && Number(len) !== want + skip) fail(`Content-Length ${len}, expected ${want + skip}`);
    if (res.headers['content-encoding'] && res.headers['content-encoding'] !== 'identity') fail('unexpected Content-Encoding');
    // A peer that stops sending mid-NAR is treated as dead, so the stream can resume elsewhere.
    const idle = () => res.destroy(new PeerError('timeout', `${url}: no data for ${this.timeouts.narIdleMs} ms`));
    if ('setIdleTimeout' in res) res.setIdleTimeout(this.timeouts.narIdleMs, idle);
    else res.setTimeout(this.timeouts.narIdleMs, idle);
    // A whole NAR says how long its bytes waited for us (receiver-load.ts): the lean client counts
    // that itself, node:http's bodies (https, the team channel) are watched.
    const pace = 'pace' in res ? () => (res as NarResponse).pace() : watchPace(res);
    const noteCompleted = () => {
      if (res.complete) this.receiverLoad.note(origin, { ...pace(), wireBytes: decoder ? decoder.wireBytes : want + skip });
    };
    const whole = (s: Readable): Readable => (skip ? skipPrefix(s, skip, (why) => new PeerError('unreachable', `${url}: ${why}`)) : s);
    // Never more NAR bytes than the narinfo said are left (nar-frames.ts paces and bounds the rest).
    const decoder = framed ? new FrameDecoder({ maxNarBytes: want }) : null;
    if (!decoder) {
      res.once('end', noteCompleted);
      return whole(res);
    }
    decoder.once('end', noteCompleted);
    // Either side failing ends both: a cut response is a cut NAR, a bad frame must stop the peer.
    res.once('error', (e) => decoder.destroy(asPeerError(e, url)));
    res.once('close', () => {
      if (!res.complete) decoder.destroy(new PeerError('unreachable', `${url}: connection closed mid-NAR`));
    });
    decoder.once('close', () => {
      if (!res.complete) res.destroy();
    });
    res.pipe(decoder);
    return whole(decoder);
  }

  /**
   * Liveness as lookups see it: /nix-cache-info says this is a Nix cache, and a narinfo for a hash
   * no store has comes back (any answer) within the same deadline. A peer whose lookups stall
   * fails this even while its /nix-cache-info still answers. `askLookup` false: the cache info only.
   * Resolves with the round trip in ms when it passed, null when it did not.
   */
  async probe(baseUrl: string, timeoutMs: number, askLookup = true): Promise<number | null> {
    const deadline = Date.now() + timeoutMs;
    try {
      let t0 = performance.now();
      const info = await this.fetchSmall(`${baseUrl}/nix-cache-info`, 4096, timeoutMs);
      // The round trip: the quicker of the two exchanges (the first may have had to connect).
      let rtt = performance.now() - t0;
      if (info.status !== 200 || !/^StoreDir: \/nix\/store$/m.test(info.body)) return null;
      if (!askLookup) return rtt;
      t0 = performance.now();
      const lookup = await this.fetchSmall(`${baseUrl}/${PROBE_HASH_PART}.narinfo`, MAX_NARINFO_BYTES, Math.max(1, deadline - Date.now()));
      rtt = Math.min(rtt, performance.now() - t0);
      return lookup.status === 404 || lookup.status === 200 || lookup.status === 410 ? rtt : null;
    } catch {
      return null;
    }
  }

  private async narSlot(origin: string, url: string, signal: AbortSignal | undefined): Promise<() => void> {
    if (signal?.aborted) throw new PeerError('timeout', `${url}: aborted`);
    const a = await this.slots.acquire(origin, signal);
    if ('slot' in a) return () => a.slot.release();
    if (a.refused === 'busy') throw new PeerError('busy', `${url}: no NAR slot free within ${this.timeouts.narSlotMs} ms`);
    if (a.refused === 'gone') throw new PeerError('timeout', `${url}: aborted while waiting for a NAR slot`);
    throw new PeerError('unreachable', `${url}: client closed while waiting for a NAR slot`);
  }

  /** NAR requests waiting for a slot of their peer: what a test waits on for evidence of the queue. */
  get narsWaiting(): number {
    return this.slots.queued;
  }

  close(): void {
    for (const a of this.identityAgents.values()) a.destroy();
    for (const p of [this.lookupPool, this.narPool, ...[...this.teamPools.values()].flatMap((t) => [t.lookup, t.nar, t.summary])]) {
      p.http.destroy();
      p.https.destroy();
    }
    this.slots.close();
  }

  /** GET of a small body on the lookup pool; `ms` bounds everything from now to the last byte. */
  private async fetchSmall(url: string, max: number, ms: number, signal?: AbortSignal): Promise<{ status: number; body: string }> {
    // One deadline for queue, connect, headers and body (timers rather than AbortSignal.any: this
    // runs once per peer per miss).
    const deadline = Date.now() + ms;
    let res: IncomingMessage;
    try {
      const team = this.viaTeam(url, 'lookup');
      res = team ? await this.request(team.url, {}, team.pool, ms, signal) : await this.request(url, {}, this.lookupPool, ms, signal);
    } catch (e) {
      throw asPeerError(e, url);
    }
    const late = new PeerError('timeout', `${url}: no answer within ${ms} ms`);
    const timer = setTimeout(() => res.destroy(late), Math.max(1, deadline - Date.now()));
    try {
      return { status: res.statusCode ?? 0, body: (await readBounded(res, max, tooLarge)).toString('utf8') };
    } catch (e) {
      throw asPeerError(e, url);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A team member's plain URL as the team channel: https to the same host and port (its share listener
   * takes both), on pools whose TLS checks the member's key. Null for anyone else.
   */
  private readonly identityAgents = new Map<string, HttpsAgent>();

  private viaTeam(url: string, kind: 'lookup' | 'nar' | 'summary'): { url: string; pool: Pools } | null {
    if (!this.team || !url.startsWith('http:')) return null;
    const key = this.team.keyOf(originOf(url));
    if (key === null) return null;
    let pools = this.teamPools.get(key);
    if (!pools) {
      const make = (o: { maxSockets?: number; maxFreeSockets: number }) => {
        const agent = new TeamAgent(this.team!.cert, key, { keepAlive: true, timeout: 60_000, ...o });
        return { http: this.lookupPool.http, https: agent };
      };
      // Summaries have their own: a long poll holds its socket for up to 55 s.
      pools = {
        lookup: make({ maxSockets: this.limits.lookupSockets, maxFreeSockets: 4 }),
        nar: make({ maxFreeSockets: 8 }),
        summary: make({ maxFreeSockets: 2 }),
      };
      this.teamPools.set(key, pools);
    }
    return { url: `https:${url.slice('http:'.length)}`, pool: pools[kind] };
  }

  /** A team member's URL as the team channel for summaries (peer-summaries.ts); null for anyone else. */
  summaryChannel(url: string): { url: string; pool: Pools } | null {
    return this.viaTeam(url, 'summary');
  }

  /**
   * The TLS agent to challenge a peer claiming `publicKey` ("name:base64") over, when that key is a
   * team member's: its handshake must prove the claimed key. Null when it is not (challenged plain).
   */
  identityAgent(publicKey: string | null): HttpsAgent | null {
    if (!this.team?.isMember || !publicKey) return null;
    let raw: string;
    try {
      raw = parsePublicKey(publicKey).key.toString('base64');
    } catch {
      return null;
    }
    if (!this.team.isMember(raw)) return null;
    let agent = this.identityAgents.get(raw);
    if (!agent) {
      agent = new TeamAgent(this.team.cert, raw, { keepAlive: false });
      this.identityAgents.set(raw, agent);
    }
    return agent;
  }

  private request(
    url: string,
    headers: Record<string, string>,
    pool: Pools,
    headersMs: number,
    signal?: AbortSignal,
    connectTimeout = true,
  ): Promise<IncomingMessage> {
    return getHeaders(url, {
      pool,
      headers: { 'user-agent': this.userAgent, ...headers },
      headersMs,
      connectMs: connectTimeout ? this.timeouts.connectMs : undefined,
      signal,
      timeoutError: (what) => new PeerError('timeout', what === 'connect' ? `${url}: connect timed out` : `${url}: no answer within ${headersMs} ms`),
    });
  }
}

/** A hash part no store holds (all zero bits): what a probe looks up. */
export const PROBE_HASH_PART = '0'.repeat(32);

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

const tooLarge = (max: number) => new PeerError('bad-response', `response larger than ${max} bytes`);

function asPeerError(e: unknown, url: string): PeerError {
  if (e instanceof PeerError) return e;
  const err = e as { code?: string; name?: string; message?: string };
  if (err.name === 'TimeoutError' || err.code === 'ETIMEDOUT') return new PeerError('timeout', `${url}: timed out`);
  if (err.name === 'AbortError') return new PeerError('timeout', `${url}: aborted`);
  if (e instanceof HttpResponseError) return new PeerError('bad-response', `${url}: ${e.message}`);
  return new PeerError('unreachable', `${url}: ${err.code ?? err.message ?? String(e)}`);
}
