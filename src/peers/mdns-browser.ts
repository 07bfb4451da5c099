import net from 'node:net';
import type Bonjour from 'bonjour-service';
import type { Browser, Service } from 'bonjour-service';
import { ServiceTable } from './service-table.ts';
import { decodeTxt, type GoTxtAnnouncement } from '../wire/txt-record.ts';
import { forgetInBrowser, trimBrowser, txtOf, type MdnsSocket, type RawRecord } from './bonjour-internals.ts';
import { SERVICE_TYPE, announcedPeer, chooseAddress, samePeer, setAddresses, type DiscoveredPeer, type Tracked } from './discovered-service.ts';
import { goEntry, goPeer, goServicesIn, type GoSighting } from './go-records.ts';
import type { LocalNetworks } from './local-networks.ts';
import { type Clock, systemClock } from '../base/clock.ts';
import { asksFor, knownAnswerQuery, knownIn, PTR_TTL_S, type KnownService } from './mdns-known-answers.ts';

// Browsing for other Peernix services and turning what they announce into peers. Everything a record
// says is hostile input: the TXT record goes through decodeTxt, only addresses on a local network are
// accepted, and the number of services held is bounded (service-table.ts).

const MAX_HOST_CHARS = 255;
const MAX_RECORDS_PER_PACKET = 256;
const ADDRESS_QUERY_INTERVAL_MS = 10_000;
const MAX_LIFETIME_MS = 10 * 60_000;
/** Known answers our query lists (about 64 bytes each). */
const MAX_KNOWN_ANSWERS = 20;

export interface MdnsBrowserOptions {
  ownFqdn: string;
  ownInstanceId: string;
  maxPeers: number;
  maxPerSource: number | undefined;
  isProven: ((peer: DiscoveredPeer) => boolean) | undefined;
  /** Whether the service's peer answers over HTTP now: it stays past its mDNS lifetime, and is a known answer. */
  isLive?: (key: string) => boolean;
  requeryMs: number;
  networks: LocalNetworks;
  up: (peer: DiscoveredPeer) => void;
  down: (id: string, key: string) => void;
  ownSeen: () => void; // our own announcement came back
  fail: (err: unknown) => void;
  /** Record lifetimes run on it (monotonic: a TTL must not outlive a wall clock set back). */
  clock?: Pick<Clock, 'now'>;
}

export class MdnsBrowser {
  private readonly ownFqdn: string;
  private readonly ownInstanceId: string;
  private readonly maxPeers: number;
  private readonly isProven: ((peer: DiscoveredPeer) => boolean) | undefined;
  private readonly isLive: (key: string) => boolean;
  private readonly requeryMs: number;
  /** When a query was last heard that brings every answer ours would (§7.3): ours waits a round. */
  private equivalentQueryAt = -Infinity;
  private readonly networks: LocalNetworks;
  private readonly up: (peer: DiscoveredPeer) => void;
  private readonly down: (id: string, key: string) => void;
  private readonly ownSeen: () => void;
  private readonly fail: (err: unknown) => void;
  private readonly tracked: ServiceTable<Tracked>;
  private mdns: MdnsSocket | null = null;
  private browser: Browser | null = null;

  private readonly clock: Pick<Clock, 'now'>;

  constructor(opts: MdnsBrowserOptions) {
    this.clock = opts.clock ?? systemClock;
    this.ownFqdn = opts.ownFqdn;
    this.ownInstanceId = opts.ownInstanceId;
    this.maxPeers = opts.maxPeers;
    this.isProven = opts.isProven;
    this.isLive = (key) => {
      try {
        return opts.isLive?.(key) === true;
      } catch {
        return false;
      }
    };
    this.requeryMs = opts.requeryMs;
    this.networks = opts.networks;
    this.up = opts.up;
    this.down = opts.down;
    this.ownSeen = opts.ownSeen;
    this.fail = opts.fail;
    // A live service answers every query round; two missed rounds (or its TTL, if longer) and it is gone.
    const rounds = opts.requeryMs > 0 ? 2 * opts.requeryMs + 5000 : 125_000;
    this.tracked = new ServiceTable<Tracked>({
      max: this.maxPeers,
      perSource: Math.max(1, Math.floor(opts.maxPerSource ?? Math.max(4, this.maxPeers / 4))),
      standing: (key) => this.standingOf(key),
      minLifetimeMs: Math.min(rounds, MAX_LIFETIME_MS),
      maxLifetimeMs: MAX_LIFETIME_MS,
      staleMs: (opts.requeryMs > 0 ? opts.requeryMs : 60_000) + 5000,
    });
  }

  private standingOf(key: string): number {
    const t = this.tracked.get(key);
    if (!t?.peer) return 0;
    try {
      return this.isProven?.({ ...t.peer }) === true ? 2 : 1;
    } catch {
      return 1;
    }
  }

  /** Starts browsing; `mdns` is the socket host address queries go out on. */
  attach(bonjour: Bonjour, mdns: MdnsSocket | null): void {
    this.mdns = mdns;
    const browser = bonjour.find({ type: SERVICE_TYPE, protocol: 'tcp' });
    this.browser = browser;
    browser.on('up', this.onService);
    browser.on('srv-update', this.onService);
    browser.on('txt-update', this.onService);
    browser.on('down', this.onGoodbye);
  }

