// One share-listener route as the listener declares it (cache/share-routes.ts), alone: a unit test of
// one handler gets the real path, methods and query rule, and every other URL falls through (false).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheHandlers, CacheHandlerOptions } from '../../src/cache/cache-handler.ts';
import { createCacheHandlers } from '../../src/cache/cache-handler.ts';
import { NotFound } from '../../src/cache/http-error.ts';
import { serveRoutes, type RouteHandler } from '../../src/cache/route-table.ts';
import { shareRoutes } from '../../src/cache/share-routes.ts';
import { substituterRoutes } from '../../src/cache/substituter-routes.ts';

export function shareRouteOnly(
  part: 'identity' | 'summary' | 'reachBack' | 'realisation',
  handler: RouteHandler,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const unused: RouteHandler = () => {
    throw new Error('not under test');
  };
  const cache: CacheHandlers = { cacheInfo: unused, narInfo: unused, goNarInfo: unused, nar: unused, narByHash: unused, notFound: unused };
  const routes = shareRoutes({ cache, identity: unused, summary: unused, reachBack: unused, realisation: unused, metrics: null, [part]: handler });
  return serveRoutes(routes.filter((r) => r.handler === handler));
}

/** A cache listener for one backend: the substituter's routes over these handlers. */
export function cacheListenerHandler(opts: CacheHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const serve = serveRoutes(
    substituterRoutes(createCacheHandlers(opts), () => {
      throw new NotFound();
    }),
    { log: opts.log, last: true },
  );
  return (req, res) => void serve(req, res);
}
