import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { constants, zstdCompress } from 'node:zlib';
import { releaseChunk } from '../base/chunk-pool.ts';
import type { Clock } from '../base/clock.ts';
import { FRAME_HEADER_BYTES, FRAME_RAW, FRAME_ZSTD, frameHeader } from '../wire/nar-frames.ts';
import { BUDGET_WAIT_MS, type CompressionBudget } from './compression-budget.ts';
import type { LinkMeter } from './link-meter.ts';
import { MARGIN, RECEIVER_HELD_MAX, type PhasePlan } from './phase-plan.ts';

// The serving side of NAR frames (peers/nar-frames.ts): block by block, compress only when that
// gets the NAR there sooner. Whether it does is measured, not guessed from core counts or link
// names: NARs to a client go in phases, raw or compressed, and the NAR bytes per second each phase
// achieved decide the next. A trial of the other way follows every long phase, so a link that got
// faster or a receiver that became the bottleneck (decompressing costs it too) is noticed.
//
// Phases are timed, and a phase's rate counts only its second half: the buffers between here and
// the receiver (the response's, both sockets') hold the previous phase's bytes at first, and a few
// compressed blocks would vanish into them and look infinitely fast. A client's plan is shared by
// its NARs (one after another or at once: they share its link and its CPU), so a closure of many
// small paths is judged as a whole. A compressed trial that loses makes the next raw phase twice as
// long.
//
// A compressed trial is worth running only when the response backs up (the consumer, not this
// machine, sets the pace), the receiver says it is not what holds its transfers back (a busy
// receiver and a slow link both back the response up, and compressing only helps the link:
// peers/receiver-load.ts), the content shrinks (looked at again every phase), and this machine
// compresses faster than the consumer drains raw bytes.

/** A block is whole chunks adding up to at least this (so under twice it: far below MAX_FRAME_NAR_BYTES). */
const BLOCK_BYTES = 1024 * 1024;
/** Most blocks of one NAR encoding at once, ahead of the one being pushed. */
const MAX_AHEAD = 4;
/** A raw block of more chunks than this (so of small ones) goes out as one buffer. */
const COALESCE_PARTS = 8;
/** Blocks that shrink less than this are not worth compressing. */
const WORTH = 0.9;
/** While blocks don't shrink, one in this many is still compressed, to see whether they shrink again. */
const PROBE_EVERY = 8;
/** Longest a block waits for a compression slot, however slow the link. */
const MAX_SLOT_WAIT_MS = 250;

const compress = promisify(zstdCompress) as (buf: Buffer, opts: object) => Promise<Buffer>;

export interface FrameStats {
  narBytes: number;
  wireBytes: number;
  zstdFrames: number;
  rawFrames: number;
  /** Blocks compressed, sent so or not (a block that shrank too little goes raw after all). */
  blocksCompressed?: number;
}

interface Encoded {
  narBytes: number;
  buffers: Buffer[];
}

/**
 * Frames a NAR body for a Peernix peer. Chunks written to it are its to release once consumed
 * (they are the chunk pool's when raw frames pass them on to the response sink, which releases
 * them after the socket took them).
 *
 * A Transform, not an async generator over the source: iterating a byte stream reads all it has
 * buffered as one concatenated copy, which doubled the serving side's CPU per MB and starved the
 * chunk pool.
 */
export class FrameEncoder extends Transform {
  private readonly budget: CompressionBudget;
  private readonly stats: FrameStats;
  private readonly plan: PhasePlan;
  private readonly link: LinkMeter;
  private readonly clock: Clock;
  private ratio: number | null = null; // wire bytes per NAR byte of recent compressed blocks
  private sinceProbe = 0;
  private block: Buffer[] = [];
  private blockBytes = 0;
  // Backpressure: when a push found the consumer behind, and how long it kept us waiting since the last note.
  private blockedAt = 0;
  private waitedMs = 0;
  private pushedBytes = 0;
  /** Blocks encoding or encoded, in NAR order, not yet pushed. */
  private readonly queue: Promise<Encoded>[] = [];
  /** The link rate the receiver stated (receiver-load.ts), null when it stated none. */
  private readonly knownLinkRate: number | null;

