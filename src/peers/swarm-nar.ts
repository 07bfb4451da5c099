import { Readable } from 'node:stream';
import { type Clock, systemClock, type TimerHandle } from '../base/clock.ts';
import { FrameDecoder, FrameError } from '../wire/nar-frames.ts';
import type { NarSource } from './resuming-nar.ts';

// One large NAR from several holders at once. Each holder on its own link (Wi-Fi, a slow uplink)
// sends at a fraction of what this machine takes; with the same NarHash, their bytes are the same
// NAR, so byte ranges from each, put back in order, are the NAR (the caller's one NarHash check
// judges the whole).
//
// It begins as one stream, the caller's (a ResumingNarStream from the first holder, with its own
// resume and drip watchdog). Only once that stream has run a while with our reader waiting on it in
// most ticks (the holder, not this machine, sets the pace), or at once when recent transfers from
// that holder already showed as much, and another holder with Range is known does it split: the
// first stream is cut at a piece boundary ahead of it, and every holder, the first included,
// fetches pieces by bounded Range in turn. With one holder nothing changes.
//
// Pieces come framed like any NAR request, so a compressible NAR gains from several holders too:
// each piece states what this machine measured of that holder's link (X-Peernix-Link-Rate,
// receiver-load.ts), and a holder whose link is known slow compresses a piece from its first byte;
// one not yet measured sends its first piece raw, which measures it.
//
// Memory is bounded: pieces are claimed no further than AHEAD_BYTES past the one being sent, and
// the one being sent flows on as it arrives (and is paused when our reader is behind). A holder that
// fails gives its piece back (from the byte it reached) for the others; one that stalls is cut and
// does the same; an idle holder takes half of what a slower one still has to send of its piece.

export interface SwarmOptions {
  /** The NAR from byte 0 on the first holder; destroyed once the pieces take over from it. */
  head: Readable;
  headSource: NarSource;
  narSize: number;
  /** Holders of the same NarHash that honour Range, as now known (the first holder may be among them). */
  holders: () => NarSource[];
  /** Opens NAR bytes [start, end] on a holder; null when it could not (already reported by the caller). */
  openRange: (source: NarSource, start: number, end: number, signal: AbortSignal) => Promise<Readable | null>;
  /** A holder's piece failed mid-way (`bad`: it broke a bound of a NAR body). */
  onFailure: (source: NarSource, why: string, bad: boolean) => void;
  /** A holder was given up on, however it failed (reported or not): its share goes to the others. */
  onGivenUp?: (source: NarSource) => void;
  onBytes: (source: NarSource, n: number) => void;
  /**
   * The share of recent transfers from the first holder that our side held up (receiver-load.ts),
   * when known. Low: that holder's link, not this machine, set their pace, so the grace would only
   * measure it again (half a second of one link where three could send: a third of the time a
   * 53 MB NAR from three 100 Mbit/s holders needs).
   */
  firstHeld?: number;
  clock?: Clock;
  tuning?: Partial<SwarmTuning>;
}

export interface SwarmTuning {
  /** NARs this large or larger are worth splitting (smaller ones go as one stream). */
  minNarBytes: number;
  pieceBytes: number;
  /** Pieces are claimed no further than this many bytes past the one being sent. */
  aheadBytes: number;
  /** The one stream runs this long, its holder setting the pace most of the time, before pieces are fetched from others too. */
  graceMs: number;
  tickMs: number;
  /** A holder silent this long while its bytes are wanted is cut, and its piece goes to the others. */
  stallMs: number;
  /** Less than this left of a piece is not worth taking from its holder. */
  minStealBytes: number;
  /**
   * Pieces each holder sends at once. With one, a holder sat idle while each next piece's request
   * was answered (100–370 ms on a loaded machine, against 340 ms for 4 MiB at 100 Mbit/s); a second
   * one fills that gap on the same link.
   */
  lanes: number;
  /**
   * A holder's first piece of this NAR: alone (its other lanes wait) and this size, enough for the
   * peer client's figure of its link (receiver-load.ts). Until that piece ends, the holder has no
   * figure to compress by and starts raw; its next pieces state one.
   */
  firstPieceBytes: number;
}

export const DEFAULT_SWARM: SwarmTuning = {
  minNarBytes: 32 * 1024 * 1024,
  // Three holders with two lanes each have six pieces in flight: at 4 MiB that was the whole window
  // ahead (aheadBytes), so one late piece at the front stopped every holder until it came. At 2 MiB
  // half the window is slack; a piece's own cost on the holder (a shared temp root, a dump that
  // resumes at a cursor and stops at its end) is a few ms.
  pieceBytes: 2 * 1024 * 1024,
  aheadBytes: 24 * 1024 * 1024,
  graceMs: 500,
  tickMs: 250,
  stallMs: 2500,
  minStealBytes: 512 * 1024,
  lanes: 2,
  firstPieceBytes: 2 * 1024 * 1024,
};

