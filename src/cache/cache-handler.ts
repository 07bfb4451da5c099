import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { decodeNix32 } from '../nix/nix32.ts';
import { renderNarInfo, type NarInfo } from '../nix/narinfo.ts';
import type { Logger } from '../base/log.ts';
import type { CacheBackend } from './backend.ts';
import { Busy, NotFound, RangeNotSatisfiable, sendBody } from './http-error.ts';
import type { RouteHandler } from './route-table.ts';
import { parseRange } from './range.ts';
import { goNarUrl } from './routes.ts';
import { NarMismatchError, VerifiedBody } from './verified-body.ts';
import { ResponseSink } from './response-sink.ts';
import type { NarAdmission } from '../base/nar-slots.ts';
import { FRAMES_HEADER, FRAMES_VERSION } from '../wire/nar-frames.ts';
import { LINK_RATE_HEADER, parseLinkRate, parseReceiverHeld, RECEIVER_HELD_HEADER } from '../wire/receiver-load.ts';
import { FrameEncoder, type FrameStats } from './adaptive-frames.ts';
import type { CompressionBudget } from './compression-budget.ts';

// The binary-cache protocol over HTTP, for any backend: the handlers the listeners' route tables
// (app/*-routes.ts) point at. Failures are thrown as typed errors and answered by http-error.ts, with
// the statuses Nix expects: 404 for anything absent or malformed (Nix moves on), 503 only when the
// source itself is down, never 400 (Nix would abort the user's whole command). 503 also answers a NAR
// request over the stream cap (nar-slots.ts), which a Peernix requester takes as "ask another holder".

export interface CacheHandlerOptions {
  backend: CacheBackend;
  log: Logger;
  priority: number;
  /** Counts NAR bytes sent, for the API's per-peer figures. */
  onNarSent?: (info: { remoteAddress: string; storePath: string; bytes: number; wireBytes: number; ok: boolean }) => void;
  /** A NAR starts streaming: `bytes` reads how many have been sent; end() is called once it is over. */
  trackNar?: (info: {
    remoteAddress: string;
    storePath: string;
    total: number;
    bytes: () => number;
    wireBytes: () => number | undefined;
  }) => { end(outcome: 'ok' | 'failed' | 'aborted'): void } | null;
  /** Caps concurrent NAR streams (the share listener); without it every request streams at once. */
  narSlots?: NarAdmission;
  /** Lets Peernix peers that offer it get NARs in frames, compressed when that pays (the share listener). */
  compression?: CompressionBudget;
}

export interface CacheHandlers {
  cacheInfo: RouteHandler;
  /** params: [hash part] */
  narInfo: RouteHandler;
  /** The narinfo with a NAR URL a Go peernix can follow. params: [hash part] */
  goNarInfo: RouteHandler;
  /** params: [hash part, NAR hash in nix32] */
  nar: RouteHandler;
  /** The Go form, by hash part alone. params: [hash part] */
  narByHash: RouteHandler;
  /** Any other path. */
  notFound: RouteHandler;
}

