import { Readable } from 'node:stream';
import { FrameDecoder, FrameError } from '../wire/nar-frames.ts';
import type { Peer } from './registry.ts';

// A NAR proxied from peers. If the peer serving it dies mid-way, the rest is fetched from another
// peer holding the same NarHash with a Range request at the byte offset reached — NARs are
// deterministic, so the joined bytes are the same NAR and the client never notices.
//
// A peer that keeps sending, but far too slowly (a drip of a byte a second is never "silent"),
// holds the NAR just as a dead one would. A watchdog measures the rate while the client is keeping
// up (time spent waiting on the client is not the peer's fault) and, when it falls below a floor or
// far below this transfer's own best second, asks for another holder; if there is one, the rest
// comes from it by Range, and if not, the slow peer carries on.

/** A NAR opened on one source: what it came from and its bytes. */
export interface OpenedNar {
  source: NarSource;
  stream: Readable;
}

export interface NarSource {
  peer: Peer;
  url: string;
}

export interface NarWatchOptions {
  /** How often the rate is sampled. */
  tickMs: number;
  /** A source is judged only after it has streamed this long. */
  graceMs: number;
  /** Samples (ticks) the rate is averaged over. */
  windowTicks: number;
  /** Below this many bytes per second, a source is too slow. */
  minBytesPerSec: number;
  /** Or below its own best tick divided by this. */
  relativeFloor: number;
  /** After a look for another holder found none, wait this long before looking again (doubles). */
  retryMs: number;
}

export const DEFAULT_NAR_WATCH: NarWatchOptions = {
  tickMs: 1000,
  graceMs: 3000,
  windowTicks: 5,
  minBytesPerSec: 32 * 1024,
  relativeFloor: 50,
  retryMs: 10_000,
};

export interface ResumingNarOptions {
  first: OpenedNar;
  narSize: number;
  /**
   * Opens the rest of the NAR from another source, or resolves null when none is left. `slow`: the
   * failed source still works and is only too slow; null then means "keep it". `bad`: the source
   * broke the bounds of a NAR body (bad frames, more bytes than the NarSize), as a peer serving wrong
   * bytes does.
   */
  resume: (offset: number, failed: NarSource, why: string, slow: boolean, bad: boolean) => Promise<OpenedNar | null>;
  onBytes: (source: NarSource, n: number) => void;
  watch?: Partial<NarWatchOptions>;
}

export class ResumingNarStream extends Readable {
  private upstream: Readable | null = null;
  private source: NarSource;
  private offset = 0;
  private readonly opts: ResumingNarOptions;
  private readonly watch: NarWatchOptions;
  private resuming = false;
  /** Set when the upstream fails while a slow-source replacement is being looked for. */
  private failedWhileSwitching: string | null = null;
  readonly sources: NarSource[] = [];
  /** Each attached stream and the NAR bytes it gave, for the bytes on the wire. */
  private readonly attached: { stream: Readable; narBytes: number }[] = [];
  // Watchdog state, per attached source.
  private readonly watchTimer: NodeJS.Timeout;
  private attachedAt = 0;
  private tickBytes = 0;
  private samples: number[] = [];
  private bestTick = 0;
  private clientWaited = false; // the client held us back during this tick
  private nextLookAt = 0;
  private retryMs: number;

  constructor(opts: ResumingNarOptions) {
    super({ highWaterMark: 1 << 20 });
    this.opts = opts;
    this.watch = { ...DEFAULT_NAR_WATCH, ...opts.watch };
    this.retryMs = this.watch.retryMs;
    this.source = opts.first.source;
    this.attach(opts.first.source, opts.first.stream);
    this.watchTimer = setInterval(() => this.tick(), this.watch.tickMs);
    this.watchTimer.unref();
  }

  override _read(): void {
    if (!this.resuming) this.upstream?.resume();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearInterval(this.watchTimer);
    this.upstream?.destroy();
    this.upstream = null;
    cb(err);
  }

