import { platform, arch } from 'node:os';
import { join } from 'node:path';
import type { DaemonHealth, DoctorReport, PeernixApi, Snapshot, StatusView } from '../base/api.ts';
import { AffinityCache, LOCAL } from '../domain/affinity.ts';
import { CompressionBudget } from '../cache/compression-budget.ts';
import { createCacheHandler, type RequestHandler } from '../cache/cache-handler.ts';
import { listen } from '../cache/http-listener.ts';
import { createIdentityRoute } from '../cache/identity-route.ts';
import { createSummaryRoute } from '../cache/summary-route.ts';
import { ChangeBatcher, type Topic } from '../base/change-batcher.ts';
import { LocalBackend } from '../cache/local-backend.ts';
import { limitsFromEnv } from '../cache/limits.ts';
import { NarSlots } from '../base/nar-slots.ts';
import { EventLog } from '../base/events.ts';
import { LAN_TOTALS_FILE, LanTotals } from '../domain/lan-totals.ts';
import { PeerHistory } from '../domain/peer-history.ts';
import { shareAddresses } from '../domain/share-addresses.ts';
import { TransferTracker } from '../domain/transfers.ts';
import { loadIdentity } from '../domain/identity.ts';
import { formatHostPort, isLoopbackHost, parseListenAddress } from '../base/listen-address.ts';
import type { Logger } from '../base/log.ts';
import { nixConfLines } from '../nix/nix-conf-lines.ts';
import { diagnose } from '../doctor/doctor.ts';
import { gatherFacts } from '../doctor/gather.ts';
import { createReachBackRoute } from '../doctor/reach-back.ts';
import { probeBackend } from '../metrics/backend-probe.ts';
import { PeernixMetrics } from '../metrics/metrics.ts';
import { createMetricsRoute } from '../metrics/route.ts';
import { MdnsDiscovery } from '../peers/discovery.ts';
import { PeerClient } from '../peers/peer-client.ts';
import { PeerSummaries } from '../peers/peer-summaries.ts';
import { PeerRegistry, type Peer } from '../peers/registry.ts';
import { staticPeerInfo } from '../peers/static-peer.ts';
import { UdpResponder } from '../peers/udp-responder.ts';
import { GO_HTTP_PORT } from '../peers/go-peer.ts';
import { Resolver } from '../domain/resolver.ts';
import { SharingSwitch } from '../domain/sharing-switch.ts';
import { ensureStateDir } from '../base/state-dir.ts';
import { LocalStore, type NarSourceKind } from '../store/local-store.ts';
import { StoreSummary } from '../store/store-summary.ts';
import { parseStoreUri } from '../store/store-uri.ts';
import { isKeyTrusted, readNixTrust, type TrustPolicy } from '../domain/trust.ts';

// The composition root: every part of the core is built and wired here, and nowhere else.
//
//   substituter listener (loopback) ── resolver ── local store (nix-daemon)
//                                          └────── peer client ── registry ── mDNS / --peer
//   share listener (LAN, while sharing) ── local store only

export interface PeernixOptions {
  stateDir: string;
  storeUri: string;
  shareListen: string;
  listen: string;
  secretKeyFile?: string;
  sharing: boolean;
  peers: string[];
  mdns: boolean;
  /** Offer NAR frames (compression when it pays) to Peernix peers; default on. */
  peerCompression?: boolean;
  /** While sharing, answer Go peernix hosts' UDP questions on this port (null/absent: never). */
  goUdp?: { port: number } | null;
  /** Display and mDNS host name; defaults to the machine's host name. */
  name?: string;
  /** Restrict mDNS to one interface (name or IPv4 address). */
  mdnsInterface?: string;
  narSource?: NarSourceKind;
  /** Hash local NARs while they stream too (peers' always are). */
  verifyLocalNars?: boolean;
  version: string;
  log: Logger;
  /** Remembers the sharing switch across restarts (the settings file). */
  persistSharing?: (on: boolean) => void;
  /** Serve /metrics on the share listener too (for a fleet's Prometheus); always on loopback. */
  metricsOnShare?: boolean;
  /** Extra routes on the loopback listener (the control API and dashboard); returns true if handled. */
  loopbackRoutes?: (api: PeernixApi, substituterUrl: string) => (req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]) => boolean;
}

