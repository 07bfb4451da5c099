import { type Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { type Agent as HttpsAgent, request as httpsRequest } from 'node:https';

// One GET to a peer on a kept-alive connection of the given pool, resolving at the response
// headers. node:http rather than got: got's per-request cost (~0.6 ms here, measured with
// bench/peers.ts) is more than a whole LAN miss may take, and loading it costs the daemon ~34 MB of
// RSS. got stays in the short-lived CLI.

export interface Pools {
  http: Agent;
  https: HttpsAgent;
}

export interface GetOptions {
  pool: Pools;
  headers?: Record<string, string>;
  /** Until the response headers, queueing for a socket included. */
  headersMs: number;
  /** A fresh connection must be up within this (none: only headersMs counts). */
  connectMs?: number;
  signal?: AbortSignal;
  /** The error a timeout destroys the request with (what: 'headers' or 'connect'). */
  timeoutError: (what: 'headers' | 'connect') => Error;
}

/** The whole body, or `tooLarge(max)` as soon as it grows past `max` bytes. */
export function readBounded(res: IncomingMessage, max: number, tooLarge: (max: number) => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(res.headers['content-length'] ?? 0) > max) {
      res.destroy(tooLarge(max));
      reject(tooLarge(max));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) res.destroy(tooLarge(max));
      else parts.push(chunk);
    });
    res.once('end', () => resolve(Buffer.concat(parts)));
    res.once('error', reject);
    // (A promise settles once: after 'end' or 'error' these change nothing.)
    res.once('aborted', () => reject(new Error('connection closed mid-response')));
    res.once('close', () => reject(new Error('connection closed mid-response')));
  });
}

export function getHeaders(url: string, opts: GetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const https = url.startsWith('https:');
    const req = (https ? httpsRequest : httpRequest)(url, { agent: https ? opts.pool.https : opts.pool.http, headers: opts.headers, signal: opts.signal });
    const timer = setTimeout(() => req.destroy(opts.timeoutError('headers')), opts.headersMs);
    req.once('socket', (socket) => {
      if (opts.connectMs === undefined || !socket.connecting) return;
      const connectTimer = setTimeout(() => req.destroy(opts.timeoutError('connect')), opts.connectMs);
      socket.once('connect', () => clearTimeout(connectTimer));
      socket.once('close', () => clearTimeout(connectTimer));
    });
    req.once('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}
