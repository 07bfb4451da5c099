import type { PeerView, TeamAction, TeamView } from '../base/api.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import { parsePublicKey, type PublicKey } from '../nix/signing.ts';
import { keyFingerprint } from './team.ts';

// The team as it is now: the Peernix machines (by identity key) that may fetch this machine's team
// paths, and that it talks to over the team channel. Read by the asker classifier on every request
// and by the peer client on every connection, so a change takes effect at once: a removed member's
// next request is a stranger's. Kept in the `team` setting, changed by the user (CLI, window), each
// change an event.

export const MAX_TEAM_MEMBERS = 256;

export interface TeamRosterParts {
  members: readonly string[];
  /** This machine's own identity key: adding it is a mistake worth a sentence. */
  ownKey: string;
  /** Saves the list ("name:base64" each); may throw. Absent: changes last for this run only. */
  persist?: (keys: string[]) => void;
  events: EventLog;
  log: Logger;
  changed: () => void;
}

export class TeamRoster {
  private readonly parts: TeamRosterParts;
  private members: PublicKey[] = [];
  private raw = new Set<string>();

  constructor(parts: TeamRosterParts) {
    this.parts = parts;
    for (const text of parts.members) {
      try {
        this.set([...this.members, parsePublicKey(text)]);
      } catch {
        // settings.ts reported it
      }
      if (this.members.length >= MAX_TEAM_MEMBERS) break;
    }
  }

  /** Raw base64 identity keys of the members, as the TLS handshake proves them. */
  keys(): ReadonlySet<string> {
    return this.raw;
  }

  /** Whether this "name:base64" key (any name) is a member's. */
  isMember(publicKey: string | null): boolean {
    const raw = rawKeyOf(publicKey);
    return raw !== null && this.raw.has(raw);
  }

  /** Adds or removes a member; resolves to the team after the change, throws a sentence the user can act on. */
  act(action: TeamAction, peers: readonly PeerView[]): TeamView {
    if ('add' in action) this.add(action.add);
    else this.remove(action.remove);
    this.parts.changed();
    return this.view(peers);
  }

  view(peers: readonly PeerView[]): TeamView {
    const proven = peers.filter((p) => p.verified && p.publicKey && p.state !== 'gone');
    const rawOf = (p: PeerView) => rawKeyOf(p.publicKey);
    return {
      members: this.members.map((k) => {
        const raw = k.key.toString('base64');
        return { name: k.name, publicKey: k.text, fingerprint: keyFingerprint(k.key), peerName: proven.find((p) => rawOf(p) === raw)?.name ?? null };
      }),
      max: MAX_TEAM_MEMBERS,
      saved: this.parts.persist !== undefined,
      candidates: proven
        .filter((p) => p.trusted && p.source === 'mdns')
        .flatMap((p) => {
          const key = safeParse(p.publicKey);
          if (!key || this.raw.has(key.key.toString('base64')) || key.text === this.parts.ownKey) return [];
          return [{ peerId: p.id, name: p.name, publicKey: key.text, fingerprint: keyFingerprint(key.key) }];
        }),
    };
  }

  private add(text: string): void {
    let key: PublicKey;
    try {
      key = parsePublicKey(text.trim());
    } catch (e) {
      throw new Error(`not a public key: ${(e as Error).message} (expected "name:base64", as \`peernix status\` shows a machine's public key)`);
    }
    const raw = key.key.toString('base64');
    if (rawKeyOf(this.parts.ownKey) === raw) throw new Error("that is this machine's own key");
    const already = this.members.find((m) => m.key.equals(key.key));
    if (already) throw new Error(`already in the team as ${already.name} (${keyFingerprint(key.key)})`);
    if (this.members.length >= MAX_TEAM_MEMBERS) throw new Error(`the team already has ${MAX_TEAM_MEMBERS} members; remove one first`);
    this.commit([...this.members, key], 'added', key);
  }

  private remove(which: string): void {
    const w = which.trim();
    const byKey = safeParse(w);
    const matches = byKey
      ? this.members.filter((m) => m.key.equals(byKey.key))
      : this.members.filter((m) => m.name === w || keyFingerprint(m.key) === w || keyFingerprint(m.key).replace(/ /g, '') === w.replace(/[\s:-]/g, ''));
    if (matches.length === 0) throw new Error(`no team member ${JSON.stringify(w.slice(0, 80))} (see \`peernix team list\`)`);
    if (matches.length > 1) {
      throw new Error(`${matches.length} members are named ${w}; give the key or fingerprint: ${matches.map((m) => keyFingerprint(m.key)).join(', ')}`);
    }
    const gone = matches[0];
    this.commit(
      this.members.filter((m) => m !== gone),
      'removed',
      gone,
    );
  }

  /** Saved first: a change that could not be kept is not made (the caller sees why). */
  private commit(next: PublicKey[], change: 'added' | 'removed', who: PublicKey): void {
    try {
      this.parts.persist?.(next.map((k) => k.text));
    } catch (e) {
      throw new Error(`could not save the team: ${(e as Error).message}`);
    }
    this.set(next);
    const fingerprint = keyFingerprint(who.key);
    this.parts.log.info(`team: ${change} ${who.name} (${fingerprint})`);
    this.parts.events.emit({ type: 'team', change, name: who.name, fingerprint });
  }

  private set(next: PublicKey[]): void {
    const seen = new Set<string>();
    this.members = next.filter((k) => {
      const raw = k.key.toString('base64');
      if (seen.has(raw)) return false;
      seen.add(raw);
      return true;
    });
    // A new set each time: a reader holding the old one sees a consistent team, never a half-change.
    this.raw = seen;
  }
}

function safeParse(text: string | null): PublicKey | null {
  if (!text) return null;
  try {
    return parsePublicKey(text);
  } catch {
    return null;
  }
}

function rawKeyOf(text: string | null): string | null {
  return safeParse(text)?.key.toString('base64') ?? null;
}
