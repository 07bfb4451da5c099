import type Bonjour from 'bonjour-service';
import type { Browser, Service } from 'bonjour-service';

// The parts of bonjour-service 1.4.4 its typings keep private but we need: the multicast-dns
// instance (to catch its 'error' events, which would otherwise crash the process, and to see host
// address records the Browser ignores), the raw TXT strings (its own TXT decoder is lossy), and the
// Browser's list and name map of services (to make it forget what discovery no longer tracks).
// package.json pins bonjour-service to exactly this version (test/unit/dependencies.test.ts checks it):
// private fields may change in any release, so an upgrade is a deliberate step that rereads this file.
export const BONJOUR_SERVICE_VERSION = '1.4.4';

export interface MdnsSocket {
  on(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  query(name: string, type: string): void;
  /** A whole packet: questions with their known answers (mdns-known-answers.ts). */
  query(packet: { questions: unknown[]; answers?: unknown[] }): void;
}

export interface RawRecord {
  name?: unknown;
  type?: unknown;
  ttl?: unknown;
  data?: unknown;
}

export function mdnsSocketOf(bonjour: Bonjour): MdnsSocket | null {
  return (bonjour as unknown as { server?: { mdns?: MdnsSocket } }).server?.mdns ?? null;
}

export function txtOf(service: Service): unknown {
  const raw = (service as unknown as { rawTxt?: unknown }).rawTxt;
  return raw !== undefined ? raw : service.txt;
}

/** Removes one service (by lower-cased fqdn) from the Browser's list and name map. */
export function forgetInBrowser(browser: Browser | null, key: string): void {
  const services = browser?.services;
  if (!Array.isArray(services)) return;
  const i = services.findIndex((s) => typeof s.fqdn === 'string' && s.fqdn.toLowerCase() === key);
  if (i === -1) return;
  const fqdn = services[i].fqdn;
  services.splice(i, 1);
  const internals = browser as unknown as { serviceMap?: Record<string, boolean> };
  if (internals.serviceMap && typeof internals.serviceMap === 'object') delete internals.serviceMap[fqdn];
}

/** Once the Browser holds more than `max` services, keeps only those `kept` (by lower-cased fqdn). */
export function trimBrowser(browser: Browser | null, max: number, kept: (key: string) => boolean): void {
  const services = browser?.services;
  if (!Array.isArray(services) || services.length <= max) return;
  const keep = services.filter((s) => typeof s.fqdn === 'string' && kept(s.fqdn.toLowerCase()));
  services.splice(0, services.length, ...keep);
  const internals = browser as unknown as { serviceMap?: Record<string, boolean> };
  if (internals.serviceMap && typeof internals.serviceMap === 'object') {
    internals.serviceMap = Object.fromEntries(keep.map((s) => [s.fqdn, true]));
  }
}

/**
 * multicast-dns re-reads the interface list every 5 s on a timer of its own (to join the mDNS group
 * on interfaces that appeared), a wake-up and a getifaddrs dump each time, whatever happens (#26 idle
 * cost). It starts that timer when its socket listens, as `setInterval(mdns.update, 5000)`; replaced
 * before then, `update` ends the timer it is called from (Node calls a timer's function on the
 * Timeout) and still joins what there is to join. Returns the join, for the caller to run when its
 * own watch sees the addresses change; null when the private method is not there.
 */
export function takeOverInterfaceUpdates(mdns: MdnsSocket): (() => void) | null {
  const internals = mdns as unknown as { update?: (this: unknown) => void };
  const join = internals.update;
  if (typeof join !== 'function') return null;
  internals.update = function (this: unknown) {
    if (this !== internals && this !== undefined) clearInterval(this as NodeJS.Timeout);
    join.call(internals);
  };
  return () => join.call(internals);
}
