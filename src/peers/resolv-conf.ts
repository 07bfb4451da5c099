import fs from 'node:fs';
import net from 'node:net';

// The system's DNS settings as /etc/resolv.conf holds them: the servers to ask and the search
// domains, where a network advertises its DNS-SD browsing domains (RFC 6763 §11).

export interface ResolvConf {
  nameservers: string[];
  search: string[];
}

const MAX_ENTRIES = 8;

export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const line of text.split('\n').slice(0, 1000)) {
    const [word, ...rest] = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (word === 'nameserver' && rest[0] && net.isIP(rest[0].replace(/%.*$/, '')) && nameservers.length < MAX_ENTRIES) nameservers.push(rest[0]);
    // The last "search" or "domain" line wins, as in glibc.
    if ((word === 'search' || word === 'domain') && rest.length > 0) search = rest.filter(isDomainName).slice(0, MAX_ENTRIES);
  }
  return { nameservers, search: search.map((d) => d.toLowerCase().replace(/\.$/, '')) };
}

export function readResolvConf(file = '/etc/resolv.conf'): ResolvConf {
  try {
    return parseResolvConf(fs.readFileSync(file, 'utf8').slice(0, 64 * 1024));
  } catch {
    return { nameservers: [], search: [] };
  }
}

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

/** A domain name DNS-SD can browse or register in: dotted labels, 253 characters at most. */
export function isDomainName(text: unknown): text is string {
  if (typeof text !== 'string') return false;
  const t = text.replace(/\.$/, '');
  return t.length > 0 && t.length <= 253 && t.split('.').every((l) => LABEL.test(l));
}
