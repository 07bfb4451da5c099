import { Duplex } from 'node:stream';

// One side of a byte stream carried by messages between event loops (a worker thread and the main
// thread), so that Node's own HTTP client on one side and HTTP server on the other can talk over it
// (http.request's createConnection; server.emit('connection')). Many such streams share one port:
// each message names its stream.
//
// Messages: { t: 'pipe', id, data?: Uint8Array, end?: true, close?: true }.

export interface PipeMessage {
  t: 'pipe';
  id: number;
  data?: Uint8Array;
  end?: true;
  close?: true;
}

export class PortDuplex extends Duplex {
  readonly id: number;
  /** The client's address as the first loop saw it (read by handlers as socket.remoteAddress). */
  readonly remoteAddress: string | undefined;
  private readonly send: (m: PipeMessage) => void;
  private closedByPeer = false;

  constructor(id: number, send: (m: PipeMessage) => void, remoteAddress?: string) {
    super({ allowHalfOpen: true });
    this.id = id;
    this.send = send;
    this.remoteAddress = remoteAddress;
  }

  /** A message for this stream from the other side. */
  receive(m: PipeMessage): void {
    if (m.data) this.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
    if (m.end) this.push(null);
    if (m.close) {
      this.closedByPeer = true;
      this.destroy();
    }
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    // Copied: the chunk may be a pooled buffer its writer reuses once this returns.
    this.send({ t: 'pipe', id: this.id, data: new Uint8Array(chunk) });
    cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.send({ t: 'pipe', id: this.id, end: true });
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.closedByPeer) this.send({ t: 'pipe', id: this.id, close: true });
    cb(err);
  }

  // What Node's HTTP server and client call on a net.Socket; nothing to tune on a message stream.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
