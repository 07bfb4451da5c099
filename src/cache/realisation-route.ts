import type { Logger } from '../base/log.ts';
import { isDrvOutputId } from '../nix/realisation.ts';
import { NotFound, sendBody, Unavailable } from './http-error.ts';
import type { RouteHandler, RouteMatch } from './route-table.ts';

// GET /realisations/<drv output id>.doi: what a Nix with ca-derivations asks a binary cache before it
// would build a content-addressed derivation (Nix 2.34 asks "/realisations/sha256:<hex>%21out.doi",
// 2.26 with a plain "!"). 200 with the realisation's JSON, 404 when there is none (Nix then looks
// elsewhere or builds), 503 only when the store's daemon is down. Both listeners list it
// (share-routes.ts, substituter-routes.ts), each with the source it may answer from (the share
// listener this store only). Threat: the URL is hostile; only the exact shape of a derivation output
// id gets past it.

export type RealisationLookup = (id: string) => Promise<string | null>;

export function createRealisationHandler(lookup: RealisationLookup, log: Logger): RouteHandler {
  return async (_req, res, match) => {
    // Nix percent-encodes the "!"; nothing else in an id needs encoding.
    const id = match.params[0].replace(/%21/i, '!');
    if (!isDrvOutputId(id)) throw new NotFound();
    let body: string | null;
    try {
      body = await lookup(id);
    } catch (e) {
      log.warn(`realisation ${id}: ${(e as Error).message}`);
      throw new Unavailable('store unavailable');
    }
    if (body === null) throw new NotFound();
    sendBody(res, body, { 'Content-Type': 'application/json' }, { head: match.head });
  };
}

/**
 * The hash part of the output a realisation request would reveal, by the same lookup (share-routes.ts
 * revealedPath): the scope policy judges that path. Null when there is no realisation (or it can't
 * be read: the handler answers that itself).
 */
export function realisationOutput(lookup: RealisationLookup): (match: RouteMatch) => Promise<string | null> {
  return async (match) => {
    const id = match.params[0].replace(/%21/i, '!');
    if (!isDrvOutputId(id)) return null;
    let body: string | null;
    try {
      body = await lookup(id);
    } catch {
      // Unknown, so for team members only (fails closed): the handler may succeed where this failed.
      return '';
    }
    if (body === null) return null;
    try {
      const outPath = (JSON.parse(body) as { outPath?: unknown }).outPath;
      // A realisation that names no readable output is judged as a path no one may see.
      return typeof outPath === 'string' ? outPath.slice(0, 32) : '';
    } catch {
      return '';
    }
  };
}
