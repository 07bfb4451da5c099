import type dnsPacket from 'dns-packet';
import { rcodeName } from '../wire/dns-codec.ts';
import { type DnsServer, type ExchangeOptions, type QueryType, encodeQuery, exchange, decodeAnswer } from './dns-client.ts';

// One DNS lookup as DNS-SD needs it: the records of one type at one name, following CNAMEs inside the
// answer (at most MAX_CNAME_HOPS, never round a loop), with the shortest TTL that applies — the
// records' own, or for "no such records" the zone's negative TTL (RFC 2308: the SOA's minimum).
// Records of other names or types are ignored, however many the answer carries.

const MAX_CNAME_HOPS = 8;
const MAX_RECORDS = 512;

export interface LookupResult {
  /** NOERROR with no record of the type is 'empty', as is NXDOMAIN. */
  state: 'found' | 'empty';
  records: dnsPacket.Answer[];
  /** Seconds the answer may be kept; null when the server gave no TTL to go by. */
  ttl: number | null;
}

export type Lookup = (name: string, type: QueryType) => Promise<LookupResult>;

export class DnsLookupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsLookupError';
  }
}

/** A record's data, whatever its type (an OPT record has none). */
export function dataOf(rec: dnsPacket.Answer): unknown {
  return (rec as { data?: unknown }).data;
}

const lower = (n: string): string => n.toLowerCase().replace(/\.$/, '');

/** What `answer` says of `name`/`type`. Throws DnsLookupError for a server error or a CNAME loop. */
export function readAnswer(packet: dnsPacket.Packet & { rcode?: string }, name: string, type: QueryType): LookupResult {
  const rcode = packet.rcode ?? 'NOERROR';
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') throw new DnsLookupError(`the DNS server answered ${rcode}`);
  const answers = (packet.answers ?? []).slice(0, MAX_RECORDS);
  let at = lower(name);
  let ttl: number | null = null;
  const keepTtl = (t: unknown): void => {
    if (typeof t === 'number' && Number.isFinite(t) && t >= 0) ttl = ttl === null ? t : Math.min(ttl, t);
  };
  const seen = new Set<string>([at]);
  for (let hop = 0; ; hop++) {
    const here = answers.filter((a) => 'name' in a && lower(a.name) === at);
    const records = here.filter((a) => a.type === type);
    if (records.length > 0) {
      for (const r of records) keepTtl((r as { ttl?: number }).ttl);
      return { state: 'found', records, ttl };
    }
    const cname = here.find((a) => a.type === 'CNAME') as { data: string; ttl?: number } | undefined;
    if (!cname || typeof cname.data !== 'string') break;
    if (hop >= MAX_CNAME_HOPS) throw new DnsLookupError(`more than ${MAX_CNAME_HOPS} CNAMEs from ${name.slice(0, 100)}`);
    keepTtl(cname.ttl);
    at = lower(cname.data);
    if (seen.has(at)) throw new DnsLookupError(`CNAME loop at ${at.slice(0, 100)}`);
    seen.add(at);
  }
  const soa = (packet.authorities ?? []).find((a) => a.type === 'SOA') as { ttl?: number; data?: { minimum?: number } } | undefined;
  if (soa) keepTtl(Math.min(soa.ttl ?? Number.POSITIVE_INFINITY, soa.data?.minimum ?? Number.POSITIVE_INFINITY));
  return { state: 'empty', records: [], ttl };
}

/** A Lookup asking `server` directly. */
export function serverLookup(server: DnsServer, opts: ExchangeOptions = {}): Lookup {
  return async (name, type) => {
    let packet: dnsPacket.Packet & { rcode?: string };
    const raw = await exchange(server, encodeQuery(name, type), opts);
    try {
      packet = decodeAnswer(raw);
    } catch (e) {
      throw new DnsLookupError(`undecodable answer for ${name.slice(0, 100)} ${type} (${(e as Error).message}; ${rcodeName(raw[3] & 0x0f)})`);
    }
    return readAnswer(packet, name, type);
  };
}
