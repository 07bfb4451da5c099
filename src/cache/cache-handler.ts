import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { decodeNix32 } from '../nix/nix32.ts';
import { renderNarInfo, type NarInfo } from '../nix/narinfo.ts';
import type { Logger } from '../log.ts';
import { BackendUnavailableError, type CacheBackend } from './backend.ts';
import { parseRange } from './range.ts';
import { matchCacheRoute } from './routes.ts';
import { NarMismatchError, VerifiedBody } from './verified-body.ts';
import { ResponseSink } from './response-sink.ts';

// The binary-cache protocol over HTTP, for any backend. Status codes follow what Nix does with them:
// 404 for anything absent or malformed (Nix moves on), 503 only when the source itself is down,
// never 400 (Nix would abort the user's whole command).

export interface CacheHandlerOptions {
  backend: CacheBackend;
  log: Logger;
  priority: number;
  /** Counts NAR bytes sent, for the API's per-peer figures. */
  onNarSent?: (info: { remoteAddress: string; storePath: string; bytes: number; ok: boolean }) => void;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function createCacheHandler(opts: CacheHandlerOptions): RequestHandler {
  const { backend, log } = opts;
  const cacheInfo = `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${opts.priority}\n`;

  return (req, res) => {
    if (log.debugEnabled) {
      const started = process.hrtime.bigint();
      res.on('finish', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        log.debug(`${req.socket.remoteAddress} ${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(2)}ms`);
      });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    const head = req.method === 'HEAD';
    const route = matchCacheRoute(req.url);
    switch (route.kind) {
      case 'cache-info':
        return send(res, 200, cacheInfo, { 'Content-Type': 'text/x-nix-cache-info' }, head);
      case 'narinfo':
        return serveNarInfo(route.hashPart, res, head);
      case 'nar':
        return void serveNar(route.hashPart, route.narHash32, req, res, head);
      default:
        return send(res, 404, 'not found\n', {}, head);
    }
  };

  function serveNarInfo(hashPart: string, res: ServerResponse, head: boolean): void {
    let answer;
    try {
      answer = backend.narInfo(hashPart);
    } catch (e) {
      return failed(res, e, head);
    }
    if (answer instanceof Promise) answer.then((info) => sendNarInfo(res, info, head), (e: unknown) => failed(res, e, head));
    else sendNarInfo(res, answer, head);
  }

  function sendNarInfo(res: ServerResponse, info: NarInfo | null, head: boolean): void {
    if (!info) return send(res, 404, 'not found\n', {}, head);
    send(res, 200, rendered(info), { 'Content-Type': 'text/x-nix-narinfo' }, head);
  }

  async function serveNar(hashPart: string, narHash32: string, req: IncomingMessage, res: ServerResponse, head: boolean): Promise<void> {
    let narHash: Buffer;
    try {
      narHash = decodeNix32(narHash32, 32);
    } catch {
      return send(res, 404, 'not found\n', {}, head);
    }
    let body;
    try {
      body = await backend.nar(hashPart, narHash, { resume: /^bytes=\s*0*[1-9]/.test(String(req.headers.range ?? '')) });
    } catch (e) {
      return failed(res, e, head);
    }
    if (!body) return send(res, 404, 'not found\n', {}, head);
    if (res.destroyed || req.socket.destroyed) return body.release('aborted');

    const size = body.narSize;
    const range = parseRange(req.headers.range, size);
    if (range.kind === 'unsatisfiable') {
      body.release('done');
      return send(res, 416, 'range not satisfiable\n', { 'Content-Range': `bytes */${size}` }, head);
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : size - 1;
    res.statusCode = range.kind === 'partial' ? 206 : 200;
    res.setHeader('Content-Type', 'application/x-nix-nar');
    res.setHeader('Content-Length', String(end - start + 1));
    res.setHeader('Accept-Ranges', 'bytes');
    if (range.kind === 'partial') res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    if (head || size === 0) {
      body.release('done');
      res.end();
      return;
    }

    const verifier = new VerifiedBody({ narHash: body.hashCheck ? body.narHash : null, narSize: size, start, end });
    const remoteAddress = req.socket.remoteAddress ?? '';
    let source;
    try {
      source = body.stream();
    } catch (e) {
      body.release('failed');
      return failed(res, e, head);
    }
    // pipeline() destroys every stream on any error, so who failed first must be noted as it happens.
    let sourceFailed = false;
    source.once('error', () => (sourceFailed = true));
    pipeline(source, verifier, new ResponseSink(res), (err) => {
      const sent = Math.max(0, Math.min(verifier.bytesSeen, end + 1) - start);
      if (err) {
        const mismatch = err instanceof NarMismatchError;
        const aborted = !mismatch && !sourceFailed && (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE';
        // Never end a wrong or short body cleanly: a destroyed socket is what tells Nix to retry or resume.
        res.destroy();
        log[aborted ? 'debug' : 'warn'](`NAR ${hashPart} cut after ${sent} bytes: ${err.message}`);
        body.release(mismatch ? 'mismatch' : aborted ? 'aborted' : 'failed');
        opts.onNarSent?.({ remoteAddress, storePath: body.storePath, bytes: sent, ok: false });
      } else {
        body.release('done');
        opts.onNarSent?.({ remoteAddress, storePath: body.storePath, bytes: sent, ok: true });
      }
    });
  }

  function failed(res: ServerResponse, e: unknown, head: boolean): void {
    if (e instanceof BackendUnavailableError) {
      log.warn(e.message);
      return send(res, 503, 'store unavailable\n', { 'Retry-After': '5' }, head);
    }
    log.error(`internal error: ${(e as Error)?.stack ?? e}`);
    send(res, 500, 'internal error\n', {}, head);
  }
}

// Backends hand out the same NarInfo object for the same path info, so its text is rendered once.
const renderings = new WeakMap<NarInfo, string>();
function rendered(info: NarInfo): string {
  let text = renderings.get(info);
  if (text === undefined) {
    text = renderNarInfo(info);
    renderings.set(info, text);
  }
  return text;
}

export function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}, head = false): void {
  if (res.headersSent || res.destroyed) return;
  const buf = Buffer.from(body);
  res.writeHead(status, { 'Content-Length': String(buf.length), 'Content-Type': 'text/plain; charset=utf-8', ...headers });
  res.end(head ? undefined : buf);
}
