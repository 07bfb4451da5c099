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