/** A first holder whose recent transfers our side held up less than this share of their time is link-bound. */
const LINK_BOUND_HELD = 0.25;

interface Piece {
  start: number;
  /** Exclusive; lowered when another holder takes the rest. */
  end: number;
  received: number;
  bufs: Buffer[];
  worker: Worker | null;
}

interface Worker {
  source: NarSource;
  stream: Readable | null;
  /** Where the stream's request ends (exclusive): a piece that ends there lets its response end by itself. */
  streamEnd: number;
  piece: Piece | null;
  cancel: AbortController | null;
  lastByteAt: number;
  narBytes: number;
  retired: boolean;
  paused: boolean;
}

export class SwarmNarStream extends Readable {
  private readonly opts: SwarmOptions;
  private readonly tune: SwarmTuning;
  private readonly clock: Clock;
  /** Claimed and not yet fully sent, in NAR order; pieces[0] is the one being sent. */
  private readonly pieces: Piece[] = [];
  private readonly workers: Worker[] = [];
  /** First NAR byte not claimed by any piece. */
  private nextStart: number;
  private emitted = 0;
  private flowing = true;
  private swarming = false;
  private readonly startedAt: number;
  /** Our reader held us back since the last tick: this machine, not the holder, set the pace. */
  private readerWaited = false;
  /** Our reader found nothing to read since the last tick: the holder set the pace. */
  private starved = false;
  /** Ticks of the one stream, and how many of them found our reader waiting on the holder. */
  private ticks = 0;
  private starvedTicks = 0;
  private readonly timer: TimerHandle;
  /** Every stream read from, for the bytes on the wire. */
  private readonly streams: { stream: Readable; narBytes: number }[] = [];
  private readonly headWorker: Worker;
  /** Streams whose piece is complete, left to end by themselves (letEnd). */
  private readonly ending = new Set<Readable>();
  /** Holders that completed a piece of this NAR: their link is measured, every lane of theirs works. */
  private readonly proven = new Set<string>();
  /** Holders whose first piece is complete and whose response is still to end. */
  private readonly measuring = new Set<string>();
  /** Holders whose piece failed or stalled: not asked again for this NAR. */
  private readonly given = new Set<string>();
  /** A piece was given back or a holder was cut (the outcome is then "resumed"). */
  resumed = false;

  constructor(opts: SwarmOptions) {
    super({ highWaterMark: 1 << 20 });
    this.opts = opts;
    this.tune = { ...DEFAULT_SWARM, ...opts.tuning };
    this.clock = opts.clock ?? systemClock;
    this.startedAt = this.clock.now();
    this.nextStart = opts.narSize;
    const piece: Piece = { start: 0, end: opts.narSize, received: 0, bufs: [], worker: null };
    this.pieces.push(piece);
    this.headWorker = this.newWorker(opts.headSource);
    this.attach(this.headWorker, piece, opts.head, opts.narSize);
    this.timer = this.clock.setInterval(() => this.tick(), this.tune.tickMs);
    this.timer.unref?.();
    if (opts.firstHeld !== undefined && opts.firstHeld < LINK_BOUND_HELD) queueMicrotask(() => this.splitNow());
  }

  /** Holders that sent bytes of this NAR, in the order they were first used. */
  get sources(): NarSource[] {
    return this.shares.map((x) => x.source);
  }

  /** Holders still taking pieces (a failed one's lanes are retired). */
  get working(): NarSource[] {
    const by = new Map<string, NarSource>();
    for (const w of this.workers) if (!w.retired) by.set(w.source.peer.id, w.source);
    return [...by.values()];
  }

  /** Each holder and the NAR bytes it sent (its lanes together). */
  get shares(): { source: NarSource; narBytes: number }[] {
    const by = new Map<string, { source: NarSource; narBytes: number }>();
    for (const w of this.workers) {
      if (w.narBytes === 0) continue;
      const x = by.get(w.source.peer.id);
      if (x) x.narBytes += w.narBytes;
      else by.set(w.source.peer.id, { source: w.source, narBytes: w.narBytes });
    }
    return [...by.values()];
  }

  get split(): boolean {
    return this.swarming;
  }

