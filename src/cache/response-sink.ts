import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { isMainThread } from 'node:worker_threads';
import { releaseChunk } from '../base/chunk-pool.ts';

// The last stage of a NAR transfer: writes to the HTTP response and gives each chunk back to the
// chunk pool once the socket has taken it — the only moment a chunk is known to be unread.
// Ends the response only when the whole body went through; if the client goes away first, the
// sink fails with ERR_STREAM_PREMATURE_CLOSE like a piped response would.
//
// Backpressure counts the bytes the socket has not yet taken rather than waiting for 'drain' after
// every write: a response's buffer limit is 16 KiB, so each 256 KiB chunk would otherwise stop the
// source until the socket ran dry, and a proxied NAR would stall the peer at every chunk.

//
// That allowance is shared: every open sink may have 1 MiB unsent while few are open, but all of them
// together no more than SHARED_IN_FLIGHT, down to one chunk each, so many slow clients at once cost
// a bounded amount of memory.

const MAX_IN_FLIGHT = 1024 * 1024;
const MIN_IN_FLIGHT = 256 * 1024;
// A share loop in a worker thread (app/share-loops.ts) has its own sinks: there a quarter, so that the
// threads together add little to what many slow clients can hold (the chunk pool keeps a quarter too).
const SHARED_IN_FLIGHT = (isMainThread ? 16 : 4) * 1024 * 1024;
let openSinks = 0;

function inFlightAllowance(): number {
  return Math.max(MIN_IN_FLIGHT, Math.min(MAX_IN_FLIGHT, Math.floor(SHARED_IN_FLIGHT / Math.max(1, openSinks))));
}

export class ResponseSink extends Writable {
  private readonly res: ServerResponse;
  private inFlight = 0;
  private resume: ((err?: Error | null) => void) | null = null;

  constructor(res: ServerResponse) {
    super({ highWaterMark: 256 * 1024 });
    this.res = res;
    openSinks++;
    this.once('close', () => openSinks--);
    res.once('close', () => {
      if (res.writableFinished || this.destroyed) return; // 'close' also follows a complete response
      const err: NodeJS.ErrnoException = new Error('the client closed the connection');
      err.code = 'ERR_STREAM_PREMATURE_CLOSE';
      this.destroy(err);
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.inFlight += chunk.length;
    this.res.write(chunk, (err) => {
      this.inFlight -= chunk.length;
      if (!err) releaseChunk(chunk);
      if (this.resume && this.inFlight <= inFlightAllowance() / 2) {
        const resume = this.resume;
        this.resume = null;
        resume();
      }
    });
    if (this.inFlight <= inFlightAllowance()) cb();
    else this.resume = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.res.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (err && !this.res.destroyed) this.res.destroy();
    cb(err);
  }
}
