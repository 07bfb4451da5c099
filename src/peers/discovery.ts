// Finding other Peernix instances on the LAN with mDNS/DNS-SD (`_peernix._tcp`), and announcing
// ourselves while sharing: one Bonjour instance and its socket, shared by the announcer
// (mdns-announcer.ts) and the browser (mdns-browser.ts, with Go peers from go-records.ts).
//
// Events: 'up' (peer) when a service becomes usable *or changes* (address, port, TXT); 'down' (id, key)
// on a goodbye, when a service no longer has a usable address, expires or is evicted; 'error'.
// Each service is reported on its own, keyed by its name (`key`): two services may claim one instance
// id, and only the registry, which asks each to prove its key, can tell the genuine one.
// bonjour-service never notices a peer that died without a goodbye: entries expire here when not heard
// from (service-table.ts), and the peer registry health-checks what is left.

import { processBeat } from '../base/beat.ts';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import Bonjour from 'bonjour-service';
import { isLocalAddress } from './local-address.ts';
import type { Announcement } from '../wire/txt-record.ts';
import { mdnsSocketOf, type MdnsSocket, takeOverInterfaceUpdates } from './bonjour-internals.ts';
import { SERVICE_TYPE, type DiscoveredPeer } from './discovered-service.ts';
import { LocalNetworks } from './local-networks.ts';
import { MdnsAnnouncer } from './mdns-announcer.ts';
import { shapeResponses } from './mdns-answer-order.ts';
import { QuerySignOfLife } from './query-sign-of-life.ts';
import { MdnsBrowser } from './mdns-browser.ts';
import { answerOnlyTheUnknown } from './mdns-known-answers.ts';

export interface MdnsDiscoveryOptions {
  self: Announcement;
  hostName?: string; // unique mDNS host name for this instance; ".local" is appended when missing
  maxPeers?: number; // default 64
  maxPerSource?: number; // services one announcing address may hold in the table (default maxPeers / 4)
  /** Whether this service's claim has been proven (the registry verified its key): never evicted for a newcomer. */
  isProven?: (peer: DiscoveredPeer) => boolean;
  /** Whether the service `key`'s peer answers over HTTP now (the registry): kept, and listed as a known answer. */
  isLive?: (key: string) => boolean;
  expiryCheckMs?: number; // how often expired services are swept (default 6 s)
  interface?: string; // interface name ("eth0") or its IPv4 address: mDNS and peers only there
  isLocalAddress?: (addr: string) => boolean;
  publish?: boolean; // announce as soon as start() runs, as if publish() had been called
  requeryMs?: number; // re-ask the network this often (default 60 s; 0 = never)
  addressCheckMs?: number; // re-announce when our addresses change, checked this often (default 6 s; 0 = never)
}

export interface MdnsDiscoveryEvents {
  up: [peer: DiscoveredPeer];
  down: [id: string, key: string];
  error: [err: Error];
}

export { SERVICE_TYPE, isLocalAddress, type DiscoveredPeer };

