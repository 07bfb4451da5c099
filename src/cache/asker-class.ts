import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { ed25519KeyOfCertificate } from '../wire/team-certificate.ts';

// Who is asking, per request: 'team' only when this very request rides a TLS connection whose client
// proved, in the handshake, the identity key of a member of this machine's team; everyone else — a
// plain connection, a TLS client with no certificate or with a key not in the team — is 'anonymous'.
// Never by address: on a LAN an address is a claim. A captured request replayed elsewhere is just
// bytes of another connection's TLS session, which no server can decrypt or accept (see the test).

export type AskerClass = 'team' | 'anonymous';

/** The raw Ed25519 key the client proved on this request's connection, base64; null on plain or without one. */
export function provenClientKey(req: IncomingMessage): string | null {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket) || !socket.encrypted) return null;
  let known = proven.get(socket);
  if (known === undefined) {
    // The certificate is signed by nobody we know; what counts is that TLS 1.3's CertificateVerify
    // proved the client holds its key, which OpenSSL checks even when the chain is not trusted.
    const key = ed25519KeyOfCertificate(socket.getPeerCertificate(true)?.raw);
    known = key ? key.toString('base64') : null;
    proven.set(socket, known);
  }
  return known;
}

const proven = new WeakMap<TLSSocket, string | null>();

/** Classifies requests against the team as it is at each request (a removed member loses access at once). */
export function askerClassifier(teamKeys: () => ReadonlySet<string>): (req: IncomingMessage) => AskerClass {
  return (req) => {
    const key = provenClientKey(req);
    return key !== null && teamKeys().has(key) ? 'team' : 'anonymous';
  };
}