  /** Bytes that crossed the network: what framed sources received, the NAR bytes of plain ones. */
  get wireBytes(): number {
    let n = 0;
    for (const s of this.streams) {
      const w = (s.stream as { wireBytes?: unknown }).wireBytes;
      n += s.stream instanceof FrameDecoder || typeof w === 'number' ? (w as number) : s.narBytes;
    }
    return n;
  }

  override _read(): void {
    this.flowing = true;
    this.emit_();
    // Our reader asked and nothing had come: the holders, not this machine, set the pace just now.
    if (this.flowing && this.pieces.length > 0 && this.pieces[0].bufs.length === 0) this.starved = true;
    for (const w of this.workers) {
      if (w.paused && w.stream) {
        w.paused = false;
        w.lastByteAt = this.clock.now();
        w.stream.resume();
      }
    }
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.clock.clearInterval(this.timer);
    for (const w of this.workers) this.stop(w);
    // Once the whole NAR is through, the last pieces' responses may still end by themselves (letEnd).
    if (this.emitted < this.opts.narSize) for (const s of this.ending) s.destroy();
    cb(err);
  }

  private newWorker(source: NarSource): Worker {
    const w: Worker = {
      source,
      stream: null,
      streamEnd: 0,
      piece: null,
      cancel: null,
      lastByteAt: this.clock.now(),
      narBytes: 0,
      retired: false,
      paused: false,
    };
    this.workers.push(w);
    return w;
  }

  private attach(w: Worker, piece: Piece, stream: Readable, streamEnd: number): void {
    w.stream = stream;
    w.streamEnd = streamEnd;
    w.piece = piece;
    piece.worker = w;
    w.lastByteAt = this.clock.now();
    const mine = { stream, narBytes: 0 };
    this.streams.push(mine);
    stream.on('data', (chunk: Buffer) => {
      if (w.stream !== stream || this.destroyed) return;
      w.lastByteAt = this.clock.now();
      const want = piece.end - (piece.start + piece.received);
      const take = chunk.length > want ? chunk.subarray(0, want) : chunk;
      if (take.length > 0) {
        piece.bufs.push(take);
        piece.received += take.length;
        mine.narBytes += take.length;
        w.narBytes += take.length;
        this.opts.onBytes(w.source, take.length);
      }
      if (piece.start + piece.received >= piece.end) this.pieceDone(w);
      this.emit_();
      if (!this.flowing && piece === this.pieces[0] && w.stream === stream && !w.paused) {
        w.paused = true;
        stream.pause();
      }
    });
    stream.once('end', () => {
      if (w.stream !== stream) return;
      if (piece.start + piece.received >= piece.end) this.pieceDone(w);
      else this.failed(w, `ended after ${piece.received} of ${piece.end - piece.start} bytes of its piece`, false);
    });
    stream.once('error', (e: Error) => {
      if (w.stream !== stream) return;
      this.failed(w, e.message, e instanceof FrameError);
    });
  }

  /**
   * A stream whose piece has all it asked for is left to end by itself: only a response that ended
   * tells the peer client how fast that holder's link is (receiver-load.ts), the figure the holder's
   * next pieces carry so it compresses them from the first byte. Cut a moment early, every piece
   * went unmeasured and started raw. One that does not end soon is cut after all.
   */
  private letEnd(w: Worker): void {
    const s = w.stream!;
    w.stream = null;
    w.cancel = null;
    if (w.paused) {
      w.paused = false;
      s.resume();
    }
    this.ending.add(s);
    const timer = this.clock.setTimeout(() => s.destroy(), this.tune.stallMs);
    s.once('close', () => {
      this.clock.clearTimeout(timer);
      this.ending.delete(s);
      const id = w.source.peer.id;
      if (this.measuring.delete(id)) {
        this.proven.add(id);
        queueMicrotask(() => this.schedule());
      }
    });
  }

  /** Ends a worker's stream (its request) without judging it. */
  private stop(w: Worker): void {
    w.cancel?.abort();
    w.cancel = null;
    const s = w.stream;
    w.stream = null;
    w.paused = false;
    s?.destroy();
  }

  private pieceDone(w: Worker): void {
    const piece = w.piece;
    const id = w.source.peer.id;
    if (piece) piece.worker = null;
    w.piece = null;
    if (piece && w.stream && w.streamEnd === piece.end) {
      // Its first piece: the holder's next ones wait until this response ends (and the figure exists).
      if (!this.proven.has(id)) this.measuring.add(id);
      this.letEnd(w);
    } else {
      this.stop(w);
      this.proven.add(id);
    }
    if (w === this.headWorker && !this.swarming) {
      // The whole NAR came from the one stream.
      return;
    }
    queueMicrotask(() => this.schedule());
  }

