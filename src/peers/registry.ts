import { EventEmitter } from 'node:events';
import type { PeerState, PeerView } from '../api.ts';
import { freshHealth, PeerHealth, type HealthOptions, type PeerHealthFields } from './health.ts';
import type { PeerClient } from './peer-client.ts';

// Every peer we know of, from mDNS or --peer, with its liveness. bonjour-service never reports a
// crashed peer, so liveness is ours (health.ts): health probes, and what the peer answers to real
// requests — a failed or stalled one marks it suspect at once, so no lookup waits on it twice.

export interface PeerInfo {
  id: string;
  name: string;
  url: string;
  address: string;
  port: number;
  platform: string | null;
  publicKey: string | null;
  source: 'mdns' | 'static';
}

export interface Peer extends PeerInfo, PeerHealthFields {
  bytesFrom: number;
  bytesTo: number;
}

export interface RegistryOptions {
  client: PeerClient;
  maxPeers?: number;
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  badPeerMs?: number;
  health?: Partial<HealthOptions>;
  isTrusted: (publicKey: string | null) => boolean;
}

/** Events: 'up' (peer), 'down' (peer, reason), 'changed'. */
export class PeerRegistry extends EventEmitter {
  private readonly peers = new Map<string, Peer>();
  private readonly opts: Required<Omit<RegistryOptions, 'isTrusted' | 'client' | 'health' | 'badPeerMs'>> & Pick<RegistryOptions, 'isTrusted' | 'client'>;
  readonly health: PeerHealth<Peer>;
  private timer: NodeJS.Timeout | null = null;

  constructor(opts: RegistryOptions) {
    super();
    this.opts = { maxPeers: 64, healthIntervalMs: 2000, healthTimeoutMs: 800, ...opts };
    const healthOpts = { ...opts.health, ...(opts.badPeerMs !== undefined ? { badPeerMs: opts.badPeerMs } : {}) };
    this.health = new PeerHealth<Peer>(healthOpts, (peer, before, why) => {
      if (!this.peers.has(peer.id)) return;
      if (before !== 'up' && peer.state === 'up') this.emit('up', peer);
      if (before === 'up' && peer.state !== 'up') this.emit('down', peer, why);
      this.emit('changed');
    });
  }

  start(): void {
    this.timer ??= setInterval(() => void this.checkAll(), this.opts.healthIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Adds or updates a peer; it is asked only once a health probe has passed. */
  upsert(info: PeerInfo): void {
    const existing = this.peers.get(info.id);
    if (existing) {
      const moved = existing.url !== info.url;
      Object.assign(existing, info);
      if (moved) void this.check(existing);
      this.emit('changed');
      return;
    }
    if (this.peers.size >= this.opts.maxPeers) {
      // Keep room for live peers: drop a gone one if we can, else ignore the newcomer.
      const gone = [...this.peers.values()].find((p) => p.state === 'gone');
      if (!gone) return;
      this.peers.delete(gone.id);
    }
    const peer: Peer = { ...info, ...freshHealth(), bytesFrom: 0, bytesTo: 0 };
    this.peers.set(info.id, peer);
    this.emit('changed');
    void this.check(peer);
  }

  /** The peer said goodbye (mDNS) or was removed from the settings. */
  remove(id: string, reason = 'goodbye'): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    this.health.forget(peer);
    if (peer.state === 'up') this.emit('down', peer, reason);
    this.emit('changed');
  }

  get(id: string): Peer | undefined {
    return this.peers.get(id);
  }

  all(): Peer[] {
    return [...this.peers.values()];
  }

  /** Peers worth asking now: up, and not caught serving bad bytes recently. */
  live(): Peer[] {
    const now = Date.now();
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

  /** It answered a lookup in time, yes or no. */
  reportAnswer(peer: Peer): void {
    this.health.answered(peer);
  }

  /** A lookup to `peer` starts; see PeerHealth.track. */
  trackLookup(peer: Peer, abort: () => void): () => void {
    return this.health.track(peer, abort);
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
      trusted: this.opts.isTrusted(p.publicKey),
      rttMs: p.rttMs,
      state: p.badUntil > Date.now() && p.state === 'up' ? 'suspect' : p.state,
      bad: p.badUntil > Date.now() ? { since: p.badSince, until: p.badUntil, reason: p.badReason ?? 'served wrong bytes' } : null,
      source: p.source,
      bytesFrom: p.bytesFrom,
      bytesTo: p.bytesTo,
      lastSeen: p.lastSeen,
    }));
  }

  async checkAll(): Promise<void> {
    await Promise.all(this.all().map((p) => this.check(p)));
  }

  private async check(peer: Peer): Promise<void> {
    const t0 = performance.now();
    const ok = await this.opts.client.probe(peer.url, this.opts.healthTimeoutMs);
    if (!this.peers.has(peer.id)) return;
    this.health.probed(peer, ok, ok ? Math.round((performance.now() - t0) * 100) / 100 : null);
    if (ok) this.emit('changed');
  }
}
