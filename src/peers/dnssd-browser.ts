import { EventEmitter } from 'node:events';
import net from 'node:net';
import type dnsPacket from 'dns-packet';
import type { Clock, TimerHandle } from '../base/clock.ts';
import { decodeTxt } from '../wire/txt-record.ts';
import { type DiscoveredPeer, samePeer, SERVICE_TYPE } from './discovered-service.ts';
import { dataOf, type Lookup } from './dns-lookup.ts';

// DNS-SD over unicast DNS (RFC 6763): `_peernix._tcp` browsed in the configured domains and in those the
// network advertises under its search domains (`b._dns-sd._udp.<domain>`, `lb._dns-sd._udp.<domain>`,
// §11): PTR → instances, SRV + TXT → port and claims, A/AAAA of the SRV target → the address. Each round
// is re-run when the shortest TTL it read runs out (clamped), so a record's change is seen within its TTL.
//
// Every answer is hostile input, as on mDNS:
//   - instances must lie in the domain browsed, SRV targets in a browsed domain (nothing points us
//     at a name elsewhere);
//   - at most `maxPeers` instances are followed — those already known first, so a zone that grows by
//     thousands of PTRs never pushes out a peer that was there — and at most MAX_DOMAINS domains;
//   - addresses that cannot be a peer across a router (loopback, link-local, multicast) are dropped.
// A peer leaves when the DNS says so (its PTR gone, its SRV or TXT gone); a server that does not answer
// changes nothing, and the registry's health decides about a peer whose records outlived it.

const MAX_DOMAINS = 16;
const MAX_ADVERTISED = 8;
const CONCURRENCY = 4;

export interface DnsSdBrowserOptions {
  /** Domains browsed whatever the network says (the dnsSdDomains setting). */
  domains: string[];
  /** Search domains whose advertised browsing domains are browsed too (from resolv.conf). */
  searchDomains: string[];
  lookup: Lookup;
  ownInstanceId: string;
  clock: Clock;
  maxPeers?: number; // default 64
  minRefreshMs?: number; // default 2 s
  maxRefreshMs?: number; // default 5 min
  /** When nothing said how long an answer lasts (default 30 s). */
  defaultRefreshMs?: number;
  /**
   * The IP families (4, 6) this machine has routable addresses in now (default both): a peer's
   * address of one of them is preferred, so an IPv6-only machine reaches a dual-stack peer by its AAAA.
   */
  families?: () => ReadonlySet<number>;
}

export interface DnsSdBrowserEvents {
  up: [peer: DiscoveredPeer];
  down: [id: string, key: string];
  error: [err: Error];
}

export interface DnsSdBrowseState {
  /** The domains browsed in the last round (configured, then advertised). */
  domains: string[];
  /** Why the last round could not read everything; null when it could. */
  lastError: string | null;
  lastRoundAt: number | null; // clock ms
  found: number;
}

const lower = (n: string): string => n.toLowerCase().replace(/\.$/, '');

function within(name: string, domain: string): boolean {
  return name === domain || name.endsWith(`.${domain}`);
}

/** An address a peer on another subnet can be reached at. */
export function routableAddress(a: string): boolean {
  const family = net.isIP(a);
  if (family === 4) return !/^(0\.|127\.|169\.254\.|22[4-9]\.|2[3-5][0-9]\.)/.test(a);
  if (family === 6) return !/^(::1?$|fe[89ab][0-9a-f]:|ff|::ffff:)/i.test(a);
  return false;
}

export class DnsSdBrowser extends EventEmitter<DnsSdBrowserEvents> {
  private readonly opts: Required<DnsSdBrowserOptions>;
  private readonly known = new Map<string, DiscoveredPeer>(); // by instance name
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private minTtl: number | null = null;
  readonly state: DnsSdBrowseState = { domains: [], lastError: null, lastRoundAt: null, found: 0 };

  constructor(opts: DnsSdBrowserOptions) {
    super();
    this.opts = { maxPeers: 64, minRefreshMs: 2000, maxRefreshMs: 300_000, defaultRefreshMs: 30_000, families: () => new Set([4, 6]), ...opts };
  }

