import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { NarInfoError, parseNarInfo, type NarInfo } from '../nix/narinfo.ts';

// HTTP to other caches. Peers are hostile input: bounded bodies, tight timeouts, no retries (the
// resolver decides what to try next), nothing followed but what the peer itself serves.

export const MAX_NARINFO_BYTES = 64 * 1024;

export class PeerError extends Error {
  readonly kind: 'unreachable' | 'timeout' | 'bad-response' | 'missing';
  constructor(kind: PeerError['kind'], message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface PeerTimeouts {
  connectMs: number;
  narInfoMs: number; // whole narinfo exchange
  narHeadersMs: number; // until a NAR's response headers
  narIdleMs: number; // longest silence inside a NAR body
}

export const DEFAULT_TIMEOUTS: PeerTimeouts = { connectMs: 500, narInfoMs: 1500, narHeadersMs: 3000, narIdleMs: 15000 };

export class PeerClient {
  private readonly timeouts: PeerTimeouts;
  private readonly userAgent: string;
  readonly agent: Agent;
  readonly httpsAgent: HttpsAgent;

  constructor(timeouts: Partial<PeerTimeouts> = {}, userAgent = 'peernix') {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    this.userAgent = userAgent;
    this.agent = new Agent({ keepAlive: true, maxSockets: 32, maxFreeSockets: 8, timeout: 60_000 });
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 32, maxFreeSockets: 8, timeout: 60_000 });
  }

  /** The peer's narinfo for a hash part: a NarInfo, null when it says it hasn't it, or a PeerError. */
  async narInfo(baseUrl: string, hashPart: string, signal?: AbortSignal): Promise<NarInfo | null> {
    const url = `${baseUrl}/${hashPart}.narinfo`;
    let status: number;
    let body: string;
    try {
      const res = await this.request(url, {}, this.timeouts.narInfoMs, signal);
      status = res.statusCode ?? 0;
      body = await readBounded(res, MAX_NARINFO_BYTES, this.timeouts.narInfoMs);
    } catch (e) {
      throw asPeerError(e, url);
    }
    if (status === 404 || status === 410 || status === 403 || status === 401) return null;
    if (status !== 200) throw new PeerError('bad-response', `${url}: HTTP ${status}`);
    try {
      return parseNarInfo(body);
    } catch (e) {
      if (e instanceof NarInfoError) throw new PeerError('bad-response', `${url}: ${e.message}`);
      throw e;
    }
  }

  /**
   * Opens a NAR (or the rest of it from `offset`) and resolves once the peer has answered with the
   * right status and length, so the caller can still choose another source before sending headers.
   */
  async openNar(url: string, opts: { offset: number; expectedSize: number; signal?: AbortSignal }): Promise<Readable> {
    let res: IncomingMessage;
    try {
      res = await this.request(url, opts.offset > 0 ? { range: `bytes=${opts.offset}-` } : {}, this.timeouts.narHeadersMs, opts.signal);
    } catch (e) {
      throw asPeerError(e, url);
    }
    const want = opts.expectedSize - opts.offset;
    const fail = (why: string, kind: PeerError['kind'] = 'bad-response'): never => {
      res.destroy();
      throw new PeerError(kind, `${url}: ${why}`);
    };
    const status = res.statusCode ?? 0;
    // The peer is fine, it just no longer has the path (GC): the caller must not count it as down.
    if (status === 404 || status === 410 || status === 403) fail('not there any more', 'missing');
    if (opts.offset > 0) {
      if (status !== 206) fail(`no range support (HTTP ${status})`);
      const cr = String(res.headers['content-range'] ?? '');
      if (!cr.startsWith(`bytes ${opts.offset}-`)) fail(`wrong Content-Range "${cr}"`);
    } else if (status !== 200) fail(`HTTP ${status}`);
    const len = res.headers['content-length'];
    if (len !== undefined && Number(len) !== want) fail(`Content-Length ${len}, expected ${want}`);
    if (res.headers['content-encoding'] && res.headers['content-encoding'] !== 'identity') fail('unexpected Content-Encoding');
    // A peer that stops sending mid-NAR is treated as dead, so the stream can resume elsewhere.
    res.setTimeout(this.timeouts.narIdleMs, () => res.destroy(new PeerError('timeout', `${url}: no data for ${this.timeouts.narIdleMs} ms`)));
    return res;
  }

  /** A cheap liveness check: the peer answers /nix-cache-info with 200 in time. */
  async probe(baseUrl: string, timeoutMs: number): Promise<boolean> {
    try {
      const res = await this.request(`${baseUrl}/nix-cache-info`, {}, timeoutMs);
      const body = await readBounded(res, 4096, timeoutMs);
      return res.statusCode === 200 && /^StoreDir: \/nix\/store$/m.test(body);
    } catch {
      return false;
    }
  }

  close(): void {
    this.agent.destroy();
    this.httpsAgent.destroy();
  }

  /**
   * One GET on a kept-alive connection, resolving at the response headers. node:http rather than got:
   * got's per-request cost (~0.6 ms here, measured with bench/peers.ts) is more than a whole LAN miss
   * may take, and loading it costs the daemon ~34 MB of RSS. got stays in the short-lived CLI.
   */
  private request(url: string, headers: Record<string, string>, headersMs: number, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const https = url.startsWith('https:');
      const req = (https ? httpsRequest : httpRequest)(url, {
        agent: https ? this.httpsAgent : this.agent,
        headers: { 'user-agent': this.userAgent, ...headers },
        signal,
      });
      const timer = setTimeout(() => req.destroy(new PeerError('timeout', `${url}: no answer within ${headersMs} ms`)), headersMs);
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        const connectTimer = setTimeout(() => req.destroy(new PeerError('timeout', `${url}: connect timed out`)), this.timeouts.connectMs);
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
}

function readBounded(res: IncomingMessage, max: number, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => res.destroy(new PeerError('timeout', 'body timed out')), ms);
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) res.destroy(new PeerError('bad-response', `response larger than ${max} bytes`));
      else parts.push(chunk);
    });
    res.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts).toString('utf8'));
    });
    res.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    res.once('aborted', () => reject(new PeerError('unreachable', 'connection closed mid-response')));
  });
}

function asPeerError(e: unknown, url: string): PeerError {
  if (e instanceof PeerError) return e;
  const err = e as { code?: string; name?: string; message?: string };
  if (err.name === 'TimeoutError' || err.code === 'ETIMEDOUT') return new PeerError('timeout', `${url}: timed out`);
  if (err.name === 'AbortError') return new PeerError('timeout', `${url}: aborted`);
  return new PeerError('unreachable', `${url}: ${err.code ?? err.message ?? String(e)}`);
}
