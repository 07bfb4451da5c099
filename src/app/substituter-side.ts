import type { Logger } from '../base/log.ts';
import { createCacheHandlers } from '../cache/cache-handler.ts';
import { listen, type HttpListener } from '../cache/http-listener.ts';
import type { ListenerLimits } from '../cache/limits.ts';
import { serveRoutes, type RouteHandler } from '../cache/route-table.ts';
import { substituterRoutes } from '../cache/substituter-routes.ts';
import { loopbackRoutes, type ControlHandlers } from '../control/routes.ts';
import { LOCAL, type AffinityCache } from '../domain/affinity.ts';
import type { Resolver } from '../domain/resolver.ts';
import { probeBackend } from '../metrics/backend-probe.ts';
import type { PeernixMetrics } from '../metrics/metrics.ts';
import { CACHE_PRIORITY } from './cache-priority.ts';

// The substituter side: this machine's Nix asks the loopback listener, and the resolver answers from
// the local store, then peers (cache/substituter-routes.ts). The same socket carries the loopback
// routes — metrics, and the control API once the service attaches it (control/routes.ts).

export interface SubstituterSideParts {
  address: { host: string; port: number };
  resolver: Resolver;
  affinity: AffinityCache;
  metrics: PeernixMetrics;
  metricsHandler: RouteHandler;
  /** Realisations of content-addressed derivations: this store, then the peers. */
  realisation: RouteHandler;
  limits: ListenerLimits;
  log: Logger;
}

export interface SubstituterSide {
  listener: HttpListener;
  /** Adds the control API and dashboard to the loopback routes (they need the listener's URL first). */
  attachControl(control: ControlHandlers): void;
}

export async function startSubstituterSide(p: SubstituterSideParts): Promise<SubstituterSide> {
  const { metrics, log } = p;
  const loopback = (control: ControlHandlers | null) => serveRoutes(loopbackRoutes({ metrics: p.metricsHandler, control }), { log: log.child('control') });
  let serveLoopback = loopback(null);
  const cache = createCacheHandlers({
    backend: probeBackend(p.resolver, { listener: 'substituter', metrics, sourceOf: (h) => (p.affinity.get(h)?.source === LOCAL ? 'local' : 'peer') }),
    log: log.child('subst'),
    priority: CACHE_PRIORITY,
    onNarSent: ({ bytes }) => metrics.narBytesSent.inc({ listener: 'substituter' }, bytes),
  });
  const serveCache = serveRoutes(substituterRoutes(cache, p.realisation), { log: log.child('subst'), last: true });
  const listener = await listen({
    host: p.address.host,
    port: p.address.port,
    log,
    loopbackOnly: true,
    pinLoopbackHost: true,
    stallMs: p.limits.stallMs,
    handler: (req, res) => {
      metrics.countRequest('substituter', req.url);
      if (!serveLoopback(req, res)) serveCache(req, res);
    },
  });
  return {
    listener,
    attachControl: (control) => (serveLoopback = loopback(control)),
  };
}