  detach(): void {
    this.browser?.stop();
    this.browser?.removeAllListeners();
  }

  clear(): void {
    this.tracked.clear();
  }

  /** Asks the network for every service again, listing those we know alive (their hosts stay silent). */
  query(): void {
    if (!this.mdns) {
      this.browser?.update();
      return;
    }
    try {
      // One datagram under a common MTU: the services left out just answer.
      const known = this.knownAnswers().sort((a, b) => b.ttlS - a.ttlS);
      this.mdns.query(knownAnswerQuery(`_${SERVICE_TYPE}._tcp.local`, known.slice(0, MAX_KNOWN_ANSWERS)));
    } catch (err) {
      this.fail(err);
    }
  }

  /** The round's periodic query, unless another host's query asked for us within the round (RFC 6762 §7.3). */
  periodicQuery(): void {
    if (this.clock.now() - this.equivalentQueryAt < 0.9 * this.requeryMs) return;
    this.query();
  }

  /** A multicast-dns 'query' event (ours included: the loop brings it back). */
  heardQuery(packet: unknown): void {
    try {
      const type = `_${SERVICE_TYPE}._tcp.local`;
      if (!asksFor(packet, type)) return;
      const ours = new Set(this.knownAnswers().map((k) => k.fqdn));
      ours.add(this.ownFqdn);
      for (const fqdn of knownIn(packet, type).keys()) if (!ours.has(fqdn)) return;
      this.equivalentQueryAt = this.clock.now();
    } catch (err) {
      this.fail(err);
    }
  }

  // Services whose peers answer over HTTP, heard over mDNS within half their PTR TTL (RFC 6762 §7.1):
  // any other is left out, so its host answers and its entry is refreshed.
  private knownAnswers(): KnownService[] {
    const now = this.clock.now();
    const out: KnownService[] = [];
    for (const t of this.tracked.values()) {
      if (!t.peer || !this.isLive(t.key)) continue;
      const ttlS = PTR_TTL_S - (now - t.seenAt) / 1000;
      if (ttlS >= PTR_TTL_S / 2) out.push({ fqdn: t.key, ttlS });
    }
    return out;
  }

  peers(): DiscoveredPeer[] {
    const out: DiscoveredPeer[] = [];
    for (const t of this.tracked.values()) if (t.peer) out.push({ ...t.peer });
    return out;
  }

  expire(): void {
    try {
      for (const gone of this.tracked.expire(this.clock.now(), this.isLive)) this.drop(gone);
    } catch (err) {
      this.fail(err);
    }
  }

  // After a network change (a laptop moving, DHCP), what counts as local changes, and peers on the
  // new network should be asked for at once.
  networkChanged(): void {
    try {
      for (const t of [...this.tracked.values()]) this.evaluate(t);
      this.browser?.update();
    } catch (err) {
      this.fail(err);
    }
  }

  private readonly onService = (service: Service): void => {
    try {
      this.consider(service);
      // The Browser keeps every service it ever saw (and a name map it never prunes). Trim what we do
      // not track so a flood of announcements cannot grow memory without bound.
      trimBrowser(this.browser, this.maxPeers * 2 + 16, (key) => this.tracked.get(key) !== undefined);
    } catch (err) {
      this.fail(err);
    }
  };

  private readonly onGoodbye = (service: Service): void => {
    try {
      if (typeof service?.fqdn === 'string') this.forget(service.fqdn.toLowerCase());
    } catch (err) {
      this.fail(err);
    }
  };

  private consider(service: Service): void {
    if (typeof service.fqdn !== 'string') return;
    const key = service.fqdn.toLowerCase();
    if (key === this.ownFqdn) {
      this.ownSeen(); // proof that mDNS works here: our own announcement came back
      return;
    }

    const txt = decodeTxt(txtOf(service));
    const port = service.port;
    const host = service.host;
    const usable =
      txt !== null &&
      txt.instanceId !== this.ownInstanceId &&
      Number.isInteger(port) &&
      port >= 1 &&
      port <= 65535 &&
      typeof host === 'string' &&
      host.length > 0 &&
      host.length <= MAX_HOST_CHARS;
    if (!usable) {
      this.forget(key);
      return;
    }

    let t = this.tracked.get(key);
    if (t && t.txt.instanceId !== txt.instanceId) {
      // The same service now claims another identity: the old one is gone.
      this.forget(key);
      t = undefined;
    }
    // Several services may claim one instance id (a peer back from sleep under a new name, or an
    // impostor): each is reported on its own, and the registry decides by proof, not by arrival order.
    const now = this.clock.now();
    const referer = service.referer?.address;
    if (!t) {
      const source = typeof referer === 'string' && net.isIP(referer) ? referer : null;
      const fresh: Tracked = { key, go: null, host: '', port, txt, v4: [], v6: [], source, peer: null, addressQueriedAt: 0, seenAt: now, expiresAt: now };
      const admission = this.tracked.admit(fresh);
      for (const gone of admission.evicted) this.drop(gone);
      if (!admission.admitted) {
        forgetInBrowser(this.browser, key);
        return;
      }
      t = fresh;
    }
    this.tracked.touch(t, now);

    const hostKey = host.toLowerCase();
    if (t.host !== hostKey) {
      t.host = hostKey;
      t.v4 = [];
      t.v6 = [];
    }
    t.port = port;
    t.txt = txt;
    const addresses = Array.isArray(service.addresses) ? service.addresses : [];
    setAddresses(t, addresses, [], referer);
    this.evaluate(t);
  }

