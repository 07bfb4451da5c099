// Finding other Peernix instances on the LAN with mDNS/DNS-SD (`_peernix._tcp`), and announcing
// ourselves while sharing. Everything a record says is hostile input: the TXT record goes through
// decodeTxt, only addresses on a local network are accepted, and the number of peers is bounded.
//
// Events: 'up' (peer) when a service becomes usable *or changes* (address, port, TXT); 'down' (id, key)
// on a goodbye, when a service no longer has a usable address, expires or is evicted; 'error'.
// Each service is reported on its own, keyed by its name (`key`): two services may claim one instance
// id, and only the registry, which asks each to prove its key, can tell the genuine one.
// bonjour-service never notices a peer that died without a goodbye: entries expire here when not heard
// from (service-table.ts), and the peer registry health-checks what is left.
// Go peernix hosts (zw3rk/peernix) announce the same type with their own TXT record (decodeGoTxt) and
// all under the one instance name "peernix", so one name stands for many hosts: they are read from
// the raw responses, keyed by the address that sent them and their port (go-peer.ts), and held to
// the same table and quotas as everyone else.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import Bonjour from 'bonjour-service';
import { isLocalAddress, type Interfaces } from './local-address.ts';
import type { Browser, Service } from 'bonjour-service';
import { ServiceTable, type TableEntry } from './service-table.ts';
import { decodeGoTxt, decodeTxt, encodeTxt } from './txt-record.ts';
import type { Announcement, GoTxtAnnouncement, TxtAnnouncement } from './txt-record.ts';
import { goPeerId, goPeerName, goPeerUrl } from './go-peer.ts';
import type { PeerInfo } from './registry.ts';

/** A peer as one announced service describes it: the id and key are claims until proven (registry). */
export type DiscoveredPeer = Omit<PeerInfo, 'source' | 'key'> & {
  key: string; // the service's name (lower-cased fqdn): what tells two claimants of one id apart
};

export interface MdnsDiscoveryOptions {
  self: Announcement;
  hostName?: string; // unique mDNS host name for this instance; ".local" is appended when missing
  maxPeers?: number; // default 64
  maxPerSource?: number; // services one announcing address may hold in the table (default maxPeers / 4)
  /** Whether this service's claim has been proven (the registry verified its key): never evicted for a newcomer. */
  isProven?: (peer: DiscoveredPeer) => boolean;
  expiryCheckMs?: number; // how often expired services are swept (default 5 s)
  interface?: string; // interface name ("eth0") or its IPv4 address: mDNS and peers only there
  isLocalAddress?: (addr: string) => boolean;
  publish?: boolean; // announce as soon as start() runs, as if publish() had been called
  requeryMs?: number; // re-ask the network this often (default 60 s; 0 = never)
  addressCheckMs?: number; // re-announce when our addresses change, checked this often (default 5 s; 0 = never)
}

export interface MdnsDiscoveryEvents {
  up: [peer: DiscoveredPeer];
  down: [id: string, key: string];
  error: [err: Error];
}

export const SERVICE_TYPE = 'peernix';
export { isLocalAddress };

const MAX_ADDRESSES_PER_FAMILY = 16;
const MAX_HOST_CHARS = 255;
const MAX_RECORDS_PER_PACKET = 256;
const ADDRESS_QUERY_INTERVAL_MS = 10_000;
const UNPUBLISH_TIMEOUT_MS = 2000;
const MAX_LIFETIME_MS = 10 * 60_000;

// What we know about one announced service (keyed by its lower-cased fqdn).
interface Tracked extends TableEntry {
  go: GoTxtAnnouncement | null; // a Go peernix: keyed by source address and port, its address is the source
  host: string; // SRV target, lower-cased
  port: number;
  txt: TxtAnnouncement;
  v4: string[];
  v6: string[];
  // `source`: where its last packet came from; preferred among its addresses, and its quota bucket
  peer: DiscoveredPeer | null; // what we last reported as 'up'
  addressQueriedAt: number;
}

