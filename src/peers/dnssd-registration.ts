import net from 'node:net';
import type { Clock, TimerHandle } from '../base/clock.ts';
import { rcodeName, rcodeOf } from '../wire/dns-codec.ts';
import { type Change, encodeUpdate } from '../wire/dns-update.ts';
import { encodeLeaseOpt, findUpdateLease, withOpt } from '../wire/dns-update-lease.ts';
import { findTsig, signMessage, TSIG_ERRORS, type TsigKey, verifyMessage } from '../wire/tsig.ts';
import { SERVICE_TYPE } from './discovered-service.ts';
import { type DnsServer, exchange, formatServer, newQueryId } from './dns-client.ts';
import { routableAddress } from './dnssd-browser.ts';

// This machine's DNS-SD records in a domain, kept by DNS UPDATE (RFC 2136) signed with TSIG:
//
//   _peernix._tcp.<domain>            PTR  <label>._peernix._tcp.<domain>
//   <label>._peernix._tcp.<domain>    SRV  0 0 <share port> <label>.<domain>
//                                     TXT  the announcement (wire/txt-record.ts)
//   <label>.<domain>                  A / AAAA  this machine's routable addresses
//   _services._dns-sd._udp.<domain>   PTR  _peernix._tcp.<domain>   (RFC 6763 §9; shared, never removed)
//
// Every registration asks for an update lease (RFC 9664, wire/dns-update-lease.ts). A server that
// echoes it removes our records itself if we vanish, so we refresh them at 75–80 % of the lease it
// granted (jittered, so a floor of laptops started together does not refresh together). A server that
// does not echo it (BIND 9.18 ignores the option) keeps what it was given: then the records are kept
// short-lived and replaced at the next start, and peers' health judges a vanished host meanwhile.
//
// <label> is the display name and the instance id's start, so it is the same at every start: a start
// replaces what a crash left (each update deletes the instance's and host's records before adding).
// Records carry a short TTL, and are removed on a clean stop. Plain DNS servers never expire what a
// vanished laptop left, so peers judge it by health, as they do an mDNS peer that left without a goodbye.
// A refused update is kept with the server's words (rcode and TSIG error) for status and the doctor.

export interface RegistrationOptions {
  domain: string;
  server: DnsServer;
  key: TsigKey;
  label: string;
  txt: Record<string, string>;
  ttl: number;
  /** This machine's addresses now (filtered to routable ones here). */
  addresses: () => string[];
  clock: Clock;
  /** Wall-clock seconds, which TSIG is signed by. */
  wallSeconds?: () => number;
  /** How often addresses are compared with what is registered (default 5 s). */
  checkMs?: number;
  timeoutMs?: number;
  /** The update lease asked for, seconds (default 2 h). */
  leaseSeconds?: number;
  /** In [0, 1): spreads lease refreshes (default Math.random). */
  random?: () => number;
}

export type RegistrationState = 'off' | 'registering' | 'registered' | 'refused' | 'unreachable' | 'removed';

export interface RegistrationStatus {
  domain: string;
  server: string;
  instance: string;
  state: RegistrationState;
  /** The server's answer when refused, or why it could not be reached; null when all is well. */
  detail: string | null;
  addresses: string[];
  at: number | null; // clock ms of the last answer
  /** The update lease asked for with each registration, seconds. */
  leaseRequested: number;
  /** The lease the server granted by echoing the option, seconds; null: it did not (records stay until replaced). */
  leaseGranted: number | null;
  /** Clock ms of the next lease refresh; null when none is due. */
  refreshAt: number | null;
}

const RETRY_MIN_MS = 5000;
const RETRY_MAX_MS = 5 * 60_000;
const DEFAULT_LEASE_S = 2 * 3600;
// A server granting a lease this short is refreshed no more often than this.
const MIN_REFRESH_MS = 5000;

/** When to refresh a granted lease: 75–80 % of it (random in [0, 1) picks where), never sooner than MIN_REFRESH_MS. */
export function leaseRefreshMs(grantedSeconds: number, random: number): number {
  return Math.max(MIN_REFRESH_MS, Math.floor(grantedSeconds * 1000 * (0.8 - 0.05 * random)));
}

