import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../base/log.ts';
import type { NarAdmission } from '../base/nar-slots.ts';
import type { AskerClass } from '../cache/asker-class.ts';
import type { CacheBackend } from '../cache/backend.ts';
import { type CacheHandlerOptions, createCacheHandlers } from '../cache/cache-handler.ts';
import { CompressionBudget } from '../cache/compression-budget.ts';
import { createIdentityHandler } from '../cache/identity-route.ts';
import { serveRoutes, type RouteHandler, type RouteMatch } from '../cache/route-table.ts';
import { scopePolicy } from '../cache/scope-policy.ts';
import { shareRoutes } from '../cache/share-routes.ts';
import { probeBackend, type ProbeMetrics } from '../metrics/backend-probe.ts';
import type { PeernixMetrics } from '../metrics/metrics.ts';
import type { SecretKey } from '../nix/signing.ts';
import type { PathScopes } from '../store/path-scope.ts';
import { CACHE_PRIORITY } from './cache-priority.ts';

// The share listener's request handler, built the same way in every event loop that serves the port
// (share-side.ts in the main thread, share-worker.ts in each worker thread): the one route table, the
// one scope policy, over this loop's own store handle. What only the main thread holds (the summaries,
// the registry, the metrics) reaches a worker's table as handlers that relay to it.

export type ShareMetrics = ProbeMetrics & Pick<PeernixMetrics, 'countRequest'>;

export interface ShareServeParts {
  local: CacheBackend;
  metrics: ShareMetrics;
  narSlots: NarAdmission;
  onNarSent: NonNullable<CacheHandlerOptions['onNarSent']>;
  trackNar: NonNullable<CacheHandlerOptions['trackNar']>;
  identity: { instanceId: string; key: SecretKey };
  summary: RouteHandler;
  reachBack: RouteHandler;
  metricsHandler: RouteHandler | null;
  realisation: RouteHandler;
  realisationPath?: (match: RouteMatch) => Promise<string | null>;
  scopes: PathScopes;
  classify: (req: IncomingMessage) => AskerClass;
  log: Logger;
}

export function shareServe(p: ShareServeParts): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, log } = p;
  const cache = createCacheHandlers({
    backend: probeBackend(p.local, { listener: 'share', metrics, sourceOf: () => 'local' }),
    log: log.child('share'),
    priority: CACHE_PRIORITY,
    narSlots: p.narSlots,
    compression: new CompressionBudget(),
    onNarSent: p.onNarSent,
    trackNar: p.trackNar,
  });
  const serve = serveRoutes(
    shareRoutes({
      cache,
      identity: createIdentityHandler(p.identity),
      summary: p.summary,
      reachBack: p.reachBack,
      metrics: p.metricsHandler,
      realisation: p.realisation,
      realisationPath: p.realisationPath,
    }),
    {
      log: log.child('share'),
      last: true,
      // The one place who may see what is decided, for every route of the table (scope-policy.ts).
      policy: scopePolicy({ classify: p.classify, scopes: p.scopes, narInfo: (hashPart) => p.local.narInfo(hashPart) }),
    },
  );
  return (req, res) => {
    metrics.countRequest('share', req.url);
    serve(req, res);
  };
}
