import { EventEmitter } from 'node:events';
import type { PeerState, PeerSummaryView, PeerView } from '../base/api.ts';
import { freshHealth, PeerHealth, type HealthOptions, type PeerHealthFields } from './health.ts';
import type { PeerClient } from './peer-client.ts';
import { proveIdentity, type ProofResult } from '../wire/identity-proof.ts';
import { tcpReachable } from './reach-check.ts';
import type { Clock } from '../base/clock.ts';
import { tickerOf } from '../base/beat.ts';
import { GO_LOOKUP_MAX_MS, GO_STALL_MS, GoPace } from './go-pace.ts';
import { ProbeSchedule } from './probe-schedule.ts';

// Every peer we know of, from mDNS, DNS-SD or --peer, with its liveness. bonjour-service never reports a
// crashed peer, so liveness is ours (health.ts): health probes, and what the peer answers to real
// requests — a failed or stalled one marks it suspect at once, so no lookup waits on it twice.
//
// Identity: an announced (mDNS or DNS-SD) peer's instance id and key are claims. A peer is `verified` once it has signed a
// fresh challenge with the key it announces (identity-proof.ts); only then may its key make it
// "trusted". Unverified peers are still asked, their answers judged one by one like any cache's.
// One entry per instance id: a second service claiming a held id waits as a contender and takes the id
// only by proving it while the holder is unproven or gone. Static peers are as the user configured them.
// A proven peer's own records are claims too: anyone on the LAN can answer for its host name or send its
// service's TXT, so a new address or key for it is challenged there first and applied only once proven
// (or once the peer itself has gone and is no longer proven); meanwhile the proven one is kept and used.
// When each peer is probed is probe-schedule.ts's; how long lookups wait on a Go peer, go-pace.ts's.

/** What discovery or the settings say of a peer: the identifying part of its view. */
export type PeerInfo = Pick<PeerView, 'id' | 'name' | 'url' | 'address' | 'port' | 'platform' | 'publicKey' | 'source'> & {
  key?: string; // mDNS: the announcing service's name, which tells claimants of one id apart
  /** A Go peernix (go-peer.ts): never verified (it has no way to prove an identity), probed by its cache info only. */
  dialect?: 'go';
};

export interface Peer extends PeerInfo, PeerHealthFields {
  verified: boolean; // proved its key (mDNS), or configured by the user (static)
  bytesFrom: number;
  bytesTo: number;
}

export interface RegistryOptions {
  client: PeerClient;
  maxPeers?: number;
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  health?: Partial<HealthOptions>;
  isTrusted: (publicKey: string | null) => boolean;
  /** What is known of a peer's store summary, for its view. */
  summaryOf?: (id: string) => PeerSummaryView | null;
  /** Challenges an mDNS peer to prove its claimed id and key (default: GET /peernix/identity). */
  proveIdentity?: (peer: PeerInfo) => Promise<ProofResult>;
  identityRetryMs?: number;
  /** Drives peer health (tests); monotonic. */
  clock?: Clock;
}

interface Contender {
  info: PeerInfo;
  nextTry: number;
  proving: boolean;
}

const MAX_CONTENDERS = 16;

/** Found by announcement (mDNS on the link, DNS-SD across subnets): its id and key are claims to prove. */
function announced(p: PeerInfo): boolean {
  return p.source === 'mdns' || p.source === 'dnssd';
}

/** Whether an update would send a peer's requests elsewhere or change the key it is known by. */
function changesIdentity(peer: PeerInfo, info: PeerInfo): boolean {
  return peer.url !== info.url || peer.address !== info.address || peer.port !== info.port || peer.publicKey !== info.publicKey;
}

/** How long an up Go peer goes unprobed after it was last seen (probes and lookups still strike a dead one). */
const GO_PROBE_QUIET_MS = 20_000;

/** What the registry tells its listeners, typed so a listener's arguments are checked. */
export interface RegistryEvents {
  up: [peer: Peer];
  down: [peer: Peer, reason: string];
  /** The peer's URL changed. */
  moved: [peer: Peer];
  removed: [peer: Peer];
  /** Anything a view of the peers shows. */
  changed: [];
}

