import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { zstdDecompress } from 'node:zlib';

// How a NAR travels between two Peernix nodes when the asking one offers it: a sequence of frames,
// each either raw NAR bytes or one zstd-compressed block, so the serving side can decide block by
// block whether compressing pays (cache/adaptive-frames.ts) and a Range resume can start at any
// byte (offsets stay NAR offsets: a frame never spans the start of a range). Plain HTTP clients,
// Nix included, never ask for it and get the NAR as ever.
//
//   frame = kind (1 byte: 0 raw, 1 zstd) · NAR bytes it stands for (u32 BE) · payload bytes (u32 BE) · payload
//
// A framed body is delimited by the connection closing (no Content-Length, no chunked encoding: the
// frames delimit themselves, and a body cut at a frame boundary is a NAR short of its NarSize).
//
// A frame never stands for more than MAX_FRAME_NAR_BYTES, and a zstd payload is never larger than
// the bytes it stands for (the server sends those raw instead): a hostile peer can't make the
// decoder hold or inflate more than that per frame.
//
// Threat: the framed body comes from a peer, and a trusted-looking narinfo can be replayed by
// anyone. So decoding is paced by the reader (a frame is decoded only once what came before it has
// been taken, so a bomb of tiny zstd frames can't run ahead into memory), never yields more NAR
// bytes than the decoder was told to expect (the narinfo's NarSize, less a resume's offset), and
// charges every frame a fixed cost in NAR bytes, paid for by the NAR bytes frames deliver: endless
// 1-byte raw frames or tiny zstd frames (a decompression call each) run out of credit, while
// genuine frames (blocks of about 1 MiB, now and then a short one) never come close. No fixed
// expansion ratio is asked for: our own encoder turns 1 MiB of zeros into about 50 bytes.

/** Request header a Peernix sends to offer frames, and the response header of a framed body. */
export const FRAMES_HEADER = 'x-peernix-frames';
export const FRAMES_VERSION = 'zstd-1';
export const FRAME_HEADER_BYTES = 9;
export const MAX_FRAME_NAR_BYTES = 4 * 1024 * 1024;
export const FRAME_RAW = 0;
export const FRAME_ZSTD = 1;

const decompress = promisify(zstdDecompress) as (buf: Buffer, opts: { maxOutputLength: number }) => Promise<Buffer>;

export function frameHeader(kind: number, narBytes: number, payloadBytes: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h[0] = kind;
  h.writeUInt32BE(narBytes, 1);
  h.writeUInt32BE(payloadBytes, 5);
  return h;
}

/** The peer broke the bounds of a framed body (bombs, floods of tiny frames, garbage): as bad as wrong bytes. */
export class FrameError extends Error {}

/**
 * What each frame costs, in NAR bytes of credit: about what handling one costs next to hashing and
 * writing that many bytes (a raw frame is a header and a push; a zstd frame a decompression call on
 * the thread pool). A frame of at least this many NAR bytes pays for itself.
 */
export const RAW_FRAME_COST = 2 * 1024;
export const ZSTD_FRAME_COST = 16 * 1024;
/** Credit a body starts with, so a small NAR or a few short frames (a resume, an older peer) never count. */
export const FRAME_CREDIT = 512 * 1024;

export interface FrameDecoderOptions {
  /** Most NAR bytes the body may decode to (its NarSize less the offset); more is a FrameError. */
  maxNarBytes?: number;
}

/** Turns a framed body back into NAR bytes; counts what came over the wire. */
export class FrameDecoder extends Transform {
  /** Bytes received (frames and headers), for transfer events. */
  wireBytes = 0;
  private header = Buffer.alloc(0);
  private kind = -1;
  private narBytes = 0;
  private remaining = 0; // payload bytes still to come for the current frame
  private parts: Buffer[] = []; // a zstd payload, gathered
  private readonly maxNarBytes: number;
  /** NAR bytes of the frames begun so far. */
  narBytesOut = 0;
  /** Frames begun so far. */
  frames = 0;
  private spent = 0; // frame costs charged, against FRAME_CREDIT + narBytesOut
  private drained: (() => void) | null = null; // wakes a decode waiting for the reader

  constructor(opts: FrameDecoderOptions = {}) {
    super({ readableHighWaterMark: 1 << 20 });
    this.maxNarBytes = opts.maxNarBytes ?? Infinity;
  }