export function createCacheHandlers(opts: CacheHandlerOptions): CacheHandlers {
  const { backend, log } = opts;
  const cacheInfo = `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${opts.priority}\n`;

  return {
    cacheInfo: (_req, res, m) => sendBody(res, cacheInfo, { 'Content-Type': 'text/x-nix-cache-info' }, { head: m.head }),
    narInfo: (_req, res, m) => withNarInfo(m.params[0], (info) => sendNarInfo(res, info, m.head, false)),
    goNarInfo: (_req, res, m) => withNarInfo(m.params[0], (info) => sendNarInfo(res, info, m.head, true)),
    nar: (req, res, m) => admitNar(m.params[0], m.params[1], req, res, m.head),
    narByHash: (req, res, m) => narByHash(m.params[0], req, res, m.head),
    notFound: () => {
      throw new NotFound();
    },
  };

  /** Synchronous when the backend's answer is (the hottest route then costs no event-loop turns). */
  function withNarInfo(hashPart: string, then: (info: NarInfo | null) => void | Promise<void>): void | Promise<void> {
    const answer = backend.narInfo(hashPart);
    if (answer instanceof Promise) return answer.then(then);
    return then(answer);
  }

  function sendNarInfo(res: ServerResponse, info: NarInfo | null, head: boolean, goForm: boolean): void {
    if (!info) throw new NotFound();
    sendBody(res, goForm ? renderedGoForm(info) : rendered(info), { 'Content-Type': 'text/x-nix-narinfo' }, { head });
  }

  // The Go form names no NarHash: the path's current one is looked up, and the bytes are checked
  // against it as for any NAR request.
  function narByHash(hashPart: string, req: IncomingMessage, res: ServerResponse, head: boolean): void | Promise<void> {
    return withNarInfo(hashPart, (info) => {
      const narHash32 = info?.narHash.startsWith('sha256:') ? info.narHash.slice('sha256:'.length) : null;
      if (!narHash32) throw new NotFound();
      return admitNar(hashPart, narHash32, req, res, head);
    });
  }

  // A slot is taken before the backend is asked: opening a local NAR costs a daemon connection
  // (a nix-daemon process) and a temp root, which is exactly what the cap exists to bound.
  async function admitNar(hashPart: string, narHash32: string, req: IncomingMessage, res: ServerResponse, head: boolean): Promise<void> {
    if (!opts.narSlots) return serveNar(hashPart, narHash32, req, res, head);
    const address = req.socket.remoteAddress ?? '';
    const gone = new AbortController();
    const onClose = () => gone.abort();
    res.once('close', onClose);
    const pending = opts.narSlots.acquire(address, gone.signal);
    const queued = pending instanceof Promise;
    const admission = await pending;
    res.off('close', onClose);
    if ('refused' in admission) {
      if (admission.refused === 'busy') {
        // Which of the two refusals: what a test (or a person reading the log) tells apart, not a stopwatch.
        log.debug(`NAR ${hashPart} for ${address}: all NAR streams busy ${queued ? 'after waiting in the queue' : 'and the queue full'}, 503`);
        throw new Busy('busy: too many NAR transfers at once', { retryAfterS: 2, close: true });
      }
      return;
    }
    // Held for as long as the response lives, whichever way it ends: answered, streamed, cut or failed.
    const slot = admission.slot;
    if (res.destroyed) return slot.release();
    res.once('close', () => slot.release());
    return serveNar(hashPart, narHash32, req, res, head);
  }

  async function serveNar(hashPart: string, narHash32: string, req: IncomingMessage, res: ServerResponse, head: boolean): Promise<void> {
    let narHash: Buffer;
    try {
      narHash = decodeNix32(narHash32, 32);
    } catch {
      throw new NotFound();
    }
    // A client that hangs up while the NAR is being looked for (a Ctrl-C'd Nix, its own timeout)
    // ends the search: waits for peer slots, open peer requests and hedges are all on its behalf.
    // Only until the backend answers: from then on the response's own teardown ends the body.
    const gone = new AbortController();
    const onClose = () => gone.abort();
    res.once('close', onClose);
    let body;
    try {
      body = await backend.nar(hashPart, narHash, { resume: /^bytes=\s*0*[1-9]/.test(String(req.headers.range ?? '')), signal: gone.signal });
    } finally {
      res.off('close', onClose);
    }
    if (!body) throw new NotFound();
    if (res.destroyed || req.socket.destroyed) return body.release('aborted');

    const size = body.narSize;
    const range = parseRange(req.headers.range, size);
    if (range.kind === 'unsatisfiable') {
      body.release('done');
      throw new RangeNotSatisfiable(size);
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : size - 1;
    res.statusCode = range.kind === 'partial' ? 206 : 200;
    res.setHeader('Content-Type', 'application/x-nix-nar');
    // Only a Peernix asks for frames (Nix never does, whatever Accept-Encoding it sends); ranges stay
    // in NAR offsets, and the framed length is not known in advance.
    const framed = opts.compression !== undefined && !head && size > 0 && offersFrames(req);
    if (framed) {
      res.setHeader(FRAMES_HEADER, FRAMES_VERSION);
      // Delimited by the close, not chunked: the frames delimit themselves (nar-frames.ts), and the
      // requester reads straight into its buffers with no chunk lines to cut them.
      res.useChunkedEncodingByDefault = false;
    } else res.setHeader('Content-Length', String(end - start + 1));
    res.setHeader('Accept-Ranges', 'bytes');
    if (range.kind === 'partial') res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    if (head || size === 0) {
      body.release('done');
      res.end();
      return;
    }

    // A body that need not be hashed can be just the range: the bytes before it are never produced,
    // nor those after it (a bounded range, one piece of a NAR fetched from several holders at once,
    // would otherwise wait for the whole rest of the NAR to be walked before its last bytes left).
    const cut = (start > 0 || end < size - 1) && !body.hashCheck && body.streamFrom !== undefined;
    const skip = cut ? start : 0;
    const until = cut ? end + 1 : size;
    // The verifier counts from the first byte it is given, so a body of [skip, until) is, to it, a NAR
    // of until - skip bytes (its size is checked to there; there is no hash to check).
    const verifier = new VerifiedBody({ narHash: body.hashCheck ? body.narHash : null, narSize: until - skip, start: start - skip, end: end - skip });
    const remoteAddress = req.socket.remoteAddress ?? '';
    let source;
    try {
      source = cut ? body.streamFrom!(skip, until) : body.stream();
    } catch (e) {
      body.release('failed');
      throw e;
    }
    // pipeline() destroys every stream with the first error, so a client that left makes the source
    // fail too: who failed first is noted as it happens, before the teardown can blur it.
    let firstFailure: 'client' | 'source' | null = null;
    res.once('close', () => {
      if (!res.writableFinished) firstFailure ??= 'client';
    });
    source.once('error', () => (firstFailure ??= 'source'));
    const frames: FrameStats = { narBytes: 0, wireBytes: 0, zstdFrames: 0, rawFrames: 0 };
    const tracked =
      opts.trackNar?.({
        remoteAddress,
        storePath: body.storePath,
        total: end - start + 1,
        bytes: () => Math.max(0, Math.min(skip + verifier.bytesSeen, end + 1) - start),
        wireBytes: () => (framed ? frames.wireBytes : undefined),
      }) ?? null;
    const done = (err: Error | null | undefined) => {
      const sent = Math.max(0, Math.min(skip + verifier.bytesSeen, end + 1) - start);
      const wireBytes = framed ? frames.wireBytes : sent;
      if (framed)
        log.debug(
          `NAR ${hashPart}: ${frames.narBytes} bytes in ${frames.wireBytes} on the wire (${frames.zstdFrames} zstd frames, ${frames.rawFrames} raw; ${frames.blocksCompressed ?? 0} blocks compressed; receiver held ${receiverHeld ?? '?'}; link ${linkRate ?? '?'} B/s)`,
        );
      if (err) {
        const mismatch = err instanceof NarMismatchError;
        const aborted = !mismatch && firstFailure === 'client';
        // Never end a wrong or short body cleanly: a destroyed socket is what tells Nix to retry or resume.
        res.destroy();
        log[aborted ? 'debug' : 'warn'](`NAR ${hashPart} cut after ${sent} bytes: ${aborted ? 'the client left' : err.message}`);
        body.release(mismatch ? 'mismatch' : aborted ? 'aborted' : 'failed');
        tracked?.end(aborted ? 'aborted' : 'failed');
        opts.onNarSent?.({ remoteAddress, storePath: body.storePath, bytes: sent, wireBytes, ok: false });
      } else {
        body.release('done');
        tracked?.end('ok');
        opts.onNarSent?.({ remoteAddress, storePath: body.storePath, bytes: sent, wireBytes, ok: true });
      }
    };
    const receiverHeld = parseReceiverHeld(req.headers[RECEIVER_HELD_HEADER]);
    const linkRate = parseLinkRate(req.headers[LINK_RATE_HEADER]);
    if (framed)
      pipeline(source, verifier, new FrameEncoder(opts.compression!, frames, { client: remoteAddress, receiverHeld, linkRate }), new ResponseSink(res), done);
    else pipeline(source, verifier, new ResponseSink(res), done);
  }
}

function offersFrames(req: IncomingMessage): boolean {
  const offer = req.headers[FRAMES_HEADER];
  return typeof offer === 'string' && offer.split(',').some((v) => v.trim() === FRAMES_VERSION);
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

// The same narinfo with the NAR URL a Go peernix can follow (routes.ts); the URL is not signed.
const goRenderings = new WeakMap<NarInfo, string>();
function renderedGoForm(info: NarInfo): string {
  let text = goRenderings.get(info);
  if (text === undefined) {
    const hashPart = info.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    // Every narinfo we serve has a sha256 NarHash (the only kind Nix writes); without one, the legacy form.
    const narHash32 = info.narHash.startsWith('sha256:') ? info.narHash.slice('sha256:'.length) : null;
    text = renderNarInfo({ ...info, url: narHash32 ? goNarUrl(hashPart, narHash32) : `${hashPart}.nar` });
    goRenderings.set(info, text);
  }
  return text;
}