  private attach(source: NarSource, stream: Readable): void {
    this.source = source;
    this.sources.push(source);
    this.upstream = stream;
    this.attachedAt = performance.now();
    this.samples = [];
    this.tickBytes = 0;
    this.bestTick = 0;
    const mine = { stream, narBytes: 0 };
    this.attached.push(mine);
    stream.on('data', (chunk: Buffer) => {
      if (stream !== this.upstream) return;
      if (this.offset + chunk.length > this.opts.narSize) {
        // A body without a length of its own (close-delimited, chunked) can't run past the NarSize.
        stream.destroy();
        this.upstreamFailed(`sent more than the NarSize of ${this.opts.narSize} bytes`, true);
        return;
      }
      mine.narBytes += chunk.length;
      this.offset += chunk.length;
      this.tickBytes += chunk.length;
      this.opts.onBytes(source, chunk.length);
      if (!this.push(chunk)) {
        this.clientWaited = true;
        stream.pause();
      }
    });
    stream.once('end', () => {
      if (stream !== this.upstream) return;
      if (this.offset >= this.opts.narSize) this.push(null);
      else this.upstreamFailed(`ended after ${this.offset} of ${this.opts.narSize} bytes`);
    });
    stream.once('error', (e: Error) => {
      if (stream !== this.upstream) return;
      this.upstreamFailed(e.message, e instanceof FrameError);
    });
  }

  /** Bytes that crossed the network: what framed sources received, the NAR bytes of plain ones. */
  get wireBytes(): number {
    let n = 0;
    for (const a of this.attached) n += a.stream instanceof FrameDecoder ? a.stream.wireBytes : a.narBytes;
    return n;
  }

  private upstreamFailed(why: string, bad = false): void {
    // While a slow source is paused for a replacement it sends nothing more to break a bound with.
    if (this.resuming) this.failedWhileSwitching = why;
    else void this.failover(why, false, bad);
  }

  private tick(): void {
    if (this.resuming || this.destroyed || !this.upstream || this.offset >= this.opts.narSize) return;
    const bytes = this.tickBytes;
    this.tickBytes = 0;
    const waited = this.clientWaited || this.upstream.isPaused();
    this.clientWaited = false;
    if (waited) {
      this.samples = []; // the client set the pace: this tick says nothing about the peer
      return;
    }
    this.samples.push(bytes);
    if (this.samples.length > this.watch.windowTicks) this.samples.shift();
    this.bestTick = Math.max(this.bestTick, bytes);
    const now = performance.now();
    if (now - this.attachedAt < this.watch.graceMs || this.samples.length < this.watch.windowTicks || now < this.nextLookAt) return;
    const perSec = (this.samples.reduce((a, b) => a + b, 0) / this.samples.length) * (1000 / this.watch.tickMs);
    const bestPerSec = this.bestTick * (1000 / this.watch.tickMs);
    if (perSec < this.watch.minBytesPerSec || perSec < bestPerSec / this.watch.relativeFloor) {
      void this.failover(`${Math.round(perSec)} B/s (best ${Math.round(bestPerSec)} B/s)`, true);
    }
  }

  private async failover(why: string, slow: boolean, bad = false): Promise<void> {
    if (this.resuming || this.destroyed) return;
    this.resuming = true;
    const failed = this.source;
    const current = this.upstream;
    if (slow)
      current?.pause(); // the offset must not move while another source opens at it
    else {
      current?.destroy();
      this.upstream = null;
    }
    try {
      const next = await this.opts.resume(this.offset, failed, why, slow, bad);
      if (this.destroyed) {
        next?.stream.destroy();
        return;
      }
      if (next) {
        if (slow) current?.destroy();
        this.attach(next.source, next.stream);
        return;
      }
      if (slow && this.failedWhileSwitching === null) {
        // Nobody else has it: the slow peer carries on, and is judged again later.
        this.nextLookAt = performance.now() + this.retryMs;
        this.retryMs *= 2;
        this.samples = [];
        return;
      }
      const reason = slow ? this.failedWhileSwitching : why;
      this.destroy(new Error(`NAR source ${failed.url} failed (${reason}) and no other peer has it`));
    } catch (e) {
      this.destroy(e as Error);
    } finally {
      this.resuming = false;
      this.failedWhileSwitching = null;
      // Back to streaming from whichever source is attached, unless the client is still full.
      if (!this.destroyed && this.readableLength < this.readableHighWaterMark) this.upstream?.resume();
    }
  }
}