  constructor(budget: CompressionBudget, stats: FrameStats, from: { client?: string; receiverHeld?: number | null; linkRate?: number | null } = {}) {
    // Counted in buffers, not bytes: a few compressed blocks are tiny on the wire, and a byte limit
    // would let many of them run ahead of the consumer, where they look sent to the phase timing.
    super({ readableObjectMode: true, readableHighWaterMark: 2 });
    this.budget = budget;
    this.clock = budget.clock;
    this.stats = stats;
    this.plan = budget.planFor(from.client ?? '');
    // The client's, not this response's: a NAR fetched in pieces by Range (several holders at once,
    // peers/swarm-nar.ts) comes as short requests, none long enough to measure the link on its own.
    this.link = this.plan.link;
    this.plan.resumeAfterIdle();
    this.plan.receiverHeld = from.receiverHeld ?? null;
    this.knownLinkRate = from.linkRate ?? null;
    this.plan.knownLink(this.knownLinkRate, budget.rate(1));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // A chunk goes back to the pool whole, so a block is made of whole chunks (never a slice of one
    // whose rest is still to be sent); only a chunk too large for one block is cut, and never released.
    if (chunk.length > BLOCK_BYTES) {
      const pieces: Buffer[] = [];
      for (let at = 0; at < chunk.length; at += BLOCK_BYTES) pieces.push(chunk.subarray(at, at + BLOCK_BYTES));
      this.sendPending()
        .then(async () => {
          for (const piece of pieces) await this.send([piece], piece.length, false);
        })
        .then(() => cb(), cb);
      return;
    }
    this.block.push(chunk);
    this.blockBytes += chunk.length;
    if (this.blockBytes < BLOCK_BYTES) return cb();
    this.sendPending().then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.sendPending()
      .then(async () => {
        while (this.queue.length > 0) await this.pushNext();
      })
      .then(() => cb(), cb);
  }

  override _read(size: number): void {
    if (this.blockedAt > 0) {
      this.waitedMs += this.clock.now() - this.blockedAt;
      this.blockedAt = 0;
    }
    super._read(size);
  }

  private sendPending(): Promise<void> {
    if (this.blockBytes === 0) return Promise.resolve();
    const parts = this.block;
    const bytes = this.blockBytes;
    this.block = [];
    this.blockBytes = 0;
    return this.send(parts, bytes, true);
  }

  private out(buf: Buffer): void {
    this.stats.wireBytes += buf.length;
    this.pushedBytes += buf.length;
    if (!this.push(buf) && this.blockedAt === 0) this.blockedAt = this.clock.now();
  }

  /** Tells the link meter what went out since the last note, and how long the consumer held us meanwhile. */
  private noteLink(): void {
    const waited = this.waitedMs + (this.blockedAt > 0 ? this.clock.now() - this.blockedAt : 0);
    if (this.blockedAt > 0) this.blockedAt = this.clock.now();
    this.link.note(this.pushedBytes, waited);
    this.pushedBytes = 0;
    this.waitedMs = 0;
  }

  private zstdWorthTrying = (): boolean => {
    const drain = this.link.boundRate();
    if (drain === null) return false; // the consumer keeps up: compressing could only slow us down
    if (this.plan.receiverHeld !== null && this.plan.receiverHeld > RECEIVER_HELD_MAX) return false; // backed up by a busy receiver, not the link
    if (this.budget.rate(1) < drain * MARGIN) return false; // it drains faster than we compress
    if (this.ratio !== null && this.ratio > WORTH) {
      this.ratio = null; // doesn't shrink: raw for this round, a fresh look at the next
      return false;
    }
    return true;
  };

  // Level 3 only where the link is slow enough that even it outruns the link.
  private level(): number {
    const drain = this.link.boundRate();
    if (drain === null || this.ratio === null) return 1;
    return this.budget.rate(3) > (drain / this.ratio) * 1.5 ? 3 : 1;
  }

