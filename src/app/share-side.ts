import type { Logger } from '../base/log.ts';
import type { CacheBackend } from '../cache/backend.ts';
import { listen } from '../cache/http-listener.ts';
import type { ListenerLimits } from '../cache/limits.ts';
import { NarSlots } from '../base/nar-slots.ts';
import type { RouteHandler, RouteMatch } from '../cache/route-table.ts';
import { createSummaryHandler } from '../cache/summary-route.ts';
import { createReachBackHandler } from '../doctor/reach-back.ts';
import type { Activity } from '../domain/activity.ts';
import { SharingSwitch } from '../domain/sharing-switch.ts';
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
import { askerClassifier } from '../cache/asker-class.ts';
import type { CacheHandlerOptions } from '../cache/cache-handler.ts';
import { shareServe } from './share-serve.ts';
import { relayedAsker, ShareLoops } from './share-loops.ts';
import type { NarSourceKind } from '../store/local-store.ts';

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
  /** Worker threads that serve the share port beside the main thread (share-loops.ts); 0: the main thread alone. */
  threads?: {
    count: number;
    storeUri: string;
    narSource?: NarSourceKind;
    verifyLocalNars?: boolean;
    publicKeys: readonly string[];
    exclude: readonly string[];
    debug: boolean;
  };
  log: Logger;
}

export interface ShareSide {
  sharing: SharingSwitch;
  /** Ends the worker threads (after sharing is off). */
  stop(): Promise<void>;
}

export function createShareSide(p: ShareSideParts): ShareSide {
  const { registry, metrics, limits, log } = p;
  const { events, lanTotals, transfers } = p.activity;
  const narSlots = new NarSlots({ total: limits.narStreams, perAddress: limits.narStreamsPerAddress, queue: limits.narQueue, waitMs: limits.narQueueWaitMs });
  const onNarSent: NonNullable<CacheHandlerOptions['onNarSent']> = ({ remoteAddress, storePath, bytes, wireBytes, ok }) => {
    metrics.narBytesSent.inc({ listener: 'share' }, bytes);
    registry.countBytesTo(remoteAddress, bytes);
    const peer = registry.findByAddress(remoteAddress);
    if (peer) events.emit({ type: 'transfer', storePath, direction: 'out', peerName: peer.name, bytes, wireBytes, outcome: ok ? 'ok' : 'failed' });
    // A colleague using this machine as a plain binary cache is served all the same.
    else if (ok) lanTotals.countTransfer('out', bytes);
  };
  const trackNar: NonNullable<CacheHandlerOptions['trackNar']> = ({ remoteAddress, storePath, total, bytes, wireBytes }) => {
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
  };
  const classify = askerClassifier(p.teamKeys);
  const serve = shareServe({
    local: p.local,
    metrics,
    narSlots,
    onNarSent,
    trackNar,
    identity: p.identity,
    summary: createSummaryHandler({ summary: (asker) => p.summaries.for(asker === 'team') }),
    // A peer asking whether its share listener is reachable from here (doctor): tried at its own address only.
    reachBack: createReachBackHandler({ portOf: (address) => registry.findByAddress(address)?.port ?? null }),
    metricsHandler: p.metricsHandler,
    realisation: p.realisation,
    realisationPath: p.realisationPath,
    scopes: p.scopes,
    // A request a worker thread relayed here keeps the class that thread found on its connection.
    classify: (req) => relayedAsker(req) ?? classify(req),
    log,
  });
  const t = p.threads;
  // SO_REUSEPORT spreads connections over listeners only on Linux (elsewhere the last bound takes all).
  if (t && t.count > 0 && process.platform !== 'linux') log.warn(`shareThreads ${t.count} is for Linux only: the main thread serves the share port alone`);
  const loops =
    t && t.count > 0 && process.platform === 'linux'
      ? new ShareLoops({
          threads: t.count,
          worker: {
            storeUri: t.storeUri,
            narSource: t.narSource,
            verifyLocalNars: t.verifyLocalNars,
            secretKey: secretKeyText(p.identity.key),
            instanceId: p.identity.instanceId,
            publicKeys: t.publicKeys,
            exclude: t.exclude,
            stallMs: limits.stallMs,
            tls: p.tls,
            metricsOnShare: p.metricsHandler !== null,
            debug: t.debug,
          },
          teamKeys: p.teamKeys,
          watchTeam: (changed) => events.subscribe((e) => e.type === 'team' && changed()),
          narSlots,
          store: p.store,
          serve,
          onNarSent,
          trackNar,
          metrics,
          scopes: p.scopes,
          log,
        })
      : null;
  const bindMain = (reusePort: boolean) =>
    listen({
      host: p.address.host,
      port: p.address.port,
      // shareServe counts each request in the metrics.
      handler: serve,
      log,
      stallMs: limits.stallMs,
      tls: p.tls,
      reusePort,
    });
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
    bind: () => (loops ? loops.bind(bindMain) : bindMain(false)),
    announce: p.announce,
    unannounce: p.unannounce,
    persist: p.persist,
    events,
    log,
    changed: () => p.activity.notifySoon('status'),
  });
  return { sharing, stop: async () => loops?.stop() };
}

/** The key as Nix writes it ("name:base64 of seed and public key"), for a worker thread to parse again. */
function secretKeyText(key: SecretKey): string {
  const jwk = key.privateKey.export({ format: 'jwk' });
  return `${key.name}:${Buffer.concat([Buffer.from(jwk.d!, 'base64url'), Buffer.from(jwk.x!, 'base64url')]).toString('base64')}`;
}
