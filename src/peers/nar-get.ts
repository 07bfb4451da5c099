import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { takeChunk } from '../base/chunk-pool.ts';

// A GET for a NAR body over plain HTTP/1.1, leaner per byte than node:http: the socket reads
// straight into the chunk pool's 256 KiB buffers (node:http reads 64 KiB into a fresh buffer each
// time), and those very buffers go on to the hash and the client's socket, so a proxied byte is read
// once and never copied. Measured on loopback (bench/transfers.ts) this roughly halves the proxy's
// CPU per MB.
//
// Peers are hostile, so the response is parsed strictly, rejecting what llhttp rejects and more:
// the status line and headers within 16 KiB and 100 fields, token names, no control characters in
// values, no folded lines, no bare LF; Content-Length digits only and never twice with different
// values, never with Transfer-Encoding; Transfer-Encoding only "chunked", chunk sizes of at most
// 8 hex digits with bounded extensions and trailers. One connection per NAR (Connection: close), so
// nothing after the body is ever read as another response. https peers keep node:http (peer-client).

export const MAX_HEAD_BYTES = 16 * 1024;
const MAX_FIELDS = 100;
/** Reads smaller than this are copied out, so a dripping peer can't pin a 256 KiB buffer per byte. */
const COPY_BELOW = 64 * 1024;
const MAX_CHUNK_LINE = 1024;

export class HttpResponseError extends Error {}

export interface NarResponse extends Readable {
  statusCode: number;
  headers: Record<string, string>;
  /** The whole body arrived (as framed by Content-Length, chunked encoding or the close). */
  complete: boolean;
  setIdleTimeout(ms: number, onTimeout: () => void): void;
  /** How long the body's bytes waited for its consumer, within how long they took to arrive (receiver-load.ts). */
  pace(): { heldMs: number; spanMs: number };
}

export interface NarGetOptions {
  headers: Record<string, string>;
  /** Until the response headers, the connect included. */
  headersMs: number;
  signal?: AbortSignal;
  timeoutError: () => Error;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, space and tab; nothing else (no CR, LF, NUL or other controls).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d) [\t\x20-\x7e\x80-\xff]*$/;

/** Parses a response head (without its final CRLF CRLF). Throws HttpResponseError. */
export function parseResponseHead(text: string): { status: number; headers: Record<string, string> } {
  const lines = text.split('\r\n');
  if (lines.some((l) => l.includes('\n') || l.includes('\r'))) throw new HttpResponseError('bare CR or LF in the response head');
  const m = STATUS_LINE.exec(lines[0]);
  if (!m) throw new HttpResponseError(`bad status line "${lines[0].slice(0, 80)}"`);
  if (lines.length - 1 > MAX_FIELDS) throw new HttpResponseError(`more than ${MAX_FIELDS} header fields`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) throw new HttpResponseError('folded header line');
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpResponseError(`bad header line "${line.slice(0, 80)}"`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpResponseError(`bad header name "${name.slice(0, 80)}"`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new HttpResponseError(`bad characters in header ${name}`);
    const key = name.toLowerCase();
    if (key === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) throw new HttpResponseError(`bad Content-Length "${value.slice(0, 40)}"`);
      if (headers[key] !== undefined && headers[key] !== value) throw new HttpResponseError('conflicting Content-Length');
    }
    headers[key] = headers[key] !== undefined && key !== 'content-length' ? `${headers[key]}, ${value}` : value;
  }
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    if (te.toLowerCase() !== 'chunked') throw new HttpResponseError(`Transfer-Encoding "${te.slice(0, 40)}" is not supported`);
    if (headers['content-length'] !== undefined) throw new HttpResponseError('both Content-Length and Transfer-Encoding');
  }
  return { status: Number(m[1]), headers };
}

type BodyFraming = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

class NarBody extends Readable implements NarResponse {
  statusCode = 0;
  headers: Record<string, string> = {};
  complete = false;
  socket: Socket | null = null;
  private firstByteAt = 0;
  private lastByteAt = 0;
  private pausedAt = 0;
  private heldMs = 0;
  private idleMs = 0;

