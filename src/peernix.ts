import type { ApiChange, PeernixApi, Snapshot, StatusView } from './api.ts';
import { LocalBackend } from './cache/local-backend.ts';
import { createCacheHandler } from './cache/cache-handler.ts';
import { listen, type HttpListener } from './cache/http-listener.ts';
import { EventLog } from './events.ts';
import { loadIdentity } from './identity.ts';
import { formatHostPort, isLoopbackHost, parseListenAddress } from './listen-address.ts';
import type { Logger } from './log.ts';
import { nixConfLines } from './nix-conf.ts';
import { ensureStateDir } from './state-dir.ts';
import { LocalStore, type NarSourceKind } from './store/local-store.ts';
import { parseStoreUri } from './store/store-uri.ts';

// The composition root: every part of the core is built and wired here, and nowhere else.

export interface PeernixOptions {
  stateDir: string;
  storeUri: string;
  shareListen: string;
  listen: string;
  secretKeyFile?: string;
  sharing: boolean;
  narSource?: NarSourceKind;
  version: string;
  log: Logger;
}

export interface Peernix {
  api: PeernixApi;
  substituterUrl: string;
  shareUrl(): string | null;
}

/** Nix ranks substituters by ascending priority; cache.nixos.org says 40, so a LAN cache goes first. */
export const CACHE_PRIORITY = 30;

export async function startPeernix(opts: PeernixOptions): Promise<Peernix> {
  const log = opts.log;
  ensureStateDir(opts.stateDir);
  const identity = loadIdentity(opts.stateDir, opts.secretKeyFile);
  const location = parseStoreUri(opts.storeUri);
  const shareAddr = parseListenAddress(opts.shareListen);
  const substAddr = parseListenAddress(opts.listen);
  if (!isLoopbackHost(substAddr.host)) {
    throw new Error(`--listen must be a loopback address (it may fetch from peers for anyone who can reach it): ${opts.listen}`);
  }

  const store = new LocalStore({ location, narSource: opts.narSource });
  const events = new EventLog();
  const changes = new Set<(c: ApiChange) => void>();
  const notify = (c: ApiChange) => {
    for (const l of changes) l(c);
  };
  events.subscribe((event) => notify({ topic: 'event', event }));

  const localBackend = new LocalBackend(store, identity.key);
  const shareHandler = createCacheHandler({ backend: localBackend, log: log.child('share'), priority: CACHE_PRIORITY });
  const substHandler = createCacheHandler({ backend: localBackend, log: log.child('subst'), priority: CACHE_PRIORITY });

  const substituter = await listen({ host: substAddr.host, port: substAddr.port, handler: substHandler, log, loopbackOnly: true });
  let share: HttpListener | null = null;
  let sharing = opts.sharing;
  const startedAt = Date.now();
  let daemon: StatusView['daemon'] = { ok: false, version: null, error: 'not checked yet' };

  const startShare = async () => {
    share = await listen({ host: shareAddr.host, port: shareAddr.port, handler: shareHandler, log });
    log.info(`sharing this store on http://${formatHostPort(shareAddr.host, share.port)}`);
  };
  if (sharing) {
    try {
      await startShare();
    } catch (e) {
      await substituter.close(0);
      await store.close();
      throw e;
    }
  }
  log.info(`substituter for this machine's Nix on ${substituter.url}`);

  const refreshDaemon = async () => {
    const h = await store.health();
    const changed = h.ok !== daemon.ok || h.error !== daemon.error;
    daemon = h;
    if (changed) {
      if (!h.ok) log.warn(`nix-daemon unreachable: ${h.error}`);
      notify({ topic: 'status' });
    }
  };
  await refreshDaemon();
  const healthTimer = setInterval(() => void refreshDaemon(), 10_000);
  healthTimer.unref();

  const status = (): StatusView => ({
    version: opts.version,
    instanceId: identity.instanceId,
    hostName: identity.hostName,
    sharing,
    shareUrl: share ? `http://${formatHostPort(shareAddr.host, share.port)}` : null,
    substituterUrl: substituter.url,
    publicKey: identity.key.publicKey.text,
    nixConf: nixConfLines(substituter.url, identity.key.publicKey.text),
    daemon,
    mdns: false,
    peersUp: 0,
    startedAt,
  });

  let stopping: Promise<void> | null = null;
  const api: PeernixApi = {
    snapshot: (): Snapshot => ({ status: status(), peers: [], entries: [], events: events.recent() }),
    subscribe(listener) {
      changes.add(listener);
      return () => changes.delete(listener);
    },
    async setSharing(on) {
      if (on === sharing) return;
      sharing = on;
      if (on) await startShare();
      else if (share) {
        const s: HttpListener = share;
        share = null;
        s.cutAll();
        await s.close(0);
      }
      events.emit({ type: 'sharing', enabled: on });
      notify({ topic: 'status' });
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(healthTimer);
        await Promise.all([substituter.close(), share?.close()]);
        await store.close();
      })();
      return stopping;
    },
  };

  return { api, substituterUrl: substituter.url, shareUrl: () => status().shareUrl };
}