export class PeerRegistry extends EventEmitter<RegistryEvents> {
  private readonly peers = new Map<string, Peer>();
  private readonly contenders = new Map<string, Contender>(); // by service key
  // A proven peer's service announcing another address or key: the latest such claim, by service key.
  // At most one per peer held (dropped with the peer), so a flood cannot grow it.
  private readonly claims = new Map<string, Contender>();
  private readonly proving = new Set<Peer>();
  private readonly provedAt = new WeakMap<Peer, number>();
  private readonly goPace: GoPace<Peer>;
  private readonly schedule: ProbeSchedule<Peer>;
  private readonly proofs = new WeakMap<Peer, ProofResult>();
  private readonly opts: Required<Omit<RegistryOptions, 'isTrusted' | 'client' | 'health' | 'summaryOf' | 'clock'>> &
    Pick<RegistryOptions, 'isTrusted' | 'client' | 'summaryOf'>;
  readonly health: PeerHealth<Peer>;
  private stopRounds: (() => void) | null = null;
  private readonly clockGiven: boolean;

  constructor(opts: RegistryOptions) {
    super();
    const prove = (p: PeerInfo) =>
      proveIdentity({
        address: p.address,
        port: p.port,
        instanceId: p.id,
        publicKey: p.publicKey,
        agent: opts.client.lookupPool.http,
        tlsAgent: opts.client.identityAgent?.(p.publicKey) ?? undefined,
        timeoutMs: 1500,
      });
    this.clockGiven = opts.clock !== undefined;
    this.opts = { maxPeers: 64, healthIntervalMs: 2000, healthTimeoutMs: 800, proveIdentity: prove, identityRetryMs: 10_000, ...opts };
    this.health = new PeerHealth<Peer>(
      opts.health ?? {},
      (peer, before, why) => {
        if (this.peers.get(peer.id) !== peer) return; // replaced (another claimant took the id) or gone
        if (before !== 'up' && peer.state === 'up') this.emit('up', peer);
        if (before === 'up' && peer.state !== 'up') this.emit('down', peer, why);
        this.emit('changed');
      },
      (peer, timeoutMs) => tcpReachable(peer.address, peer.port, timeoutMs),
      { clock: opts.clock },
    );
    this.goPace = new GoPace(this.health.clock);
    this.schedule = new ProbeSchedule<Peer>({ roundMs: this.opts.healthIntervalMs, announced });
  }

  start(): void {
    // On the process's beat (base/beat.ts) unless a test drives a clock of its own.
    this.stopRounds ??= tickerOf(this.clockGiven ? this.health.clock : undefined).every(this.opts.healthIntervalMs, () => {
      void this.probeRound();
      for (const c of [...this.contenders.values()]) void this.tryContender(c);
      for (const c of [...this.claims.values()]) void this.tryClaim(c);
    });
  }

  stop(): void {
    this.stopRounds?.();
    this.stopRounds = null;
  }

  /** Adds or updates a peer; it is asked only once a health probe has passed. */
  upsert(info: PeerInfo): void {
    const existing = this.peers.get(info.id);
    if (existing && announced(info) && announced(existing) && existing.key !== info.key) {
      this.contend(info);
      return;
    }
    if (existing) {
      if (announced(info) && this.isProvenLive(existing) && changesIdentity(existing, info)) {
        this.claim(info);
        return;
      }
      // The service's latest word is applied here, so an earlier claim of it is moot.
      if (info.key !== undefined) this.claims.delete(info.key);
      this.update(existing, info);
      return;
    }
    this.admit(info, false);
  }

