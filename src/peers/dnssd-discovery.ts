import net from 'node:net';
import os from 'node:os';
import type { DnsSdStatusView } from '../base/api.ts';
import { type Clock, systemClock } from '../base/clock.ts';
import type { Logger } from '../base/log.ts';
import { encodeTxt } from '../wire/txt-record.ts';
import { readTsigKeyFile } from '../wire/tsig-key-file.ts';
import { type DnsServer, formatServer, parseServer } from './dns-client.ts';
import { serverLookup } from './dns-lookup.ts';
import { DnsSdBrowser, routableAddress } from './dnssd-browser.ts';
import { DnsSdRegistration, instanceLabel, listenerAddresses, type RegistrationStatus } from './dnssd-registration.ts';
import type { PeerRegistry } from './registry.ts';
import { readResolvConf } from './resolv-conf.ts';

// Peers across subnets by DNS-SD over unicast DNS: found ones go into the registry as 'dnssd' peers
// (the same identity proof, health and summaries as mDNS peers, off-link by nature), and this machine
// is registered in a domain while sharing. Everything here runs in the background: nothing a narinfo
// waits for ever asks the DNS, so a dead DNS server costs lookups their timeouts and nothing more.

export interface DnsSdRegisterSettings {
  domain: string;
  server: string;
  keyFile: string;
  ttl?: number;
}

export interface DnsSdOptions {
  instanceId: string;
  name: string;
  publicKey: string;
  /** Browsed domains (dnsSdDomains); the network's advertised ones are added. */
  domains: string[];
  /** "host[:port]" to ask; empty: the first nameserver of resolv.conf. */
  server: string;
  register: DnsSdRegisterSettings | null;
  /** The host the share listener binds (registered addresses are those it accepts). */
  shareHost: string;
  registry: PeerRegistry;
  log: Logger;
  /** A refused or failing registration, for the event list. */
  problem: (message: string) => void;
  changed: () => void;
  clock?: Clock;
  resolvConf?: string;
}

export interface DnsSd {
  publish(port: number): void;
  unpublish(): Promise<void>;
  stop(): Promise<void>;
  view(): DnsSdStatusView;
}

function ourAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) if (!i.internal) out.push(i.address.replace(/%.*$/, ''));
  return out;
}

export function startDnsSd(o: DnsSdOptions): DnsSd {
  const clock = o.clock ?? systemClock;
  const conf = readResolvConf(o.resolvConf);
  const server: DnsServer | null = o.server ? parseServer(o.server) : conf.nameservers[0] ? parseServer(conf.nameservers[0]) : null;
  const log = o.log.child('dns-sd');
  if (o.server && !server) log.warn(`dnsSdServer "${o.server.slice(0, 80)}" is not an address[:port]; browsing with none`);

  let browser: DnsSdBrowser | null = null;
  if (server && (o.domains.length > 0 || conf.search.length > 0)) {
    browser = new DnsSdBrowser({
      domains: o.domains,
      searchDomains: conf.search,
      lookup: serverLookup(server),
      ownInstanceId: o.instanceId,
      clock,
      families: () =>
        new Set(
          ourAddresses()
            .filter(routableAddress)
            .map((a) => net.isIP(a)),
        ),
    });
    browser.on('up', (p) => o.registry.upsert({ ...p, source: 'dnssd' }));
    browser.on('down', (id, key) => o.registry.remove(id, 'gone from DNS-SD', key));
    browser.start();
  }

  let registration: DnsSdRegistration | null = null;
  let registrationError: string | null = null;
  if (o.register) {
    const r = o.register;
    const regServer = parseServer(r.server);
    try {
      if (!regServer) throw new Error(`server "${r.server.slice(0, 80)}" is not an address[:port]`);
      registration = new DnsSdRegistration({
        domain: r.domain.toLowerCase().replace(/\.$/, ''),
        server: regServer,
        key: readTsigKeyFile(r.keyFile),
        label: instanceLabel(o.name, o.instanceId),
        txt: encodeTxt({ instanceId: o.instanceId, name: o.name, port: 0, publicKey: o.publicKey, platform: `${os.platform()}-${os.arch()}`, protocol: 1 }),
        ttl: r.ttl ?? 30,
        addresses: () => listenerAddresses(o.shareHost, ourAddresses()),
        clock,
      });
      registration.onChange = (s: RegistrationStatus) => {
        if (s.state === 'registered') log.info(`registered ${s.instance} (${s.addresses.join(' ')}) with ${s.server}`);
        if (s.state === 'refused' || s.state === 'unreachable') {
          log.warn(`registration: ${s.detail}`);
          o.problem(`DNS-SD registration in ${s.domain}: ${s.detail}`);
        }
        o.changed();
      };
    } catch (e) {
      registrationError = `dnsSdRegister: ${(e as Error).message}`;
      log.warn(registrationError);
      o.problem(`DNS-SD registration: ${(e as Error).message}`);
    }
  }

  let stopped: Promise<void> | null = null;
  return {
    publish(port) {
      void registration?.publish(port);
    },
    unpublish: () => registration?.unpublish() ?? Promise.resolve(),
    stop() {
      stopped ??= (async () => {
        browser?.stop();
        await registration?.unpublish();
      })();
      return stopped;
    },
    view() {
      const reg = registration?.status;
      return {
        server: server ? formatServer(server) : null,
        domains: browser?.state.domains ?? o.domains,
        lastError: browser?.state.lastError ?? (server ? null : 'no DNS server to ask (dnsSdServer unset and none in /etc/resolv.conf)'),
        found: browser?.state.found ?? 0,
        registration: reg
          ? {
              domain: reg.domain,
              server: reg.server,
              instance: reg.instance,
              state: reg.state,
              detail: reg.detail,
              addresses: [...reg.addresses],
              leaseRequested: reg.leaseRequested,
              leaseGranted: reg.leaseGranted,
            }
          : o.register
            ? {
                domain: o.register.domain,
                server: o.register.server,
                instance: '',
                state: 'refused',
                detail: registrationError,
                addresses: [],
                leaseRequested: 0,
                leaseGranted: null,
              }
            : null,
      };
    },
  };
}
