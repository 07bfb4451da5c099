import os from 'node:os';
import type Bonjour from 'bonjour-service';
import type { Service } from 'bonjour-service';
import { encodeTxt, type Announcement } from '../wire/txt-record.ts';
import { SERVICE_TYPE } from './discovered-service.ts';
import { addressSignature } from './local-networks.ts';
import { settleOnce } from '../base/settle-once.ts';

// Announcing this machine's service while it shares, and announcing it anew (goodbye for the old
// records, then the new ones) when its port or its addresses change.

const UNPUBLISH_TIMEOUT_MS = 2000;

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

export class MdnsAnnouncer {
  private readonly announcement: Announcement;
  private readonly ownTxt: Record<string, string>;
  private readonly serviceName: string;
  readonly hostName: string;
  /** Our service's name, lower-cased: how our own announcement is recognised when it comes back. */
  readonly fqdn: string;
  private readonly fail: (err: unknown) => void;
  private wantPublished: boolean;
  private bonjour: Bonjour | null = null;
  private service: Service | null = null;
  private publishedAddresses = '';
  private republishing: Promise<void> = Promise.resolve();
  private stopped = false;

  /** `publish`: announce as soon as there is a Bonjour instance, as if publish() had been called. */
  constructor(self: Announcement, hostName: string | undefined, publish: boolean, fail: (err: unknown) => void) {
    this.ownTxt = encodeTxt(self); // validates the instance id and protocol
    // 0: the share listener's port is not known yet; publish(port) supplies it.
    if (!Number.isInteger(self.port) || self.port < 0 || self.port > 65535) {
      throw new RangeError('mdns: port must be 0–65535');
    }
    this.announcement = { ...self };
    this.serviceName = serviceName(self);
    this.hostName = mdnsHostName(self, hostName);
    this.fqdn = `${this.serviceName}._${SERVICE_TYPE}._tcp.local`.toLowerCase();
    this.wantPublished = publish;
    this.fail = fail;
  }

  /** Our service's name (lower case) while it is announced, else null. */
  announcedFqdn(): string | null {
    return this.service ? this.fqdn : null;
  }

  attach(bonjour: Bonjour): void {
    this.bonjour = bonjour;
    if (this.wantPublished) this.publishNow();
  }

  // `port`: the share listener's port, when it is only known now or has changed since.
  publish(port?: number): void {
    if (this.stopped) return;
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

  /** Withdraws the announcement for good. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.unpublish();
  }

  // bonjour-service puts the addresses of the moment into its records and never revisits them.
  followAddresses(signature: string): void {
    if (!this.service || signature === this.publishedAddresses) return;
    this.publishedAddresses = signature; // so the next check does not queue another round
    this.republish();
  }

  private withdraw(): Promise<void> {
    const bonjour = this.bonjour;
    if (!bonjour || !this.service) return Promise.resolve();
    this.service = null;
    // The callback runs once the goodbye packet (every record with TTL 0) has been handed to the socket.
    return settleOnce<void>({ ms: UNPUBLISH_TIMEOUT_MS, onTimeout: () => undefined }, (settle) => bonjour.unpublishAll(() => settle()));
  }

  private publishNow(): void {
    if (!this.bonjour || this.service || this.stopped) return;
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
      host: this.hostName,
      txt: this.ownTxt,
      probe: false,
    });
    this.service.on('error', (err: unknown) => this.fail(err));
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
}
