// Framing for the nix-daemon worker protocol (docs: nix-protocols.md §3.2).
//
// Everything on the wire is a little-endian u64 or a length-prefixed byte string padded with
// zeros to a multiple of 8. The reader is deliberately paranoid: every length that comes from
// the peer is checked against a caller-supplied bound *before* anything is allocated or waited
// for, so a broken or hostile daemon cannot make us buffer gigabytes.

import { Readable } from 'node:stream';

/** Largest integer we accept from the wire; anything above cannot be a real size, count or time. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO_32 = 0x1_0000_0000;

export type WireErrorCode = 'EOF' | 'OVERSIZE' | 'PROTOCOL' | 'ABORTED' | 'BUSY';

export class WireError extends Error {
  readonly code: WireErrorCode;
  constructor(code: WireErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WireError';
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

export function padLength(len: number): number {
  return (8 - (len % 8)) % 8;
}

export function encodeU64(value: number | bigint): Buffer {
  const buf = Buffer.alloc(8);
  if (typeof value === 'bigint') {
    if (value < 0n || value >= 1n << 64n) throw new RangeError(`u64 out of range: ${value}`);
    buf.writeBigUInt64LE(value);
    return buf;
  }
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`u64 out of range: ${value}`);
  buf.writeUInt32LE(value % TWO_32, 0);
  buf.writeUInt32LE(Math.floor(value / TWO_32), 4);
  return buf;
}

export function encodeBool(value: boolean): Buffer {
  return encodeU64(value ? 1 : 0);
}

export function encodeString(value: string | Uint8Array): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  // One allocation: length word, payload, and the zero padding (Buffer.alloc zero-fills).
  const out = Buffer.alloc(8 + bytes.length + padLength(bytes.length));
  out.writeUInt32LE(bytes.length % TWO_32, 0);
  out.writeUInt32LE(Math.floor(bytes.length / TWO_32), 4);
  out.set(bytes, 8);
  return out;
}

export function encodeStringList(values: readonly (string | Uint8Array)[]): Buffer {
  return Buffer.concat([encodeU64(values.length), ...values.map(encodeString)]);
}

// ---------------------------------------------------------------------------------------------
// Raw hand-off target

/**
 * A Readable that yields exactly `expected` bytes fed by a WireReader (see WireReader.handOff).
 * Backpressure is end-to-end: when the consumer stops reading, the reader pauses the socket, so
 * the kernel socket buffer fills and the sender blocks.
 */
export class RawByteStream extends Readable {
  readonly expected: number;
  /** Bytes pushed so far. */
  delivered = 0;
  /** True while the consumer has asked for more than it has been given. */
  wanting = false;
  /** Set by the WireReader while it feeds this stream. */
  feeder: (() => void) | null = null;
  private readonly onDestroy: ((err: Error | null) => void) | null;

  constructor(expected: number, opts: { highWaterMark?: number; onDestroy?: (err: Error | null) => void } = {}) {
    super({ highWaterMark: opts.highWaterMark ?? 256 * 1024 });
    if (!Number.isSafeInteger(expected) || expected < 0) throw new RangeError(`bad byte count: ${expected}`);
    this.expected = expected;
    this.onDestroy = opts.onDestroy ?? null;
  }