  override _read(size: number): void {
    const wake = this.drained;
    this.drained = null;
    wake?.();
    super._read(size);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    const wake = this.drained;
    this.drained = null;
    wake?.();
    super._destroy(err, cb);
  }

  /** Decoding has stopped until the reader takes what is buffered (a test's evidence of the pause). */
  get waitingForReader(): boolean {
    return this.drained !== null;
  }

  /** Pushes NAR bytes; when the reader is a buffer behind, waits for it before decoding more. */
  private async give(b: Buffer): Promise<void> {
    if (this.push(b) || this.destroyed) return;
    await new Promise<void>((resolve) => (this.drained = resolve));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.wireBytes += chunk.length;
    this.consume(chunk).then(
      () => cb(),
      (e: unknown) => cb(e as Error),
    );
  }

  override _flush(cb: TransformCallback): void {
    // A body cut short is what a peer that died or lost its link sends: a failure to resume from,
    // not a broken bound (a FrameError would mark the peer bad for good).
    if (this.kind !== -1 || this.header.length > 0) cb(new Error('framed NAR ended inside a frame'));
    else cb();
  }

  private async consume(chunk: Buffer): Promise<void> {
    let at = 0;
    let pushed = false; // a piece of this chunk went on already: see below
    while (at < chunk.length) {
      if (this.kind === -1) {
        const need = FRAME_HEADER_BYTES - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (this.header.length < FRAME_HEADER_BYTES) return;
        this.begin(this.header);
        this.header = Buffer.alloc(0);
        continue;
      }
      const piece = chunk.subarray(at, at + this.remaining);
      at += piece.length;
      this.remaining -= piece.length;
      // Raw bytes go on as they arrive; a zstd payload is decoded whole. A chunk from the pool goes
      // back whole once its first piece is sent, so a second piece of it (past a frame boundary,
      // once per frame) goes on as a copy.
      if (this.kind === FRAME_RAW) {
        const out = pushed ? Buffer.from(piece) : piece;
        pushed = true;
        if (this.remaining === 0) this.kind = -1;
        await this.give(out);
      } else {
        this.parts.push(Buffer.from(piece)); // held until the frame is whole: off the pool's chunk
        if (this.remaining === 0) await this.finishFrame();
      }
      if (this.destroyed) return;
    }
  }

  private begin(h: Buffer): void {
    const kind = h[0];
    const narBytes = h.readUInt32BE(1);
    const payload = h.readUInt32BE(5);
    if (kind !== FRAME_RAW && kind !== FRAME_ZSTD) throw new FrameError(`unknown frame kind ${kind}`);
    if (narBytes < 1 || narBytes > MAX_FRAME_NAR_BYTES) throw new FrameError(`frame of ${narBytes} NAR bytes`);
    if (kind === FRAME_RAW ? payload !== narBytes : payload < 1 || payload > narBytes)
      throw new FrameError(`frame payload of ${payload} bytes for ${narBytes} NAR bytes`);
    this.frames++;
    this.narBytesOut += narBytes;
    if (this.narBytesOut > this.maxNarBytes) throw new FrameError(`frames stand for more than the ${this.maxNarBytes} NAR bytes expected`);
    this.spent += kind === FRAME_RAW ? RAW_FRAME_COST : ZSTD_FRAME_COST;
    if (this.spent > FRAME_CREDIT + this.narBytesOut)
      throw new FrameError(`${this.frames} frames for ${this.narBytesOut} NAR bytes: frames too small to be worth decoding`);
    this.kind = kind;
    this.narBytes = narBytes;
    this.remaining = payload;
  }

  /** A zstd frame's payload is whole: decode it, exactly to the NAR bytes it stands for. */
  private async finishFrame(): Promise<void> {
    const payload = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [];
    let out: Buffer;
    try {
      out = await decompress(payload, { maxOutputLength: this.narBytes });
    } catch (e) {
      throw new FrameError(`zstd frame does not decode to ${this.narBytes} bytes: ${(e as Error).message}`);
    }
    if (out.length !== this.narBytes) throw new FrameError(`zstd frame decoded to ${out.length} bytes, not ${this.narBytes}`);
    this.kind = -1;
    await this.give(out);
  }
}