  start(): void {
    if (this.stopped || this.running) return;
    void this.round();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  peers(): DiscoveredPeer[] {
    return [...this.known.values()];
  }

  /** One browse of every domain; the next is scheduled by the TTLs read. Resolves when done. */
  round(): Promise<void> {
    this.running ??= this.browse().finally(() => {
      this.running = null;
      this.schedule();
    });
    return this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    const { minRefreshMs, maxRefreshMs, defaultRefreshMs } = this.opts;
    const ms = this.minTtl === null ? defaultRefreshMs : Math.min(maxRefreshMs, Math.max(minRefreshMs, this.minTtl * 1000));
    this.timer = this.opts.clock.setTimeout(() => void this.round(), ms);
    this.timer.unref?.();
  }

  private ttl(t: number | null): void {
    if (t !== null) this.minTtl = this.minTtl === null ? t : Math.min(this.minTtl, t);
  }

  private async browse(): Promise<void> {
    this.minTtl = null;
    const errors: string[] = [];
    const fail = (what: string, e: unknown): void => {
      if (errors.length < 4) errors.push(`${what}: ${(e as Error).message}`);
    };
    const domains = await this.domains(fail);
    this.state.domains = domains;

    // Instances per domain; a domain whose PTRs could not be read keeps what it had.
    const listed = new Map<string, string>(); // instance → domain
    const unread = new Set<string>();
    for (const domain of domains) {
      const service = `_${SERVICE_TYPE}._tcp.${domain}`;
      try {
        const r = await this.opts.lookup(service, 'PTR');
        this.ttl(r.ttl);
        for (const rec of r.records) {
          const data = dataOf(rec);
          const instance = typeof data === 'string' ? lower(data) : '';
          if (instance.endsWith(`.${service}`) && !instance.slice(0, -service.length - 1).includes('.')) listed.set(instance, domain);
        }
      } catch (e) {
        fail(service, e);
        unread.add(domain);
      }
    }
    // Known ones first: a flood of new names never displaces them.
    const order = [...listed.keys()].sort((a, b) => Number(this.known.has(b)) - Number(this.known.has(a)));
    const followed = order.slice(0, this.opts.maxPeers);

    const results = new Map<string, DiscoveredPeer | 'gone' | 'unknown'>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < followed.length && !this.stopped) {
        const instance = followed[next++];
        results.set(instance, await this.resolve(instance, domains, fail));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    if (this.stopped) return;

    for (const [instance, peer] of this.known) {
      const domain = instance.split('.').slice(3).join('.');
      if (unread.has(domain)) continue; // the DNS could not say: health decides meanwhile
      const gone = !domains.includes(domain) || !listed.has(instance) || results.get(instance) === 'gone';
      if (gone) {
        this.known.delete(instance);
        this.emit('down', peer.id, instance);
      }
    }
    for (const [instance, r] of results) {
      if (r === 'gone' || r === 'unknown') continue;
      const before = this.known.get(instance);
      if (before && samePeer(before, r)) continue;
      if (before && before.id !== r.id) this.emit('down', before.id, instance);
      this.known.set(instance, r);
      this.emit('up', r);
    }
    this.state.found = this.known.size;
    this.state.lastError = errors.length > 0 ? errors.join('; ') : null;
    this.state.lastRoundAt = this.opts.clock.now();
  }

  private async domains(fail: (what: string, e: unknown) => void): Promise<string[]> {
    const out = this.opts.domains.map(lower);
    const advertised: string[] = [];
    for (const search of this.opts.searchDomains.map(lower)) {
      for (const kind of ['b', 'lb']) {
        const name = `${kind}._dns-sd._udp.${search}`;
        try {
          const r = await this.opts.lookup(name, 'PTR');
          this.ttl(r.ttl);
          for (const rec of r.records) {
            const data = dataOf(rec);
            if (typeof data === 'string' && advertised.length < MAX_ADVERTISED) advertised.push(lower(data));
          }
        } catch (e) {
          fail(name, e);
        }
      }
    }
    for (const d of advertised) if (!out.includes(d) && d.length > 0) out.push(d);
    return out.slice(0, MAX_DOMAINS);
  }

  // The peer an instance describes; 'gone' when the DNS says it has no SRV or TXT, 'unknown' when
  // the DNS could not say (or said something unusable).
  private async resolve(instance: string, domains: string[], fail: (what: string, e: unknown) => void): Promise<DiscoveredPeer | 'gone' | 'unknown'> {
    try {
      const [srv, txt] = await Promise.all([this.opts.lookup(instance, 'SRV'), this.opts.lookup(instance, 'TXT')]);
      this.ttl(srv.ttl);
      this.ttl(txt.ttl);
      if (srv.state === 'empty' || txt.state === 'empty') return 'gone';
      const s = (srv.records[0] as dnsPacket.SrvAnswer).data;
      if (!s || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535 || typeof s.target !== 'string') return 'unknown';
      const target = lower(s.target);
      if (!domains.some((d) => within(target, d))) {
        fail(instance, new Error(`SRV target ${target.slice(0, 100)} is outside the browsed domains; ignored`));
        return 'unknown';
      }
      const claims = decodeTxt((txt.records[0] as dnsPacket.TxtAnswer).data);
      if (!claims || claims.instanceId === this.opts.ownInstanceId) return 'unknown';
      const address = await this.address(target);
      if (!address) return 'unknown';
      const port = s.port;
      return {
        key: instance,
        id: claims.instanceId,
        name: claims.name ?? claims.instanceId,
        address,
        port,
        url: net.isIPv6(address) ? `http://[${address}]:${port}` : `http://${address}:${port}`,
        publicKey: claims.publicKey,
        platform: claims.platform,
      };
    } catch (e) {
      fail(instance, e);
      return 'unknown';
    }
  }

  private async address(target: string): Promise<string | null> {
    const order = this.opts.families().has(4) ? (['A', 'AAAA'] as const) : (['AAAA', 'A'] as const);
    for (const type of order) {
      const r = await this.opts.lookup(target, type);
      this.ttl(r.ttl);
      const found = r.records.map(dataOf).find((d): d is string => typeof d === 'string' && routableAddress(d));
      if (found) return found;
    }
    return null;
  }
}
