import type { DoctorReport, PeernixApi, PeerView, Snapshot, StatusView } from '../base/api.ts';
import type { Logger } from '../base/log.ts';
import { formatHostPort } from '../base/listen-address.ts';
import type { HttpListener } from '../cache/http-listener.ts';
import { diagnose } from '../doctor/doctor.ts';
import { gatherFacts } from '../doctor/gather.ts';
import type { Activity } from '../domain/activity.ts';
import type { AffinityCache } from '../domain/affinity.ts';
import type { Identity } from '../domain/identity.ts';
import type { NetworkTrust } from '../domain/network-trust.ts';
import type { PeerHistory } from '../domain/peer-history.ts';
import { shareAddresses } from '../domain/share-addresses.ts';
import type { SharingSwitch } from '../domain/sharing-switch.ts';
import type { StoreWatch } from '../domain/store-watch.ts';
import type { TeamRoster } from '../domain/team-roster.ts';
import type { Notices } from '../domain/notices.ts';
import { fingerprintOf } from '../domain/team.ts';
import type { TrustWatch } from '../domain/trust-watch.ts';
import type { PeernixMetrics } from '../metrics/metrics.ts';
import { nixConfLines } from '../nix/nix-conf-lines.ts';
import type { MdnsDiscovery } from '../peers/discovery.ts';
import type { DnsSd } from '../peers/dnssd-discovery.ts';
import type { NetworkWatch } from '../peers/network-watch.ts';
import type { PeerClient } from '../peers/peer-client.ts';
import type { PeerSummaries } from '../peers/peer-summaries.ts';
import { whyStorePath, type PathScopes, type ScopeVerdict } from '../store/path-scope.ts';
import type { PathInfo } from '../store/daemon-connection.ts';
import type { PeerRegistry } from '../peers/registry.ts';
import type { LocalStore } from '../store/local-store.ts';

// The API the front ends use (the control routes, the tray app): the snapshot and its changes, the
// sharing switch, trusting a network, clearing a bad mark, the doctor, and stopping every part in order.

export interface ApiParts {
  version: string;
  /** What the doctor re-reads: where state lives and how the core was started. */
  setup: { stateDir: string; storeUri: string; shareListen: string; secretKeyFile?: string };
  identity: Identity;
  name: string;
  shareHost: string;
  substituter: HttpListener;
  sharing: SharingSwitch;
  /** Ends the share listener's worker threads, once sharing is stopped. */
  stopShareLoops?: () => Promise<void>;
  registry: PeerRegistry;
  discovery: MdnsDiscovery | null;
  dnsSd: DnsSd | null;
  history: PeerHistory;
  stopWatchingPeers: () => void;
  affinity: AffinityCache;
  activity: Activity;
  trust: TrustWatch;
  storeWatch: StoreWatch;
  store: LocalStore;
  client: PeerClient;
  summaries: PeerSummaries;
  scopes: PathScopes;
  /** The verdict on a path of this store as the share listener serves it. */
  verdictOf: (info: PathInfo) => ScopeVerdict;
  metrics: PeernixMetrics;
  networkTrust: NetworkTrust;
  networkWatch: NetworkWatch;
  roster: TeamRoster;
  notices: Notices;
  log: Logger;
}

export function createPeernixApi(p: ApiParts): PeernixApi {
  const startedAt = Date.now();
  const { sharing, registry, activity } = p;
  let stopping: Promise<void> | null = null;
  // One doctor run at a time: asking again while it runs gets the same answer.
  let doctorRun: Promise<DoctorReport> | null = null;

  const status = (): StatusView => {
    const share = sharing.listener;
    return {
      version: p.version,
      instanceId: p.identity.instanceId,
      hostName: p.name,
      sharing: sharing.on,
      shareUrl: share ? `http://${formatHostPort(p.shareHost, share.port)}` : null,
      shareError: sharing.error,
      sharePaused: sharing.paused,
      scopes: { ...p.scopes.counts(), ...p.scopes.rules },
      network: p.networkTrust.view(),
      team: p.roster.view(registry.views()),
      notices: p.notices.view(),
      shareAddresses: share ? shareAddresses(p.shareHost, share.port) : [],
      substituterUrl: p.substituter.url,
      publicKey: p.identity.key.publicKey.text,
      nixConf: nixConfLines(p.substituter.url, p.identity.key.publicKey.text),
      daemon: p.storeWatch.daemon,
      trust: p.trust.view,
      metadata: { source: p.store.metadataSource, why: p.store.dbUnavailable },
      mdns: p.discovery !== null,
      mdnsSelfSeenAt: p.discovery?.ownSeenAt ?? null,
      dnsSd: p.dnsSd?.view() ?? null,
      peersUp: registry.live().length,
      startedAt,
    };
  };

  const withTeam = (peer: PeerView): PeerView => {
    return { ...peer, fingerprint: fingerprintOf(peer.publicKey), teamMember: peer.verified && p.roster.isMember(peer.publicKey) };
  };

  const api: PeernixApi = {
    snapshot: (): Snapshot => ({
      status: status(),
      peers: registry.views().map((peer) => withTeam(p.history.annotate(peer))),
      entries: p.affinity.views(),
      events: activity.events.recent(),
      transfers: activity.transfers.views(),
      lan: activity.lanTotals.view(),
    }),
    subscribe: (listener) => activity.changes.subscribe(listener),
    setSharing: (on) => (stopping ? Promise.reject(new Error('Peernix is stopping')) : sharing.set(on)),
    network: (action) => (stopping ? Promise.reject(new Error('Peernix is stopping')) : p.networkTrust.act(action)),
    team: async (action) => {
      if (stopping) throw new Error('Peernix is stopping');
      return p.roster.act(action, registry.views());
    },
    noticeSeen: async (id) => p.notices.seen(id),
    shareWhy: (pathOrHash) => whyStorePath(p.store, p.verdictOf, pathOrHash),
    async clearPeerBad(id) {
      const cleared = registry.clearBad(id);
      if (cleared) p.log.info(`peer ${registry.get(id)?.name ?? id}: bad mark cleared by the user`);
      return cleared;
    },
    doctor() {
      doctorRun ??= gatherFacts({ ...p.setup, listen: new URL(p.substituter.url).host, snapshot: async () => api.snapshot() })
        .then(diagnose)
        .finally(() => (doctorRun = null));
      return doctorRun;
    },
    stop(stopOpts) {
      stopping ??= (async () => {
        p.storeWatch.stop();
        p.trust.stop();
        p.networkWatch.stop();
        p.stopWatchingPeers();
        registry.stop();
        await Promise.all([p.discovery?.stop(), p.dnsSd?.stop()]);
        await Promise.all([p.substituter.close(stopOpts?.graceMs), sharing.stop(stopOpts?.graceMs ?? 3000)]);
        await p.stopShareLoops?.();
        p.client.close();
        p.summaries.close();
        await p.store.close();
        p.metrics.close();
        activity.close();
      })();
      return stopping;
    },
  };
  return api;
}