  // Blocks may still be encoding (compressing on the thread pool) while the source fills the next,
  // so one NAR can use every spare core: one fewer than the budget's compressions at once, since a
  // block that finds no slot free within BUDGET_WAIT_MS goes raw (with one block ahead on a budget
  // of one, compressed-transfer.test.ts crossed 100 Mbit/s at 1.3× instead of 1.5×).
  private async send(parts: Buffer[], bytes: number, releasable: boolean): Promise<void> {
    const job = this.encode(parts, bytes, releasable);
    job.catch(() => {}); // a failure surfaces when its turn comes; until then it must not count as unhandled
    this.queue.push(job);
    while (this.queue.length > Math.min(MAX_AHEAD, this.budget.max - 1)) await this.pushNext();
  }

  private async pushNext(): Promise<void> {
    const frame = await this.queue.shift()!;
    this.noteLink();
    for (const b of frame.buffers) this.out(b);
    this.plan.blockSent(frame.narBytes, this.zstdWorthTrying);
  }

  /**
   * In a compressed phase, blocks that stopped shrinking (a run of zip files in a NAR, or content
   * that never did, on a link the receiver said was slow) go raw, but every PROBE_EVERY-th is still
   * compressed to notice when they shrink again: one stretch of incompressible files must not end
   * compression for the rest of the NAR, nor cost the CPU of compressing all of it.
   */
  private worthCompressing(): boolean {
    if (this.budget.forced || this.ratio === null || this.ratio <= WORTH) return true;
    this.sinceProbe++;
    if (this.sinceProbe < PROBE_EVERY) return false;
    this.sinceProbe = 0;
    return true;
  }

  private async encode(parts: Buffer[], bytes: number, releasable: boolean): Promise<Encoded> {
    this.stats.narBytes += bytes;
    if (
      (this.plan.mode === 'zstd' || this.budget.forced) &&
      this.worthCompressing() &&
      (await this.budget.take(slotWaitMs(bytes, this.link.boundRate() ?? this.knownLinkRate)))
    ) {
      let packed: Buffer | null = null;
      const lvl = this.level();
      try {
        const whole = parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes);
        const t0 = this.clock.now();
        packed = await compress(whole, { params: { [constants.ZSTD_c_compressionLevel]: lvl } });
        this.stats.blocksCompressed = (this.stats.blocksCompressed ?? 0) + 1;
        this.budget.measured(lvl, bytes, this.clock.now() - t0);
      } catch {
        packed = null; // compression failing here is our problem, not the peer's: send it raw
      } finally {
        this.budget.give();
      }
      if (packed) this.ratio = this.ratio === null ? packed.length / bytes : 0.5 * this.ratio + 0.5 * (packed.length / bytes);
      if (packed && packed.length < bytes * 0.95) {
        if (releasable) for (const p of parts) releaseChunk(p);
        this.stats.zstdFrames++;
        return { narBytes: bytes, buffers: [Buffer.concat([frameHeader(FRAME_ZSTD, bytes, packed.length), packed])] };
      }
    }
    this.stats.rawFrames++;
    if (parts.length > COALESCE_PARTS) {
      // A block of many small chunks: one buffer (a copy at memory speed) costs less than a socket
      // write for each of them.
      const whole = Buffer.concat([frameHeader(FRAME_RAW, bytes, bytes), ...parts], FRAME_HEADER_BYTES + bytes);
      if (releasable) for (const p of parts) releaseChunk(p);
      return { narBytes: bytes, buffers: [whole] };
    }
    return { narBytes: bytes, buffers: [frameHeader(FRAME_RAW, bytes, bytes), ...parts] };
  }
}

/**
 * How long a block may wait for a compression slot before it goes raw: on a link known to be the
 * bottleneck (`drain`, wire bytes per second; null: not known to be), up to half the time the block
 * would take on it raw (compressed, it takes a fraction of that), so two responses to one client
 * (pieces of one NAR from several holders at once, peers/swarm-nar.ts) share the slot rather than
 * send every other block raw; the budget's own wait otherwise.
 */
export function slotWaitMs(bytes: number, drain: number | null): number {
  if (drain === null) return BUDGET_WAIT_MS;
  return Math.min(MAX_SLOT_WAIT_MS, Math.max(BUDGET_WAIT_MS, ((bytes / drain) * 1000) / 2));
}
