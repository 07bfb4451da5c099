// The identity proof: the signed message, its verification, and the share listener's route answering a
// real HTTP challenge on loopback — including an impostor that relays the challenge to the real key
// holder, and one that signs with a key of its own.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createIdentityHandler } from '../../src/cache/identity-route.ts';
import { shareRouteOnly } from '../support/share-route.ts';
import { silentLogger } from '../../src/base/log.ts';
import { listen } from '../../src/cache/http-listener.ts';
import { PeerClient } from '../../src/peers/peer-client.ts';
import { makeTeamCertificate } from '../../src/wire/team-certificate.ts';
import { generateKeyPair, parseSecretKey } from '../../src/nix/signing.ts';
import { identityMessage, newNonce, proveIdentity, signIdentity, verifyIdentity, IDENTITY_PATH } from '../../src/wire/identity-proof.ts';

const real = parseSecretKey(generateKeyPair('real-1').secretKeyText);
const other = parseSecretKey(generateKeyPair('real-1').secretKeyText); // same name, different key
const ID = 'a1b2c3d4e5f6a7b8c9d0e1f2';

const servers: Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

async function serve(handler: Parameters<typeof createServer>[1]): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

describe('identity proof message', () => {
  const claim = { instanceId: ID, address: '10.1.2.3', port: 9999, nonce: newNonce() };

  it('is domain-separated and names id, address, port and nonce', (t) => {
    const m = identityMessage(claim);
    t.diagnostic(`message: ${JSON.stringify(m)}`);
    assert.equal(m, `peernix-identity-v1\n${ID}\n10.1.2.3\n9999\n${claim.nonce}`);
    assert.equal(identityMessage({ ...claim, address: '::ffff:10.1.2.3' }), m, 'IPv4-mapped spelling is the same address');
  });

  it('rejects malformed parts instead of signing them', () => {
    assert.throws(() => identityMessage({ ...claim, nonce: 'short' }));
    assert.throws(() => identityMessage({ ...claim, nonce: 'x'.repeat(129) }));
    assert.throws(() => identityMessage({ ...claim, instanceId: 'bad\nid-0123456789' }));
    assert.throws(() => identityMessage({ ...claim, address: 'evil.example' }));
    assert.throws(() => identityMessage({ ...claim, port: 0 }));
  });

  it('verifies only the holder of the key, for exactly that claim', (t) => {
    const sig = signIdentity(real, claim);
    assert.equal(verifyIdentity(real.publicKey.text, claim, sig), true);
    const checks = {
      'other key': verifyIdentity(other.publicKey.text, claim, sig),
      'other nonce': verifyIdentity(real.publicKey.text, { ...claim, nonce: newNonce() }, sig),
      'other address': verifyIdentity(real.publicKey.text, { ...claim, address: '10.1.2.4' }, sig),
      'other port': verifyIdentity(real.publicKey.text, { ...claim, port: 9998 }, sig),
      'other id': verifyIdentity(real.publicKey.text, { ...claim, instanceId: `${ID}x` }, sig),
      'forged by other key': verifyIdentity(real.publicKey.text, claim, signIdentity(other, claim)),
      'junk signature': verifyIdentity(real.publicKey.text, claim, 'real-1:AAAA'),
      'not a string': verifyIdentity(real.publicKey.text, claim, { sig }),
      'junk key': verifyIdentity('nonsense', claim, sig),
    };
    t.diagnostic(`verification results: ${JSON.stringify(checks)}`);
    for (const [what, ok] of Object.entries(checks)) assert.equal(ok, false, what);
  });
});

