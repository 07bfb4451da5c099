import { Agent as HttpsAgent, type AgentOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { ed25519KeyOfCertificate, type TeamCertificate } from '../wire/team-certificate.ts';

// The client end of the team channel to one peer: TLS 1.3 with our own identity certificate, and a
// server that must prove exactly the identity key we expect of it (the key it already proved to us,
// which is in our team). The handshake is finished and the key checked before the socket is handed
// to HTTP, so not even a request line goes to a server holding another key.

/** How long a TLS handshake may take before the connection is given up. */
const HANDSHAKE_MS = 5000;

export class TeamKeyMismatch extends Error {}

export class TeamAgent extends HttpsAgent {
  private readonly expected: string;

  /** `expectedKey`: the peer's raw Ed25519 key, base64. */
  constructor(identity: TeamCertificate, expectedKey: string, opts: AgentOptions = {}) {
    // rejectUnauthorized off: nobody signs these certificates, the key check below is the whole trust.
    super({ ...opts, cert: identity.cert, key: identity.key, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    this.expected = expectedKey;
  }

  override createConnection(options: ConnectionOptions, done?: (err: Error | null, socket: Duplex) => void): Duplex | null | undefined {
    const socket: TLSSocket = connect({ ...options, servername: undefined });
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      socket.setTimeout(0);
      if (err) socket.destroy();
      done?.(err, socket);
    };
    socket.setTimeout(HANDSHAKE_MS, () => finish(new Error(`TLS handshake with ${options.host}:${options.port} timed out`)));
    socket.once('error', (e) => finish(e));
    socket.once('secureConnect', () => {
      const key = ed25519KeyOfCertificate(socket.getPeerCertificate(true)?.raw);
      if (key?.toString('base64') === this.expected) finish(null);
      else finish(new TeamKeyMismatch(`${options.host}:${options.port} presented another key than its proven identity key`));
    });
    return undefined;
  }
}
