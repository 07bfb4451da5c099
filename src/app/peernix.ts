import type { PeernixApi } from '../base/api.ts';
import { isLoopbackHost, parseListenAddress } from '../base/listen-address.ts';
import type { Logger } from '../base/log.ts';
import { ensureStateDir } from '../base/state-dir.ts';
import { limitsFromEnv } from '../cache/limits.ts';
import { LocalBackend, narInfoFromPathInfo } from '../cache/local-backend.ts';
import type { PathInfo } from '../store/daemon-connection.ts';
import type { ControlHandlers } from '../control/routes.ts';
import { Activity } from '../domain/activity.ts';
import { AffinityCache } from '../domain/affinity.ts';
import { loadIdentity } from '../domain/identity.ts';
import { PeerHistory } from '../domain/peer-history.ts';
import { watchPeers } from '../domain/peer-watch.ts';
import { Resolver } from '../domain/resolver.ts';
import { StoreWatch } from '../domain/store-watch.ts';
import { isKeyTrusted } from '../domain/trust.ts';
import { TrustWatch } from '../domain/trust-watch.ts';
import { PeernixMetrics } from '../metrics/metrics.ts';
import { createMetricsHandler } from '../metrics/route.ts';
import type { MdnsDiscovery } from '../peers/discovery.ts';
import { startLanDiscovery } from '../peers/lan-discovery.ts';
import { type DnsSd, type DnsSdRegisterSettings, startDnsSd } from '../peers/dnssd-discovery.ts';
import { PeerClient } from '../peers/peer-client.ts';
import { PeerSummaries } from '../peers/peer-summaries.ts';
import { PeerRegistry, type Peer } from '../peers/registry.ts';
import { staticPeerInfo } from '../peers/static-peer.ts';
import { LocalStore, type NarSourceKind } from '../store/local-store.ts';
import { DEFAULT_EXCLUDE, DEFAULT_PUBLIC_KEYS, PathScopes } from '../store/path-scope.ts';
import { ScopedSummaries } from '../store/scoped-summaries.ts';
import { parseStoreUri } from '../store/store-uri.ts';
import { createPeernixApi } from './peernix-api.ts';
import { createRealisationHandler, realisationOutput } from '../cache/realisation-route.ts';
import { createRealisationSource } from '../domain/realisations.ts';
import { NetworkTrust } from '../domain/network-trust.ts';
import { NetworkWatch } from '../peers/network-watch.ts';
import { createShareSide } from './share-side.ts';
import { startSubstituterSide } from './substituter-side.ts';
import { makeTeamCertificate } from '../wire/team-certificate.ts';
import { teamKeyAt } from '../domain/team.ts';
import { TeamRoster } from '../domain/team-roster.ts';
import { Notices, type NoticeState } from '../domain/notices.ts';

// The composition root: every part of the core is built and wired here, and nowhere else; what each
// part does is in its own file. A request from Nix: cache/http-listener.ts → cache/route-table.ts with
// cache/substituter-routes.ts → cache/cache-handler.ts → domain/resolver.ts (narinfo-lookup.ts,
// nar-sourcing.ts) → the local store (cache/local-backend.ts) or a peer (peers/peer-client.ts).
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
  /** Networks sharing runs on (network-id.ts ids), and whether every network is trusted. */
  trustedNetworks?: string[];
  trustAllNetworks?: boolean;
  /** An upgraded install that shared: trust the first network recognised, once (network-trust.ts). */
  trustFirstNetwork?: boolean;
  /** Saves `trustedNetworks` (the settings file). */
  persistTrustedNetworks?: (ids: string[]) => void;
  /** Test seam: how the network is read (default: this machine's kernel tables). */
  networkWatch?: Pick<ConstructorParameters<typeof NetworkWatch>[0], 'read' | 'poke' | 'clock' | 'intervalMs'>;
  /** Worker threads serving the share port beside the main thread (share-loops.ts; 0: none). */
  shareThreads?: number;
  /** Serve /metrics on the share listener too (for a fleet's Prometheus); always on loopback. */
  metricsOnShare?: boolean;
  /** DNS-SD across subnets: domains browsed, the server asked ('' for the system's), and registration. */
  dnsSdDomains?: string[];
  dnsSdServer?: string;
  dnsSdRegister?: DnsSdRegisterSettings | null;
  /** Public keys ("name:base64") of the team: peers this one talks to, and is asked by, over TLS. */
  team?: string[];
  /** Keys of public caches: what they signed is public (default cache.nixos.org-1). */
  publicKeys?: string[];
  /** Store path name patterns never shared (default store/path-scope.ts DEFAULT_EXCLUDE). */
  exclude?: string[];
  /** Saves the team (the settings file); absent: changes last for this run only (`--team` given). */
  persistTeam?: (keys: string[]) => void;
  /** The upgrade notice of scoped sharing: where it stands, whether this start found the upgrade, and its saving. */
  scopesNotice?: NoticeState;
  upgradedFromBeforeScopes?: boolean;
  persistScopesNotice?: (state: NoticeState) => void;
  /** The control API and dashboard on the loopback listener, given the API and that listener's URL. */
  control?: (api: PeernixApi, substituterUrl: string) => ControlHandlers;
}