  constructor() {
    super({ highWaterMark: 1 << 20 });
    // A bad byte can fail the body in the very read that delivered the head, before the caller has
    // had a turn to listen: the error stays on the stream (errored, seen by any later reader) and
    // must not crash the process meanwhile.
    this.on('error', () => {});
  }

  /**
   * Destroys the body after `ms` without a byte from the peer, counting only while we want bytes:
   * a reader that takes a long time over what already came (a few KB of zstd frames can be minutes
   * of NAR for a slow client) is not the peer falling silent.
   */
  setIdleTimeout(ms: number, onTimeout: () => void): void {
    this.idleMs = ms;
    this.socket?.setTimeout(ms, onTimeout);
  }

  /** Body bytes arrived (for pace()). */
  arrived(): void {
    this.lastByteAt = performance.now();
    if (this.firstByteAt === 0) this.firstByteAt = this.lastByteAt;
  }

  /** The consumer is behind: reads stop until _read asks for more. */
  hold(): void {
    this.socket!.pause();
    this.socket!.setTimeout(0);
    this.pausedAt = performance.now();
  }

  pace(): { heldMs: number; spanMs: number } {
    return { heldMs: this.heldMs, spanMs: this.lastByteAt - this.firstByteAt };
  }

  override _read(): void {
    if (!this.socket?.isPaused()) return;
    this.heldMs += performance.now() - this.pausedAt;
    this.socket.resume();
    if (this.idleMs > 0) this.socket.setTimeout(this.idleMs);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.socket?.destroy();
    cb(err);
  }
}

