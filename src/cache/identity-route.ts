import type { SecretKey } from '../nix/signing.ts';
import { canonicalAddress, isNonce, signIdentity } from '../wire/identity-proof.ts';
import { NotFound, sendBody } from './http-error.ts';
import type { RouteHandler } from './route-table.ts';

// The share listener's answer to an identity challenge (see wire/identity-proof.ts). LAN-facing, so it
// keeps no state per request, reads nothing but the query, and costs one Ed25519 signature. It signs
// the address and port the request arrived on, never a Host header the asker chose.

export interface IdentityRouteOptions {
  instanceId: string;
  key: SecretKey;
}

/** The handler for GET /peernix/identity?nonce=…; a missing or malformed nonce is a 404. */
export function createIdentityHandler(opts: IdentityRouteOptions): RouteHandler {
  return (req, res, m) => {
    const nonce = new URLSearchParams(m.query).get('nonce');
    const address = req.socket.localAddress;
    const port = req.socket.localPort;
    if (!isNonce(nonce) || !address || !port) throw new NotFound();
    const claim = { instanceId: opts.instanceId, address: canonicalAddress(address), port, nonce };
    const body = JSON.stringify({ v: 1, id: opts.instanceId, publicKey: opts.key.publicKey.text, sig: signIdentity(opts.key, claim) });
    sendBody(res, body, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, { head: m.head });
  };
}
