import { createHash } from 'node:crypto';
import { parsePublicKey } from '../nix/signing.ts';

// The team as the channel needs it: members by their raw identity key (base64 of the 32 bytes; a
// certificate carries no Nix key name), and which peer URL, if any, belongs to a member. A peer
// counts only once it proved its identity key (registry), so a stranger announcing a member's key
// is never talked to as one — and could not finish the TLS handshake if it were.

/** Raw base64 keys of the `team` setting's "name:base64" entries; unparsable ones are left out. */
export function teamKeySet(publicKeys: readonly string[]): Set<string> {
  const keys = new Set<string>();
  for (const text of publicKeys) {
    try {
      keys.add(parsePublicKey(text).key.toString('base64'));
    } catch {
      // settings.ts already reported it
    }
  }
  return keys;
}

export interface KnownPeer {
  url: string;
  publicKey: string | null;
  verified: boolean;
}

/** The raw key the peer at `origin` proved, when it is a team member's; else null (talk plain). */
export function teamKeyAt(origin: string, peers: Iterable<KnownPeer>, team: ReadonlySet<string>): string | null {
  for (const p of peers) {
    if (!p.verified || !p.publicKey || originOf(p.url) !== origin) continue;
    try {
      const raw = parsePublicKey(p.publicKey).key.toString('base64');
      return team.has(raw) ? raw : null;
    } catch {
      return null;
    }
  }
  return null;
}

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/**
 * A short fingerprint of an identity key for two people to compare by voice ("3f2a 9c1e 77b0 12cd"):
 * the first 8 bytes of the SHA-256 of the raw key, in hex groups. 64 bits: a colleague's key can't be
 * swapped for one made to match it, and it fits on one line of a terminal or a tray menu.
 */
export function keyFingerprint(rawKey: Buffer): string {
  const hex = createHash('sha256').update(rawKey).digest('hex').slice(0, 16);
  return hex.match(/.{4}/g)!.join(' ');
}

/** The fingerprint of a "name:base64" key; null for a key that does not parse. */
export function fingerprintOf(publicKey: string | null): string | null {
  if (!publicKey) return null;
  try {
    return keyFingerprint(parsePublicKey(publicKey).key);
  } catch {
    return null;
  }
}
