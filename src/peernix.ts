import { platform, arch } from 'node:os';
import type { ApiChange, PeernixApi, Snapshot, StatusView } from './api.ts';
import { AffinityCache } from './affinity.ts';
import { createCacheHandler, type RequestHandler } from './cache/cache-handler.ts';
import { listen, type HttpListener } from './cache/http-listener.ts';
import { LocalBackend } from './cache/local-backend.ts';
import { limitsFromEnv } from './cache/limits.ts';
import { NarSlots } from './cache/nar-slots.ts';
import { EventLog } from './events.ts';
import { loadIdentity } from './identity.ts';
import { formatHostPort, isLoopbackHost, parseListenAddress } from './listen-address.ts';
import type { Logger } from './log.ts';
import { nixConfLines } from './nix-conf.ts';
import { MdnsDiscovery } from './peers/discovery.ts';
import { PeerClient } from './peers/peer-client.ts';
import { PeerRegistry } from './peers/registry.ts';
import { staticPeerInfo } from './peers/static-peer.ts';
import { Resolver } from './resolver.ts';
import { ensureStateDir } from './state-dir.ts';
import { LocalStore, type NarSourceKind } from './store/local-store.ts';
import { parseStoreUri } from './store/store-uri.ts';
import { isKeyTrusted, readNixTrustPolicy, type TrustPolicy } from './trust.ts';

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

  // --- change notification: many small changes become one 'peers'/'entries' notice per tick
  const listeners = new Set<(c: ApiChange) => void>();
  const notify = (c: ApiChange) => {
    for (const l of listeners) l(c);
  };
  const pending = new Set<'peers' | 'entries' | 'status'>();
  let flushTimer: NodeJS.Timeout | null = null;
  const notifySoon = (topic: 'peers' | 'entries' | 'status') => {
    pending.add(topic);
    flushTimer ??= setTimeout(() => {
      flushTimer = null;
      const topics = [...pending];
      pending.clear();
      for (const t of topics) notify({ topic: t });
    }, 100);
  };

  // --- the parts
  const events = new EventLog();
  events.subscribe((event) => notify({ topic: 'event', event }));
  let trust: TrustPolicy = { requireSigs: true, keys: [] };
  const store = new LocalStore({ location, narSource: opts.narSource });
  const client = new PeerClient({}, `peernix/${opts.version}`);
  const registry = new PeerRegistry({ client, isTrusted: (k) => isKeyTrusted(k, trust) });
  const affinity = new AffinityCache(20_000, () => notifySoon('entries'));
  const resolver = new Resolver({ store, key: identity.key, registry, client, affinity, events, log: log.child('resolver'), trust: () => trust, verifyLocalNars: opts.verifyLocalNars });
  const local = new LocalBackend(store, identity.key, opts.verifyLocalNars);
  if (store.dbUnavailable) log.info(`narinfo metadata from the nix-daemon (store database not readable: ${store.dbUnavailable})`);

  registry.on('up', (p) => {
    log.info(`peer up: ${p.name} ${p.url}`);
    events.emit({ type: 'peer-up', peerId: p.id, peerName: p.name });
  });
  registry.on('down', (p, reason: string) => {
    log.info(`peer down: ${p.name} (${reason})`);
    events.emit({ type: 'peer-down', peerId: p.id, peerName: p.name, reason });
  });
  registry.on('changed', () => notifySoon('peers'));

  const refreshTrust = async () => {
    try {
      trust = await readNixTrustPolicy();
    } catch (e) {
      log.warn(`cannot read this machine's Nix settings (trusted-public-keys): ${(e as Error).message}`);
    }
  };
  await refreshTrust();

  // --- listeners
  const limits = limitsFromEnv();
  const shareHandler = createCacheHandler({
    backend: local,
    log: log.child('share'),
    priority: CACHE_PRIORITY,
    narSlots: new NarSlots({ total: limits.narStreams, perAddress: limits.narStreamsPerAddress, queue: limits.narQueue, waitMs: limits.narQueueWaitMs }),
    onNarSent: ({ remoteAddress, storePath, bytes, ok }) => {
      registry.countBytesTo(remoteAddress, bytes);
      const peer = registry.findByAddress(remoteAddress);
      if (peer) events.emit({ type: 'transfer', storePath, direction: 'out', peerName: peer.name, bytes, outcome: ok ? 'ok' : 'failed' });
    },
  });
  const substHandler = createCacheHandler({ backend: resolver, log: log.child('subst'), priority: CACHE_PRIORITY });
  let extraRoutes: ((req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]) => boolean) | null = null;
  const substituter = await listen({
    host: substAddr.host,
    port: substAddr.port,
    log,
    loopbackOnly: true,
    pinLoopbackHost: true,
    stallMs: limits.stallMs,
    handler: (req, res) => {
      if (extraRoutes?.(req, res)) return;
      substHandler(req, res);
    },
  });

  let share: HttpListener | null = null;
  let sharing = opts.sharing;
  let discovery: MdnsDiscovery | null = null;
  const startedAt = Date.now();
  let daemon: StatusView['daemon'] = { ok: false, version: null, error: 'not checked yet' };

  const shareUrl = () => (share ? `http://${formatHostPort(shareAddr.host, share.port)}` : null);
  const startShare = async () => {
    share = await listen({ host: shareAddr.host, port: shareAddr.port, handler: shareHandler, log, stallMs: limits.stallMs });
    log.info(`sharing this store on ${shareUrl()}`);
  };
  const cleanupOnFailure = async () => {
    await substituter.close(0);
    await store.close();
    client.close();
  };
  if (sharing) {
    try {
      await startShare();
    } catch (e) {
      await cleanupOnFailure();
      throw e;
    }
  }

  if (opts.mdns) {
    discovery = new MdnsDiscovery({
      self: {
        instanceId: identity.instanceId,
        name,
        port: (share as HttpListener | null)?.port ?? shareAddr.port,
        publicKey: identity.key.publicKey.text,
        platform: `${platform()}-${arch()}`,
        protocol: 1,
      },
      hostName: opts.name ? `${opts.name}-${identity.instanceId.slice(0, 6)}` : undefined,
      interface: opts.mdnsInterface,
    });
    discovery.on('up', (p) => registry.upsert({ ...p, source: 'mdns' }));
    discovery.on('down', (id) => registry.remove(id, 'goodbye'));
    discovery.on('error', (e) => log.warn(`mDNS: ${e.message}`));
    discovery.start();
    if (sharing) discovery.publish((share as HttpListener | null)?.port);
  }
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
  const timers = [setInterval(() => void refreshDaemon(), 5_000), setInterval(() => void refreshTrust(), 60_000)];
  for (const t of timers) t.unref();

  const status = (): StatusView => ({
    version: opts.version,
    instanceId: identity.instanceId,
    hostName: name,
    sharing,
    shareUrl: shareUrl(),
    substituterUrl: substituter.url,
    publicKey: identity.key.publicKey.text,
    nixConf: nixConfLines(substituter.url, identity.key.publicKey.text),
    daemon,
    mdns: discovery !== null,
    peersUp: registry.live().length,
    startedAt,
  });

  let switching: Promise<void> = Promise.resolve();
  let stopping: Promise<void> | null = null;
  const api: PeernixApi = {
    snapshot: (): Snapshot => ({ status: status(), peers: registry.views(), entries: affinity.views(), events: events.recent() }),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    setSharing(on) {
      switching = switching.then(async () => {
        if (on === sharing || stopping) return;
        if (on) {
          await startShare();
          discovery?.publish((share as HttpListener | null)?.port);
        } else {
          // Goodbye first so peers stop asking, then refuse and cut what is in flight.
          await discovery?.unpublish();
          const s = share;
          share = null;
          s?.cutAll();
          await s?.close(0);
        }
        sharing = on;
        opts.persistSharing?.(on);
        log.info(on ? 'sharing turned on' : 'sharing turned off');
        events.emit({ type: 'sharing', enabled: on });
        notifySoon('status');
      });
      return switching;
    },
    stop() {
      stopping ??= (async () => {
        for (const t of timers) clearInterval(t);
        registry.stop();
        await discovery?.stop();
        await Promise.all([substituter.close(), share?.close()]);
        client.close();
        await store.close();
        if (flushTimer) clearTimeout(flushTimer);
      })();
      return stopping;
    },
  };
  extraRoutes = opts.loopbackRoutes?.(api, substituter.url) ?? null;

  return { api, substituterUrl: substituter.url };
}