  // `proof`: the claim was challenged at its new address already (no need to ask again).
  private update(existing: Peer, info: PeerInfo, proof?: ProofResult): void {
    const moved = existing.url !== info.url;
    const rekeyed = existing.publicKey !== info.publicKey;
    Object.assign(existing, info);
    // Its proof is settled before anyone hears of the move, so listeners see the peer as it now is.
    const reprove = (moved || rekeyed) && announced(existing);
    if (reprove) {
      existing.verified = proof === 'verified';
      if (proof !== undefined) {
        this.proofs.set(existing, proof);
        this.provedAt.set(existing, this.health.clock.now());
      }
    }
    if (moved) {
      this.emit('moved', existing);
      void this.check(existing);
    }
    if (reprove && proof === undefined) void this.verify(existing);
    this.emit('changed');
  }

  private isProvenLive(peer: Peer): boolean {
    return announced(peer) && peer.verified && peer.state !== 'gone';
  }

  /** The peer said goodbye (mDNS; `key` names the service) or was removed from the settings. */
  remove(id: string, reason = 'goodbye', key?: string): void {
    if (key !== undefined) {
      this.contenders.delete(key);
      this.claims.delete(key); // what the departed service last claimed goes with it
    }
    const peer = this.peers.get(id);
    if (!peer) return;
    if (key !== undefined && peer.key !== undefined && peer.key !== key) return; // a contender left, not the holder
    this.drop(peer, reason);
    // Someone else claims this id: its turn now (it proves itself or stays unverified).
    const next = [...this.contenders.values()].find((c) => c.info.id === id);
    if (next) {
      this.contenders.delete(next.info.key ?? '');
      this.admit(next.info, false);
    }
  }

  /** Whether the mDNS service `key` is held by a peer that proved its identity (discovery keeps those). */
  isProvenService(key: string): boolean {
    for (const p of this.peers.values()) if (p.key === key) return p.verified;
    return false;
  }

  /**
   * Whether the mDNS service `key` is held by a peer we hear from over HTTP: proven (or a Go host, which
   * can't prove), and not gone. Discovery keeps such a service without hearing it over mDNS.
   */
  isLiveService(key: string): boolean {
    for (const p of this.peers.values()) if (p.key === key) return (p.verified || p.dialect === 'go') && p.state !== 'gone';
    return false;
  }

  private admit(info: PeerInfo, verified: boolean): void {
    if (this.peers.size >= this.opts.maxPeers) {
      const victim = this.weakest();
      if (!victim) return;
      this.drop(victim, 'evicted for a newcomer');
    }
    const peer: Peer = { ...info, ...freshHealth(), verified: verified || info.source === 'static', bytesFrom: 0, bytesTo: 0 };
    this.peers.set(info.id, peer);
    this.emit('changed');
    void this.check(peer);
    if (!peer.verified) void this.verify(peer);
  }

  private drop(peer: Peer, reason: string): void {
    this.peers.delete(peer.id);
    if (peer.key !== undefined && this.claims.get(peer.key)?.info.id === peer.id) this.claims.delete(peer.key);
    this.health.forget(peer);
    if (peer.state === 'up') this.emit('down', peer, reason);
    this.emit('removed', peer);
    this.emit('changed');
  }

  // The entry to give up for a newcomer: never a static or a proven live peer; gone before suspect
  // before up, then the longest unseen.
  private weakest(): Peer | null {
    const rank = { gone: 0, suspect: 1, up: 2 } as const;
    let worst: Peer | null = null;
    for (const p of this.peers.values()) {
      if (p.source === 'static' || (p.verified && p.state !== 'gone')) continue;
      if (!worst || rank[p.state] < rank[worst.state] || (rank[p.state] === rank[worst.state] && p.lastSeen < worst.lastSeen)) worst = p;
    }
    return worst;
  }

  /** Asks a claimant to prove its id and key; anything that goes wrong is a failed proof. */
  private async challenge(info: PeerInfo): Promise<ProofResult> {
    try {
      return await this.opts.proveIdentity(info);
    } catch {
      return 'failed';
    }
  }