  // An entry left the table (expired or evicted): report it, and make bonjour-service forget it too,
  // or the service's next announcement would not be news to its Browser and never reach us again.
  private drop(t: Tracked): void {
    forgetInBrowser(this.browser, t.key);
    if (t.peer) this.down(t.txt.instanceId, t.key);
  }

  private evaluate(t: Tracked): void {
    const address = chooseAddress(t, (a) => this.networks.isLocal(a));
    if (!address) {
      if (t.peer) {
        t.peer = null;
        this.down(t.txt.instanceId, t.key);
      }
      this.askForAddress(t);
      return;
    }
    const peer = t.go ? goPeer(t, t.go, address) : announcedPeer(t, address);
    if (t.peer && samePeer(t.peer, peer)) return;
    t.peer = peer;
    this.up({ ...peer });
  }

  // A service whose host address records did not come with it (they may travel in another packet): ask.
  private askForAddress(t: Tracked): void {
    const now = this.clock.now();
    if (!this.mdns || now - t.addressQueriedAt < ADDRESS_QUERY_INTERVAL_MS) return;
    t.addressQueriedAt = now;
    try {
      this.mdns.query(t.host, 'A');
    } catch (err) {
      this.fail(err);
    }
  }

  private forget(key: string): void {
    const t = this.tracked.get(key);
    if (!t) return;
    this.tracked.delete(key);
    if (t.peer) this.down(t.txt.instanceId, t.key);
  }

  // bonjour-service's Browser only compares name/host/port when a known service answers again, so a
  // host whose address changed would keep its old one; host address records are read here instead.
  readResponse(packet: unknown, rinfo: unknown): void {
    try {
      if (packet === null || typeof packet !== 'object') return;
      const p = packet as { answers?: unknown; additionals?: unknown };
      const records = [...(Array.isArray(p.answers) ? p.answers : []), ...(Array.isArray(p.additionals) ? p.additionals : [])].slice(
        0,
        MAX_RECORDS_PER_PACKET,
      ) as RawRecord[];
      this.considerGo(records, (rinfo as { address?: unknown } | null)?.address);
      if (this.tracked.size === 0) return;
      const byHost = new Map<string, { fresh: string[]; withdrawn: string[] }>();
      const now = this.clock.now();
      for (const rr of records) {
        // A service answering again (our query round, or its own re-announcement) is still there.
        if (rr && rr.type === 'SRV' && typeof rr.name === 'string' && typeof rr.ttl === 'number' && rr.ttl > 0) {
          const t = this.tracked.get(rr.name.toLowerCase());
          if (t) this.tracked.touch(t, now, rr.ttl);
        }
        if (!rr || (rr.type !== 'A' && rr.type !== 'AAAA')) continue;
        if (typeof rr.name !== 'string' || typeof rr.data !== 'string' || typeof rr.ttl !== 'number') continue;
        const host = rr.name.toLowerCase();
        let entry = byHost.get(host);
        if (!entry) byHost.set(host, (entry = { fresh: [], withdrawn: [] }));
        (rr.ttl > 0 ? entry.fresh : entry.withdrawn).push(rr.data);
      }
      if (byHost.size === 0) return;
      const source = (rinfo as { address?: unknown } | null)?.address;
      for (const t of [...this.tracked.values()]) {
        const entry = byHost.get(t.host);
        if (!entry || t.go) continue;
        setAddresses(t, entry.fresh, entry.withdrawn, entry.fresh.length > 0 ? source : undefined);
        this.evaluate(t);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private considerGo(records: RawRecord[], rawSource: unknown): void {
    const now = this.clock.now();
    for (const s of goServicesIn(records, rawSource, this.ownFqdn)) {
      const known = this.tracked.get(s.key);
      if (s.ttl === 0) {
        if (known) this.forget(s.key);
        continue;
      }
      if (!s.go) {
        if (known && !s.withTxt) this.tracked.touch(known, now, s.ttl); // its SRV alone: still there
        continue;
      }
      if (!known && !this.networks.isLocal(s.source)) continue;
      this.trackGo(s, s.go, now);
    }
  }

  private trackGo(s: GoSighting, go: GoTxtAnnouncement, now: number): void {
    let t = this.tracked.get(s.key);
    if (!t) {
      const fresh = goEntry(s, go, now);
      const admission = this.tracked.admit(fresh);
      for (const gone of admission.evicted) this.drop(gone);
      if (!admission.admitted) return;
      t = fresh;
    }
    this.tracked.touch(t, now, s.ttl);
    t.go = go;
    t.txt.platform = go.platform;
    this.evaluate(t);
  }
}
