import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { constants, zstdCompress } from 'node:zlib';
import { releaseChunk } from '../chunk-pool.ts';
import { FRAME_HEADER_BYTES, FRAME_RAW, FRAME_ZSTD, frameHeader } from '../peers/nar-frames.ts';

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
// machine, sets the pace), the receiver says it is not what holds its raw transfers back (a busy
// receiver and a slow link both back the response up, and compressing only helps the link:
// peers/receiver-load.ts), the content shrinks (looked at again every phase), and this machine
// compresses faster than the consumer drains raw bytes.

/** A block is whole chunks adding up to at least this (so under twice it: far below MAX_FRAME_NAR_BYTES). */
const BLOCK_BYTES = 1024 * 1024;
/** Most blocks of one NAR encoding at once, ahead of the one being pushed. */
const MAX_AHEAD = 4;
/** A raw block of more chunks than this (so of small ones) goes out as one buffer. */
const COALESCE_PARTS = 8;
const TRIAL_MS = 1000;
const LONG_MS = 4000;
/** Each compressed trial that loses doubles the raw phase before the next one, up to this. */
const MAX_RAW_MS = 64_000;
/** Clients whose plans are kept. */
const REMEMBERED_CLIENTS = 256;
/** Compressing must bring at least this much more NAR per second than sending raw. */
const MARGIN = 1.1;
/** Blocks that shrink less than this are not worth compressing. */
const WORTH = 0.9;
/** A link is the bottleneck when the response backed up for this share of the recent time. */
const BACKED_UP_SHARE = 0.3;
const WINDOW_MS = 500;
/** A receiver whose consumer held its raw transfers up for more than this share of their time gets no trial. */
const RECEIVER_HELD_MAX = 0.3;
/** Longest a block waits for the compression budget before it goes raw. */
const BUDGET_WAIT_MS = 20;

const compress = promisify(zstdCompress) as (buf: Buffer, opts: object) => Promise<Buffer>;

/** Compression work this machine accepts from all clients at once; a block that can't get it soon goes raw. */
export class CompressionBudget {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  readonly max: number;
  /** Per client address: its NARs' phase plan. */
  private readonly plans = new Map<string, PhasePlan>();
  /** NAR bytes per second one compression achieves here, per level (measured, starts as a guess). */
  private readonly rates = new Map<number, number>([
    [1, 200e6],
    [3, 100e6],
  ]);

  constructor(max = Math.max(1, availableParallelism() - 1)) {
    this.max = max;
  }

  /** A compression slot within waitMs, or false. */
  take(waitMs = BUDGET_WAIT_MS): Promise<boolean> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve(true);
    }
    if (waitMs <= 0 || this.waiting.length >= 64) return Promise.resolve(false);
    return new Promise((resolve) => {
      const grant = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(false);
      }, waitMs);
      this.waiting.push(grant);
    });
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes on
    else this.active--;
  }

  /** The phase plan of a client's NARs (the most recently used are kept). */
  planFor(client: string): PhasePlan {
    let plan = this.plans.get(client);
    if (plan) this.plans.delete(client);
    else plan = new PhasePlan();
    this.plans.set(client, plan);
    if (this.plans.size > REMEMBERED_CLIENTS) this.plans.delete(this.plans.keys().next().value!);
    return plan;
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
  /** Blocks compressed, sent so or not (a block that shrank too little goes raw after all). */
  blocksCompressed?: number;
}

/** How fast the consumer takes what is yielded, and whether it is what holds us back. */
class LinkMeter {
  private samples: { at: number; bytes: number; waitedMs: number }[] = [];

  note(bytes: number, waitedMs: number): void {
    const now = performance.now();
    this.samples.push({ at: now, bytes, waitedMs });
    while (this.samples.length > 2 && now - this.samples[0].at > WINDOW_MS) this.samples.shift();
  }

  /** Wire bytes per second the consumer drains while it is the bottleneck, or null when it isn't. */
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

type Mode = 'raw' | 'zstd';

/** Timed phases of raw or compressed blocks, chosen by the NAR throughput each achieved. */
export class PhasePlan {
  mode: Mode = 'raw';
  private trial = true;
  private start = performance.now();
  private nar = 0;
  private samples: { at: number; nar: number }[] = [];
  private readonly rate: Record<Mode, number | null> = { raw: null, zstd: null };
  /** Length of a long raw phase: doubles with each compressed trial that loses. */
  private rawMs = LONG_MS;
  /** What the receiver said of its own pace in its latest request (null: nothing, an older Peernix). */
  receiverHeld: number | null = null;