/** GETs `url` (http: only) and resolves at the response head; the body streams from the returned Readable. */
export function getNar(url: string, opts: NarGetOptions): Promise<NarResponse> {
  const u = new URL(url);
  if (u.protocol !== 'http:') return Promise.reject(new Error(`getNar: ${u.protocol} is not supported`));
  const body = new NarBody();
  return new Promise((resolve, reject) => {
    let head: Buffer | null = Buffer.alloc(0);
    let framing: BodyFraming | null = null;
    // Chunked decoding state: bytes of data left in the current chunk, or the line being gathered.
    let chunkLeft = 0;
    let chunkLine = '';
    let afterData = false; // expecting the CRLF that ends a chunk's data
    let trailers = false;
    let settled = false;
    let spare: Buffer | null = null; // a pooled buffer not handed out, for the next read

    let handed = false; // the body was given to the caller (only then can it fail on its own)
    const fail = (e: Error) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(e);
      } else if (handed) body.destroy(e);
    };
    const onAbort = () => fail(Object.assign(new Error('aborted'), { name: 'AbortError' }));
    const timer = setTimeout(() => fail(opts.timeoutError()), opts.headersMs);
    if (opts.signal?.aborted) {
      clearTimeout(timer);
      reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      return;
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const socket = connect({
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port: Number(u.port || 80),
      onread: {
        buffer: () => (spare ??= takeChunk()),
        callback: (n: number, buf: Buffer): boolean => {
          try {
            const more = onBytes(n, buf);
            // Returning false stops reads without marking the socket paused; paused, resume() (from
            // the body's _read) starts them again.
            if (!more && !socket.destroyed) body.hold();
            return more;
          } catch (e) {
            fail(e instanceof HttpResponseError ? e : new HttpResponseError((e as Error).message));
            return false;
          }
        },
      },
    });
    body.socket = socket;

    // Hands a read on, or copies it when small; false pauses the socket (backpressure).
    function takeRead(n: number, buf: Buffer): Buffer {
      if (n < COPY_BELOW) return Buffer.from(buf.subarray(0, n)); // `spare` stays ours, reused next read
      spare = null;
      return buf.subarray(0, n);
    }

    function onBytes(n: number, buf: Buffer): boolean {
      let data = takeRead(n, buf);
      if (head) {
        const all: Buffer = head.length ? Buffer.concat([head, data]) : data;
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) {
          if (all.length > MAX_HEAD_BYTES) throw new HttpResponseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
          head = Buffer.from(all);
          return true;
        }
        if (end > MAX_HEAD_BYTES) throw new HttpResponseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
        const parsed = parseResponseHead(all.toString('latin1', 0, end));
        if (parsed.status < 200) throw new HttpResponseError(`interim response ${parsed.status} to a GET`);
        head = null;
        body.statusCode = parsed.status;
        body.headers = parsed.headers;
        const cl = parsed.headers['content-length'];
        framing = parsed.headers['transfer-encoding'] ? { kind: 'chunked' } : cl !== undefined ? { kind: 'length', left: Number(cl) } : { kind: 'close' };
        settled = true;
        handed = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(body);
        data = all.subarray(end + 4);
        if (framing.kind === 'length' && framing.left === 0) return finish();
      }
      return data.length === 0 ? true : bodyBytes(data);
    }

    function finish(): boolean {
      body.complete = true;
      body.push(null);
      socket.destroy(); // Connection: close; nothing after the body is read
      return false;
    }

    function bodyBytes(data: Buffer): boolean {
      body.arrived();
      const f = framing!;
      if (f.kind === 'length') {
        const mine = data.length > f.left ? data.subarray(0, f.left) : data;
        f.left -= mine.length;
        const more = body.push(mine);
        return f.left === 0 ? finish() : more;
      }
      if (f.kind === 'close') return body.push(data);
      return chunked(data);
    }

    // A pooled buffer goes back whole once its first piece is sent, so only one piece of a read
    // leaves as a slice of it; any other piece of the same read (past a chunk boundary) is copied
    // into a pooled buffer of its own.
    function chunked(data: Buffer): boolean {
      let more = true;
      let at = 0;
      let sliced = false;
      while (at < data.length) {
        if (chunkLeft > 0) {
          let piece = data.subarray(at, at + chunkLeft);
          at += piece.length;
          chunkLeft -= piece.length;
          if (sliced) piece = copyToChunk(piece);
          sliced = true;
          more = body.push(piece) && more;
          if (chunkLeft === 0) afterData = true;
          continue;
        }
        const nl = data.indexOf(0x0a, at);
        const upto = nl < 0 ? data.length : nl + 1;
        chunkLine += data.toString('latin1', at, upto);
        at = upto;
        if (chunkLine.length > MAX_CHUNK_LINE) throw new HttpResponseError('chunk line too long');
        if (nl < 0) break;
        if (!chunkLine.endsWith('\r\n')) throw new HttpResponseError('bare LF in chunked body');
        const line = chunkLine.slice(0, -2);
        chunkLine = '';
        if (afterData) {
          if (line !== '') throw new HttpResponseError('chunk data longer than its size');
          afterData = false;
          continue;
        }
        if (trailers) {
          if (line === '') return finish();
          const colon = line.indexOf(':');
          if (colon <= 0 || !TOKEN.test(line.slice(0, colon)) || !FIELD_VALUE.test(line.slice(colon + 1))) throw new HttpResponseError('bad trailer line');
          continue;
        }
        const sm = /^([0-9a-fA-F]{1,8})(?:[ \t]*;[\t\x20-\x7e]*)?$/.exec(line);
        if (!sm) throw new HttpResponseError(`bad chunk size line "${line.slice(0, 40)}"`);
        const size = parseInt(sm[1], 16);
        if (size === 0) trailers = true;
        else chunkLeft = size;
      }
      return more;
    }

    function copyToChunk(piece: Buffer): Buffer {
      const chunk = takeChunk();
      piece.copy(chunk);
      return chunk.subarray(0, piece.length);
    }

    socket.once('connect', () => {
      const lines = [`GET ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, 'Connection: close'];
      for (const [k, v] of Object.entries(opts.headers)) lines.push(`${k}: ${v}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
    socket.once('end', () => {
      if (!settled) return fail(new HttpResponseError('connection closed before the response head'));
      if (!handed || body.complete) return;
      if (framing?.kind === 'close') {
        body.complete = true;
        body.push(null);
      } else body.destroy(new HttpResponseError('connection closed mid-body'));
    });
    socket.once('error', (e) => fail(e));
    socket.once('close', () => {
      if (!settled) fail(new HttpResponseError('connection closed before the response head'));
      else if (handed && !body.complete && !body.destroyed) body.destroy(new HttpResponseError('connection closed mid-body'));
    });
  });
}