  private failed(w: Worker, why: string, bad: boolean, reported = false): void {
    const piece = w.piece;
    if (piece) piece.worker = null;
    w.piece = null;
    this.stop(w);
    w.retired = true;
    const first = !this.given.has(w.source.peer.id);
    this.given.add(w.source.peer.id);
    // Its other lane goes too, its piece back to the others: the same holder, the same link.
    for (const o of this.workers) {
      if (o === w || o.retired || o.source.peer.id !== w.source.peer.id) continue;
      o.retired = true;
      if (o.piece) o.piece.worker = null;
      o.piece = null;
      this.stop(o);
    }
    this.resumed = true;
    if (!reported) this.opts.onFailure(w.source, why, bad);
    if (first) this.opts.onGivenUp?.(w.source);
    if (!this.swarming) {
      // The first stream (which already resumed on its own where it could) is gone: its rest is
      // pieces for whoever else holds the NAR.
      if (piece) piece.end = piece.start + piece.received;
      this.beginPieces(piece ? piece.end : this.emitted);
    }
    this.schedule();
  }

  private tick(): void {
    if (this.destroyed) return;
    const now = this.clock.now();
    const waited = this.readerWaited || !this.flowing;
    this.readerWaited = false;
    if (!this.swarming) {
      // Who sets the pace, judged over the whole stream so far: on a busy machine our reader backs up
      // now and then even behind a slow link, and waits on a fast holder now and then too.
      this.ticks++;
      if (this.starved && !waited) this.starvedTicks++;
      this.starved = false;
      const linkBound = this.opts.firstHeld !== undefined && this.opts.firstHeld < LINK_BOUND_HELD;
      if (!linkBound && (this.starvedTicks * 2 < this.ticks || now - this.startedAt < this.tune.graceMs)) return;
      this.splitNow();
      return;
    }
    // A holder silent while its bytes are wanted (not paused by us): its piece goes to the others.
    for (const w of this.workers) {
      // Retired lanes too: their holder failed in another lane, and this one may still hold a piece.
      if (!w.piece || w.paused || now - w.lastByteAt < this.tune.stallMs) continue;
      if (!this.workers.some((o) => o.source.peer.id !== w.source.peer.id && !o.retired)) continue; // nobody to give it to: its own timeouts decide
      this.failed(w, `nothing for ${Math.round(now - w.lastByteAt)} ms`, false, w.retired);
    }
  }

  /** Cuts the one stream a piece ahead of where it is (it keeps streaming up to there), and fetches the rest as pieces. */
  private splitNow(): void {
    if (this.destroyed || this.swarming) return;
    if (this.opts.narSize - this.emitted < 2 * this.tune.pieceBytes || this.others().length === 0) return;
    const head = this.pieces[0];
    const cut = Math.min(this.opts.narSize, head.start + head.received + this.tune.pieceBytes);
    head.end = cut;
    if (head.start + head.received >= head.end) this.pieceDone(this.headWorker);
    this.beginPieces(cut);
  }