/**
 * The addresses a share listener bound to `host` is reached at: 0.0.0.0 accepts IPv4 only (so an AAAA
 * registered for it would point peers at a closed port), :: both families, one address only itself.
 */
export function listenerAddresses(host: string, addresses: string[]): string[] {
  if (host === '0.0.0.0') return addresses.filter((a) => net.isIPv4(a));
  if (host === '::' || net.isIP(host) === 0) return addresses;
  return addresses.filter((a) => a === host);
}

/** A DNS label from the display name and the instance id: same at every start, unique per machine. */
export function instanceLabel(name: string, instanceId: string): string {
  const base = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return `${base || 'peernix'}-${instanceId
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 8)}`;
}

export class DnsSdRegistration {
  private readonly o: Required<RegistrationOptions>;
  private port: number | null = null;
  private registered: string | null = null; // what was last accepted: port and addresses
  private timer: TimerHandle | null = null;
  private refreshTimer: TimerHandle | null = null;
  private retryMs = RETRY_MIN_MS;
  private retryAt = 0;
  private busy: Promise<void> = Promise.resolve();
  readonly status: RegistrationStatus;
  /** Called when the state or its detail changes (status, events). */
  onChange: (s: RegistrationStatus) => void = () => {};

  constructor(opts: RegistrationOptions) {
    this.o = {
      wallSeconds: () => Math.floor(Date.now() / 1000),
      checkMs: 5000,
      timeoutMs: 2000,
      leaseSeconds: DEFAULT_LEASE_S,
      random: Math.random,
      ...opts,
    };
    this.status = {
      domain: opts.domain,
      server: formatServer(opts.server),
      instance: this.instance,
      state: 'off',
      detail: null,
      addresses: [],
      at: null,
      leaseRequested: this.o.leaseSeconds,
      leaseGranted: null,
      refreshAt: null,
    };
  }

  private get service(): string {
    return `_${SERVICE_TYPE}._tcp.${this.o.domain}`;
  }
  private get instance(): string {
    return `${this.o.label}.${this.service}`;
  }
  private get host(): string {
    return `${this.o.label}.${this.o.domain}`;
  }

  /** Registers (or re-registers with) the share port; kept current until unpublish(). */
  publish(port: number): Promise<void> {
    this.port = port;
    if (!this.timer) {
      this.timer = this.o.clock.setInterval(() => void this.check(), this.o.checkMs);
      this.timer.unref?.();
    }
    this.registered = null;
    this.retryAt = 0;
    return this.check();
  }

  /** Removes this machine's records (the shared _services PTR stays). */
  unpublish(): Promise<void> {
    if (this.timer) this.o.clock.clearInterval(this.timer);
    this.timer = null;
    this.scheduleRefresh(null);
    const wasPublished = this.port !== null;
    this.port = null;
    this.busy = this.busy.then(async () => {
      if (!wasPublished || this.status.state === 'off') return;
      const changes: Change[] = [
        { op: 'delete', record: { name: this.service, type: 'PTR', ttl: 0, data: this.instance } },
        { op: 'delete-rrset', name: this.instance, type: 'ANY' },
        { op: 'delete-rrset', name: this.host, type: 'ANY' },
      ];
      const r = await this.send(changes, false);
      this.registered = null;
      this.status.leaseGranted = null;
      if (r === null || 'lease' in r) this.set('removed', null, []);
      else this.set(r.state, r.detail, []);
    });
    return this.busy;
  }

  private addresses(): string[] {
    return [...new Set(this.o.addresses().filter(routableAddress))].sort();
  }

  private check(): Promise<void> {
    this.busy = this.busy.then(async () => {
      if (this.port === null) return;
      const addresses = this.addresses();
      const want = `${this.port} ${addresses.join(' ')}`;
      if (want === this.registered) return;
      if (this.o.clock.now() < this.retryAt) return;
      if (addresses.length === 0) {
        this.set('unreachable', 'this machine has no routable address to register', addresses);
        return;
      }
      if (this.status.state === 'off' || this.status.state === 'removed') this.set('registering', null, addresses);
      const r = await this.send(this.registerChanges(this.port, addresses), true);
      if (r === null || 'lease' in r) {
        this.registered = want;
        this.retryMs = RETRY_MIN_MS;
        const granted = r?.lease ?? null;
        this.status.leaseGranted = granted;
        this.scheduleRefresh(granted);
        this.set('registered', null, addresses);
      } else {
        this.retryAt = this.o.clock.now() + this.retryMs;
        this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
        this.set(r.state, r.detail, addresses);
      }
    });
    return this.busy;
  }