// The parts of bonjour-service 1.4.4 its typings keep private but we need: the multicast-dns
// instance (to catch its 'error' events, which would otherwise crash the process, and to see host
// address records the Browser ignores) and the raw TXT strings (its own TXT decoder is lossy).
interface MdnsSocket {
  on(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  query(name: string, type: string): void;
}
interface RawRecord {
  name?: unknown;
  type?: unknown;
  ttl?: unknown;
  data?: unknown;
}

// ---- names we announce ----

function dnsLabel(text: string, max: number, fallback: string): string {
  const label = text
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/, '');
  return label || fallback;
}

// Instance and host names carry part of the instance id so two machines never claim one name.
function serviceName(self: Announcement): string {
  return `${dnsLabel(self.name, 40, 'peernix')}-${self.instanceId.slice(0, 8)}`;
}

// One DNS-safe label + ".local" (a user's display name may be passed in, spaces and all).
function mdnsHostName(self: Announcement, hostName: string | undefined): string {
  const fallback = `${dnsLabel(os.hostname(), 40, 'peernix')}-${self.instanceId.slice(0, 8)}`;
  const base = hostName === undefined ? fallback : hostName.replace(/\.local\.?$/i, '');
  return `${dnsLabel(base, 63, fallback)}.local`;
}

function interfaceIPv4(name: string): string | null {
  if (net.isIPv4(name)) return name;
  const found = (os.networkInterfaces()[name] ?? []).find((i) => i.family === 'IPv4');
  return found ? found.address : null;
}

// The addresses bonjour-service would put in our A/AAAA records, as one comparable string.
function addressSignature(ifaces: Interfaces): string {
  const out: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const i of list ?? []) if (!i.internal && i.mac !== '00:00:00:00:00:00') out.push(i.address);
  }
  return out.sort().join(' ');
}

