import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SecretKey } from '../nix/signing.ts';
import { IDENTITY_PATH, canonicalAddress, isNonce, signIdentity } from '../wire/identity-proof.ts';
import { MAX_URL_LENGTH } from './routes.ts';
import { send } from './cache-handler.ts';

// The share listener's answer to an identity challenge (see peers/identity-proof.ts). LAN-facing, so it
// keeps no state per request, reads nothing but the URL, and costs one Ed25519 signature. It signs the
// address and port the request arrived on, never a Host header the asker chose.

export interface IdentityRouteOptions {
  instanceId: string;
  key: SecretKey;
}

/** Returns a handler that answers the identity route and returns true, or returns false for any other URL. */
export function createIdentityRoute(opts: IdentityRouteOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url;
    if (!url || url.length > MAX_URL_LENGTH || !url.startsWith(`${IDENTITY_PATH}?`)) return false;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return true;
    }
    const params = new URLSearchParams(url.slice(IDENTITY_PATH.length + 1));
    const nonce = params.get('nonce');
    const address = req.socket.localAddress;
    const port = req.socket.localPort;
    if (!isNonce(nonce) || !address || !port) {
      send(res, 404, 'not found\n', {}, head);
      return true;
    }
    const claim = { instanceId: opts.instanceId, address: canonicalAddress(address), port, nonce };
    const body = JSON.stringify({ v: 1, id: opts.instanceId, publicKey: opts.key.publicKey.text, sig: signIdentity(opts.key, claim) });
    send(res, 200, body, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, head);
    return true;
  };
}
