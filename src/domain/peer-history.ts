import type { PeerHistoryView, PeerView } from '../base/api.ts';

// A short memory of each peer for the window: its RTT and NAR throughput over the last few
// minutes (sampled from the registry's views), and why it last went down, so the window can say
// in words why a peer is not up or not trusted.

export interface PeerHistoryOptions {
  intervalMs?: number;
  samples?: number;
  now?: () => number;
}

interface Track {
  rttMs: (number | null)[];
  bytesPerSec: number[];
  lastBytes: number;
  lastAt: number;
  downReason: string | null;
}

export class PeerHistory {
  private readonly tracks = new Map<string, Track>();
  readonly intervalMs: number;
  private readonly samples: number;
  private readonly now: () => number;

  constructor(opts: PeerHistoryOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.samples = opts.samples ?? 30;
    this.now = opts.now ?? Date.now;
  }

  /** One round over the registry's current peers; peers no longer there are forgotten. */
  sample(peers: PeerView[]): void {
    const now = this.now();
    const seen = new Set<string>();
    for (const p of peers) {
      seen.add(p.id);
      const bytes = p.bytesFrom + p.bytesTo;
      let t = this.tracks.get(p.id);
      if (!t) {
        t = { rttMs: [], bytesPerSec: [], lastBytes: bytes, lastAt: now, downReason: null };
        this.tracks.set(p.id, t);
      }
      const secs = Math.max(0.001, (now - t.lastAt) / 1000);
      push(t.rttMs, p.state === 'up' ? p.rttMs : null, this.samples);
      push(t.bytesPerSec, Math.max(0, Math.round((bytes - t.lastBytes) / secs)), this.samples);
      t.lastBytes = bytes;
      t.lastAt = now;
    }
    for (const id of this.tracks.keys()) if (!seen.has(id)) this.tracks.delete(id);
  }

  noteDown(id: string, reason: string): void {
    const t = this.tracks.get(id);
    if (t) t.downReason = reason;
    else this.tracks.set(id, { rttMs: [], bytesPerSec: [], lastBytes: 0, lastAt: this.now(), downReason: reason });
  }

  /** The view with its history and the reason it is not up or not trusted, if any. */
  annotate(p: PeerView): PeerView {
    const t = this.tracks.get(p.id);
    const history: PeerHistoryView = { intervalMs: this.intervalMs, rttMs: t ? [...t.rttMs] : [], bytesPerSec: t ? [...t.bytesPerSec] : [] };
    return { ...p, history, why: explainPeer(p, t?.downReason ?? null) };
  }
}

function push<T>(list: T[], v: T, max: number): void {
  list.push(v);
  if (list.length > max) list.splice(0, list.length - max);
}

/** Why a peer is not used, or its own paths not accepted, in words; null when all is well. */
export function explainPeer(p: PeerView, downReason: string | null): string | null {
  if (p.bad) return `Not used for NARs (${p.bad.reason}) for a while, or until you clear it: peernix peer clear ${p.name}.`;
  if (p.state === 'gone')
    return `Unreachable: ${downReason ?? 'it stopped answering health checks'}. Peernix keeps checking and uses it again once it answers.`;
  if (p.state === 'suspect')
    return downReason ? `Not answering reliably (${downReason}); not asked until it does.` : 'Not confirmed yet: waiting for it to answer a health check.';
  if (!p.verified)
    return 'Has not proved it holds the signing key it announces, so its answers are judged one by one (paths signed by keys your Nix trusts are still accepted).';
  if (!p.trusted) {
    return p.publicKey
      ? `Your Nix does not trust its key, so paths only it signed are not accepted: add ${p.publicKey} to trusted-public-keys.`
      : 'It announced no signing key: only paths signed by keys your Nix trusts are accepted from it.';
  }
  return null;
}
