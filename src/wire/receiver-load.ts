import type { Readable } from 'node:stream';

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
/**
 * Request header: the wire bytes per second recent transfers from this peer crossed the link at,
 * counting only the time our side did not hold them. A peer that compresses many times faster than
 * that sends compressed from the first byte (cache/phase-plan.ts), with no raw phase to measure
 * what this side already knows.
 */
export const LINK_RATE_HEADER = 'x-peernix-link-rate';
/**
 * Transfers with fewer wire bytes than this say nothing of the link: TCP's slow start and the round
 * trip set their pace, and a fast LAN would look slow.
 */
const MIN_LINK_BYTES = 2 * 1024 * 1024;
/** Nor do those that our side held for more than this share of their time (the link was not the limit). */
const MAX_LINK_HELD = 0.3;
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
  /** Bytes that crossed the link (framed: compressed or not, headers included); unknown: no link figure. */
  wireBytes?: number;
}

export class ReceiverLoad {
  private readonly peers = new Map<string, { held: number; weightMs: number }>();
  /** Per peer: wire bytes per second while our side kept up (an average fading like the held share). */
  private readonly links = new Map<string, number>();

  note(origin: string, pace: TransferPace): void {
    if (pace.spanMs < MIN_SPAN_MS) return;
    this.noteLink(origin, pace);
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

  private noteLink(origin: string, pace: TransferPace): void {
    const linkMs = pace.spanMs - pace.heldMs;
    if (pace.wireBytes === undefined || pace.wireBytes < MIN_LINK_BYTES || pace.heldMs > pace.spanMs * MAX_LINK_HELD || linkMs < MIN_SPAN_MS) return;
    const rate = (pace.wireBytes / linkMs) * 1000;
    const prev = this.links.get(origin);
    this.links.delete(origin);
    // The latest transfer weighs most: a link that changed (a laptop off the dock) shows at once.
    this.links.set(origin, prev === undefined ? rate : 0.3 * prev + 0.7 * rate);
    if (this.links.size > REMEMBERED_PEERS) this.links.delete(this.links.keys().next().value!);
  }

  /** The link-rate header value for a request to `origin` (whole bytes per second), or undefined while nothing is known. */
  linkHint(origin: string): string | undefined {
    const r = this.links.get(origin);
    return r === undefined ? undefined : String(Math.round(r));
  }

  /** The header value for a request to `origin`, or undefined while nothing is known. */
  hint(origin: string): string | undefined {
    const p = this.peers.get(origin);
    return p === undefined ? undefined : p.held.toFixed(2);
  }
}

/**
 * The pace of a body read through node:http (a team member's NARs come over TLS, without the lean
 * client's own count): from its headers to its end, and how long its consumer kept it paused
 * meanwhile. Without it a team member's link is never known, and every NAR from it, and every
 * piece of one fetched from several holders at once, starts raw.
 * Only 'pause', 'resume' and 'end' are listened to: a 'data' listener would set the body flowing
 * before its reader is attached.
 */
export function watchPace(body: Readable, now: () => number = () => performance.now()): () => Omit<TransferPace, 'wireBytes'> {
  const start = now();
  let end = 0;
  let pausedAt = 0;
  let heldMs = 0;
  const resumed = () => {
    if (pausedAt === 0) return;
    heldMs += now() - pausedAt;
    pausedAt = 0;
  };
  body.on('pause', () => {
    if (pausedAt === 0) pausedAt = now();
  });
  body.on('resume', resumed);
  body.once('end', () => {
    resumed();
    end = now();
  });
  return () => ({ heldMs, spanMs: (end || now()) - start });
}

/** The share a request's header states, or null when absent or not a plain number in 0–1. */
export function parseReceiverHeld(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string' || !/^(0(\.\d{1,3})?|1(\.0{1,3})?)$/.test(value.trim())) return null;
  return Number(value.trim());
}

/** The link rate a request's header states (bytes per second), or null when absent or not a plain whole number. */
export function parseLinkRate(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string' || !/^[1-9]\d{0,12}$/.test(value.trim())) return null;
  return Number(value.trim());
}
