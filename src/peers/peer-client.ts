import { Agent } from 'node:http';
import type { Readable } from 'node:stream';
import got, { type Got } from 'got';
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
  private readonly http: Got;
  private readonly timeouts: PeerTimeouts;
  readonly agent: Agent;

  constructor(timeouts: Partial<PeerTimeouts> = {}, userAgent = 'peernix') {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    this.agent = new Agent({ keepAlive: true, maxSockets: 32, maxFreeSockets: 8, timeout: 60_000 });
    this.http = got.extend({
      agent: { http: this.agent },
      retry: { limit: 0 },
      followRedirect: false,
      throwHttpErrors: false,
      decompress: false,
      headers: { 'user-agent': userAgent },
    });
  }

  /** The peer's narinfo for a hash part: a NarInfo, null when it says it hasn't it, or a PeerError. */
  async narInfo(baseUrl: string, hashPart: string, signal?: AbortSignal): Promise<NarInfo | null> {
    const url = `${baseUrl}/${hashPart}.narinfo`;
    let status: number;
    let body: string;
    try {
      const stream = this.http.stream(url, {
        timeout: { connect: this.timeouts.connectMs, request: this.timeouts.narInfoMs },
        signal,
      });
      ({ status, body } = await readBounded(stream, MAX_NARINFO_BYTES));
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
    const stream = this.http.stream(url, {
      timeout: { connect: this.timeouts.connectMs, response: this.timeouts.narHeadersMs, read: this.timeouts.narIdleMs },
      headers: opts.offset > 0 ? { range: `bytes=${opts.offset}-` } : {},
      signal: opts.signal,
    });
    const response = await new Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
      stream.once('response', resolve);
      stream.once('error', reject);
    }).catch((e) => {
      stream.destroy();
      throw asPeerError(e, url);
    });
    const want = opts.expectedSize - opts.offset;
    const fail = (why: string, kind: PeerError['kind'] = 'bad-response'): never => {
      stream.destroy();
      throw new PeerError(kind, `${url}: ${why}`);
    };
    // The peer is fine, it just no longer has the path (GC): the caller must not count it as down.
    if (response.statusCode === 404 || response.statusCode === 410 || response.statusCode === 403) fail('not there any more', 'missing');
    if (opts.offset > 0) {
      if (response.statusCode !== 206) fail(`no range support (HTTP ${response.statusCode})`);
      const cr = String(response.headers['content-range'] ?? '');
      if (!cr.startsWith(`bytes ${opts.offset}-`)) fail(`wrong Content-Range "${cr}"`);
    } else if (response.statusCode !== 200) fail(`HTTP ${response.statusCode}`);
    const len = response.headers['content-length'];
    if (len !== undefined && Number(len) !== want) fail(`Content-Length ${len}, expected ${want}`);
    if (response.headers['content-encoding'] && response.headers['content-encoding'] !== 'identity') fail('unexpected Content-Encoding');
    return stream;
  }

  /** A cheap liveness check: the peer answers /nix-cache-info with 200 in time. */
  async probe(baseUrl: string, timeoutMs: number): Promise<boolean> {
    try {
      const r = await this.http.get(`${baseUrl}/nix-cache-info`, { timeout: { request: timeoutMs } });
      return r.statusCode === 200 && r.body.length < 4096 && /StoreDir: \/nix\/store/.test(r.body);
    } catch {
      return false;
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

async function readBounded(stream: Readable & { once: Function }, max: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const parts: Buffer[] = [];
    let size = 0;
    stream.once('response', (r: { statusCode: number }) => {
      status = r.statusCode;
    });
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        stream.destroy();
        reject(new PeerError('bad-response', `response larger than ${max} bytes`));
      } else parts.push(chunk);
    });
    stream.once('end', () => resolve({ status, body: Buffer.concat(parts).toString('utf8') }));
    stream.once('error', reject);
  });
}

function asPeerError(e: unknown, url: string): PeerError {
  if (e instanceof PeerError) return e;
  const err = e as { code?: string; name?: string; message?: string };
  if (err.name === 'TimeoutError' || err.code === 'ETIMEDOUT') return new PeerError('timeout', `${url}: timed out`);
  if (err.name === 'AbortError') return new PeerError('timeout', `${url}: aborted`);
  return new PeerError('unreachable', `${url}: ${err.code ?? err.message ?? String(e)}`);
}