function samePeer(a: DiscoveredPeer, b: DiscoveredPeer): boolean {
  return (
    a.key === b.key &&
    a.id === b.id &&
    a.name === b.name &&
    a.address === b.address &&
    a.port === b.port &&
    a.publicKey === b.publicKey &&
    a.platform === b.platform
  );
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class MdnsDiscovery extends EventEmitter<MdnsDiscoveryEvents> {
  private readonly announcement: Announcement;
  private readonly ownTxt: Record<string, string>;
  private readonly serviceName: string;
  private readonly ownHostName: string;
  private readonly maxPeers: number;
  private readonly interface: string | undefined;
  private readonly customIsLocal: ((addr: string) => boolean) | undefined;
  private readonly interfaceName: string | undefined; // peers only on this interface's networks
  private readonly requeryMs: number;
  private readonly addressCheckMs: number;
  private readonly tracked: ServiceTable<Tracked>;
  private readonly isProven: ((peer: DiscoveredPeer) => boolean) | undefined;
  private readonly expiryCheckMs: number;
  private expiryCheck: NodeJS.Timeout | null = null;
  private ownFqdn: string;
  /** When our own announcement was last seen on the network (null: never yet). */
  ownSeenAt: number | null = null;
  private wantPublished: boolean;
  private bonjour: Bonjour | null = null;
  private mdns: MdnsSocket | null = null;
  private browser: Browser | null = null;
  private service: Service | null = null;
  private requery: NodeJS.Timeout | null = null;
  private addressCheck: NodeJS.Timeout | null = null;
  private interfaces: Interfaces = {};
  private interfacesReadAt = 0;
  private addressesSeen = '';
  private publishedAddresses = '';
  private republishing: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | null = null;

  constructor(opts: MdnsDiscoveryOptions) {
    super();
    const self = opts.self;
    this.ownTxt = encodeTxt(self); // validates the instance id and protocol
    // 0: the share listener's port is not known yet; publish(port) supplies it.
    if (!Number.isInteger(self.port) || self.port < 0 || self.port > 65535) {
      throw new RangeError('mdns: port must be 0–65535');
    }
    this.announcement = { ...self };
    this.serviceName = serviceName(self);
    this.ownHostName = mdnsHostName(self, opts.hostName);
    this.ownFqdn = `${this.serviceName}._${SERVICE_TYPE}._tcp.local`.toLowerCase();
    this.maxPeers = Math.max(0, Math.floor(opts.maxPeers ?? 64));
    this.interface = opts.interface;
    this.customIsLocal = opts.isLocalAddress;
    this.interfaceName = opts.interface !== undefined && !net.isIP(opts.interface) ? opts.interface : undefined;
    this.requeryMs = opts.requeryMs ?? 60_000;
    this.addressCheckMs = opts.addressCheckMs ?? 5000;
    this.wantPublished = opts.publish === true;
    this.isProven = opts.isProven;
    this.expiryCheckMs = opts.expiryCheckMs ?? 5000;
    // A live service answers every query round; two missed rounds (or its TTL, if longer) and it is gone.
    const rounds = this.requeryMs > 0 ? 2 * this.requeryMs + 5000 : 125_000;
    this.tracked = new ServiceTable<Tracked>({
      max: this.maxPeers,
      perSource: Math.max(1, Math.floor(opts.maxPerSource ?? Math.max(4, this.maxPeers / 4))),
      standing: (key) => this.standingOf(key),
      minLifetimeMs: Math.min(rounds, MAX_LIFETIME_MS),
      maxLifetimeMs: MAX_LIFETIME_MS,
      staleMs: (this.requeryMs > 0 ? this.requeryMs : 60_000) + 5000,
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

  get hostName(): string {
    return this.ownHostName;
  }

  start(): void {
    if (this.stopping) throw new Error('mdns: discovery was stopped');
    if (this.bonjour) return;

    const mdnsOpts: Record<string, unknown> = {};
    if (this.interface !== undefined) {
      const ip = interfaceIPv4(this.interface);
      if (!ip) throw new Error(`mdns: interface ${this.interface} has no IPv4 address`);
      // Binding to the unicast address would filter out multicast on Linux: bind wide, send/join on ip.
      Object.assign(mdnsOpts, { interface: ip, bind: '0.0.0.0' });
    }
    const bonjour = new Bonjour(mdnsOpts, (err: unknown) => this.fail(err));
    this.bonjour = bonjour;
    const mdns = (bonjour as unknown as { server?: { mdns?: MdnsSocket } }).server?.mdns ?? null;
    this.mdns = mdns;
    // Unhandled, multicast-dns's 'error' (EADDRINUSE, EACCES) would throw out of the event loop.
    mdns?.on('error', this.onSocketError);
    mdns?.on('warning', this.onWarning);

    const browser = bonjour.find({ type: SERVICE_TYPE, protocol: 'tcp' });
    this.browser = browser;
    browser.on('up', this.onService);
    browser.on('srv-update', this.onService);
    browser.on('txt-update', this.onService);
    browser.on('down', this.onGoodbye);
    // After the browser, so a goodbye packet has removed the service before its addresses are read.
    mdns?.on('response', this.onResponse);

    if (this.requeryMs > 0) {
      this.requery = setInterval(() => this.browser?.update(), this.requeryMs);
      this.requery.unref();
    }
    if (this.expiryCheckMs > 0) {
      this.expiryCheck = setInterval(() => this.expireNow(), this.expiryCheckMs);
      this.expiryCheck.unref();
    }
    if (this.addressCheckMs > 0) {
      this.addressesSeen = this.readInterfaces();
      this.addressCheck = setInterval(() => this.followNetworkChanges(), this.addressCheckMs);
      this.addressCheck.unref();
    }
    if (this.wantPublished) this.publishNow();
  }

  // `port`: the share listener's port, when it is only known now or has changed since.
  publish(port?: number): void {
    if (this.stopping) return;
    this.wantPublished = true;
    if (port !== undefined && port !== this.announcement.port) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError('mdns: port must be 1–65535');
      this.announcement.port = port;
      if (this.service) {
        this.republish();
        return;
      }
    }
    if (this.bonjour) this.publishNow();
  }

  unpublish(): Promise<void> {
    this.wantPublished = false;
    return this.withdraw();
  }

  private withdraw(): Promise<void> {
    const bonjour = this.bonjour;
    if (!bonjour || !this.service) return Promise.resolve();
    this.service = null;
    return new Promise((resolve) => {
      // The callback runs once the goodbye packet (every record with TTL 0) has been handed to the socket.
      const timer = setTimeout(resolve, UNPUBLISH_TIMEOUT_MS);
      bonjour.unpublishAll(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      if (this.requery) clearInterval(this.requery);
      if (this.addressCheck) clearInterval(this.addressCheck);
      if (this.expiryCheck) clearInterval(this.expiryCheck);
      this.expiryCheck = null;
      this.requery = null;
      this.addressCheck = null;
      await this.unpublish();
      this.browser?.stop();
      this.browser?.removeAllListeners();
      this.mdns?.removeListener('response', this.onResponse);
      const bonjour = this.bonjour;
      // The socket's 'error' listener stays: a late error after close must not crash anything either.
      if (bonjour) await new Promise<void>((resolve) => bonjour.destroy(() => resolve()));
      this.tracked.clear();
    })();
    return this.stopping;
  }

  peers(): DiscoveredPeer[] {
    const out: DiscoveredPeer[] = [];
    for (const t of this.tracked.values()) if (t.peer) out.push({ ...t.peer });
    return out;
  }

  private publishNow(): void {
    if (!this.bonjour || this.service || this.stopping) return;
    if (this.announcement.port === 0) {
      this.fail(new Error('mdns: cannot announce before the share port is known'));
      return;
    }
    this.publishedAddresses = addressSignature(os.networkInterfaces());
    // No probing: the name embeds our instance id, so a conflict means someone is impersonating us,
    // and bonjour-service's reaction to one (console.log and give up) would let anyone silence us.
    this.service = this.bonjour.publish({
      name: this.serviceName,
      type: SERVICE_TYPE,
      protocol: 'tcp',
      port: this.announcement.port,
      host: this.ownHostName,
      txt: this.ownTxt,
      probe: false,
    });
    this.service.on('error', (err: unknown) => this.fail(err));
  }

  // Returns the signature of all our addresses; keeps the interfaces that decide what is local.
  private readInterfaces(): string {
    const all = os.networkInterfaces();
    this.interfaces = this.interfaceName === undefined ? all : { [this.interfaceName]: all[this.interfaceName] ?? [] };
    this.interfacesReadAt = Date.now();
    return addressSignature(all);
  }

  private isLocal(addr: string): boolean {
    if (this.customIsLocal) return this.customIsLocal(addr) === true;
    // Re-read at most every couple of seconds: a flood of records must not mean a flood of syscalls.
    if (Date.now() - this.interfacesReadAt > 2000) this.readInterfaces();
    return isLocalAddress(addr, this.interfaces);
  }

  // After a network change (a laptop moving, DHCP), what counts as local changes, peers on the new
  // network should be asked for at once, and our own announcement must carry the new addresses:
  // bonjour-service puts the addresses of the moment into its records and never revisits them.
  private followNetworkChanges(): void {
    const seen = this.readInterfaces();
    if (seen !== this.addressesSeen) {
      this.addressesSeen = seen;
      try {
        for (const t of [...this.tracked.values()]) this.evaluate(t);
        this.browser?.update();
      } catch (err) {
        this.fail(err);
      }
    }
    if (!this.service || seen === this.publishedAddresses) return;
    this.publishedAddresses = seen; // so the next check does not queue another round
    this.republish();
  }

  // Goodbye for the old records, then the new ones; rounds never overlap.
  private republish(): void {
    this.republishing = this.republishing.then(async () => {
      try {
        await this.withdraw();
        if (this.wantPublished) this.publishNow();
      } catch (err) {
        this.fail(err);
      }
    });
  }

  private fail(err: unknown): void {
    // An 'error' with no listener would throw; discovery trouble must not take the daemon down.
    if (this.listenerCount('error') > 0) this.emit('error', toError(err));
  }

  private readonly onSocketError = (err: unknown): void => this.fail(err);
  private readonly onWarning = (): void => {
    // Undecodable packets and per-interface multicast hiccups: expected on a real LAN.
  };

  private readonly onService = (service: Service): void => {
    try {
      this.consider(service);
      this.boundBrowserMemory();
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
      this.ownSeenAt = Date.now(); // proof that mDNS works here: our own announcement came back
      return;
    }

    const raw = (service as unknown as { rawTxt?: unknown }).rawTxt;
    const txt = decodeTxt(raw !== undefined ? raw : service.txt);
    const port = service.port;
    const host = service.host;
    const usable =
      txt !== null &&
      txt.instanceId !== this.announcement.instanceId &&
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
    const now = Date.now();
    const referer = service.referer?.address;
    if (!t) {
      const source = typeof referer === 'string' && net.isIP(referer) ? referer : null;
      const fresh: Tracked = { key, go: null, host: '', port, txt, v4: [], v6: [], source, peer: null, addressQueriedAt: 0, seenAt: now, expiresAt: now };
      const admission = this.tracked.admit(fresh);
      for (const gone of admission.evicted) this.drop(gone);
      if (!admission.admitted) {
        this.dropFromBrowser(key);
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
    this.setAddresses(t, addresses, [], referer);
    this.evaluate(t);
  }

  private expireNow(): void {
    try {
      for (const gone of this.tracked.expire(Date.now())) this.drop(gone);
    } catch (err) {
      this.fail(err);
    }
  }

  // An entry left the table (expired or evicted): report it, and make bonjour-service forget it too,
  // or the service's next announcement would not be news to its Browser and never reach us again.
  private drop(t: Tracked): void {
    this.dropFromBrowser(t.key);
    if (t.peer) this.emit('down', t.txt.instanceId, t.key);
  }

  private dropFromBrowser(key: string): void {
    const services = this.browser?.services;
    if (!Array.isArray(services)) return;
    const i = services.findIndex((s) => typeof s.fqdn === 'string' && s.fqdn.toLowerCase() === key);
    if (i === -1) return;
    const fqdn = services[i].fqdn;
    services.splice(i, 1);
    const internals = this.browser as unknown as { serviceMap?: Record<string, boolean> };
    if (internals.serviceMap && typeof internals.serviceMap === 'object') delete internals.serviceMap[fqdn];
  }

  // Replaces a family's list when a packet carries addresses of that family; a TTL-0 record withdraws one.
  private setAddresses(t: Tracked, fresh: unknown[], withdrawn: string[], source: unknown): void {
    const v4: string[] = [];
    const v6: string[] = [];
    for (const a of fresh) {
      if (typeof a !== 'string') continue;
      const family = net.isIP(a);
      if (family === 4 && v4.length < MAX_ADDRESSES_PER_FAMILY && !v4.includes(a)) v4.push(a);
      if (family === 6 && v6.length < MAX_ADDRESSES_PER_FAMILY && !v6.includes(a)) v6.push(a);
    }
    if (v4.length > 0) t.v4 = v4;
    if (v6.length > 0) t.v6 = v6;
    if (withdrawn.length > 0) {
      t.v4 = t.v4.filter((a) => !withdrawn.includes(a));
      t.v6 = t.v6.filter((a) => !withdrawn.includes(a));
    }
    if (typeof source === 'string' && net.isIP(source)) t.source = source;
  }

  private chooseAddress(t: Tracked): string | null {
    const ok = (a: string): boolean => {
      try {
        return this.isLocal(a);
      } catch {
        return false;
      }
    };
    if (t.source && (t.v4.includes(t.source) || t.v6.includes(t.source)) && ok(t.source)) return t.source;
    return t.v4.find(ok) ?? t.v6.find(ok) ?? null;
  }

  private evaluate(t: Tracked): void {
    const address = this.chooseAddress(t);
    if (!address) {
      if (t.peer) {
        t.peer = null;
        this.emit('down', t.txt.instanceId, t.key);
      }
      this.askForAddress(t);
      return;
    }
    const peer: DiscoveredPeer = t.go
      ? // Its claimed key is left out: it can prove nothing (and every Go host names its key peernix-1).
        { key: t.key, id: t.txt.instanceId, name: goPeerName(address), address, port: t.port, url: goPeerUrl(address, t.port), publicKey: null, platform: t.go.platform, dialect: 'go' }
      : {
          key: t.key,
          id: t.txt.instanceId,
          name: t.txt.name ?? t.txt.instanceId,
          address,
          port: t.port,
          url: net.isIPv6(address) ? `http://[${address}]:${t.port}` : `http://${address}:${t.port}`,
          publicKey: t.txt.publicKey,
          platform: t.txt.platform,
        };
    if (t.peer && samePeer(t.peer, peer)) return;
    t.peer = peer;
    this.emit('up', { ...peer });
  }

  // A service whose host address records did not come with it (they may travel in another packet): ask.
  private askForAddress(t: Tracked): void {
    const now = Date.now();
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
    if (t.peer) this.emit('down', t.txt.instanceId, t.key);
  }

  // bonjour-service's Browser only compares name/host/port when a known service answers again, so a
  // host whose address changed would keep its old one; host address records are read here instead.
  private readonly onResponse = (packet: unknown, rinfo: unknown): void => {
    try {
      if (packet === null || typeof packet !== 'object') return;
      const p = packet as { answers?: unknown; additionals?: unknown };
      const records = [
        ...(Array.isArray(p.answers) ? p.answers : []),
        ...(Array.isArray(p.additionals) ? p.additionals : []),
      ].slice(0, MAX_RECORDS_PER_PACKET) as RawRecord[];
      this.considerGo(records, (rinfo as { address?: unknown } | null)?.address);
      if (this.tracked.size === 0) return;
      const byHost = new Map<string, { fresh: string[]; withdrawn: string[] }>();
      const now = Date.now();
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
        this.setAddresses(t, entry.fresh, entry.withdrawn, entry.fresh.length > 0 ? source : undefined);
        this.evaluate(t);
      }
    } catch (err) {
      this.fail(err);
    }
  };

  // Go peernix services in one response: an SRV of our type with a Go TXT record beside it (hashicorp/mdns
  // sends PTR, SRV, A, AAAA and TXT together). The sender's address is the peer's: its A record names
  // whatever its host name resolves to there, and its instance name is the same on every Go host.
  private considerGo(records: RawRecord[], rawSource: unknown): void {
    if (typeof rawSource !== 'string' || !net.isIP(rawSource)) return;
    const source = rawSource.startsWith('::ffff:') && net.isIPv4(rawSource.slice(7)) ? rawSource.slice(7) : rawSource;
    const suffix = `._${SERVICE_TYPE}._tcp.local`;
    const now = Date.now();
    for (const rr of records) {
      if (!rr || rr.type !== 'SRV' || typeof rr.name !== 'string' || typeof rr.ttl !== 'number') continue;
      const name = rr.name.toLowerCase();
      if (!name.endsWith(suffix) || name === this.ownFqdn) continue;
      const port = (rr.data as { port?: unknown } | null)?.port;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
      const key = goPeerId(source, port);
      const known = this.tracked.get(key);
      if (rr.ttl === 0) {
        if (known) this.forget(key);
        continue;
      }
      const txt = records.find((x) => x && x.type === 'TXT' && typeof x.name === 'string' && x.name.toLowerCase() === name);
      const go = txt ? decodeGoTxt(txt.data) : null;
      if (!go) {
        if (known && !txt) this.tracked.touch(known, now, rr.ttl); // its SRV alone: still there
        continue;
      }
      if (!known && !this.isLocal(source)) continue;
      this.trackGo(key, source, port, go, rr.ttl, now);
    }
  }

  private trackGo(key: string, source: string, port: number, go: GoTxtAnnouncement, ttl: number, now: number): void {
    let t = this.tracked.get(key);
    if (!t) {
      const txt: TxtAnnouncement = { protocol: 0, instanceId: key, name: null, publicKey: null, platform: go.platform };
      const family = net.isIP(source);
      const fresh: Tracked = { key, go, host: '', port, txt, v4: family === 4 ? [source] : [], v6: family === 6 ? [source] : [], source, peer: null, addressQueriedAt: 0, seenAt: now, expiresAt: now };
      const admission = this.tracked.admit(fresh);
      for (const gone of admission.evicted) this.drop(gone);
      if (!admission.admitted) return;
      t = fresh;
    }
    this.tracked.touch(t, now, ttl);
    t.go = go;
    t.txt.platform = go.platform;
    this.evaluate(t);
  }

  // The Browser keeps every service it ever saw (and a name map it never prunes). Trim what we do not
  // track so a flood of announcements cannot grow memory without bound.
  private boundBrowserMemory(): void {
    const services = this.browser?.services;
    if (!Array.isArray(services) || services.length <= this.maxPeers * 2 + 16) return;
    const keep = services.filter((s) => typeof s.fqdn === 'string' && this.tracked.get(s.fqdn.toLowerCase()) !== undefined);
    services.splice(0, services.length, ...keep);
    const internals = this.browser as unknown as { serviceMap?: Record<string, boolean> };
    if (internals.serviceMap && typeof internals.serviceMap === 'object') {
      internals.serviceMap = Object.fromEntries(keep.map((s) => [s.fqdn, true]));
    }
  }
}

