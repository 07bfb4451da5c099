import { IDENTITY_PATH } from '../wire/identity-proof.ts';
import { SUMMARY_PATH } from '../wire/summary-wire.ts';
import type { CacheHandlers } from './cache-handler.ts';
import { GET_HEAD, type Route, type RouteHandler, type RouteMatch } from './route-table.ts';
import { ANY_PATH, CACHE_INFO, GO_NAR, GO_NARINFO, GO_STATELESS_NAR, METRICS_PATH, NAR, NARINFO, REACH_BACK_PATH, REALISATION } from './routes.ts';

// Everything the share listener serves to the LAN, first match wins. Answered from this machine's own
// store only, never from what peers hold. Threat: every asker on the LAN; the "reveals" column is what
// a policy on who may ask what (scoped sharing) hangs on.

export interface ShareHandlers {
  /** The binary cache over the local store (cache-handler.ts). */
  cache: CacheHandlers;
  identity: RouteHandler;
  summary: RouteHandler;
  /** doctor/reach-back.ts */
  reachBack: RouteHandler;
  /** A content-addressed derivation's realisation, from this store only (realisation-route.ts). */
  realisation: RouteHandler;
  /** The hash part of the output a realisation request would reveal (its scope decides), null when none. */
  realisationPath?: (match: RouteMatch) => Promise<string | null>;
  /** Only with the metricsOnShare setting (a fleet's Prometheus). */
  metrics: RouteHandler | null;
}

export function shareRoutes(h: ShareHandlers): Route[] {
  const route = (name: string, path: string | RegExp, reveals: Route['reveals'], handler: RouteHandler, more: Partial<Route> = {}): Route => ({
    name,
    methods: GET_HEAD,
    path,
    listener: 'share',
    reveals,
    handler,
    ...more,
  });
  return [
    ...(h.metrics ? [route('metrics', METRICS_PATH, 'figures', h.metrics)] : []),
    route('identity', IDENTITY_PATH, 'nothing', h.identity),
    route('summary', SUMMARY_PATH, 'summary', h.summary),
    route('summary-prefixed', `/nix-cache${SUMMARY_PATH}`, 'summary', h.summary),
    // No query: the asker can name no target, only be connected back to.
    route('reach-back', REACH_BACK_PATH, 'nothing', h.reachBack, { methods: ['GET'], query: 'none', errorBody: 'json' }),
    route('cache-info', CACHE_INFO, 'nothing', h.cache.cacheInfo),
    route('narinfo', NARINFO, 'path', h.cache.narInfo),
    route('narinfo-go', GO_NARINFO, 'path', h.cache.goNarInfo),
    route('nar', NAR, 'path', h.cache.nar),
    route('nar-go-stateless', GO_STATELESS_NAR, 'path', h.cache.nar),
    route('nar-go', GO_NAR, 'path', h.cache.narByHash),
    route('realisation', REALISATION, 'path', h.realisation, h.realisationPath ? { revealedPath: h.realisationPath } : {}),
    route('not-found', ANY_PATH, 'nothing', h.cache.notFound),
  ];
}
