// Whether this side, not the link, is what holds NARs from a peer back. The serving peer sees only
// that its response backs up, which a slow link and a busy receiver (its Nix writing files, its CPU
// shared with everything else) look alike from there. Compressing helps only the first: for the
// second it adds decoding work to a receiver that is already behind. So each NAR request tells the
// peer the share of recent transfer time our consumer kept the peer's bytes waiting here
// (cache/adaptive-frames.ts then tries no compression while it is high).
//
// Compressed transfers count too (decoding is the receiver's work), which keeps the figure fresh
// while compression runs; it cannot stop compression that is winning, since the peer consults it
// only before starting a compressed trial from raw, never when comparing the two.

/** Request header: the share (0–1) of recent transfers from this peer that our consumer held up. */
export const RECEIVER_HELD_HEADER = 'x-peernix-receiver-held';
/** Transfers shorter than this say little about who sets the pace. */
const MIN_SPAN_MS = 200;
/** Recent transfers' weight: each counts by its length, older ones fading out past about this much time. */
const MEMORY_MS = 10_000;
const REMEMBERED_PEERS = 256;

export interface TransferPace {
  /** Time the peer's bytes waited for our consumer (the socket was paused for backpressure). */
  heldMs: number;
  /** From the first body byte to the last. */
  spanMs: number;
}

export class ReceiverLoad {
  private readonly peers = new Map<string, { held: number; weightMs: number }>();

  note(origin: string, pace: TransferPace): void {
    if (pace.spanMs < MIN_SPAN_MS) return;
    const share = Math.min(1, Math.max(0, pace.heldMs / pace.spanMs));
    const prev = this.peers.get(origin);
    this.peers.delete(origin);
    if (!prev) this.peers.set(origin, { held: share, weightMs: pace.spanMs });
    else {
      const kept = prev.weightMs * Math.max(0, 1 - pace.spanMs / MEMORY_MS);
      const weightMs = Math.min(MEMORY_MS, kept + pace.spanMs);
      this.peers.set(origin, { held: (prev.held * kept + share * pace.spanMs) / (kept + pace.spanMs), weightMs });
    }
    if (this.peers.size > REMEMBERED_PEERS) this.peers.delete(this.peers.keys().next().value!);
  }

  /** The header value for a request to `origin`, or undefined while nothing is known. */
  hint(origin: string): string | undefined {
    const p = this.peers.get(origin);
    return p === undefined ? undefined : p.held.toFixed(2);
  }
}

/** The share a request's header states, or null when absent or not a plain number in 0–1. */
export function parseReceiverHeld(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string' || !/^(0(\.\d{1,3})?|1(\.0{1,3})?)$/.test(value.trim())) return null;
  return Number(value.trim());
}
