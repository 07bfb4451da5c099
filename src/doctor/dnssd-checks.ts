import type { DnsSdStatusView, DoctorCheck } from '../base/api.ts';
import { describeLease } from '../base/dnssd-text.ts';
import type { DoctorFacts } from './facts.ts';

// Does DNS-SD work from here: is there a DNS server to ask, did browsing read the domains, and is this
// machine registered — and if not, what the server said (its rcode and TSIG error) and what to change.

const BROWSE = { id: 'lan.dnssd', group: 'lan', title: 'DNS-SD (peers across subnets)' } as const;
const REGISTER = { id: 'lan.dnssd-register', group: 'lan', title: 'DNS-SD registration' } as const;

export function dnsSdChecks(f: DoctorFacts): DoctorCheck[] {
  const d = f.peernix.snapshot?.status.dnsSd;
  if (!d) return [];
  const checks = [browseCheck(d)];
  if (d.registration) checks.push(registerCheck(d.registration));
  return checks;
}

function browseCheck(d: DnsSdStatusView): DoctorCheck {
  if (!d.server) {
    return {
      ...BROWSE,
      status: d.domains.length > 0 ? 'fail' : 'ok',
      detail: `Not browsing: ${d.lastError ?? 'no DNS server to ask'}.${d.domains.length ? '' : ' Nothing asks for it either (no dnsSdDomains).'}`,
      fix: d.domains.length > 0 ? 'Set "dnsSdServer" in settings.json to your DNS server’s address.' : null,
    };
  }
  if (d.domains.length === 0) {
    return {
      ...BROWSE,
      status: 'ok',
      detail: `Not in use: no domains configured and the network advertises none (b._dns-sd._udp under its search domain), asked of ${d.server}.`,
      fix: null,
    };
  }
  if (d.lastError) {
    return {
      ...BROWSE,
      status: 'warn',
      detail: `Browsing ${d.domains.join(', ')} via ${d.server}, but the last round could not read everything: ${d.lastError}. ${d.found} peer(s) found.`,
      fix: `Check that ${d.server} answers for these domains from here: dig @${d.server.replace(/:53$/, '').replace(/:(\d+)$/, ' -p $1')} _peernix._tcp.${d.domains[0]} PTR`,
    };
  }
  return { ...BROWSE, status: 'ok', detail: `Working: browsing ${d.domains.join(', ')} via ${d.server}; ${d.found} peer(s) found.`, fix: null };
}

function registerCheck(r: NonNullable<DnsSdStatusView['registration']>): DoctorCheck {
  switch (r.state) {
    case 'registered':
      return {
        ...REGISTER,
        status: 'ok',
        detail: `Registered as ${r.instance} (${r.addresses.join(' ')}) with ${r.server}; ${describeLease(r)}.`,
        fix: null,
      };
    case 'refused':
      return {
        ...REGISTER,
        status: 'fail',
        detail: `Not registered in ${r.domain}: ${r.detail ?? 'refused'}.`,
        fix: /BADSIG|BADKEY/.test(r.detail ?? '')
          ? 'The key file’s name or secret is not the one the server has: copy the server’s key (tsig-keygen output) into the keyFile.'
          : /BADTIME/.test(r.detail ?? '')
            ? 'This machine’s clock and the server’s differ by more than 5 minutes: fix the time (NTP).'
            : /REFUSED|NOTAUTH/.test(r.detail ?? '')
              ? `Let the key update the zone on the server (BIND: update-policy { grant <key> zonesub ANY; } in zone "${r.domain}").`
              : 'Fix dnsSdRegister in settings.json (domain, server, keyFile).',
      };
    case 'unreachable':
      return {
        ...REGISTER,
        status: 'warn',
        detail: `Not registered in ${r.domain}: ${r.detail ?? 'the server did not answer'}; retrying.`,
        fix: `Check that ${r.server} is reachable from here.`,
      };
    case 'registering':
      return { ...REGISTER, status: 'unknown', detail: `Registering in ${r.domain} with ${r.server}…`, fix: null };
    default:
      return { ...REGISTER, status: 'ok', detail: `Not registered now (${r.state}): registration runs while sharing.`, fix: null };
  }
}