export interface Peernix {
  api: PeernixApi;
  substituterUrl: string;
}

/** Nix ranks substituters by ascending priority; cache.nixos.org says 40, so a LAN cache goes first. */
export const CACHE_PRIORITY = 30;

export async function startPeernix(opts: PeernixOptions): Promise<Peernix> {
  const log = opts.log;
  ensureStateDir(opts.stateDir);
  const identity = loadIdentity(opts.stateDir, opts.secretKeyFile);
  const name = opts.name ?? identity.hostName;
  const location = parseStoreUri(opts.storeUri);
  const shareAddr = parseListenAddress(opts.shareListen);
  const substAddr = parseListenAddress(opts.listen);
  if (!isLoopbackHost(substAddr.host)) {
    throw new Error(`--listen must be a loopback address (it fetches from peers for whoever can reach it): ${opts.listen}`);
  }
  const staticPeers = opts.peers.map(staticPeerInfo);

  // --- change notification: events at once, re-read notices batched per tick
  const changes = new ChangeBatcher();
  const notifySoon = (topic: Topic) => changes.soon(topic);

  // --- the parts
  const events = new EventLog();
  events.subscribe((event) => changes.now({ topic: 'event', event }));
  // Transfers in progress and the LAN totals go out as one live change, at most every 250 ms.
  const lanTotals = new LanTotals({ file: join(opts.stateDir, LAN_TOTALS_FILE), log: log.child('totals') });
  lanTotals.follow((l) => events.subscribe(l));
  let liveTimer: NodeJS.Timeout | null = null;
  const liveSoon = () => {
    liveTimer ??= setTimeout(() => {
      liveTimer = null;
      changes.now({ topic: 'transfers', transfers: transfers.views(), lan: lanTotals.view() });
    }, 250);
    liveTimer.unref();
  };
  const transfers = new TransferTracker({ onUpdate: liveSoon, onFlow: (direction, n) => lanTotals.flow(direction, n) });
  lanTotals.onChange(liveSoon);
  const peerHistory = new PeerHistory();
  let trust: TrustPolicy = { requireSigs: true, keys: [] };
  const store = new LocalStore({
    location,
    narSource: opts.narSource,
    onMetadataSource: (source, why) => {
      if (source === 'database') log.info(`narinfo metadata from the store database${why ? ` (${why})` : ''}`);
      else log.info(`narinfo metadata from the nix-daemon (store database not readable: ${why}); retrying`);
      notifySoon('status');
    },
  });
  const client = new PeerClient({}, `peernix/${opts.version}`, {}, { frames: opts.peerCompression ?? true });
  // Peers' store summaries: a miss no summary admits asks nobody. A change may admit what just missed.
  const summaries = new PeerSummaries({
    log: log.child('summaries'),
    userAgent: `peernix/${opts.version}`,
    onChange: (hashParts) => {
      resolver.forgetMisses(hashParts);
      notifySoon('peers');
    },
  });
  const registry = new PeerRegistry({ client, isTrusted: (k) => isKeyTrusted(k, trust), summaryOf: (id) => summaries.view(id) });
  const affinity = new AffinityCache(20_000, () => notifySoon('entries'));
  const local = new LocalBackend(store, identity.key, opts.verifyLocalNars);
  const resolver = new Resolver({
    local,
    registry,
    client,
    affinity,
    events,
    transfers,
    log: log.child('resolver'),
    trust: () => trust,
    mayHave: (peer, hashPart) => summaries.mayHave(peer.id, hashPart),
    goUdpPort: opts.goUdp?.port,
  });
  // This store's summary for peers, served on the share listener and kept current from the database.
  const storeSummary = new StoreSummary(store.summarySource);
  registry.on('up', (p) => {
    log.info(`peer up: ${p.name} ${p.url}`);
    events.emit({ type: 'peer-up', peerId: p.id, peerName: p.name });
  });
  registry.on('down', (p, reason: string) => {
    log.info(`peer down: ${p.name} (${reason})`);
    peerHistory.noteDown(p.id, reason);
    events.emit({ type: 'peer-down', peerId: p.id, peerName: p.name, reason });
  });
  registry.on('changed', () => notifySoon('peers'));
  // Prometheus figures: a subscriber of the events, reading the registry and status when scraped.
  const metrics = new PeernixMetrics({
    peers: () => registry.all(),
    peerViews: () => registry.views(),
    sharing: () => sharing.on,
    daemonUp: () => daemon.ok,
    subscribe: (l) => events.subscribe(l),
    lanToday: () => lanTotals.view().today,
  });
  registry.on('removed', (p: Peer) => metrics.peerRemoved(p));
  const metricsRoute = createMetricsRoute(metrics, log.child('metrics'));
  // The summary of every peer that has been up is followed (at its current URL) until it leaves.
  // Go peers publish no summary (it would be asked for, and refused, forever).
  registry.on('up', (p: Peer) => p.dialect !== 'go' && summaries.follow(p.id, p.url));
  registry.on('moved', (p: Peer) => p.dialect !== 'go' && summaries.follow(p.id, p.url));
  registry.on('removed', (p: Peer) => summaries.unfollow(p.id));

  // Unreadable settings keep the last ones read (none at first) and say so in the status.
  let trustView: NonNullable<StatusView['trust']> = { source: null, keys: 0, requireSigs: true, error: 'not read yet' };
  const refreshTrust = () => {
    let next: NonNullable<StatusView['trust']>;
    try {
      const read = readNixTrust();
      trust = read.policy;
      next = { source: read.source, keys: trust.keys.length, requireSigs: trust.requireSigs, error: null };
    } catch (e) {
      next = { ...trustView, error: (e as Error).message };
    }
    if (JSON.stringify(next) === JSON.stringify(trustView)) return;
    trustView = next;
    if (next.error) log.warn(`cannot read this machine's Nix trust settings (trusted-public-keys, require-sigs): ${next.error}`);
    else log.info(`Nix trust settings from ${next.source}: ${next.keys} trusted key(s), require-sigs ${next.requireSigs}`);
    notifySoon('status');
  };
  refreshTrust();

  // --- listeners
  const limits = limitsFromEnv();
  const shareHandler = createCacheHandler({
    backend: probeBackend(local, { listener: 'share', metrics, sourceOf: () => 'local' }),
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
    trackNar: ({ remoteAddress, storePath, total, bytes, wireBytes }) =>
      transfers.begin({ storePath, direction: 'out', peerName: registry.findByAddress(remoteAddress)?.name ?? remoteAddress, total, bytes, wireBytes }),
  });
  const identityRoute = createIdentityRoute({ instanceId: identity.instanceId, key: identity.key });
  const summaryRoute = createSummaryRoute({ summary: storeSummary });
  // A peer asking whether its share listener is reachable from here (doctor): tried at its own address only.
  const reachBackRoute = createReachBackRoute({ portOf: (address) => registry.findByAddress(address)?.port ?? null });
  // A lookup no peer could answer is a miss the LAN answered at once (Nix goes on to its other caches).
  const substBackend = {
    narInfo: async (hashPart: string) => {
      const info = await resolver.narInfo(hashPart);
      if (!info) lanTotals.countMiss();
      return info;
    },
    nar: resolver.nar.bind(resolver),
  };
  const substHandler = createCacheHandler({
    backend: probeBackend(substBackend, { listener: 'substituter', metrics, sourceOf: (h) => (affinity.get(h)?.source === LOCAL ? 'local' : 'peer') }),
    log: log.child('subst'),
    priority: CACHE_PRIORITY,
    onNarSent: ({ bytes }) => metrics.narBytesSent.inc({ listener: 'substituter' }, bytes),
  });
  let extraRoutes: ((req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]) => boolean) | null = null;
  const substituter = await listen({
    host: substAddr.host,
    port: substAddr.port,
    log,
    loopbackOnly: true,
    pinLoopbackHost: true,
    stallMs: limits.stallMs,
    handler: (req, res) => {
      metrics.countRequest('substituter', req.url);
      if (metricsRoute(req, res) || extraRoutes?.(req, res)) return;
      substHandler(req, res);
    },
  });

  let discovery: MdnsDiscovery | null = null;
  const startedAt = Date.now();
  let daemon: DaemonHealth = { ok: false, version: null, error: 'not checked yet' };

  // Go peers ask over UDP before they fetch over HTTP: answered from this store's own view only (the
  // store database, else the daemon), never from what peers hold, and only while sharing.
  const goUdp = opts.goUdp
    ? new UdpResponder({
        host: shareAddr.host,
        port: opts.goUdp.port,
        log: log.child('go-udp'),
        has: (hashPart) => {
          const known = store.pathInfoFromDb(hashPart);
          return known !== undefined ? known !== null : store.pathInfoByHashPart(hashPart).then((info) => info !== null);
        },
      })
    : null;
  const goUdpCompanion = goUdp && {
    open: async () => {
      // A Go peer that hears "yes" fetches from our address on its own HTTP port: saying yes while the
      // share listener is elsewhere would only send it to a closed port.
      const port = sharing.listener?.port;
      if (port !== GO_HTTP_PORT) {
        log.info(`not answering Go peernix UDP questions: they fetch from port ${GO_HTTP_PORT}, this store is shared on ${port}`);
        return;
      }
      try {
        await goUdp.bind();
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        const why = err.code === 'EADDRINUSE' ? 'is in use by another program' : err.code === 'EACCES' ? 'may not be bound' : 'could not be bound';
        throw new Error(`the UDP port for Go peernix questions (${opts.goUdp!.port}) ${why} (${err.message}): Go peernix hosts will not fetch from this one (settings goUdpPort, goPeers)`);
      }
      log.info(`answering Go peernix UDP questions on ${formatHostPort(shareAddr.host, goUdp.port ?? opts.goUdp!.port)}/udp`);
    },
    close: () => goUdp.close(),
  };
  const sharing = new SharingSwitch({
    companion: goUdpCompanion ?? undefined,
    bind: () =>
      listen({
        host: shareAddr.host,
        port: shareAddr.port,
        handler: (req, res) => {
          metrics.countRequest('share', req.url);
          if (opts.metricsOnShare && metricsRoute(req, res)) return;
          if (!identityRoute(req, res) && !summaryRoute(req, res) && !reachBackRoute(req, res)) shareHandler(req, res);
        },
        log,
        stallMs: limits.stallMs,
      }),
    announce: (port) => discovery?.publish(port),
    unannounce: async () => discovery?.unpublish(),
    persist: opts.persistSharing,
    events,
    log,
    changed: () => notifySoon('status'),
  });
  const shareUrl = () => {
    const l = sharing.listener;
    return l ? `http://${formatHostPort(shareAddr.host, l.port)}` : null;
  };

  if (opts.mdns) {
    discovery = new MdnsDiscovery({
      self: {
        instanceId: identity.instanceId,
        name,
        port: shareAddr.port,
        publicKey: identity.key.publicKey.text,
        platform: `${platform()}-${arch()}`,
        protocol: 1,
      },
      hostName: opts.name ? `${opts.name}-${identity.instanceId.slice(0, 6)}` : undefined,
      interface: opts.mdnsInterface,
      isProven: (p) => registry.isProvenService(p.key),
    });
    discovery.on('up', (p) => registry.upsert({ ...p, source: 'mdns' }));
    discovery.on('down', (id, key) => registry.remove(id, 'goodbye', key));
    discovery.on('error', (e) => log.warn(`mDNS: ${e.message}`));
    discovery.start();
  }
  await sharing.startUp(opts.sharing);
  for (const p of staticPeers) registry.upsert(p);
  registry.start();

  log.info(`substituter for this machine's Nix on ${substituter.url}`);

  const refreshDaemon = async () => {
    const h = await store.health();
    const changed = h.ok !== daemon.ok || h.error !== daemon.error;
    daemon = h;
    if (changed) {
      if (!h.ok) log.warn(`nix-daemon unreachable: ${h.error}`);
      notifySoon('status');
    }
  };
  await refreshDaemon();
  // Paths added here reach peers' summaries within moments: a look at the database's newest rows
  // (an indexed query that finds nothing most of the time), and every 10 s a count for deletions.
  let summaryTicks = 0;
  const refreshSummary = () => {
    if (sharing.on) storeSummary.refresh(++summaryTicks % 20 === 0);
  };
  refreshSummary();
  const timers = [
    setInterval(() => void refreshDaemon(), 5_000),
    setInterval(refreshTrust, 60_000),
    setInterval(refreshSummary, 500),
    setInterval(() => peerHistory.sample(registry.views()), peerHistory.intervalMs),
  ];
  for (const t of timers) t.unref();

  const status = (): StatusView => ({
    version: opts.version,
    instanceId: identity.instanceId,
    hostName: name,
    sharing: sharing.on,
    shareUrl: shareUrl(),
    shareError: sharing.error,
    shareAddresses: sharing.listener ? shareAddresses(shareAddr.host, sharing.listener.port) : [],
    substituterUrl: substituter.url,
    publicKey: identity.key.publicKey.text,
    nixConf: nixConfLines(substituter.url, identity.key.publicKey.text),
    daemon,
    trust: trustView,
    metadata: { source: store.metadataSource, why: store.dbUnavailable },
    mdns: discovery !== null,
    mdnsSelfSeenAt: discovery?.ownSeenAt ?? null,
    peersUp: registry.live().length,
    startedAt,
  });

  let stopping: Promise<void> | null = null;
  // One doctor run at a time: asking again while it runs gets the same answer.
  let doctorRun: Promise<DoctorReport> | null = null;
  const api: PeernixApi = {
    snapshot: (): Snapshot => ({
      status: status(),
      peers: registry.views().map((p) => peerHistory.annotate(p)),
      entries: affinity.views(),
      events: events.recent(),
      transfers: transfers.views(),
      lan: lanTotals.view(),
    }),
    subscribe: (listener) => changes.subscribe(listener),
    setSharing: (on) => (stopping ? Promise.reject(new Error('Peernix is stopping')) : sharing.set(on)),
    async clearPeerBad(id) {
      const cleared = registry.clearBad(id);
      if (cleared) log.info(`peer ${registry.get(id)?.name ?? id}: bad mark cleared by the user`);
      return cleared;
    },
    doctor() {
      doctorRun ??= gatherFacts({
        stateDir: opts.stateDir,
        storeUri: opts.storeUri,
        listen: new URL(substituter.url).host,
        shareListen: opts.shareListen,
        secretKeyFile: opts.secretKeyFile,
        snapshot: async () => api.snapshot(),
      })
        .then(diagnose)
        .finally(() => (doctorRun = null));
      return doctorRun;
    },
    stop(stopOpts) {
      stopping ??= (async () => {
        for (const t of timers) clearInterval(t);
        registry.stop();
        await discovery?.stop();
        await Promise.all([substituter.close(stopOpts?.graceMs), sharing.stop(stopOpts?.graceMs ?? 3000)]);
        client.close();
        summaries.close();
        await store.close();
        changes.close();
        metrics.close();
        transfers.close();
        if (liveTimer) clearTimeout(liveTimer);
        lanTotals.close();
      })();
      return stopping;
    },
  };
  extraRoutes = opts.loopbackRoutes?.(api, substituter.url) ?? null;

  return { api, substituterUrl: substituter.url };
}