  private async verify(peer: Peer): Promise<void> {
    if (!announced(peer) || peer.dialect === 'go' || this.proving.has(peer)) return;
    const { url, publicKey } = peer;
    this.proving.add(peer);
    this.provedAt.set(peer, this.health.clock.now());
    const result = await this.challenge(peer);
    this.proving.delete(peer);
    if (this.peers.get(peer.id) !== peer) return;
    if (peer.url !== url || peer.publicKey !== publicKey) {
      // It moved or changed key while being asked: what it is now was never asked (it was skipped as
      // already proving), so ask now rather than after identityRetryMs.
      if (!peer.verified) void this.verify(peer);
      return;
    }
    this.proofs.set(peer, result);
    const verified = result === 'verified';
    if (verified !== peer.verified) {
      peer.verified = verified;
      this.emit('changed');
    }
  }

  // The service of a proven, live peer claims another address or key. Only a proof at the claimed
  // address applies it; until then the peer keeps what it proved (see tryClaim).
  private claim(info: PeerInfo): void {
    const key = info.key ?? '';
    let c = this.claims.get(key);
    if (c) {
      // Another address or key than the one asked last is asked at once (a real move must not wait behind
      // an impostor's claim); the same claim again waits for its turn.
      if (changesIdentity(c.info, info)) c.nextTry = 0;
      c.info = info;
    } else {
      c = { info, nextTry: 0, proving: false };
      this.claims.set(key, c);
    }
    void this.tryClaim(c);
  }

  // The holder went away (and with that is no longer proven): its pending claim is asked at once
  // instead of at its next turn.
  private claimNow(peer: Peer): void {
    const c = peer.key === undefined ? undefined : this.claims.get(peer.key);
    if (!c || c.info.id !== peer.id) return;
    c.nextTry = 0;
    void this.tryClaim(c);
  }

  private async tryClaim(c: Contender): Promise<void> {
    const turn = await this.challengeInTurn(c);
    if (!turn) return;
    const { asked, result } = turn;
    const key = asked.key ?? '';
    if (this.claims.get(key) !== c) return;
    if (changesIdentity(asked, c.info)) {
      // Another claim came in meanwhile: it is asked now (one challenge at a time per service).
      void this.tryClaim(c);
      return;
    }
    const info = c.info;
    const holder = this.peers.get(info.id);
    if (!holder || holder.key !== info.key) {
      this.claims.delete(key);
      return;
    }
    // Unproven, the claim waits while the holder stays proven and live; once it is not (a holder that
    // went away must prove itself again anyway), the service's latest word applies as it would to any
    // unproven peer's — the same record sent again would be applied at once.
    if (result !== 'verified' && this.isProvenLive(holder)) return;
    this.claims.delete(key);
    this.update(holder, info, result);
  }

  // A second service claims a held id. It waits here (bounded) and is challenged now and then.
  private contend(info: PeerInfo): void {
    const key = info.key ?? '';
    let c = this.contenders.get(key);
    if (c) c.info = info;
    else {
      if (this.contenders.size >= MAX_CONTENDERS) {
        const oldest = this.contenders.keys().next().value;
        if (oldest !== undefined) this.contenders.delete(oldest);
      }
      c = { info, nextTry: 0, proving: false };
      this.contenders.set(key, c);
    }
    void this.tryContender(c);
  }

  /** Challenges a waiting claimant once its turn has come (one challenge at a time each): what was asked and the result, or null when not now. */
  private async challengeInTurn(c: Contender): Promise<{ asked: PeerInfo; result: ProofResult } | null> {
    const now = this.health.clock.now();
    if (c.proving || now < c.nextTry) return null;
    c.proving = true;
    c.nextTry = now + this.opts.identityRetryMs;
    const asked = c.info;
    try {
      return { asked, result: await this.challenge(asked) };
    } finally {
      c.proving = false;
    }
  }

  private async tryContender(c: Contender): Promise<void> {
    const turn = await this.challengeInTurn(c);
    if (!turn) return;
    const { asked: info, result } = turn;
    const key = info.key ?? '';
    if (this.contenders.get(key) !== c || c.info !== info) return;
    const holder = this.peers.get(info.id);
    if (!holder) {
      this.contenders.delete(key);
      this.admit(info, result === 'verified');
      return;
    }
    if (result !== 'verified') return;
    // A proven, live holder keeps its id (the contender is a stale twin); an unproven or dead one yields.
    if (holder.verified && holder.state !== 'gone') return;
    this.contenders.delete(key);
    this.drop(holder, 'its identity was proven by another');
    this.admit(info, true);
  }

