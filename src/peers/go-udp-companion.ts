import type { Logger } from '../base/log.ts';
import { formatHostPort } from '../base/listen-address.ts';
import type { PathInfo } from '../store/daemon-connection.ts';
import type { LocalStore } from '../store/local-store.ts';
import type { PathScope, PathScopes } from '../store/path-scope.ts';
import { GO_HTTP_PORT } from './go-peer.ts';
import { UdpResponder } from './udp-responder.ts';

// Go peers ask over UDP before they fetch over HTTP: answered from this store's own view only (the
// store database, else the daemon), never from what peers hold, and only while sharing — this is
// what opens and closes with the share listener (the sharing switch's companion).

export interface GoUdpCompanionOptions {
  host: string;
  port: number;
  store: Pick<LocalStore, 'pathInfoFromDb' | 'pathInfoByHashPart'>;
  /**
   * Which paths a UDP asker may hear "yes" about: its datagrams are nobody's proof of anything, so it
   * is anonymous and gets public paths only; any other path is answered as absent ("not_found").
   */
  scopes: Pick<PathScopes, 'countRefusal'>;
  /** The scope of a path of this store, judged on the narinfo as the share listener serves it. */
  scopeOf: (info: PathInfo) => PathScope;
  /** The share listener's port once bound. */
  sharePort: () => number | undefined;
  /** Whether an address belongs to a peer up over HTTP: such peers keep a share of the UDP budget. */
  proven: (address: string) => boolean;
  log: Logger;
}

export function goUdpCompanion(opts: GoUdpCompanionOptions): { open(): Promise<void>; close(): Promise<void> } {
  const { store, log, scopes } = opts;
  const publicNarHash = (info: PathInfo | null): Buffer | null => {
    if (!info) return null;
    const scope = opts.scopeOf(info);
    if (scope === 'public') return info.narHash;
    scopes.countRefusal(scope);
    return null;
  };
  const responder = new UdpResponder({
    host: opts.host,
    port: opts.port,
    log,
    narHash: (hashPart) => {
      const known = store.pathInfoFromDb(hashPart);
      return known !== undefined ? publicNarHash(known) : store.pathInfoByHashPart(hashPart).then(publicNarHash);
    },
    proven: opts.proven,
  });
  return {
    async open() {
      // A Go peer that hears "yes" fetches from our address on its own HTTP port: saying yes while the
      // share listener is elsewhere would only send it to a closed port.
      const port = opts.sharePort();
      if (port !== GO_HTTP_PORT) {
        log.info(`not answering Go peernix UDP questions: they fetch from port ${GO_HTTP_PORT}, this store is shared on ${port}`);
        return;
      }
      try {
        await responder.bind();
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        const why = err.code === 'EADDRINUSE' ? 'is in use by another program' : err.code === 'EACCES' ? 'may not be bound' : 'could not be bound';
        throw new Error(
          `the UDP port for Go peernix questions (${opts.port}) ${why} (${err.message}): Go peernix hosts will not fetch from this one (settings goUdpPort, goPeers)`,
        );
      }
      log.info(`answering Go peernix UDP questions on ${formatHostPort(opts.host, responder.port ?? opts.port)}/udp`);
    },
    close: () => responder.close(),
  };
}
