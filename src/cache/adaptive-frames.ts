import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { constants, zstdCompress } from 'node:zlib';
import { releaseChunk } from '../chunk-pool.ts';
import { FRAME_RAW, FRAME_ZSTD, frameHeader } from '../peers/nar-frames.ts';

// The serving side of NAR frames (peers/nar-frames.ts): block by block, compress only when that
// gets the NAR there sooner. Compressing pays when the link, not this machine, sets the pace — the
// response keeps backing up — and the content shrinks enough that sending fewer bytes beats the
// time spent compressing them. Both are measured as the NAR goes: the link's rate from how fast the
// response drains while it backs up, the content's ratio from the blocks compressed so far, and
// this machine's compression speed per level from every block it has compressed. Nothing is
// guessed from core counts or link names.

/** A block is whole chunks adding up to at least this (so under twice it: far below MAX_FRAME_NAR_BYTES). */
const BLOCK_BYTES = 1024 * 1024;
/** Every this many blocks sent raw for not shrinking, one is compressed again to look. */
const RECHECK_BLOCKS = 16;
/** Compressing must promise at least this much more NAR per second than sending raw. */
const MARGIN = 1.15;
/** A link is the bottleneck when the response backed up for this share of the recent time. */
const BACKED_UP_SHARE = 0.3;
const WINDOW_MS = 500;

const compress = promisify(zstdCompress) as (buf: Buffer, opts: object) => Promise<Buffer>;

/** Compression work this machine accepts from all clients at once; the rest goes raw. */
export class CompressionBudget {
  private active = 0;
  readonly max: number;
  /** NAR bytes per second one compression achieves here, per level (measured, starts as a guess). */
  private readonly rates = new Map<number, number>([
    [1, 200e6],
    [3, 100e6],
  ]);

  constructor(max = Math.max(1, availableParallelism() - 1)) {
    this.max = max;
  }

  tryTake(): boolean {
    if (this.active >= this.max) return false;
    this.active++;
    return true;
  }

  give(): void {
    this.active--;
  }

  rate(level: number): number {
    return this.rates.get(level)!;
  }

  measured(level: number, bytes: number, ms: number): void {
    if (ms <= 0) return;
    const r = (bytes / ms) * 1000;
    this.rates.set(level, 0.7 * this.rates.get(level)! + 0.3 * r);
  }
}

export interface FrameStats {
  narBytes: number;
  wireBytes: number;
  zstdFrames: number;
  rawFrames: number;
}

/** Measures how fast the consumer takes what is yielded, and whether it is what holds us back. */
class LinkMeter {
  private samples: { at: number; bytes: number; waitedMs: number }[] = [];

  note(bytes: number, waitedMs: number): void {
    const now = performance.now();
    this.samples.push({ at: now, bytes, waitedMs });
    while (this.samples.length > 2 && now - this.samples[0].at > WINDOW_MS) this.samples.shift();
  }

  /** Bytes per second the link drains while it is the bottleneck, or null when it isn't. */
  boundRate(): number | null {
    if (this.samples.length < 4) return null;
    const span = this.samples.at(-1)!.at - this.samples[0].at;
    if (span <= 0) return null;
    let waited = 0;
    let bytes = 0;
    for (const s of this.samples.slice(1)) {
      waited += s.waitedMs;
      bytes += s.bytes;
    }
    if (waited / span < BACKED_UP_SHARE) return null;
    return (bytes / span) * 1000;
  }
}

/**
 * Frames a NAR body for a Peernix peer. Chunks from the source are this stream's to release once
 * consumed (they are the chunk pool's when raw frames pass them on to the response sink, which
 * releases them after the socket took them).
 */
export async function* encodeFrames(source: AsyncIterable<Buffer>, budget: CompressionBudget, stats: FrameStats): AsyncGenerator<Buffer> {
  const link = new LinkMeter();
  let ratio: number | null = null; // wire bytes per NAR byte of compressed blocks, recent
  let rawSinceLook = 0;
  let block: Buffer[] = [];
  let blockBytes = 0;

  // Yields one buffer and notes how long the consumer kept us waiting for it.
  async function* out(buf: Buffer): AsyncGenerator<Buffer> {
    const t0 = performance.now();
    yield buf;
    stats.wireBytes += buf.length;
    link.note(buf.length, performance.now() - t0);
  }

  async function* send(parts: Buffer[], bytes: number, releasable: boolean): AsyncGenerator<Buffer> {
    stats.narBytes += bytes;
    const level = choose();
    if (level !== null && budget.tryTake()) {
      let packed: Buffer | null = null;
      const whole = parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes);
      try {
        const t0 = performance.now();
        packed = await compress(whole, { params: { [constants.ZSTD_c_compressionLevel]: level } });
        budget.measured(level, bytes, performance.now() - t0);
      } catch {
        packed = null; // compression failing here is our problem, not the peer's: send it raw
      } finally {
        budget.give();
      }
      if (packed && packed.length < bytes * 0.95) {
        ratio = ratio === null ? packed.length / bytes : 0.5 * ratio + 0.5 * (packed.length / bytes);
        rawSinceLook = 0;
        if (releasable) for (const p of parts) releaseChunk(p);
        stats.zstdFrames++;
        yield* out(Buffer.concat([frameHeader(FRAME_ZSTD, bytes, packed.length), packed]));
        return;
      }
      ratio = 1; // doesn't shrink: raw until it is time to look again
      rawSinceLook = 0;
    } else rawSinceLook++;
    stats.rawFrames++;
    yield* out(frameHeader(FRAME_RAW, bytes, bytes));
    for (const p of parts) yield* out(p);
  }

  // The zstd level to compress this block at, or null to send it raw.
  function choose(): number | null {
    const linkRate = link.boundRate();
    if (linkRate === null) return null; // the link keeps up: compressing could only slow us down
    if (budget.rate(1) < linkRate * MARGIN) return null; // faster than we compress, however well it shrinks
    if (ratio === null || (ratio >= 0.87 && rawSinceLook >= RECHECK_BLOCKS)) return 1; // look at the content
    const gain = (level: number) => Math.min(budget.rate(level), linkRate / ratio!) / linkRate;
    if (gain(1) < MARGIN) return null;
    // A link slow enough that level 3 still outruns it gets the smaller output.
    return gain(3) >= gain(1) ? 3 : 1;
  }

  // A chunk goes back to the pool whole, so a block is made of whole chunks (never a slice of one
  // whose rest is still to be sent); only a chunk too large for one block is cut, and never released.
  for await (const chunk of source) {
    if (chunk.length > BLOCK_BYTES) {
      if (blockBytes > 0) yield* send(block, blockBytes, true);
      block = [];
      blockBytes = 0;
      for (let at = 0; at < chunk.length; at += BLOCK_BYTES) {
        const piece = chunk.subarray(at, at + BLOCK_BYTES);
        yield* send([piece], piece.length, false);
      }
      continue;
    }
    block.push(chunk);
    blockBytes += chunk.length;
    if (blockBytes >= BLOCK_BYTES) {
      yield* send(block, blockBytes, true);
      block = [];
      blockBytes = 0;
    }
  }
  if (blockBytes > 0) yield* send(block, blockBytes, true);
}
