import { Readable } from 'node:stream';
import type { Peer } from './registry.ts';

// A NAR proxied from peers. If the peer serving it dies mid-way, the rest is fetched from another
// peer holding the same NarHash with a Range request at the byte offset reached — NARs are
// deterministic, so the joined bytes are the same NAR and the client never notices.

export interface NarSource {
  peer: Peer;
  url: string;
}

export interface ResumingNarOptions {
  first: { source: NarSource; stream: Readable };
  narSize: number;
  /** Opens the rest of the NAR from another source, or resolves null when none is left. */
  resume: (offset: number, failed: NarSource, why: string) => Promise<{ source: NarSource; stream: Readable } | null>;
  onBytes: (source: NarSource, n: number) => void;
}

export class ResumingNarStream extends Readable {
  private upstream: Readable | null = null;
  private source: NarSource;
  private offset = 0;
  private readonly opts: ResumingNarOptions;
  private resuming = false;
  readonly sources: NarSource[] = [];

  constructor(opts: ResumingNarOptions) {
    super({ highWaterMark: 1 << 20 });
    this.opts = opts;
    this.source = opts.first.source;
    this.attach(opts.first.source, opts.first.stream);
  }

  override _read(): void {
    this.upstream?.resume();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.upstream?.destroy();
    this.upstream = null;
    cb(err);
  }

  private attach(source: NarSource, stream: Readable): void {
    this.source = source;
    this.sources.push(source);
    this.upstream = stream;
    stream.on('data', (chunk: Buffer) => {
      if (stream !== this.upstream) return;
      this.offset += chunk.length;
      this.opts.onBytes(source, chunk.length);
      if (!this.push(chunk)) stream.pause();
    });
    stream.once('end', () => {
      if (stream !== this.upstream) return;
      if (this.offset >= this.opts.narSize) this.push(null);
      else void this.failover(`ended after ${this.offset} of ${this.opts.narSize} bytes`);
    });
    stream.once('error', (e: Error) => {
      if (stream !== this.upstream) return;
      void this.failover(e.message);
    });
  }

  private async failover(why: string): Promise<void> {
    if (this.resuming || this.destroyed) return;
    this.resuming = true;
    const failed = this.source;
    this.upstream?.destroy();
    this.upstream = null;
    try {
      const next = await this.opts.resume(this.offset, failed, why);
      if (this.destroyed) {
        next?.stream.destroy();
        return;
      }
      if (!next) {
        this.destroy(new Error(`NAR source ${failed.url} failed (${why}) and no other peer has it`));
        return;
      }
      this.attach(next.source, next.stream);
    } catch (e) {
      this.destroy(e as Error);
    } finally {
      this.resuming = false;
    }
  }
}
