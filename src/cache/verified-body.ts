import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { releaseChunk } from '../base/chunk-pool.ts';

// Every NAR we send passes through here: the whole NAR is counted (and hashed, unless its source is
// the local store under a temp root), only the requested slice goes out, and the last chunk of that
// slice is held back until the size and digest match. A mismatch errors the
// stream, and the HTTP layer destroys the socket, so the client sees a truncated body — never a clean
// end with wrong bytes.

export class NarMismatchError extends Error {}

export interface VerifiedBodyOptions {
  narHash: Buffer | null; // expected sha256 of the whole NAR; null checks the size only
  narSize: number;
  start?: number; // first byte to emit (inclusive)
  end?: number; // last byte to emit (inclusive)
}

export class VerifiedBody extends Transform {
  private readonly hash: Hash | null;
  private readonly expected: Buffer | null;
  private readonly size: number;
  private readonly firstByte: number;
  private readonly lastByte: number;
  private seen = 0;
  private held: Buffer | null = null;

  constructor(opts: VerifiedBodyOptions) {
    super({ highWaterMark: 256 * 1024 });
    this.expected = opts.narHash;
    this.hash = opts.narHash ? createHash('sha256') : null;
    this.size = opts.narSize;
    this.firstByte = opts.start ?? 0;
    this.lastByte = opts.end ?? opts.narSize - 1;
  }

  get bytesSeen(): number {
    return this.seen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const offset = this.seen;
    this.seen += chunk.length;
    if (this.seen > this.size) return cb(new NarMismatchError(`NAR longer than its NarSize ${this.size}`));
    this.hash?.update(chunk);
    const from = Math.max(this.firstByte, offset);
    const to = Math.min(this.lastByte + 1, this.seen);
    if (from < to) {
      if (this.held) this.push(this.held);
      this.held = from === offset && to === this.seen ? chunk : chunk.subarray(from - offset, to - offset);
    } else {
      releaseChunk(chunk); // outside the requested range: hashed, and no longer needed
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.seen !== this.size) return cb(new NarMismatchError(`NAR ended after ${this.seen} of ${this.size} bytes`));
    if (this.hash && !this.hash.digest().equals(this.expected!)) return cb(new NarMismatchError('NAR bytes do not match NarHash'));
    if (this.held) this.push(this.held);
    this.held = null;
    cb();
  }
}
