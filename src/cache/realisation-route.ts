import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../base/log.ts';
import { isDrvOutputId } from '../nix/realisation.ts';
import { send } from './cache-handler.ts';
import { MAX_URL_LENGTH } from './routes.ts';

// GET /realisations/<drv output id>.doi: what a Nix with ca-derivations asks a binary cache before it
// would build a content-addressed derivation (Nix 2.34 asks "/realisations/sha256:<hex>%21out.doi").
// 200 with the realisation's JSON, 404 when there is none (Nix then looks elsewhere or builds), 503
// only when the store's daemon is down. A handler of its own, tried before the cache routes, on both
// listeners: each passes the source it may answer from (the share listener this store only).
// Threat: the URL is hostile; only the exact shape of a derivation output id gets past it.

const PATH = /^\/realisations\/([^/]{1,220})\.doi$/;

export type RealisationLookup = (id: string) => Promise<string | null>;

/** Returns a handler that answers realisation URLs and returns true, or returns false for any other URL. */
export function createRealisationRoute(lookup: RealisationLookup, log: Logger): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url;
    if (!url || url.length > MAX_URL_LENGTH || !url.startsWith('/realisations/')) return false;
    if (log.debugEnabled) {
      // The same line the cache routes log (cache-handler.ts).
      const started = process.hrtime.bigint();
      res.on('finish', () => log.debug(`${req.socket.remoteAddress} ${req.method} ${url} ${res.statusCode} ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(2)}ms`));
    }
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return true;
    }
    const q = url.indexOf('?');
    const m = PATH.exec(q === -1 ? url : url.slice(0, q));
    // Nix percent-encodes the "!"; nothing else in an id needs encoding.
    const id = m ? m[1].replace(/%21/i, '!') : null;
    if (!id || !isDrvOutputId(id)) {
      send(res, 404, 'not found\n', {}, head);
      return true;
    }
    lookup(id).then(
      (body) => (body === null ? send(res, 404, 'not found\n', {}, head) : send(res, 200, body, { 'Content-Type': 'application/json' }, head)),
      (e: Error) => {
        log.warn(`realisation ${id}: ${e.message}`);
        send(res, 503, 'store unavailable\n', {}, head);
      },
    );
    return true;
  };
}
