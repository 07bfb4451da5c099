import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import type { TeamCertificate } from '../wire/team-certificate.ts';

// TLS and plain HTTP on one port: the share listener must keep answering a plain Nix (and Go hosts)
// while team members talk TLS 1.3 to it. The first byte of a connection tells them apart — a TLS
// record starts 0x16 (handshake), an HTTP request line never does — and the connection is handed
// to the same HTTP server either as it is or wrapped in TLS. The server asks every TLS client for a
// certificate but accepts any or none: who a client is (team or not) is decided per request from
// the key it proved in the handshake (asker-class.ts), never here.
// Threat: every byte is hostile; nothing is read before the TLS layer but the one byte looked at.

const TLS_HANDSHAKE = 0x16;

/** A certificate bound to this machine's identity key (wire/team-certificate.ts). */
export type TlsIdentity = TeamCertificate;

/** Makes `server` (not yet listening) accept TLS on its own port as well. */
export function acceptTlsToo(server: Server, identity: TlsIdentity, firstByteMs = 15_000): void {
  const context: SecureContext = createSecureContext({ cert: identity.cert, key: identity.key, minVersion: 'TLSv1.3' });
  // The HTTP server's own connection handling, run on whichever socket the sniff decides on.
  const http = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (raw: Socket) => {
    // Until its first byte a connection is no HTTP server's yet, so no HTTP timeout covers it.
    const late = () => raw.destroy();
    raw.setTimeout(firstByteMs, late);
    // Nobody else listens yet: an asker resetting now must not be an unhandled error (the daemon's end).
    const early = () => raw.destroy();
    raw.on('error', early);
    raw.once('data', (first: Buffer) => {
      // Its listener goes too: left on, it would cut the connection at the HTTP server's idle timeout
      // whatever the server decides (a response the wire-stall watch judges, http-listener.ts).
      raw.setTimeout(0);
      raw.off('timeout', late);
      raw.off('error', early);
      raw.pause();
      raw.unshift(first);
      if (first[0] !== TLS_HANDSHAKE) {
        for (const l of http) l.call(server, raw);
        raw.resume();
        return;
      }
      // TLSSocket takes the bytes already read (the unshifted first chunk) before reading the socket on.
      const secure = new TLSSocket(raw, { isServer: true, secureContext: context, requestCert: true, rejectUnauthorized: false });
      for (const l of http) l.call(server, secure);
    });
  });
}