  /** Called once a block is on its way; `zstdWorthTrying` says whether a compressed trial could pay now. */
  blockSent(narBytes: number, zstdWorthTrying: () => boolean): void {
    const now = performance.now();
    this.nar += narBytes;
    this.samples.push({ at: now, nar: this.nar });
    const elapsed = now - this.start;
    if (elapsed < (this.trial ? TRIAL_MS : this.mode === 'raw' ? this.rawMs : LONG_MS) || this.samples.length < 4) return;
    const mid = this.samples.find((x) => x.at >= this.start + elapsed / 2)!;
    this.rate[this.mode] = now > mid.at ? ((this.nar - mid.nar) / (now - mid.at)) * 1000 : null;
    const other: Mode = this.mode === 'raw' ? 'zstd' : 'raw';
    let next: Mode;
    let trial: boolean;
    if (this.trial && this.rate[other] !== null && this.rate[this.mode] !== null) {
      // A trial against the phase before it: the better one runs long.
      next = this.rate.zstd! > this.rate.raw! * MARGIN ? 'zstd' : 'raw';
      trial = false;
      this.rawMs = next === 'zstd' ? LONG_MS : Math.min(MAX_RAW_MS, this.rawMs * 2);
    } else if (other === 'zstd' && !zstdWorthTrying()) {
      next = 'raw';
      trial = false;
    } else {
      next = other; // after a long phase (or the first one), try the other way
      trial = true;
    }
    this.mode = next;
    this.trial = trial;
    this.begin(now);
  }

  /** A NAR starts: after a pause (no block for a while) the phase is timed afresh. */
  resumeAfterIdle(): void {
    const last = this.samples.at(-1)?.at ?? this.start;
    if (performance.now() - last > 1000) this.begin(performance.now());
  }

  private begin(now: number): void {
    this.start = now;
    this.nar = 0;
    this.samples = [];
  }
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
  private readonly link = new LinkMeter();
  private ratio: number | null = null; // wire bytes per NAR byte of recent compressed blocks
  private block: Buffer[] = [];
  private blockBytes = 0;
  // Backpressure: when a push found the consumer behind, and how long it kept us waiting since the last note.
  private blockedAt = 0;
  private waitedMs = 0;
  private pushedBytes = 0;
  /** Blocks encoding or encoded, in NAR order, not yet pushed. */
  private readonly queue: Promise<Encoded>[] = [];

  constructor(budget: CompressionBudget, stats: FrameStats, from: { client?: string; receiverHeld?: number | null } = {}) {
    // Counted in buffers, not bytes: a few compressed blocks are tiny on the wire, and a byte limit
    // would let many of them run ahead of the consumer, where they look sent to the phase timing.
    super({ readableObjectMode: true, readableHighWaterMark: 2 });
    this.budget = budget;
    this.stats = stats;
    this.plan = budget.planFor(from.client ?? '');
    this.plan.resumeAfterIdle();
    this.plan.receiverHeld = from.receiverHeld ?? null;
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
      this.waitedMs += performance.now() - this.blockedAt;
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
    if (!this.push(buf) && this.blockedAt === 0) this.blockedAt = performance.now();
  }

  /** Tells the link meter what went out since the last note, and how long the consumer held us meanwhile. */
  private noteLink(): void {
    const waited = this.waitedMs + (this.blockedAt > 0 ? performance.now() - this.blockedAt : 0);
    if (this.blockedAt > 0) this.blockedAt = performance.now();
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

  private async encode(parts: Buffer[], bytes: number, releasable: boolean): Promise<Encoded> {
    this.stats.narBytes += bytes;
    if (this.plan.mode === 'zstd' && (await this.budget.take())) {
      let packed: Buffer | null = null;
      const lvl = this.level();
      try {
        const whole = parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes);
        const t0 = performance.now();
        packed = await compress(whole, { params: { [constants.ZSTD_c_compressionLevel]: lvl } });
        this.stats.blocksCompressed = (this.stats.blocksCompressed ?? 0) + 1;
        this.budget.measured(lvl, bytes, performance.now() - t0);
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
