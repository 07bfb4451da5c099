import type { Peer } from '../peers/registry.ts';

// Per-peer series for byte counters, without letting the LAN choose how many series exist: only a
// peer that proved its identity (or that the user configured) gets its own label, at most `cap` of
// them for the life of the process; every other byte is counted under peer="other". A label, once
// given, stays (a counter series must not vanish), so the set only grows, up to the cap.

export const OTHER = 'other';

export interface PeerLabel {
  peer: string; // the peer's name, for people
  peer_id: string; // its instance id (or URL for a static peer), which names it uniquely
}

export interface PeerBytes {
  label: PeerLabel;
  from: number;
  to: number;
}

/** Turns the registry's running byte totals per peer into deltas under bounded labels. */
export class PeerByteLabels {
  private readonly labels = new Map<string, PeerLabel>(); // peer id → its label
  private readonly seen = new WeakMap<Peer, { from: number; to: number }>();
  private readonly cap: number;

  constructor(cap = 32) {
    this.cap = cap;
  }

  /** The bytes each peer moved since the last call, by label (the same label may come twice). */
  deltas(peers: Iterable<Peer>): PeerBytes[] {
    const out: PeerBytes[] = [];
    for (const p of peers) {
      const last = this.seen.get(p) ?? { from: 0, to: 0 };
      const from = p.bytesFrom - last.from;
      const to = p.bytesTo - last.to;
      if (from === 0 && to === 0 && this.seen.has(p)) continue;
      this.seen.set(p, { from: p.bytesFrom, to: p.bytesTo });
      out.push({ label: this.labelOf(p), from: Math.max(0, from), to: Math.max(0, to) });
    }
    return out;
  }

  labelCount(): number {
    return this.labels.size;
  }

  private labelOf(p: Peer): PeerLabel {
    if (!p.verified) return { peer: OTHER, peer_id: OTHER };
    const held = this.labels.get(p.id);
    // A proven peer that renames itself keeps the name first seen: no series is added for it.
    if (held) return held;
    if (this.labels.size >= this.cap) return { peer: OTHER, peer_id: OTHER };
    const label = { peer: p.name, peer_id: p.id };
    this.labels.set(p.id, label);
    return label;
  }
}
