import os from 'node:os';

// Shapes every mDNS response we send (answers to queries, announcements, goodbyes) so that both kinds
// of client read a reachable address from it, and so that it never names an address we no longer hold.
//
// - Order: the Go peernix's browser (hashicorp/mdns) walks answers then additionals and keeps the
//   *last* A or AAAA record as the peer's address, and writes IPv6 without brackets, so an answer that
//   ends with a link-local AAAA (bonjour-service lists A then AAAA) is recorded as an address it can
//   dial neither over HTTP nor UDP (docs go-peernix.md). Within each section AAAA records are moved
//   before A records; every other record keeps its place, and DNS-SD clients read sets, not order.
// - Staleness: bonjour-service fixes the address records when a service is published; an address
//   removed from the interface stayed in our answers until the next republish (51 s seen). Records
//   with a TTL (not goodbyes, which must still name what is withdrawn) are checked against the
//   interfaces' addresses now; the list is read at most once a second, so a query flood costs no more.

interface Rec {
  type?: unknown;
  ttl?: unknown;
  data?: unknown;
}

export interface ShapeOptions {
  /** Our current addresses (default: os.networkInterfaces(), non-internal). */
  addresses?: () => Set<string>;
  now?: () => number;
}

function interfaceAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) if (!i.internal) out.add(i.address);
  return out;
}

const isAddressRecord = (r: Rec): boolean => r.type === 'A' || r.type === 'AAAA';

/** A function turning a response's record lists into the shaped ones. */
export function answerShaper(opts: ShapeOptions = {}): (records: unknown[]) => unknown[] {
  const read = opts.addresses ?? interfaceAddresses;
  const now = opts.now ?? Date.now;
  let cached: Set<string> | null = null;
  let readAt = 0;
  const current = (): Set<string> => {
    const t = now();
    if (!cached || t - readAt >= 1000 || t < readAt) {
      cached = read();
      readAt = t;
    }
    return cached;
  };
  return (records) => {
    if (!records.some((r) => isAddressRecord(r as Rec))) return records;
    const held = current();
    const kept = records.filter((r) => {
      const rec = r as Rec;
      if (!isAddressRecord(rec) || rec.ttl === 0) return true;
      return typeof rec.data === 'string' && held.has(rec.data);
    });
    // Stable: AAAA records where the first address record was, then the A records, then the rest in place.
    const v6 = kept.filter((r) => (r as Rec).type === 'AAAA');
    const v4 = kept.filter((r) => (r as Rec).type === 'A');
    const out: unknown[] = [];
    let placed = false;
    for (const r of kept) {
      if (!isAddressRecord(r as Rec)) out.push(r);
      else if (!placed) {
        placed = true;
        out.push(...v6, ...v4);
      }
    }
    return out;
  };
}

const SHAPED = Symbol('peernix.shapedResponses');

interface Responder {
  respond: (res: unknown, ...rest: unknown[]) => unknown;
}

/** Makes every response sent through this multicast-dns instance shaped (idempotent). */
export function shapeResponses(mdns: unknown, opts: ShapeOptions = {}): void {
  const m = mdns as Responder & { [SHAPED]?: true };
  if (!m || typeof m.respond !== 'function' || m[SHAPED]) return;
  const shape = answerShaper(opts);
  const original = m.respond.bind(m);
  m[SHAPED] = true;
  m.respond = (res: unknown, ...rest: unknown[]) => {
    if (Array.isArray(res)) return original(shape(res), ...rest);
    if (res && typeof res === 'object') {
      const p = res as { answers?: unknown; additionals?: unknown };
      const shaped = { ...p };
      if (Array.isArray(p.answers)) shaped.answers = shape(p.answers);
      if (Array.isArray(p.additionals)) shaped.additionals = shape(p.additionals);
      return original(shaped, ...rest);
    }
    return original(res, ...rest);
  };
}
