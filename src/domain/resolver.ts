import type { Clock, TimerHandle } from '../base/clock.ts';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { type AffinityCache, LOCAL, type AffinityEntry } from './affinity.ts';
import type { FallbackReason } from '../base/api.ts';
import type { CacheBackend, LocalSource, NarBody, NarRequestOptions } from '../cache/backend.ts';
import { narUrl } from '../cache/routes.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { encodeNix32 } from '../nix/nix32.ts';
import { parseStorePath } from '../nix/store-path.ts';
import { askGoHasPath } from '../peers/go-has-path.ts';
import { GO_UDP_DEFAULT_PORT } from '../wire/go-udp.ts';
import { HedgedOpener, waitUntil, type Candidate, type Found, type Lookup, type PeerAnswer } from '../peers/hedged-open.ts';
import { PeerError, type PeerClient } from '../peers/peer-client.ts';
import type { Peer, PeerRegistry } from '../peers/registry.ts';
import { ResumingNarStream, type NarSource, type NarWatchOptions, type OpenedNar } from '../peers/resuming-nar.ts';
import { DEFAULT_SWARM, SwarmNarStream, type SwarmTuning } from '../peers/swarm-nar.ts';
import type { TransferHandle, TransferTracker } from './transfers.ts';
import { judgeNarInfo, type TrustPolicy, type Verdict } from './trust.ts';

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

/** How long a NAR waits for the peer whose narinfo Nix holds, while that peer is alive but busy. */
const HOLDER_WAIT_MS = 30_000;
const HOLDER_RETRY_MS = 250;
const HOLDER_RETRY_MAX_MS = 2000;

/** Most transfers cut for wrong bytes remembered at once (oldest forgotten first). */
const MAX_MISMATCH_CUTS = 4096;

export class Resolver implements CacheBackend {
  private readonly opts: ResolverOptions & { negativeTtlMs: number; hedgeMs: number; lookupReuseMs: number; mismatchMemoryMs: number };
  private readonly negative = new Map<string, number>();
  private readonly lookups = new Map<string, Lookup>();
  /** `${hashPart}-${narHash32}` → until when a resume of it is refused. */
  private readonly mismatchCuts = new Map<string, number>();
  private readonly hedged: HedgedOpener;
  /** Go peers heard answering "not_found" (e74df7c on): their silence is not taken as a miss. */
  private readonly goAnswersMisses = new WeakSet<Peer>();
  private readonly goDialectAsked = new WeakSet<Peer>();

  constructor(opts: ResolverOptions) {
    // `?? default`, not spread defaults: an option passed as undefined would otherwise turn the
    // negative cache off (NaN expiry) and the hedge timer into 1ms.
    this.opts = {
      ...opts,
      negativeTtlMs: opts.negativeTtlMs ?? 5000,
      hedgeMs: opts.hedgeMs ?? 300,
      lookupReuseMs: opts.lookupReuseMs ?? 1000,
      mismatchMemoryMs: opts.mismatchMemoryMs ?? 60 * 60_000,
    };
    this.hedged = new HedgedOpener({
      registry: opts.registry,
      client: opts.client,
      log: opts.log,
      hedgeMs: this.opts.hedgeMs,
      lookup: (h, fresh) => this.fanOut(h, fresh),
    });
    // A new peer may have what we just missed. Finished lookups go too: reusing one would repeat
    // the miss without asking the newcomer.
    opts.registry.on('up', (peer: Peer) => {
      this.negative.clear();
      for (const [hashPart, l] of this.lookups) if (l.done) this.lookups.delete(hashPart);
      this.learnGoDialect(peer);
    });
  }

  /**
   * The registry's health clock (monotonic): remembered misses, shared lookups and refused resumes
   * expire on it, so a wall clock set back keeps none of them longer and unit tests drive it.
   */
  private get clock(): Clock {
    return this.opts.registry.health.clock;
  }

  /** Forgets remembered misses a peer's summary now admits: these paths, or (none given) all. */
  forgetMisses(hashParts?: readonly string[]): void {
    if (!hashParts) return this.negative.clear();
    for (const h of hashParts) this.negative.delete(h);
  }

