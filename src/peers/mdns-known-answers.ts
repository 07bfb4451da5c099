// Known-answer suppression and duplicate question suppression (RFC 6762 §7.1, §7.3): what keeps the
// periodic query for `_peernix._tcp` from costing every host on the LAN a packet from every other host.
// Without them a query drew one answer per host, and every host queried: N² packets a round (#26 idle
// cost: 30 hosts, 15 packets a second each host had to read).
//
// - Asking: our query lists the services we know (PTR records, with what is left of their TTL); a host
//   that finds its own service listed with at least half its TTL left stays silent (§7.1).
// - Answering: bonjour-service answers every question whatever the asker knows, so its query listener
//   is handed the question only when our service is not among the asker's known answers.
// - Not asking twice: a query from another host for the same type, listing nothing we would not list
//   ourselves, brings every answer we would get; ours is then skipped for a round (§7.3).
// Known-answer lists are hostile input like any packet: only PTR records of our type are looked at,
// and only so many.

import type { RawRecord } from './bonjour-internals.ts';

/** bonjour-service's PTR TTL for a service (its Service.RecordPTR): 8 hours. */
export const PTR_TTL_S = 28_800;
/** Known answers looked at per query: a list longer than any LAN's is cut, not walked. */
const MAX_KNOWN = 256;

export interface KnownService {
  /** The service instance's full name, lower case ("name._peernix._tcp.local"). */
  fqdn: string;
  /** Seconds left of its PTR record's TTL. */
  ttlS: number;
}

/** A PTR query for `type` ("_peernix._tcp.local") listing what we know (multicast-dns's packet form). */
export function knownAnswerQuery(type: string, known: readonly KnownService[]) {
  return {
    questions: [{ name: type, type: 'PTR' }],
    answers: known.map((k) => ({ name: type, type: 'PTR', ttl: Math.max(1, Math.floor(k.ttlS)), data: k.fqdn })),
  };
}

interface QueryPacket {
  questions?: unknown;
  answers?: unknown;
}

/** The services a query's known-answer section lists for `type`, with their TTLs (lower case). */
export function knownIn(packet: unknown, type: string): Map<string, number> {
  const out = new Map<string, number>();
  const answers = (packet as QueryPacket | null)?.answers;
  if (!Array.isArray(answers)) return out;
  for (const rr of answers.slice(0, MAX_KNOWN) as RawRecord[]) {
    if (!rr || rr.type !== 'PTR' || typeof rr.name !== 'string' || typeof rr.data !== 'string' || typeof rr.ttl !== 'number') continue;
    if (rr.name.toLowerCase().replace(/\.$/, '') !== type) continue;
    out.set(rr.data.toLowerCase().replace(/\.$/, ''), rr.ttl);
  }
  return out;
}

/** Whether a query asks for the PTR records of `type`. */
export function asksFor(packet: unknown, type: string): boolean {
  const questions = (packet as QueryPacket | null)?.questions;
  if (!Array.isArray(questions)) return false;
  return questions.some((q) => {
    const name = (q as { name?: unknown } | null)?.name;
    const qtype = (q as { type?: unknown } | null)?.type;
    return (qtype === 'PTR' || qtype === 'ANY') && typeof name === 'string' && name.length < 256 && name.toLowerCase().replace(/\.$/, '') === type;
  });
}

interface QueryEmitter {
  listeners(event: 'query'): ((...args: unknown[]) => void)[];
  removeListener(event: 'query', listener: (...args: unknown[]) => void): unknown;
  on(event: 'query', listener: (...args: unknown[]) => void): unknown;
}

/**
 * Makes the responders listening on `mdns` now (bonjour-service's) skip a PTR question for `type` whose
 * asker already knows our service (`ownFqdn()`, lower case; null: not announced) with at least half its
 * TTL left. Other questions, and other hosts' services, are untouched.
 */
export function answerOnlyTheUnknown(mdns: unknown, type: string, ownFqdn: () => string | null): void {
  const m = mdns as QueryEmitter | null;
  if (!m || typeof m.listeners !== 'function') return;
  const responders = m.listeners('query');
  for (const l of responders) m.removeListener('query', l);
  m.on('query', (packet: unknown, ...rest: unknown[]) => {
    const own = ownFqdn();
    const ttl = own === null ? undefined : knownIn(packet, type).get(own);
    let out = packet;
    if (ttl !== undefined && ttl >= PTR_TTL_S / 2) {
      const p = packet as QueryPacket;
      const asked = Array.isArray(p.questions) ? (p.questions as ({ name?: unknown; type?: unknown } | null)[]) : [];
      const questions = asked.filter((q) => !(q?.type === 'PTR' && typeof q.name === 'string' && q.name.toLowerCase().replace(/\.$/, '') === type));
      if (questions.length === 0) return;
      out = { ...p, questions };
    }
    for (const l of responders) l(out, ...rest);
  });
}