  override _read(): void {
    this.wanting = true;
    this.feeder?.();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.wanting = false;
    try {
      this.onDestroy?.(err);
      // Let the feeding reader notice and release its hand-off.
      this.feeder?.();
    } finally {
      cb(err);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

interface Waiter {
  need: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface RawState {
  target: RawByteStream;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface WireReaderOptions {
  /** Pause the source once this many bytes are buffered and nobody is waiting for them. */
  maxBuffered?: number;
  /** Hard upper bound for a single bytes(n) read. */
  maxRead?: number;
}

/**
 * Buffered reader over a byte stream (normally a net.Socket). Reads must be issued one at a time
 * (the protocol is strictly sequential per connection); a second concurrent read is a bug and
 * throws WireError('BUSY').
 */
export class WireReader {
  private readonly source: Readable;
  private readonly maxBuffered: number;
  private readonly maxRead: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: Waiter | null = null;
  private raw: RawState | null = null;
  private endError: Error | null = null;
  private pausedByUs = false;

  constructor(source: Readable, opts: WireReaderOptions = {}) {
    this.source = source;
    this.maxBuffered = opts.maxBuffered ?? 1024 * 1024;
    this.maxRead = opts.maxRead ?? 64 * 1024 * 1024;
    source.on('data', (chunk: Buffer | string) => this.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    source.on('end', () => this.finish(new WireError('EOF', 'connection closed by peer')));
    source.on('error', (err: Error) => this.finish(new WireError('EOF', `connection error: ${err.message}`, { cause: err })));
    source.on('close', () => this.finish(new WireError('EOF', 'connection closed')));
  }

  /** Bytes received but not consumed yet. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The reason the stream ended, once it has. */
  get ended(): Error | null {
    return this.endError;
  }

  async u64(): Promise<number> {
    await this.need(8);
    const b = this.take(8);
    const lo = b.readUInt32LE(0);
    const hi = b.readUInt32LE(4);
    const value = hi * TWO_32 + lo;
    if (value > MAX_SAFE) throw new WireError('OVERSIZE', `integer too large: 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`);
    return value;
  }

  async bool(): Promise<boolean> {
    return (await this.u64()) !== 0;
  }

  /** Exactly n raw bytes (no padding handling). */
  async bytes(n: number): Promise<Buffer> {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad byte count: ${n}`);
    if (n > this.maxRead) throw new WireError('OVERSIZE', `refusing to read ${n} bytes (limit ${this.maxRead})`);
    if (n === 0) return Buffer.alloc(0);
    await this.need(n);
    return this.take(n);
  }

  /** A wire string as raw bytes; fails before reading the payload if it is longer than maxLen. */
  async strBytes(maxLen: number): Promise<Buffer> {
    const len = await this.u64();
    if (len > maxLen) throw new WireError('OVERSIZE', `string of ${len} bytes exceeds limit of ${maxLen}`);
    const body = await this.bytes(len);
    await this.padding(len);
    return body;
  }

  async str(maxLen: number): Promise<string> {
    return (await this.strBytes(maxLen)).toString('utf8');
  }

  async strList(maxCount: number, maxLen: number): Promise<string[]> {
    const count = await this.u64();
    if (count > maxCount) throw new WireError('OVERSIZE', `list of ${count} strings exceeds limit of ${maxCount}`);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(await this.str(maxLen));
    return out;
  }

  /** Discard a wire string without holding it in memory (for payloads we never look at). */
  async skipStr(maxLen: number): Promise<void> {
    const len = await this.u64();
    if (len > maxLen) throw new WireError('OVERSIZE', `string of ${len} bytes exceeds limit of ${maxLen}`);
    let left = len;
    while (left > 0) {
      const step = Math.min(left, 64 * 1024);
      await this.need(step);
      this.take(step);
      left -= step;
    }
    await this.padding(len);
  }

  /**
   * Feed exactly target.expected bytes from the stream into target, respecting its backpressure.
   * Resolves once they have all been pushed (and the target ended); rejects, and destroys the
   * target, if the stream ends first. Bytes after the hand-off stay buffered for normal reads.
   */
  handOff(target: RawByteStream): Promise<void> {
    this.assertIdle();
    return new Promise<void>((resolve, reject) => {
      this.raw = { target, resolve, reject };
      target.feeder = () => this.feedRaw();
      this.feedRaw();
    });
  }

  /** Convenience: a Readable of exactly n bytes taken from the stream. */
  rawStream(n: number, opts: { highWaterMark?: number } = {}): RawByteStream {
    const target = new RawByteStream(n, opts);
    this.handOff(target).catch(() => {
      // The failure is reported on the stream itself (destroyed with the error).
    });
    return target;
  }

  // --- internals ---

  private assertIdle(): void {
    if (this.waiter || this.raw) throw new WireError('BUSY', 'concurrent read on a wire reader');
  }

  private async padding(len: number): Promise<void> {
    const pad = padLength(len);
    if (pad === 0) return;
    await this.need(pad);
    const b = this.take(pad);
    for (let i = 0; i < pad; i++) {
      if (b[i] !== 0) throw new WireError('PROTOCOL', 'non-zero padding after string');
    }
  }

  private need(n: number): Promise<void> {
    if (this.buffered >= n) return Promise.resolve();
    this.assertIdle();
    if (this.endError) return Promise.reject(this.endError);
    return new Promise<void>((resolve, reject) => {
      this.waiter = { need: n, resolve, reject };
      this.resumeSource();
    });
  }

  /** Remove n bytes (n <= buffered) from the front of the buffer. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length === n) {
      this.chunks.shift();
      this.buffered -= n;
      this.afterConsume();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      this.afterConsume();
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const want = n - off;
      if (c.length <= want) {
        out.set(c, off);
        off += c.length;
        this.chunks.shift();
      } else {
        out.set(c.subarray(0, want), off);
        this.chunks[0] = c.subarray(want);
        off += want;
      }
    }
    this.buffered -= n;
    this.afterConsume();
    return out;
  }

  private afterConsume(): void {
    if (this.pausedByUs && this.buffered < this.maxBuffered && !this.raw) this.resumeSource();
  }

  private onData(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.raw) {
      this.feedRaw();
      return;
    }
    const w = this.waiter;
    if (w && this.buffered >= w.need) {
      this.waiter = null;
      w.resolve();
    }
    if (!this.waiter && this.buffered >= this.maxBuffered) this.pauseSource();
  }

  private feedRaw(): void {
    const raw = this.raw;
    if (!raw) return;
    const t = raw.target;
    if (t.destroyed) {
      this.raw = null;
      t.feeder = null;
      raw.reject(new WireError('ABORTED', 'raw stream destroyed by its consumer'));
      return;
    }
    while (t.delivered < t.expected && this.buffered > 0 && t.wanting) {
      const piece = this.take(Math.min(this.chunks[0].length, t.expected - t.delivered));
      t.delivered += piece.length;
      if (!t.push(piece)) t.wanting = false;
    }
    if (t.delivered === t.expected) {
      this.raw = null;
      t.feeder = null;
      t.push(null);
      raw.resolve();
      this.afterConsume();
      return;
    }
    if (this.endError && t.delivered + this.buffered < t.expected) {
      this.failRaw(this.endError);
      return;
    }
    // Read from the socket only while the consumer wants data and our buffer is drained.
    if (t.wanting && this.buffered === 0) this.resumeSource();
    else this.pauseSource();
  }

  private failRaw(cause: Error): void {
    const raw = this.raw;
    if (!raw) return;
    this.raw = null;
    raw.target.feeder = null;
    const err = new WireError('EOF', `stream ended after ${raw.target.delivered} of ${raw.target.expected} bytes (${cause.message})`, { cause });
    raw.target.destroy(err);
    raw.reject(err);
  }

  private finish(err: Error): void {
    if (this.endError) return;
    this.endError = err;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      // Whatever is buffered is not enough for this read, and nothing more will come.
      w.reject(err);
    }
    if (this.raw) this.feedRaw();
  }

  private pauseSource(): void {
    if (!this.pausedByUs) {
      this.pausedByUs = true;
      this.source.pause();
    }
  }

  private resumeSource(): void {
    if (this.pausedByUs || this.source.isPaused()) {
      this.pausedByUs = false;
      this.source.resume();
    }
  }
}