  async narInfo(hashPart: string): Promise<NarInfo | null> {
    const info = await this.findNarInfo(hashPart);
    if (!info) this.opts.onMiss?.();
    return info;
  }

  private async findNarInfo(hashPart: string): Promise<NarInfo | null> {
    const local = await this.localNarInfo(hashPart);
    if (local) {
      this.opts.affinity.record({
        hashPart,
        storePath: local.storePath,
        source: LOCAL,
        sourceName: 'this machine',
        peerNarUrl: null,
        narHash32: local.narHash.slice('sha256:'.length), // the local backend writes it in nix32
        narSize: local.narSize,
      });
      return local;
    }
    const answer = await this.lookupPeers(hashPart, (a) => judgeNarInfo(a.info, this.opts.trust()));
    if (!answer) return null;
    this.remember(hashPart, answer);
    return answer.info;
  }

  async nar(hashPart: string, narHash: Buffer, opts: NarRequestOptions = {}): Promise<NarBody | null> {
    const { signal } = opts;
    if (signal?.aborted) return this.clientLeft(hashPart);
    const narHash32 = encodeNix32(narHash);
    if (opts.resume && this.refusesResume(hashPart, narHash32)) {
      // The client holds a prefix that failed verification (it reached it before the final hash
      // check): any correct suffix would still fail its own check. A 404 makes Nix drop this
      // substituter for the path cleanly ("substitute gone") and move on.
      this.opts.log.warn(`NAR ${hashPart}: refusing to resume a transfer that was cut for wrong bytes`);
      const entry = this.opts.affinity.get(hashPart);
      this.fallback(entry?.storePath ?? hashPart, entry, null, 'mismatch', 'not-found');
      return null;
    }
    const found = this.opts.affinity.get(hashPart);
    const entry = found && found.narHash32 === narHash32 ? found : undefined;
    const tried = new Set<string>();
    let reason: FallbackReason = 'none';

    if (entry && entry.source !== LOCAL) {
      const peer = this.opts.registry.get(entry.source);
      if (!peer || peer.state === 'gone') reason = 'peer-gone';
      else if (!this.opts.registry.live().includes(peer) || !entry.peerNarUrl) reason = 'peer-failed';
      else {
        // Hedged like any peer: a stalled entry peer must not hold the NAR up for the header timeout.
        const first: Candidate = { peer, url: entry.peerNarUrl, storePath: entry.storePath, narSize: entry.narSize, answer: null };
        const got = await this.hedged.open(hashPart, narHash32, tried, 0, first, signal);
        if (signal?.aborted) return this.clientLeft(hashPart, got?.opened.stream);
        if (got?.candidate === first) {
          this.opts.affinity.hit(hashPart);
          return this.peerBody(hashPart, entry.storePath, narHash, entry.narSize, got.opened, tried);
        }
        reason = 'peer-failed';
        if (got) return this.servedByOtherPeer(hashPart, narHash, entry, reason, got, tried);
      }
    }

    const local = await this.openLocal(hashPart, narHash);
    if (signal?.aborted) {
      if (typeof local !== 'string') local.release('aborted');
      return this.clientLeft(hashPart);
    }
    if (typeof local !== 'string') {
      const storePath = local.storePath;
      if (entry?.source !== LOCAL || !entry) {
        this.opts.affinity.record({ hashPart, storePath, source: LOCAL, sourceName: 'this machine', peerNarUrl: null, narHash32, narSize: local.narSize });
        if (entry) this.fallback(storePath, entry, 'this machine', reason, 'served');
      }
      this.opts.affinity.hit(hashPart);
      return local;
    }
    if (entry?.source === LOCAL) reason = local === 'mismatch' ? 'mismatch' : 'gc';

    // Any peer that holds this store path with exactly this NarHash serves identical bytes.
    const found2 = await this.hedged.open(hashPart, narHash32, tried, 0, undefined, signal);
    if (signal?.aborted) return this.clientLeft(hashPart, found2?.opened.stream);
    if (found2) return this.servedByOtherPeer(hashPart, narHash, entry, reason, found2, tried);

    // The peer whose narinfo Nix holds may just be busy or have missed a probe: while it is still
    // there (and not caught lying), a NAR waits for it rather than fail the user's build with a 404.
    const holder = entry && entry.source !== LOCAL && entry.peerNarUrl ? this.opts.registry.get(entry.source) : undefined;
    // Once more even if it was just tried (a timeout on a congested link is no proof it is gone),
    // but not when its probes fail and nothing has come from it lately (a cut link): that 404 is quick.
    // It is waited for at its own pace: a holder busy at its stream cap (503) or slow to send headers
    // while it still answers probes or sends bytes is tried again, with a growing pause, for up to
    // HOLDER_WAIT_MS — a 404 here fails a substitution Nix was promised.
    const health = this.opts.registry.health;
    const alive = (p: Peer) => p.state !== 'gone' && !health.isBad(p) && (p.failures === 0 || health.heardWithin(p, 2000));
    if (entry && holder && alive(holder)) {
      const last: Candidate = { peer: holder, url: entry.peerNarUrl!, storePath: entry.storePath, narSize: entry.narSize, answer: null };
      const until = health.clock.now() + HOLDER_WAIT_MS;
      for (let pause = HOLDER_RETRY_MS; ; pause = Math.min(HOLDER_RETRY_MAX_MS, pause * 2)) {
        const opened = await this.hedged.openOne(last, last.narSize, 0, signal);
        if (signal?.aborted) return this.clientLeft(hashPart, opened?.stream);
        if (opened) {
          tried.add(holder.id);
          this.opts.affinity.hit(hashPart);
          return this.peerBody(hashPart, entry.storePath, narHash, entry.narSize, opened, tried);
        }
        if (health.clock.now() + pause >= until || !alive(holder)) break;
        this.opts.log.info(`NAR ${entry.storePath}: its holder ${holder.name} is busy or slow; trying it again in ${pause} ms`);
        await this.pause(pause, signal);
        if (signal?.aborted) return this.clientLeft(hashPart);
      }
    }
    if (entry) this.fallback(entry.storePath, entry, null, reason, 'not-found');
    return null;
  }

