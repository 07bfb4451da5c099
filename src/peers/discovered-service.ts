import net from 'node:net';
import type { TableEntry } from './service-table.ts';
import type { GoTxtAnnouncement, TxtAnnouncement } from '../wire/txt-record.ts';
import type { PeerInfo } from './registry.ts';

// What discovery knows about one announced `_peernix._tcp` service, and the peer it describes.

export const SERVICE_TYPE = 'peernix';

const MAX_ADDRESSES_PER_FAMILY = 16;

/** A peer as one announced service describes it: the id and key are claims until proven (registry). */
export type DiscoveredPeer = Omit<PeerInfo, 'source' | 'key'> & {
  key: string; // the service's name (lower-cased fqdn): what tells two claimants of one id apart
};

// What we know about one announced service (keyed by its lower-cased fqdn).
export interface Tracked extends TableEntry {
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

// Replaces a family's list when a packet carries addresses of that family; a TTL-0 record withdraws one.
export function setAddresses(t: Tracked, fresh: unknown[], withdrawn: string[], source: unknown): void {
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

export function chooseAddress(t: Tracked, isLocal: (addr: string) => boolean): string | null {
  const ok = (a: string): boolean => {
    try {
      return isLocal(a);
    } catch {
      return false;
    }
  };
  if (t.source && (t.v4.includes(t.source) || t.v6.includes(t.source)) && ok(t.source)) return t.source;
  return t.v4.find(ok) ?? t.v6.find(ok) ?? null;
}

// The peer a Peernix service describes when reached at `address`.
export function announcedPeer(t: Tracked, address: string): DiscoveredPeer {
  return {
    key: t.key,
    id: t.txt.instanceId,
    name: t.txt.name ?? t.txt.instanceId,
    address,
    port: t.port,
    url: net.isIPv6(address) ? `http://[${address}]:${t.port}` : `http://${address}:${t.port}`,
    publicKey: t.txt.publicKey,
    platform: t.txt.platform,
  };
}

export function samePeer(a: DiscoveredPeer, b: DiscoveredPeer): boolean {
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