  /** Holders not yet working on this NAR and not given up on. */
  private others(): NarSource[] {
    const working = new Set(this.workers.filter((w) => !w.retired).map((w) => w.source.peer.id));
    const seen = new Set<string>();
    return this.opts.holders().filter((h) => {
      const id = h.peer.id;
      if (working.has(id) || this.given.has(id) || seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  }

  private beginPieces(from: number): void {
    if (this.swarming) return;
    this.swarming = true;
    this.nextStart = from;
    this.schedule();
  }

  /** Gives every idle holder something to fetch, joining newly known holders. */
  private schedule(): void {
    if (this.destroyed || !this.swarming) return;
    this.addLanes();
    for (const w of this.workers) if (!w.retired && !w.piece && !w.cancel) this.assign(w);
    this.dropDonePieces();
    if (this.emitted < this.opts.narSize && !this.workers.some((w) => !w.retired)) {
      this.destroy(new Error(`NAR: every holder failed at byte ${this.emitted} of ${this.opts.narSize}`));
    }
  }

  /** Gives every holder not given up on its lanes (the first holder already has one: its first stream). */
  private addLanes(): void {
    const lanes = new Map<string, number>();
    for (const w of this.workers) if (!w.retired) lanes.set(w.source.peer.id, (lanes.get(w.source.peer.id) ?? 0) + 1);
    for (const h of this.opts.holders()) {
      const id = h.peer.id;
      if (this.given.has(id)) continue;
      for (let n = lanes.get(id) ?? 0; n < this.tune.lanes; n++) this.newWorker(h);
      lanes.set(id, this.tune.lanes);
    }
  }

  private assign(w: Worker): void {
    const t = this.tune;
    const proven = this.proven.has(w.source.peer.id);
    // One lane of a holder not yet proven here works (its first piece); the others wait for it, and
    // for its response to end, which gives the figure their requests state.
    if (this.measuring.has(w.source.peer.id)) return;
    if (!proven && this.workers.some((o) => o !== w && o.source.peer.id === w.source.peer.id && (o.piece || o.cancel))) return;
    let piece: Piece | undefined = this.pieces.find((p) => p.worker === null && p.start + p.received < p.end);
    if (!piece && this.nextStart < this.opts.narSize && this.aheadBytes() + t.pieceBytes <= t.aheadBytes) {
      const size = proven ? t.pieceBytes : t.firstPieceBytes;
      piece = { start: this.nextStart, end: Math.min(this.opts.narSize, this.nextStart + size), received: 0, bufs: [], worker: null };
      this.nextStart = piece.end;
      this.pieces.push(piece);
    }
    if (!piece) piece = this.steal(w);
    if (!piece) return;
    piece.worker = w;
    w.piece = piece;
    const from = piece.start + piece.received;
    const cancel = new AbortController();
    w.cancel = cancel;
    w.lastByteAt = this.clock.now();
    const until = piece.end;
    void this.opts.openRange(w.source, from, until - 1, cancel.signal).then(
      (stream) => {
        if (w.cancel !== cancel) return stream?.destroy();
        w.cancel = null;
        if (this.destroyed) return stream?.destroy();
        const p = w.piece!;
        if (!stream) return this.failed(w, 'could not open its piece', false, true);
        if (p.start + p.received !== from) {
          // Someone else moved this piece on meanwhile (it was given back and taken): start again.
          stream.destroy();
          p.worker = null;
          w.piece = null;
          return this.schedule();
        }
        if (p.start + p.received >= p.end) {
          stream.destroy();
          return this.pieceDone(w);
        }
        this.attach(w, p, stream, until);
      },
      (e: Error) => {
        if (w.cancel === cancel) this.failed(w, e.message, false);
      },
    );
  }

  /** Half of what is left of the slowest-looking piece another holder is still sending, or nothing. */
  private steal(thief: Worker): Piece | undefined {
    let best: Piece | undefined;
    let bestLeft = 0;
    for (const p of this.pieces) {
      // Not from its own holder's other lane: the same link would send the same bytes no sooner.
      if (!p.worker || p.worker.cancel || p.worker.source.peer.id === thief.source.peer.id) continue;
      const left = p.end - (p.start + p.received);
      // The piece being sent first: it holds everything behind it up.
      const weight = p === this.pieces[0] ? left * 4 : left;
      if (left >= 2 * this.tune.minStealBytes && weight > bestLeft) {
        best = p;
        bestLeft = weight;
      }
    }
    if (!best) return undefined;
    const at = best.start + best.received + Math.floor((best.end - best.start - best.received) / 2);
    const rest: Piece = { start: at, end: best.end, received: 0, bufs: [], worker: null };
    best.end = at;
    this.pieces.splice(this.pieces.indexOf(best) + 1, 0, rest);
    return rest;
  }

  private aheadBytes(): number {
    let n = 0;
    for (let i = 1; i < this.pieces.length; i++) n += this.pieces[i].end - this.pieces[i].start;
    return n;
  }

  private dropDonePieces(): void {
    while (this.pieces.length > 0) {
      const p = this.pieces[0];
      if (p.bufs.length > 0 || p.start + p.received < p.end) break;
      this.pieces.shift();
    }
  }

  /** Sends what has arrived of the pieces at the front, in order, as far as our reader takes it. */
  private emit_(): void {
    while (this.flowing && this.pieces.length > 0) {
      const p = this.pieces[0];
      while (p.bufs.length > 0) {
        const b = p.bufs.shift()!;
        this.emitted += b.length;
        if (!this.push(b)) {
          this.flowing = false;
          this.readerWaited = true;
          break;
        }
      }
      if (p.start + p.received < p.end || p.bufs.length > 0) break;
      this.pieces.shift();
      if (this.swarming) queueMicrotask(() => this.schedule()); // room ahead for another piece
    }
    if (this.emitted >= this.opts.narSize && this.pieces.length === 0 && !this.readableEnded) {
      this.clock.clearInterval(this.timer);
      for (const w of this.workers) this.stop(w);
      this.push(null);
    }
  }
}
