import type { Logger } from '../base/log.ts';
import type { CacheBackend } from '../cache/backend.ts';
import { createCacheHandlers } from '../cache/cache-handler.ts';
import { CompressionBudget } from '../cache/compression-budget.ts';
import { listen } from '../cache/http-listener.ts';
import { createIdentityHandler } from '../cache/identity-route.ts';
import type { ListenerLimits } from '../cache/limits.ts';
import { NarSlots } from '../base/nar-slots.ts';
import { serveRoutes, type RouteHandler, type RouteMatch } from '../cache/route-table.ts';
import { shareRoutes } from '../cache/share-routes.ts';
import { createSummaryHandler } from '../cache/summary-route.ts';
import { createReachBackHandler } from '../doctor/reach-back.ts';
import type { Activity } from '../domain/activity.ts';
import { SharingSwitch } from '../domain/sharing-switch.ts';
import { probeBackend } from '../metrics/backend-probe.ts';
import type { PeernixMetrics } from '../metrics/metrics.ts';
import { goUdpCompanion } from '../peers/go-udp-companion.ts';
import type { PeerRegistry } from '../peers/registry.ts';
import type { SecretKey } from '../nix/signing.ts';
import type { TeamCertificate } from '../wire/team-certificate.ts';
import type { LocalStore } from '../store/local-store.ts';
import type { ScopedSummaries } from '../store/scoped-summaries.ts';
import type { PathScope, PathScopes } from '../store/path-scope.ts';
import { parseStorePath } from '../nix/store-path.ts';
import type { PathInfo } from '../store/daemon-connection.ts';
import { scopePolicy } from '../cache/scope-policy.ts';
import { askerClassifier } from '../cache/asker-class.ts';
import { CACHE_PRIORITY } from './cache-priority.ts';

// The share side: the LAN listener behind the sharing switch, serving this machine's own store and
// never what peers hold (cache/share-routes.ts lists every route), its NAR streams capped and
// accounted to the peer or colleague that asked, and the Go peers' UDP responder alongside.

export interface ShareSideParts {
  address: { host: string; port: number };
  local: CacheBackend;
  store: LocalStore;
  identity: { instanceId: string; key: SecretKey };
  /** The two summaries: a stranger's (public paths) and a team member's (public and team paths). */
  summaries: ScopedSummaries;
  /** Who sees which path (store/path-scope.ts), and the team's raw identity keys as they are now. */
  scopes: PathScopes;
  /** The scope of a path of this store as served (its narinfo with our signature). */
  scopeOfInfo: (info: PathInfo) => PathScope;
  teamKeys: () => ReadonlySet<string>;
  registry: PeerRegistry;
  activity: Activity;
  metrics: PeernixMetrics;
  /** Metrics on the share listener too (the metricsOnShare setting), else null. */
  metricsHandler: RouteHandler | null;
  /** Realisations of content-addressed derivations, from this store only. */
  realisation: RouteHandler;
  /** The output a realisation request would reveal, for the scope policy. */
  realisationPath?: (match: RouteMatch) => Promise<string | null>;
  limits: ListenerLimits;
  goUdp: { port: number } | null;
  announce: (port: number) => void;
  unannounce: () => Promise<void>;
  persist?: (on: boolean) => void;
  /** The team channel: TLS on the share port with this certificate (team members talk only that). */
  tls?: TeamCertificate;
  log: Logger;
}

export function createShareSide(p: ShareSideParts): SharingSwitch {
  const { registry, metrics, limits, log } = p;
  const { events, lanTotals, transfers } = p.activity;
  const cache = createCacheHandlers({
    backend: probeBackend(p.local, { listener: 'share', metrics, sourceOf: () => 'local' }),
    log: log.child('share'),
    priority: CACHE_PRIORITY,
    narSlots: new NarSlots({ total: limits.narStreams, perAddress: limits.narStreamsPerAddress, queue: limits.narQueue, waitMs: limits.narQueueWaitMs }),
    compression: new CompressionBudget(),
    onNarSent: ({ remoteAddress, storePath, bytes, wireBytes, ok }) => {
      metrics.narBytesSent.inc({ listener: 'share' }, bytes);
      registry.countBytesTo(remoteAddress, bytes);
      const peer = registry.findByAddress(remoteAddress);
      if (peer) events.emit({ type: 'transfer', storePath, direction: 'out', peerName: peer.name, bytes, wireBytes, outcome: ok ? 'ok' : 'failed' });
      // A colleague using this machine as a plain binary cache is served all the same.
      else if (ok) lanTotals.countTransfer('out', bytes);
    },
    trackNar: ({ remoteAddress, storePath, total, bytes, wireBytes }) => {
      // The policy judged this path before serving it: its verdict is cached, found here by its narinfo.
      let scope: PathScope | undefined;
      void Promise.resolve()
        .then(() => p.local.narInfo(parseStorePath(storePath).hashPart))
        .then(
          (info) => (scope = info ? p.scopes.scopeOf(info) : undefined),
          () => {},
        );
      return transfers.begin({
        storePath,
        direction: 'out',
        peerName: registry.findByAddress(remoteAddress)?.name ?? remoteAddress,
        total,
        bytes,
        wireBytes,
        scope: () => scope,
      });
    },
  });
  const serve = serveRoutes(
    shareRoutes({
      cache,
      identity: createIdentityHandler(p.identity),
      summary: createSummaryHandler({ summary: (asker) => p.summaries.for(asker === 'team') }),
      // A peer asking whether its share listener is reachable from here (doctor): tried at its own address only.
      reachBack: createReachBackHandler({ portOf: (address) => registry.findByAddress(address)?.port ?? null }),
      metrics: p.metricsHandler,
      realisation: p.realisation,
      realisationPath: p.realisationPath,
    }),
    {
      log: log.child('share'),
      last: true,
      // The one place who may see what is decided, for every route of the table (scope-policy.ts).
      policy: scopePolicy({ classify: askerClassifier(p.teamKeys), scopes: p.scopes, narInfo: (hashPart) => p.local.narInfo(hashPart) }),
    },
  );
  const sharing: SharingSwitch = new SharingSwitch({
    companion: p.goUdp
      ? goUdpCompanion({
          host: p.address.host,
          port: p.goUdp.port,
          store: p.store,
          scopes: p.scopes,
          scopeOf: p.scopeOfInfo,
          sharePort: () => sharing.listener?.port,
          proven: (address) => p.registry.findByAddress(address)?.state === 'up',
          log: log.child('go-udp'),
        })
      : undefined,
    bind: () =>
      listen({
        host: p.address.host,
        port: p.address.port,
        handler: (req, res) => {
          metrics.countRequest('share', req.url);
          serve(req, res);
        },
        log,
        stallMs: limits.stallMs,
        tls: p.tls,
      }),
    announce: p.announce,
    unannounce: p.unannounce,
    persist: p.persist,
    events,
    log,
    changed: () => p.activity.notifySoon('status'),
  });
  return sharing;
}