  get(id: string): Peer | undefined {
    return this.peers.get(id);
  }

  all(): Peer[] {
    return [...this.peers.values()];
  }

  /** Peers worth asking now: up, and not caught serving bad bytes recently. */
  live(): Peer[] {
    const now = this.health.clock.now();
    return this.all().filter((p) => this.health.askable(p, now));
  }

  findByAddress(address: string): Peer | undefined {
    const a = address.startsWith('::ffff:') ? address.slice(7) : address;
    return this.all().find((p) => p.address === a);
  }

  /** A request to this peer failed or went unanswered: not asked again until its backoff is over. */
  reportFailure(peer: Peer, why: string, soft = false): void {
    this.health.strike(peer, why, soft);
  }

  /**
   * Something it answers regularly (its summary's long poll) came in: it is alive, and is probed only
   * once the next such answer is late (more than `everyMs` and a grace after this one).
   */
  reportContact(id: string, everyMs: number): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.health.heard(peer);
    this.schedule.contact(peer, everyMs);
  }

  /** It answered a lookup in time, yes or no. */
  reportAnswer(peer: Peer): void {
    this.health.answered(peer);
  }

  /** How long a narinfo lookup may wait for this peer (undefined: the client's default). */
  lookupMs(peer: Peer): number | undefined {
    return peer.dialect === 'go' ? GO_LOOKUP_MAX_MS : undefined;
  }

  /** How long a Go peer that said "yes" (after `yesMs`) may stay silent before its narinfo is given up. */
  goHeldMs(peer: Peer, yesMs = 0): number {
    return this.goPace.heldMs(peer, yesMs);
  }

  /** A Go peer's narinfo came `ms` after its "yes". */
  reportGoHeld(peer: Peer, ms: number): void {
    this.goPace.held(peer, ms);
  }

  /** How long a lookup takes a Go peer's silence (no UDP "yes") for a miss. */
  goSilenceMs(peer: Peer): number {
    return this.goPace.silenceMs(peer);
  }

  /** A Go peer said "yes" over UDP `ms` after it was asked. */
  reportGoYes(peer: Peer, ms: number): void {
    this.health.heard(peer); // a "yes" is a sign of life: no lookup waiting on it is a stall
    this.goPace.yes(peer, ms);
  }

  /**
   * A lookup to it failed. A Go peer's silence is its miss, not a failure, unless it said "yes" and
   * then never sent the narinfo (`promised`): a wedged or lying host must not hold every lookup for
   * GO_HELD_MS.
   */
  reportLookupFailure(peer: Peer, why: string, timeout: boolean, promised = false): void {
    if (timeout && peer.dialect === 'go' && !promised) this.health.answered(peer);
    else this.health.strike(peer, why, timeout);
  }

  /** A lookup to `peer` starts; see PeerHealth.track. */
  trackLookup(peer: Peer, abort: () => void, promised?: () => boolean): () => void {
    return this.health.track(peer, abort, peer.dialect === 'go' ? GO_STALL_MS : undefined, promised);
  }

  reportBadBytes(peer: Peer, why: string): void {
    this.health.markBad(peer, why);
    this.emit('changed');
  }

  /** Forgets that a peer served wrong bytes; false when it was not marked. */
  clearBad(id: string): boolean {
    const peer = this.peers.get(id);
    if (!peer) return false;
    const was = this.health.clearBad(peer);
    this.emit('changed');
    if (was && peer.state === 'up') this.emit('up', peer);
    return was;
  }

  countBytesFrom(peer: Peer, n: number): void {
    peer.bytesFrom += n;
    this.health.heard(peer);
    this.emit('changed');
  }

  countBytesTo(address: string, n: number): void {
    const peer = this.findByAddress(address);
    if (!peer) return;
    peer.bytesTo += n;
    this.emit('changed');
  }

  views(): PeerView[] {
    return this.all().map((p) => ({
      id: p.id,
      name: p.name,
      url: p.url,
      address: p.address,
      port: p.port,
      platform: p.platform,
      publicKey: p.publicKey,
      verified: p.verified,
      // A key only counts once the peer has proven it holds it (or the user configured the peer).
      trusted: p.verified && this.opts.isTrusted(p.publicKey),
      rttMs: p.rttMs,
      state: this.health.isBad(p) && p.state === 'up' ? 'suspect' : p.state,
      bad: this.health.isBad(p)
        ? { since: this.health.wallTime(p.badSince), until: this.health.wallTime(p.badUntil), reason: p.badReason ?? 'served wrong bytes' }
        : null,
      summary: this.opts.summaryOf?.(p.id) ?? null,
      source: p.source,
      bytesFrom: p.bytesFrom,
      bytesTo: p.bytesTo,
      lastSeen: p.lastSeen,
    }));
  }

  // Identity follows liveness: a peer that vanished must prove itself again when it answers (someone
  // else may hold its address now), and one that could not answer the challenge yet is asked again.
  private afterCheck(peer: Peer, before: PeerState): void {
    if (!announced(peer)) return;
    if (peer.state === 'gone' && peer.verified) {
      peer.verified = false;
      this.emit('changed');
    }
    if (peer.state === 'gone' && before !== 'gone') this.claimNow(peer);
    if (peer.state !== 'up') return;
    // A peer without the identity route (another implementation) is not asked again until it changes.
    const retry =
      !peer.verified &&
      this.proofs.get(peer) !== 'unsupported' &&
      this.health.clock.now() - (this.provedAt.get(peer) ?? -Infinity) >= this.opts.identityRetryMs;
    if (before === 'gone' || retry) void this.verify(peer);
  }

  /** Probes every peer now, whatever its backoff. */
  async checkAll(): Promise<void> {
    await Promise.all(this.all().map((p) => this.check(p)));
  }

  /** The timer's round: the peers due a probe (probe-schedule.ts). */
  async probeRound(): Promise<void> {
    await Promise.all(this.schedule.due(this.peers.values(), this.health.clock.now()).map((p) => this.check(p)));
  }

  private async check(peer: Peer): Promise<void> {
    // A Go host logs every request; one that is up and was seen lately needs no probe yet (#21).
    if (peer.dialect === 'go' && peer.state === 'up' && this.health.clock.now() - Math.max(peer.seenAt, peer.lastHeard) < GO_PROBE_QUIET_MS) return;
    // A Go peer asks its own peers over UDP (for up to 2 s) before it answers a narinfo it lacks, so a
    // lookup for a hash no one has is no measure of it, and would set it asking its whole LAN each time.
    const url = peer.url;
    const clock = this.health.clock;
    const endLag = this.health.lag.hold();
    const asked = clock.now();
    const rtt = await this.opts.client.probe(url, this.opts.healthTimeoutMs, peer.dialect !== 'go').finally(endLag);
    const ok = rtt !== null;
    // A probe of an address the peer has since moved from says nothing of it.
    if (this.peers.get(peer.id) !== peer || peer.url !== url) return;
    // Nor does one that failed while our own loop was stalled (a loaded machine): no flapping for it.
    if (!ok && this.health.wasAway(peer, asked, clock.now(), this.opts.healthTimeoutMs)) return;
    // Answered as a cache: proved its identity, or answered as a Go host does. Any HTTP server would
    // answer a probe, so an announcement pointing at one is no reason to probe it every round.
    if (ok && (peer.verified || peer.dialect === 'go')) this.schedule.answeredAsCache(peer);
    else this.schedule.notACache(peer, clock.now());
    const before = peer.state;
    this.health.probed(peer, ok, ok ? Math.round(rtt * 100) / 100 : null);
    this.afterCheck(peer, before);
    if (ok) this.emit('changed');
  }
}