function interfaceIPv4(name: string): string | null {
  if (net.isIPv4(name)) return name;
  const found = (os.networkInterfaces()[name] ?? []).find((i) => i.family === 'IPv4');
  return found ? found.address : null;
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class MdnsDiscovery extends EventEmitter<MdnsDiscoveryEvents> {
  private readonly announcer: MdnsAnnouncer;
  private readonly browser: MdnsBrowser;
  private readonly networks: LocalNetworks;
  private readonly interface: string | undefined;
  private readonly requeryMs: number;
  private readonly addressCheckMs: number;
  private readonly expiryCheckMs: number;
  /** When our own announcement was last seen on the network (null: never yet). */
  ownSeenAt: number | null = null;
  private bonjour: Bonjour | null = null;
  private mdns: MdnsSocket | null = null;
  private readonly stopChores: (() => void)[] = [];
  /** multicast-dns's join of the mDNS group on every interface, once its own timer is gone. */
  private joinInterfaces: (() => void) | null = null;
  private addressesSeen = '';
  private signOfLife: QuerySignOfLife | null = null;
  private stopping: Promise<void> | null = null;

  constructor(opts: MdnsDiscoveryOptions) {
    super();
    this.announcer = new MdnsAnnouncer(opts.self, opts.hostName, opts.publish === true, (err) => this.fail(err));
    this.interface = opts.interface;
    this.networks = new LocalNetworks(opts.interface, opts.isLocalAddress);
    this.requeryMs = opts.requeryMs ?? 60_000;
    // 6 s, not 5: on the 2 s grid of the process's other chores (base/beat.ts).
    this.addressCheckMs = opts.addressCheckMs ?? 6000;
    this.expiryCheckMs = opts.expiryCheckMs ?? 6000;
    this.browser = new MdnsBrowser({
      ownFqdn: this.announcer.fqdn,
      ownInstanceId: opts.self.instanceId,
      maxPeers: Math.max(0, Math.floor(opts.maxPeers ?? 64)),
      maxPerSource: opts.maxPerSource,
      isProven: opts.isProven,
      isLive: opts.isLive,
      requeryMs: this.requeryMs,
      networks: this.networks,
      up: (peer) => this.emit('up', peer),
      down: (id, key) => this.emit('down', id, key),
      ownSeen: () => {
        this.ownSeenAt = Date.now();
      },
      fail: (err) => this.fail(err),
    });
  }

  get hostName(): string {
    return this.announcer.hostName;
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
    const mdns = mdnsSocketOf(bonjour);
    this.mdns = mdns;
    // Its own 5 s interface timer gives way to our address check (followNetworkChanges).
    if (mdns && this.addressCheckMs > 0) this.joinInterfaces = takeOverInterfaceUpdates(mdns);
    // Unhandled, multicast-dns's 'error' (EADDRINUSE, EACCES) would throw out of the event loop.
    mdns?.on('error', this.onSocketError);
    mdns?.on('warning', this.onWarning);
    // Address records last-A and current, for Go clients and after an address leaves (mdns-answer-order.ts).
    shapeResponses(mdns);
    // Before any listener of ours: only bonjour-service's responder is wrapped.
    answerOnlyTheUnknown(mdns, `_${SERVICE_TYPE}._tcp.local`, () => this.announcer.announcedFqdn());

    this.browser.attach(bonjour, mdns);
    // After the browser, so a goodbye packet has removed the service before its addresses are read.
    mdns?.on('response', this.onResponse);
    // A stranger browsing for us has probably just started: ask at once rather than at the next round.
    this.signOfLife = new QuerySignOfLife({
      serviceName: `_${SERVICE_TYPE}._tcp.local`,
      known: (a) => this.isOwnOrKnown(a),
      requery: () => this.browser.query(),
    });
    mdns?.on('query', this.onQuery);

    // On the process's beat (base/beat.ts): no wake-ups of their own (#26 idle cost).
    if (this.requeryMs > 0) this.stopChores.push(processBeat.every(this.requeryMs, () => this.browser.periodicQuery()));
    if (this.expiryCheckMs > 0) this.stopChores.push(processBeat.every(this.expiryCheckMs, () => this.browser.expire()));
    if (this.addressCheckMs > 0) {
      this.addressesSeen = this.networks.read();
      this.stopChores.push(processBeat.every(this.addressCheckMs, () => this.followNetworkChanges()));
    }
    this.announcer.attach(bonjour);
  }

  // `port`: the share listener's port, when it is only known now or has changed since.
  publish(port?: number): void {
    this.announcer.publish(port);
  }

  unpublish(): Promise<void> {
    return this.announcer.unpublish();
  }

  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      for (const stop of this.stopChores.splice(0)) stop();
      await this.announcer.stop();
      this.browser.detach();
      this.mdns?.removeListener('response', this.onResponse);
      this.mdns?.removeListener('query', this.onQuery);
      this.signOfLife?.stop();
      const bonjour = this.bonjour;
      // The socket's 'error' listener stays: a late error after close must not crash anything either.
      if (bonjour) await new Promise<void>((resolve) => bonjour.destroy(() => resolve()));
      this.browser.clear();
    })();
    return this.stopping;
  }

  peers(): DiscoveredPeer[] {
    return this.browser.peers();
  }

  // After a network change (a laptop moving, DHCP), what counts as local changes and our own
  // announcement must carry the new addresses.
  private followNetworkChanges(): void {
    const seen = this.networks.read();
    if (seen !== this.addressesSeen) {
      this.addressesSeen = seen;
      this.joinInterfaces?.();
      this.browser.networkChanged();
    }
    this.announcer.followAddresses(seen);
  }

  private fail(err: unknown): void {
    // An 'error' with no listener would throw; discovery trouble must not take the daemon down.
    if (this.listenerCount('error') > 0) this.emit('error', toError(err));
  }

  private readonly onSocketError = (err: unknown): void => this.fail(err);
  private readonly onWarning = (): void => {
    // Undecodable packets and per-interface multicast hiccups: expected on a real LAN.
  };
  private readonly onResponse = (packet: unknown, rinfo: unknown): void => this.browser.readResponse(packet, rinfo);
  private readonly onQuery = (packet: unknown, rinfo: unknown): void => {
    this.browser.heardQuery(packet);
    this.signOfLife?.heard(packet, rinfo);
  };

  private isOwnOrKnown(address: string): boolean {
    const a = address.startsWith('::ffff:') ? address.slice(7) : address;
    for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) if (i.address === a) return true;
    return this.browser.peers().some((p) => p.address === a);
  }
}
