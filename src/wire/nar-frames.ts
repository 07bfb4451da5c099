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

export class FrameError extends Error {}

/** Turns a framed body back into NAR bytes; counts what came over the wire. */
export class FrameDecoder extends Transform {
  /** Bytes received (frames and headers), for transfer events. */
  wireBytes = 0;
  private header = Buffer.alloc(0);
  private kind = -1;
  private narBytes = 0;
  private remaining = 0; // payload bytes still to come for the current frame
  private parts: Buffer[] = []; // a zstd payload, gathered

  constructor() {
    super({ readableHighWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.wireBytes += chunk.length;
    this.consume(chunk).then(() => cb(), (e: unknown) => cb(e as Error));
  }

  override _flush(cb: TransformCallback): void {
    if (this.kind !== -1 || this.header.length > 0) cb(new FrameError('framed NAR ended inside a frame'));
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
        this.push(pushed ? Buffer.from(piece) : piece);
        pushed = true;
      } else this.parts.push(Buffer.from(piece)); // held until the frame is whole: off the pool's chunk
      if (this.remaining === 0) await this.finishFrame();
    }
  }

  private begin(h: Buffer): void {
    const kind = h[0];
    const narBytes = h.readUInt32BE(1);
    const payload = h.readUInt32BE(5);
    if (kind !== FRAME_RAW && kind !== FRAME_ZSTD) throw new FrameError(`unknown frame kind ${kind}`);
    if (narBytes < 1 || narBytes > MAX_FRAME_NAR_BYTES) throw new FrameError(`frame of ${narBytes} NAR bytes`);
    if (kind === FRAME_RAW ? payload !== narBytes : payload < 1 || payload > narBytes) throw new FrameError(`frame payload of ${payload} bytes for ${narBytes} NAR bytes`);
    this.kind = kind;
    this.narBytes = narBytes;
    this.remaining = payload;
  }

  private async finishFrame(): Promise<void> {
    if (this.kind === FRAME_ZSTD) {
      const payload = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
      this.parts = [];
      let out: Buffer;
      try {
        out = await decompress(payload, { maxOutputLength: this.narBytes });
      } catch (e) {
        throw new FrameError(`zstd frame does not decode to ${this.narBytes} bytes: ${(e as Error).message}`);
      }
      if (out.length !== this.narBytes) throw new FrameError(`zstd frame decoded to ${out.length} bytes, not ${this.narBytes}`);
      this.push(out);
    }
    this.kind = -1;
  }
}