describe('identity route on a real listener', () => {
  it('a Peernix proves its id and key; the requester checks what it connected to', async (t) => {
    const route = shareRouteOnly('identity', createIdentityHandler({ instanceId: ID, key: real }));
    const port = await serve((req, res) => {
      if (!route(req, res)) res.writeHead(404).end();
    });
    const base = { address: '127.0.0.1', port, instanceId: ID, publicKey: real.publicKey.text };
    const results = {
      genuine: await proveIdentity(base),
      wrongKeyClaimed: await proveIdentity({ ...base, publicKey: other.publicKey.text }),
      wrongIdClaimed: await proveIdentity({ ...base, instanceId: 'ffffffffffffffffffffffff' }),
      noKeyClaimed: await proveIdentity({ ...base, publicKey: null }),
    };
    t.diagnostic(`proof results: ${JSON.stringify(results)}`);
    assert.deepEqual(results, { genuine: 'verified', wrongKeyClaimed: 'failed', wrongIdClaimed: 'failed', noKeyClaimed: 'unsupported' });
  });

  it('bad nonces get a 404, other paths fall through, and nothing is signed for them', async () => {
    const route = shareRouteOnly('identity', createIdentityHandler({ instanceId: ID, key: real }));
    let fellThrough = 0;
    const port = await serve((req, res) => {
      if (!route(req, res)) {
        fellThrough++;
        res.writeHead(418).end();
      }
    });
    const status = async (path: string) => (await fetch(`http://127.0.0.1:${port}${path}`)).status;
    assert.equal(await status(`${IDENTITY_PATH}?nonce=short`), 404);
    assert.equal(await status(`${IDENTITY_PATH}?nonce=${'a'.repeat(129)}`), 404);
    assert.equal(await status(`${IDENTITY_PATH}?nonce=${'a'.repeat(600)}`), 418); // over the URL bound: not ours
    assert.equal(await status(`${IDENTITY_PATH}?nonce=${'a'.repeat(22)}`), 200);
    assert.equal(await status('/nix-cache-info'), 418);
    assert.equal(fellThrough, 2);
  });

  it('an impostor that relays the challenge to the real peer, or signs with its own key, fails', async (t) => {
    const route = shareRouteOnly('identity', createIdentityHandler({ instanceId: ID, key: real }));
    const realPort = await serve((req, res) => {
      if (!route(req, res)) res.writeHead(404).end();
    });
    // The relay forwards the exact request (Host header and all) to the real peer.
    const relayPort = await serve(async (req, res) => {
      const r = await fetch(`http://127.0.0.1:${realPort}${req.url}`, { headers: { host: req.headers.host ?? '' } });
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(await r.text());
    });
    const forger = shareRouteOnly('identity', createIdentityHandler({ instanceId: ID, key: other }));
    const forgerPort = await serve((req, res) => {
      if (forger(req, res)) return;
      res.writeHead(404).end();
    });
    const noRoutePort = await serve((_req, res) => res.writeHead(404).end());
    const claim = { address: '127.0.0.1', instanceId: ID, publicKey: real.publicKey.text };
    const results = {
      relay: await proveIdentity({ ...claim, port: relayPort }),
      forger: await proveIdentity({ ...claim, port: forgerPort }),
      noRoute: await proveIdentity({ ...claim, port: noRoutePort }),
      closedPort: await proveIdentity({ ...claim, port: 1 }),
    };
    t.diagnostic(`impostor proof results: ${JSON.stringify(results)}`);
    assert.deepEqual(results, { relay: 'failed', forger: 'failed', noRoute: 'unsupported', closedPort: 'failed' });
  });
});

describe('identity proof over the team channel', () => {
  it('a peer claiming a member key is challenged over TLS that must prove that key; the request never goes out in clear', async () => {
    const member = parseSecretKey(generateKeyPair('member-1').secretKeyText);
    const [realCert, memberCert, otherCert] = await Promise.all([makeTeamCertificate(real), makeTeamCertificate(member), makeTeamCertificate(other)]);
    const plainRequests: string[] = [];
    const start = async (cert: typeof realCert, key: typeof real) => {
      const route = shareRouteOnly('identity', createIdentityHandler({ instanceId: ID, key }));
      return listen({
        host: '127.0.0.1',
        port: 0,
        log: silentLogger,
        tls: cert,
        handler: (req, res) => {
          if (!(req.socket as { encrypted?: boolean }).encrypted) plainRequests.push(req.url ?? '');
          if (!route(req, res)) res.writeHead(404).end();
        },
      });
    };
    const server = await start(realCert, real);
    const impostor = await start(otherCert, other);
    try {
      const client = new PeerClient(
        {},
        'test',
        {},
        { team: { cert: memberCert, keyOf: () => null, isMember: (raw) => raw === real.publicKey.key.toString('base64') } },
      );
      const agent = client.identityAgent(real.publicKey.text);
      assert.ok(agent, 'a member key gets the channel');
      assert.equal(client.identityAgent(other.publicKey.text), null, 'any other key is challenged in plain');
      const prove = (port: number) =>
        proveIdentity({ address: '127.0.0.1', port, instanceId: ID, publicKey: real.publicKey.text, tlsAgent: agent ?? undefined, timeoutMs: 5000 });
      assert.equal(await prove(server.port), 'verified');
      // The impostor holds another key: the handshake fails before any request is sent.
      assert.equal(await prove(impostor.port), 'failed');
      assert.deepEqual(plainRequests, []);
      client.close();
    } finally {
      await server.close(0);
      await impostor.close(0);
    }
  });
});