  private registerChanges(port: number, addresses: string[]): Change[] {
    const ttl = this.o.ttl;
    return [
      { op: 'delete-rrset', name: this.host, type: 'ANY' },
      ...addresses.map((a): Change => ({ op: 'add', record: { name: this.host, type: net.isIPv6(a) ? 'AAAA' : 'A', ttl, data: a } })),
      { op: 'delete-rrset', name: this.instance, type: 'ANY' },
      { op: 'add', record: { name: this.instance, type: 'SRV', ttl, data: { priority: 0, weight: 0, port, target: this.host } } },
      { op: 'add', record: { name: this.instance, type: 'TXT', ttl, data: Object.entries(this.o.txt).map(([k, v]) => `${k}=${v}`) } },
      { op: 'add', record: { name: this.service, type: 'PTR', ttl, data: this.instance } },
      { op: 'add', record: { name: `_services._dns-sd._udp.${this.o.domain}`, type: 'PTR', ttl, data: this.service } },
    ];
  }

  // A granted lease is honoured by sending the registration again before it runs out.
  private scheduleRefresh(grantedSeconds: number | null): void {
    if (this.refreshTimer) this.o.clock.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    this.status.refreshAt = null;
    if (grantedSeconds === null || this.port === null) return;
    // A server may grant more than was asked (up to 136 years in 32 bits, past what a timer can hold):
    // refreshing on the lease asked for is never late.
    const ms = leaseRefreshMs(Math.min(grantedSeconds, this.o.leaseSeconds), this.o.random());
    this.status.refreshAt = this.o.clock.now() + ms;
    this.refreshTimer = this.o.clock.setTimeout(() => {
      this.refreshTimer = null;
      this.registered = null;
      void this.check();
    }, ms);
    this.refreshTimer.unref?.();
  }

  // null or { lease }: accepted (with the lease the server granted, when it echoed one); otherwise the
  // state and the words for it.
  private async send(changes: Change[], askLease: boolean): Promise<{ state: 'refused' | 'unreachable'; detail: string } | { lease: number | null } | null> {
    const update = encodeUpdate(newQueryId(), this.o.domain, changes);
    const unsigned = askLease ? withOpt(update, encodeLeaseOpt({ lease: this.o.leaseSeconds, keyLease: null })) : update;
    const { message, mac } = signMessage(unsigned, this.o.key, this.o.wallSeconds());
    let answer: Buffer;
    try {
      answer = await exchange(this.o.server, message, { timeoutMs: this.o.timeoutMs, tries: 2 });
    } catch (e) {
      return { state: 'unreachable', detail: (e as Error).message };
    }
    const rcode = rcodeOf(answer);
    let tsigError = 0;
    try {
      tsigError = findTsig(answer)?.error ?? 0;
    } catch {
      // judged by verifyMessage below
    }
    if (rcode !== 0) {
      const why = tsigError !== 0 ? ` (${TSIG_ERRORS[tsigError] ?? `TSIG error ${tsigError}`})` : '';
      return { state: 'refused', detail: `${formatServer(this.o.server)} refused the update for ${this.o.domain}: ${rcodeName(rcode)}${why}` };
    }
    const check = verifyMessage(answer, this.o.key, this.o.wallSeconds(), mac);
    if (!check.ok)
      return { state: 'refused', detail: `${formatServer(this.o.server)} said yes, but its answer is not signed with key ${this.o.key.name}: ${check.why}` };
    if (!askLease) return null;
    let lease: number | null = null;
    try {
      lease = findUpdateLease(answer)?.lease ?? null;
    } catch {
      // a signed answer that cannot be walked was refused above; nothing granted
    }
    return { lease };
  }

  private set(state: RegistrationState, detail: string | null, addresses: string[]): void {
    const changed = state !== this.status.state || detail !== this.status.detail || addresses.join() !== this.status.addresses.join();
    Object.assign(this.status, { state, detail, addresses, at: this.o.clock.now() });
    if (changed) this.onChange(this.status);
  }
}