  /**
   * The client hung up before its answer: a NAR nobody wants is neither served nor a fallback (no
   * event, no affinity change), and a peer stream opened for it in the meantime is let go at once.
   */
  private clientLeft(hashPart: string, opened?: Readable): null {
    opened?.destroy();
    this.opts.log.debug(`NAR ${hashPart}: the client left before it was found; no longer looking`);
    return null;
  }

  /** Waits `ms` on the health clock, or until the client leaves. */
  private pause(ms: number, signal?: AbortSignal): Promise<void> {
    const clock = this.clock;
    return new Promise((resolve) => {
      const done = () => {
        clock.clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = clock.setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private refusesResume(hashPart: string, narHash32: string): boolean {
    const key = `${hashPart}-${narHash32}`;
    const until = this.mismatchCuts.get(key);
    if (until === undefined) return false;
    if (until > this.clock.now()) return true;
    this.mismatchCuts.delete(key);
    return false;
  }

  private rememberMismatchCut(hashPart: string, narHash32: string): void {
    const key = `${hashPart}-${narHash32}`;
    this.mismatchCuts.delete(key);
    this.mismatchCuts.set(key, this.clock.now() + this.opts.mismatchMemoryMs);
    if (this.mismatchCuts.size > MAX_MISMATCH_CUTS) this.mismatchCuts.delete(this.mismatchCuts.keys().next().value!);
  }

  private servedByOtherPeer(
    hashPart: string,
    narHash: Buffer,
    entry: AffinityEntry | undefined,
    reason: FallbackReason,
    found: Found,
    tried: Set<string>,
  ): NarBody {
    const { candidate, opened } = found;
    if (candidate.answer) this.remember(hashPart, candidate.answer);
    this.opts.affinity.hit(hashPart);
    this.fallback(candidate.storePath, entry, candidate.peer.name, reason, 'served');
    return this.peerBody(hashPart, candidate.storePath, narHash, candidate.narSize, opened, tried);
  }

  private remember(hashPart: string, a: PeerAnswer): void {
    this.opts.affinity.record({
      hashPart,
      storePath: a.info.storePath,
      source: a.peer.id,
      sourceName: a.peer.name,
      peerNarUrl: a.narUrl,
      narHash32: a.narHash32,
      narSize: a.info.narSize,
    });
  }

  private fallback(storePath: string, entry: AffinityEntry | undefined, to: string | null, reason: FallbackReason, outcome: 'served' | 'not-found'): void {
    const from = entry?.sourceName ?? 'none';
    this.opts.log.info(`fallback ${storePath}: ${from} → ${to ?? 'nobody'} (${reason}, ${outcome})`);
    this.opts.events.emit({ type: 'fallback', storePath, from, to, reason, outcome });
  }

  private async localNarInfo(hashPart: string): Promise<NarInfo | null> {
    try {
      return await this.opts.local.narInfo(hashPart);
    } catch (e) {
      // The local daemon being down must not stop us finding the path on a peer.
      this.opts.log.warn(`local store: ${(e as Error).message}`);
      return null;
    }
  }

  private async openLocal(hashPart: string, narHash: Buffer) {
    try {
      return await this.opts.local.openLocal(hashPart, narHash);
    } catch (e) {
      this.opts.log.warn(`local store: ${(e as Error).message}`);
      return 'missing' as const;
    }
  }

  /**
   * Asks every live peer at once and resolves with the first answer `judge` calls trusted, or else the
   * first it calls acceptable once all have answered. Identical lookups share one fan-out.
   */
  private async lookupPeers(hashPart: string, judge: (a: PeerAnswer) => Verdict): Promise<PeerAnswer | null> {
    const state = this.fanOut(hashPart);
    if (!state) return null;
    await waitUntil(state, () => state.list.some((a) => judge(a) === 'trusted'));
    return state.list.find((a) => judge(a) === 'trusted') ?? state.list.find((a) => judge(a) === 'acceptable') ?? null;
  }

  /**
   * The fan-out for this hash part: the one in flight or (unless `fresh`) just finished, else a new
   * one. Null on a remembered miss.
   */
  private fanOut(hashPart: string, fresh = false): Lookup | null {
    const now = this.clock.now();
    const until = this.negative.get(hashPart);
    if (until !== undefined) {
      if (until > now) return null;
      this.negative.delete(hashPart);
    }
    const existing = this.lookups.get(hashPart);
    if (existing && (!existing.done || (!fresh && existing.doneAt + this.opts.lookupReuseMs > now))) return existing;
    const state: Lookup = { list: [], done: false, doneAt: 0, waiters: new Set() };
    this.lookups.set(hashPart, state);
    const wake = () => {
      for (const w of state.waiters) w();
    };
    // Only peers whose summary admits the path (or that publish none) are asked: most misses ask nobody.
    const candidates = this.opts.mayHave ? this.opts.registry.live().filter((p) => this.opts.mayHave!(p, hashPart) !== false) : this.opts.registry.live();
    const asks = candidates.map(async (peer) => {
      // A stall of this peer (registry health) releases this lookup and every other one waiting on it.
      const stop = new AbortController();
      const go = peer.dialect === 'go' ? this.goLookup(peer, hashPart, stop.signal) : null;
      // What the peer promised ("yes" over UDP) is not released when it is struck for another lookup.
      const untrack = this.opts.registry.trackLookup(
        peer,
        () => stop.abort(),
        () => go?.saidYes() ?? false,
      );
      try {
        const info = await this.opts.client.narInfo(peer.url, hashPart, go?.signal ?? stop.signal, this.opts.registry.lookupMs(peer));
        go?.answered();
        this.opts.registry.reportAnswer(peer);
        const answer = info && this.validAnswer(peer, hashPart, info);
        if (answer) {
          state.list.push(answer);
          wake();
        }
      } catch (e) {
        this.opts.log.debug(`peer ${peer.name}: ${(e as Error).message}`);
        // A Go peer's "not_found" over UDP is its answer: a miss, not a failure to strike it for.
        if (go?.saidNotFound()) this.opts.registry.reportAnswer(peer);
        else if (!stop.signal.aborted)
          this.opts.registry.reportLookupFailure(peer, (e as Error).message, e instanceof PeerError && e.kind === 'timeout', go?.saidYes() ?? false);
      } finally {
        go?.end();
        untrack();
      }
    });
    void Promise.all(asks).then(() => {
      state.done = true;
      state.doneAt = this.clock.now();
      if (state.list.length === 0) this.negative.set(hashPart, state.doneAt + this.opts.negativeTtlMs!);
      wake();
      this.clock.setTimeout(() => this.lookups.get(hashPart) === state && this.lookups.delete(hashPart), this.opts.lookupReuseMs).unref?.();
    });
    return state;
  }

  /**
   * Tells the two Go protocols apart before lookups need to: a question for a hash no store holds is
   * answered "not_found" by today's Go (e74df7c on) and not at all by 93fc511. One datagram (and one
   * nix-store run on the Go host) when a Go peer comes up; silence asks again at its next coming up.
   */
  learnGoDialect(peer: Peer): void {
    if (peer.dialect !== 'go' || this.goAnswersMisses.has(peer) || this.goDialectAsked.has(peer)) return;
    this.goDialectAsked.add(peer);
    void askGoHasPath(peer.address, this.opts.goUdpPort ?? GO_UDP_DEFAULT_PORT, encodeNix32(randomBytes(20)), AbortSignal.timeout(3000)).then((r) => {
      if (r === 'not-found') this.goAnswersMisses.add(peer);
      else this.goDialectAsked.delete(peer);
    });
  }

  /**
   * A Go peer's lookup: its silence is a miss after registry.goSilenceMs, unless it says over UDP
   * that it holds the path. Then its (slow) narinfo is waited for at the peer's own pace: as long as
   * the peer keeps answering something within registry.goHeldMs — a host making twenty narinfos one
   * nix-store run at a time is slow, not gone, and a 404 for a path it said it has is remembered by
   * Nix for an hour. The signal aborts either way.
   */
  private goLookup(
    peer: Peer,
    hashPart: string,
    stop: AbortSignal,
  ): { signal: AbortSignal; end: () => void; saidYes: () => boolean; saidNotFound: () => boolean; answered: () => void } {
    const clock = this.opts.registry.health.clock;
    const silence = new AbortController();
    const asked = new AbortController(); // the UDP question ends with the lookup
    // A host that has said "not_found" speaks today's protocol, where silence is no answer (a loaded
    // host, a lost datagram), not a miss: only the narinfo's own deadline ends its lookup.
    let timer: TimerHandle | undefined = this.goAnswersMisses.has(peer)
      ? undefined
      : clock.setTimeout(() => silence.abort(), this.opts.registry.goSilenceMs(peer));
    const stopTimer = () => timer !== undefined && clock.clearTimeout(timer);
    let yesAt: number | null = null;
    let yesMs = 0;
    let notFound = false;
    // After a "yes": cut only once the peer has been silent for its held allowance, which a slow
    // "yes" (a loaded host) lengthens.
    const held = () => {
      const ms = this.opts.registry.goHeldMs(peer, yesMs);
      const quiet = clock.now() - Math.max(yesAt!, peer.lastHeard);
      if (quiet >= ms) silence.abort();
      else timer = clock.setTimeout(held, ms - quiet);
    };
    void askGoHasPath(peer.address, this.opts.goUdpPort ?? GO_UDP_DEFAULT_PORT, hashPart, AbortSignal.any([stop, asked.signal, silence.signal])).then((ms) => {
      if (ms === null || silence.signal.aborted) return;
      if (ms === 'not-found') {
        // Definitive (today's Go says it of its own store): the lookup needs no narinfo from it.
        notFound = true;
        this.goAnswersMisses.add(peer);
        stopTimer();
        silence.abort();
        return;
      }
      yesAt = clock.now();
      yesMs = ms;
      stopTimer();
      this.opts.registry.reportGoYes(peer, ms);
      timer = clock.setTimeout(held, this.opts.registry.goHeldMs(peer, ms));
    });
    return {
      saidYes: () => yesAt !== null,
      saidNotFound: () => notFound,
      answered: () => {
        if (yesAt !== null) this.opts.registry.reportGoHeld(peer, clock.now() - yesAt);
      },
      signal: AbortSignal.any([stop, silence.signal]),
      end: () => {
        stopTimer();
        asked.abort();
      },
    };
  }

  /** A peer's narinfo is used only if it is for exactly this path and its NAR lives on that peer. */
  private validAnswer(peer: Peer, hashPart: string, info: NarInfo): PeerAnswer | null {
    try {
      if (parseStorePath(info.storePath).hashPart !== hashPart) return null;
      if (info.compression !== 'none') return null; // we stream and verify plain NARs only
      const url = new URL(info.url, peer.url + '/');
      if (url.origin !== new URL(peer.url).origin) return null; // never let a peer point us elsewhere
      const narHash32 = formatSha256Nix32(parseSha256(info.narHash)).slice('sha256:'.length);
      // Signatures pass through untouched; only the URL changes, once, so the NAR comes back through us.
      return { peer, info: { ...info, url: narUrl(hashPart, narHash32) }, narHash32, narUrl: url.href };
    } catch {
      return null;
    }
  }

  /**
   * Several holders at once, for a NAR large enough: the holders of this NarHash the lookup found,
   * live, and honouring Range (a Go peer resends from the start). Null: one holder at a time.
   */
  private swarmFor(
    hashPart: string,
    narHash32: string,
    narSize: number,
    first: OpenedNar,
  ): { holders: () => NarSource[]; tuning: Partial<SwarmTuning> } | null {
    const tuning = this.opts.swarm;
    if (tuning === false || first.source.peer.dialect === 'go' || narSize < (tuning?.minNarBytes ?? DEFAULT_SWARM.minNarBytes)) return null;
    const state = this.fanOut(hashPart);
    if (!state) return null;
    const holders = () => {
      const live = new Set(this.opts.registry.live());
      return state.list
        .filter((a) => a.narHash32 === narHash32 && a.peer.dialect !== 'go' && live.has(a.peer))
        .map((a): NarSource => ({ peer: a.peer, url: a.narUrl }));
    };
    return { holders, tuning: tuning ?? {} };
  }

  private peerBody(hashPart: string, storePath: string, narHash: Buffer, narSize: number, first: OpenedNar, tried: Set<string>): NarBody {
    const narHash32 = encodeNix32(narHash);
    let stream: ResumingNarStream | null = null;
    let swarm: SwarmNarStream | null = null;
    let bytes = 0;
    let released = false;
    let progress: TransferHandle | undefined;
    return {
      narSize,
      narHash,
      storePath,
      hashCheck: true,
      stream: () => {
        stream = new ResumingNarStream({
          first,
          narSize,
          onBytes: (src, n) => {
            if (swarm) return; // counted as the swarm takes them: bytes past its cut are dropped
            bytes += n;
            this.opts.registry.countBytesFrom(src.peer, n);
          },
          watch: this.opts.narWatch,
          resume: async (offset, failed, why, slow, bad) => {
            if (slow) this.opts.log.info(`NAR ${storePath} from ${failed.peer.name} is slow at byte ${offset} (${why}); looking for another holder`);
            else if (bad) {
              // Bombs, floods of tiny frames, bytes past the NarSize: as bad as bytes that don't match.
              this.opts.log.warn(`NAR ${storePath} from ${failed.peer.name} cut at byte ${offset}: ${why}; resuming elsewhere`);
              this.opts.registry.reportBadBytes(failed.peer, why);
            } else {
              this.opts.log.warn(`NAR ${storePath} from ${failed.peer.name} failed at byte ${offset}: ${why}; resuming elsewhere`);
              this.opts.registry.reportFailure(failed.peer, why);
            }
            const found = await this.hedged.open(hashPart, narHash32, tried, offset);
            // A slow peer stays the source when no one else has the NAR; once replaced, it may still
            // serve a later resume of this one.
            if (!found) return null;
            if (slow) tried.delete(failed.peer.id);
            const before = this.opts.affinity.get(hashPart);
            if (found.candidate.answer) this.remember(hashPart, found.candidate.answer);
            this.fallback(storePath, before, found.candidate.peer.name, 'peer-failed', 'served');
            return found.opened;
          },
        });
        const s = stream;
        const split = this.swarmFor(hashPart, narHash32, narSize, first);
        if (split) {
          swarm = new SwarmNarStream({
            head: s,
            headSource: first.source,
            narSize,
            holders: split.holders,
            tuning: split.tuning,
            openRange: async (src, start, end, signal) => (await this.hedged.openOne(src, narSize, start, signal, end))?.stream ?? null,
            onFailure: (src, why, bad) => {
              this.opts.log.warn(`NAR ${storePath}: ${src.peer.name}'s share failed (${why}); the others take it over`);
              if (bad) this.opts.registry.reportBadBytes(src.peer, why);
              else this.opts.registry.reportFailure(src.peer, why);
            },
            firstHeld: heldShare(this.opts.client.receiverLoad.hint(new URL(first.source.url).origin)),
            onBytes: (src, n) => {
              bytes += n;
              // The first stream may have resumed on another holder by itself.
              this.opts.registry.countBytesFrom((src === first.source ? (s.sources.at(-1) ?? src) : src).peer, n);
            },
          });
        }
        const w = swarm;
        progress = this.opts.transfers?.begin({
          storePath,
          direction: 'in',
          peerName: () => (w?.split ? holderNames(w) : (s.sources.at(-1) ?? first.source).peer.name),
          total: narSize,
          bytes: () => bytes,
          wireBytes: () => w?.wireBytes ?? s.wireBytes,
        });
        return swarm ?? stream;
      },
      release: (reason = 'done') => {
        if (released) return;
        released = true;
        const s = stream as ResumingNarStream | null;
        if (!s) {
          // Never streamed (HEAD, an unsatisfiable range, a client already gone): let the peer go
          // now rather than hold its connection until the idle timeout. Nothing was transferred.
          first.stream.destroy();
          return;
        }
        const w = swarm as SwarmNarStream | null;
        w?.destroy();
        s.destroy();
        const resumed = s.sources.length > 1 || (w?.resumed ?? false);
        progress?.end(reason === 'aborted' ? 'aborted' : reason !== 'done' ? 'failed' : resumed ? 'resumed' : 'ok');
        const last = s.sources.at(-1)?.peer ?? first.source.peer;
        const sources = w?.split ? [...new Set([...s.sources, ...w.sources])] : s.sources;
        if (reason === 'mismatch') {
          this.rememberMismatchCut(hashPart, narHash32);
          for (const src of sources) this.opts.registry.reportBadBytes(src.peer, 'served bytes that do not match the NarHash');
        }
        if (w?.split)
          this.opts.log.info(
            `NAR ${storePath} from ${w.shares.length} holders at once: ${w.shares.map((x) => `${x.source.peer.name} ${x.narBytes}`).join(', ')} bytes${w.resumed ? ' (a share moved to the others)' : ''}`,
          );
        if (reason !== 'aborted') {
          this.opts.events.emit({
            type: 'transfer',
            storePath,
            direction: 'in',
            peerName: w?.split ? holderNames(w) : last.name,
            bytes,
            wireBytes: w?.wireBytes ?? s.wireBytes,
            outcome: reason === 'done' ? (resumed ? 'resumed' : 'ok') : 'failed',
          });
        }
      },
    };
  }
}

/** A receiver-load hint as a number (undefined while nothing is known). */
function heldShare(hint: string | undefined): number | undefined {
  return hint === undefined ? undefined : Number(hint);
}

/** The holders a split NAR came from, as one peer name ("host-b + host-c"). */
function holderNames(swarm: SwarmNarStream): string {
  return swarm.sources.map((x) => x.peer.name).join(' + ');
}
