import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { systemClock, type Clock, type TimerHandle } from '../base/clock.ts';
import { readSendQueues, sendQueueKey, type SendQueues } from './tcp-send-queues.ts';

// Cuts a response whose client has taken no bytes for stallMs while we had bytes for it. "Taken" is
// judged on the wire: what the client's TCP acknowledged, not what Node or the kernel accepted from us.
// Node's own socket timeout is no such judge: it is pushed back whenever the kernel takes a few more
// bytes into its send queue, and a client that read 200 bytes and stopped, with a 4 KiB window, held
// its NAR stream, daemon connection and GC temp root for minutes. Destroying the socket closes the
// response, which ends the pipeline and so frees everything the transfer held at once.
//
// A response with nothing waiting to be sent (a long poll between events, a narinfo already taken) is
// not stalled, however long it stays open.

export interface WireStallOptions {
  stallMs: number;
  clock?: Clock;
  /** How often sockets are looked at; a stall is cut within stallMs + this. */
  checkEveryMs?: number;
  /** The kernel's unacknowledged bytes per connection (tests and other systems may give their own). */
  sendQueues?: () => Promise<SendQueues | null>;
  /** Told of each cut (the listener logs it: a cut must be told from a client that left). */
  onCut?: (cut: { res: ServerResponse; idleMs: number; acked: number; waiting: number }) => void;
}

interface Watched {
  socket: Socket;
  key: string | null;
  acked: number;
  progressAt: number;
}

/** Bytes Node handed to the kernel (libuv's queue excluded); undefined where Node keeps no count. */
function kernelTaken(socket: Socket): number {
  const s = socket as Socket & { _bytesDispatched?: number; _handle?: { writeQueueSize?: number } | null };
  return (s._bytesDispatched ?? s.bytesWritten - s.writableLength) - (s._handle?.writeQueueSize ?? 0);
}

function unsentInNode(socket: Socket): number {
  const s = socket as Socket & { _handle?: { writeQueueSize?: number } | null };
  return socket.writableLength + (s._handle?.writeQueueSize ?? 0);
}

export class WireStallWatch {
  private readonly opts: Required<Omit<WireStallOptions, 'onCut'>>;
  private readonly onCut: WireStallOptions['onCut'];
  private readonly watched = new Map<ServerResponse, Watched>();
  private ticker: TimerHandle | null = null;
  private checking = false;
  /** Checks done so far: a test waits on this for evidence that one ran. */
  checks = 0;

  constructor(opts: WireStallOptions) {
    // `??`, not spread defaults: an option passed as undefined must not erase its default.
    this.opts = {
      stallMs: opts.stallMs,
      clock: opts.clock ?? systemClock,
      checkEveryMs: opts.checkEveryMs ?? Math.max(1, Math.min(5000, Math.floor(opts.stallMs / 4))),
      sendQueues: opts.sendQueues ?? (() => readSendQueues()),
    };
    this.onCut = opts.onCut;
  }

  watch(res: ServerResponse): void {
    const socket = res.socket;
    if (!socket || this.watched.has(res)) return;
    const key =
      socket.localPort !== undefined && socket.remoteAddress && socket.remotePort !== undefined
        ? sendQueueKey(socket.localPort, socket.remoteAddress, socket.remotePort)
        : null;
    this.watched.set(res, { socket, key, acked: -1, progressAt: this.opts.clock.now() });
    res.once('close', () => this.unwatch(res));
    if (!this.ticker) {
      this.ticker = this.opts.clock.setInterval(() => void this.check(), this.opts.checkEveryMs);
      this.ticker.unref?.();
    }
  }

  /**
   * Whether a watched response on `socket` has bytes waiting in Node: then this watch, not Node's idle
   * timer, judges it. Node hears that the kernel took more only once about a third of the socket's send
   * buffer is free, so a client draining a few hundred KB a second through a megabytes-deep buffer
   * looks idle to Node's timer for many seconds while every byte it takes is on the wire.
   */
  judges(socket: Socket): boolean {
    for (const w of this.watched.values()) if (w.socket === socket) return !socket.destroyed && unsentInNode(socket) > 0;
    return false;
  }

  get size(): number {
    return this.watched.size;
  }

  close(): void {
    this.watched.clear();
    this.stopTicker();
  }

  private unwatch(res: ServerResponse): void {
    this.watched.delete(res);
    if (this.watched.size === 0) this.stopTicker();
  }

  private stopTicker(): void {
    if (this.ticker) this.opts.clock.clearInterval(this.ticker);
    this.ticker = null;
  }

  /** One look at every watched socket; a check still reading the kernel's table is not overlapped. */
  async check(): Promise<void> {
    if (this.checking || this.watched.size === 0) return;
    this.checking = true;
    try {
      // Responses that have sent nothing yet (long polls between events) wait for nothing: the kernel's
      // table is not read for them alone (#26 idle cost: it was read every second for idle followers).
      if (![...this.watched.keys()].some((res) => res.headersSent)) {
        const now = this.opts.clock.now();
        for (const w of this.watched.values()) w.progressAt = now;
        return;
      }
      const queues = await this.opts.sendQueues().catch(() => null);
      const now = this.opts.clock.now();
      for (const [res, w] of this.watched) {
        if (w.socket.destroyed) {
          this.unwatch(res);
          continue;
        }
        const inKernel = (w.key !== null && queues?.get(w.key)) || 0;
        const acked = kernelTaken(w.socket) - inKernel;
        const waiting = unsentInNode(w.socket) + inKernel;
        if (acked !== w.acked || waiting === 0) {
          w.acked = acked;
          w.progressAt = now;
          continue;
        }
        if (now - w.progressAt >= this.opts.stallMs) {
          this.unwatch(res);
          this.onCut?.({ res, idleMs: now - w.progressAt, acked, waiting });
          w.socket.destroy();
        }
      }
    } finally {
      this.checks++;
      this.checking = false;
    }
  }
}