export interface Peernix {
  api: PeernixApi;
  substituterUrl: string;
}

export async function startPeernix(opts: PeernixOptions): Promise<Peernix> {
  const { log, stateDir } = opts;
  ensureStateDir(stateDir);
  const identity = loadIdentity(stateDir, opts.secretKeyFile);
  const name = opts.name ?? identity.hostName;
  const shareAddr = parseListenAddress(opts.shareListen);
  const substAddr = parseListenAddress(opts.listen);
  if (!isLoopbackHost(substAddr.host)) throw new Error(`--listen must be a loopback address (it fetches from peers for whoever can reach it): ${opts.listen}`);
  const staticPeers = opts.peers.map(staticPeerInfo);
  const limits = limitsFromEnv();

  const activity = new Activity({ stateDir, log });
  const notifySoon = activity.notifySoon.bind(activity);
  const store = new LocalStore({
    location: parseStoreUri(opts.storeUri),
    narSource: opts.narSource,
    onMetadataSource: (source, why) => reportMetadataSource(log, source, why, () => notifySoon('status')),
  });
  const local = new LocalBackend(store, identity.key, opts.verifyLocalNars);
  // Who sees which path: public to everyone on a trusted network, team to team members, never to nobody.
  const scopes = new PathScopes({ publicKeys: opts.publicKeys ?? DEFAULT_PUBLIC_KEYS, exclude: opts.exclude ?? DEFAULT_EXCLUDE });
  // Judged on the narinfo as served (it carries our own signature: a user who lists this machine's
  // key in publicKeys shares all it holds with everyone, as before scopes).
  const served = (info: PathInfo) => scopes.scopeOf(narInfoFromPathInfo(info, identity.key));
  const summaries = new ScopedSummaries({
    source: store.summarySource,
    scopes,
    scopeOf: (hashPart) => {
      const info = store.pathInfoFromDb(hashPart);
      return info ? served(info) : null;
    },
  });
  scopes.onChange = () => summaries.rebuild();
  const trust = new TrustWatch({ log, changed: () => notifySoon('status') });

  // The team channel: a certificate for this identity key, made anew at each start (the key is what lasts).
  const teamCert = await makeTeamCertificate(identity.key);
  // Read at each request and connection: a change of the team takes effect at once.
  const roster = new TeamRoster({
    members: opts.team ?? [],
    ownKey: identity.key.publicKey.text,
    persist: opts.persistTeam,
    events: activity.events,
    log: log.child('team'),
    changed: () => notifySoon('status'),
  });
  const teamKeys = () => roster.keys();
  const team = {
    cert: teamCert,
    keyOf: (origin: string): string | null => (teamKeys().size === 0 ? null : teamKeyAt(origin, registry.all(), teamKeys())),
    isMember: (rawKey: string) => teamKeys().has(rawKey),
  };
  const notices = new Notices({
    scopes: opts.scopesNotice ?? 'none',
    upgradedFromBeforeScopes: opts.upgradedFromBeforeScopes ?? false,
    persist: opts.persistScopesNotice,
    events: activity.events,
    log,
    changed: () => notifySoon('status'),
  });
  const client = new PeerClient({}, `peernix/${opts.version}`, {}, { frames: opts.peerCompression ?? true, team });
  // Peers' store summaries: a miss no summary admits asks nobody. A change may admit what just missed.
  const peerSummaries = new PeerSummaries({
    log: log.child('summaries'),
    userAgent: `peernix/${opts.version}`,
    // Team members' summaries (which admit team paths) over the team channel only.
    channel: (url) => client.summaryChannel(url),
    onChange: (hashParts) => (resolver.forgetMisses(hashParts), notifySoon('peers')),
    // Its answers keep the peer's health current: no probes while they come (#26 idle cost).
    onContact: (id, everyMs) => registry.reportContact(id, everyMs),
  });
  const registry = new PeerRegistry({ client, isTrusted: (k) => isKeyTrusted(k, trust.policy), summaryOf: (id) => peerSummaries.view(id) });
  const history = new PeerHistory();
  const stopWatchingPeers = watchPeers({ registry, events: activity.events, history, summaries: peerSummaries, log, changed: () => notifySoon('peers') });
  const affinity = new AffinityCache(20_000, () => notifySoon('entries'));
  const resolver = new Resolver({
    local,
    registry,
    client,
    affinity,
    events: activity.events,
    transfers: activity.transfers,
    log: log.child('resolver'),
    goUdpPort: opts.goUdp?.port,
    trust: () => trust.policy,
    mayHave: (peer, hashPart) => peerSummaries.mayHave(peer.id, hashPart),
    // A lookup no peer could answer is a miss the LAN answered at once (Nix goes on to its other caches).
    onMiss: () => activity.lanTotals.countMiss(),
  });

  const storeWatch = new StoreWatch({
    store,
    summary: summaries,
    sharing: () => sharing.on,
    log,
    changed: () => notifySoon('status'),
    events: activity.events,
  });
  const metrics = new PeernixMetrics({
    peers: () => registry.all(),
    peerViews: () => registry.views(),
    sharing: () => sharing.on,
    daemonUp: () => storeWatch.daemon.ok,
    subscribe: (l) => activity.events.subscribe(l),
    lanToday: () => activity.lanTotals.view().today,
    scopes: () => ({ ...scopes.counts(), ...scopes.rules }),
  });
  registry.on('removed', (p: Peer) => metrics.peerRemoved(p));
  const metricsHandler = createMetricsHandler(metrics);
  // Content-addressed derivations' realisations: the share listener answers from this store, the
  // substituter listener from this store and then the peers.
  const shareRealisations = createRealisationSource({ local: store, key: identity.key, log: log.child('share') });
  const realisations = {
    share: createRealisationHandler(shareRealisations, log.child('share')),
    subst: createRealisationHandler(
      createRealisationSource({
        local: store,
        key: identity.key,
        log: log.child('subst'),
        trust: () => trust.policy,
        peers: { live: () => registry.live(), fetch: (p, id, signal) => client.realisation(p.url, id, signal) },
      }),
      log.child('subst'),
    ),
  };

  const substituter = await startSubstituterSide({
    address: substAddr,
    resolver,
    affinity,
    metrics,
    metricsHandler,
    realisation: realisations.subst,
    limits,
    log,
  });
  let discovery: MdnsDiscovery | null = null;
  let dnsSd: DnsSd | null = null;
  const shareSide = createShareSide({
    address: shareAddr,
    local,
    store,
    identity,
    summaries,
    scopes,
    scopeOfInfo: served,
    teamKeys,
    registry,
    activity,
    metrics,
    limits,
    log,
    metricsHandler: opts.metricsOnShare ? metricsHandler : null,
    realisation: realisations.share,
    realisationPath: realisationOutput(shareRealisations),
    goUdp: opts.goUdp ?? null,
    announce: (port) => {
      discovery?.publish(port);
      dnsSd?.publish(port);
    },
    unannounce: async () => {
      await Promise.all([discovery?.unpublish(), dnsSd?.unpublish()]);
    },
    persist: opts.persistSharing,
    tls: teamCert,
    threads: {
      count: opts.shareThreads ?? 0,
      storeUri: opts.storeUri,
      narSource: opts.narSource,
      verifyLocalNars: opts.verifyLocalNars,
      publicKeys: opts.publicKeys ?? DEFAULT_PUBLIC_KEYS,
      exclude: opts.exclude ?? DEFAULT_EXCLUDE,
      debug: log.debugEnabled,
    },
  });
  const sharing = shareSide.sharing;
  if (opts.mdns) {
    const hostName = opts.name ? `${opts.name}-${identity.instanceId.slice(0, 6)}` : undefined;
    discovery = startLanDiscovery({
      instanceId: identity.instanceId,
      name,
      publicKey: identity.key.publicKey.text,
      sharePort: shareAddr.port,
      hostName,
      interface: opts.mdnsInterface,
      registry,
      log,
    });
  }
  // Across subnets: configured domains, those the network advertises, and this machine's registration.
  if (opts.mdns || (opts.dnsSdDomains?.length ?? 0) > 0 || opts.dnsSdRegister) {
    dnsSd = startDnsSd({
      instanceId: identity.instanceId,
      name,
      publicKey: identity.key.publicKey.text,
      domains: opts.dnsSdDomains ?? [],
      server: opts.dnsSdServer ?? '',
      register: opts.dnsSdRegister ?? null,
      shareHost: shareAddr.host,
      registry,
      log,
      problem: (message) => activity.events.emit({ type: 'error', message }),
      changed: () => notifySoon('status'),
    });
  }
  // Sharing runs only on a trusted network: the watcher's first look decides before it starts, and
  // each move after that pauses or resumes it within a second or two.
  const networkTrust = new NetworkTrust({
    trusted: opts.trustedNetworks ?? [],
    trustAll: opts.trustAllNetworks ?? false,
    trustFirstNetwork: (opts.trustFirstNetwork ?? false) && opts.sharing,
    wanted: () => sharing.wantedOn,
    pause: (reason) => sharing.pause(reason),
    persist: opts.persistTrustedNetworks,
    events: activity.events,
    log: log.child('network'),
    changed: () => notifySoon('status'),
  });
  const networkWatch = new NetworkWatch({ ...opts.networkWatch, mayPoke: () => !networkTrust.trustAll, onChange: (n) => void networkTrust.moved(n) });
  await networkWatch.start();
  await sharing.startUp(opts.sharing);
  for (const p of staticPeers) registry.upsert(p);
  registry.start();
  log.info(`substituter for this machine's Nix on ${substituter.listener.url}`);
  await storeWatch.start();

  const setup = { stateDir, storeUri: opts.storeUri, shareListen: opts.shareListen, secretKeyFile: opts.secretKeyFile };
  const api = createPeernixApi({
    version: opts.version,
    setup,
    identity,
    name,
    shareHost: shareAddr.host,
    substituter: substituter.listener,
    sharing,
    stopShareLoops: shareSide.stop,
    registry,
    discovery,
    dnsSd,
    history,
    stopWatchingPeers,
    affinity,
    activity,
    trust,
    storeWatch,
    store,
    client,
    summaries: peerSummaries,
    scopes,
    verdictOf: (info) => scopes.verdict(narInfoFromPathInfo(info, identity.key)),
    metrics,
    networkTrust,
    networkWatch,
    roster,
    notices,
    log,
  });
  if (opts.control) substituter.attachControl(opts.control(api, substituter.listener.url));
  return { api, substituterUrl: substituter.listener.url };
}

function reportMetadataSource(log: Logger, source: 'database' | 'daemon', why: string | null, changed: () => void): void {
  if (source === 'database') log.info(`narinfo metadata from the store database${why ? ` (${why})` : ''}`);
  else log.info(`narinfo metadata from the nix-daemon (store database not readable: ${why}); retrying`);
  changed();
}
