import type { CacheHandlers } from './cache-handler.ts';
import { GET_HEAD, type Route, type RouteHandler } from './route-table.ts';
import { ANY_PATH, CACHE_INFO, GO_NAR, GO_NARINFO, GO_STATELESS_NAR, NAR, NARINFO, REALISATION } from './routes.ts';

// Everything the substituter listener serves this machine's Nix, first match wins, after the
// loopback routes (control/routes.ts) on the same socket. Answered by the resolver: the local store,
// then peers. Threat: only loopback clients reach it, and only with its own Host (http-listener.ts).

export function substituterRoutes(cache: CacheHandlers, realisation: RouteHandler): Route[] {
  const route = (name: string, path: RegExp, reveals: Route['reveals'], handler: RouteHandler): Route => ({
    name,
    methods: GET_HEAD,
    path,
    listener: 'substituter',
    reveals,
    handler,
  });
  return [
    route('cache-info', CACHE_INFO, 'nothing', cache.cacheInfo),
    route('narinfo', NARINFO, 'path', cache.narInfo),
    route('narinfo-go', GO_NARINFO, 'path', cache.goNarInfo),
    route('nar', NAR, 'path', cache.nar),
    route('nar-go-stateless', GO_STATELESS_NAR, 'path', cache.nar),
    route('nar-go', GO_NAR, 'path', cache.narByHash),
    route('realisation', REALISATION, 'path', realisation),
    // Any other path, and any method a cache does not take (405), in one place.
    route('not-found', ANY_PATH, 'nothing', cache.notFound),
  ];
}
