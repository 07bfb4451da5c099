import net from 'node:net';
import { decodeGoTxt, type GoTxtAnnouncement, type TxtAnnouncement } from '../wire/txt-record.ts';
import { goPeerId, goPeerName, goPeerUrl } from './go-peer.ts';
import { SERVICE_TYPE, type DiscoveredPeer, type Tracked } from './discovered-service.ts';
import type { RawRecord } from './bonjour-internals.ts';

// Go peernix hosts (zw3rk/peernix) announce the same type with their own TXT record (decodeGoTxt) and
// all under the one instance name "peernix", so one name stands for many hosts: they are read from
// the raw responses, keyed by the address that sent them and their port (go-peer.ts), and held to
// the same table and quotas as everyone else (mdns-browser.ts).

/** One Go service as one response speaks of it. */
export interface GoSighting {
  key: string;
  source: string; // the address the response came from: the peer's
  port: number;
  ttl: number; // 0: a goodbye
  go: GoTxtAnnouncement | null; // its Go TXT record, if one came beside it and decoded
  withTxt: boolean; // whether any TXT record of its name came beside it
}

// Go peernix services in one response: an SRV of our type with a Go TXT record beside it (hashicorp/mdns
// sends PTR, SRV, A, AAAA and TXT together). The sender's address is the peer's: its A record names
// whatever its host name resolves to there, and its instance name is the same on every Go host.
export function goServicesIn(records: RawRecord[], rawSource: unknown, ownFqdn: string): GoSighting[] {
  if (typeof rawSource !== 'string' || !net.isIP(rawSource)) return [];
  const source = rawSource.startsWith('::ffff:') && net.isIPv4(rawSource.slice(7)) ? rawSource.slice(7) : rawSource;
  const suffix = `._${SERVICE_TYPE}._tcp.local`;
  const out: GoSighting[] = [];
  for (const rr of records) {
    if (!rr || rr.type !== 'SRV' || typeof rr.name !== 'string' || typeof rr.ttl !== 'number') continue;
    const name = rr.name.toLowerCase();
    if (!name.endsWith(suffix) || name === ownFqdn) continue;
    const port = (rr.data as { port?: unknown } | null)?.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
    const key = goPeerId(source, port);
    if (rr.ttl === 0) {
      out.push({ key, source, port, ttl: 0, go: null, withTxt: false });
      continue;
    }
    const txt = records.find((x) => x && x.type === 'TXT' && typeof x.name === 'string' && x.name.toLowerCase() === name);
    out.push({ key, source, port, ttl: rr.ttl, go: txt ? decodeGoTxt(txt.data) : null, withTxt: txt !== undefined });
  }
  return out;
}

// Its key stands in for the instance id it does not have; its one address is the one it sent from.
export function goEntry(s: GoSighting, go: GoTxtAnnouncement, now: number): Tracked {
  const txt: TxtAnnouncement = { protocol: 0, instanceId: s.key, name: null, publicKey: null, platform: go.platform };
  const family = net.isIP(s.source);
  return {
    key: s.key,
    go,
    host: '',
    port: s.port,
    txt,
    v4: family === 4 ? [s.source] : [],
    v6: family === 6 ? [s.source] : [],
    source: s.source,
    peer: null,
    addressQueriedAt: 0,
    seenAt: now,
    expiresAt: now,
  };
}

// Its claimed key is left out: it can prove nothing (and every Go host names its key peernix-1).
export function goPeer(t: Tracked, go: GoTxtAnnouncement, address: string): DiscoveredPeer {
  return {
    key: t.key,
    id: t.txt.instanceId,
    name: goPeerName(address),
    address,
    port: t.port,
    url: goPeerUrl(address, t.port),
    publicKey: null,
    platform: go.platform,
    dialect: 'go',
  };
}
