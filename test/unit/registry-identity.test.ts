// The registry's admission, eviction and identity rules, with the health probe and the identity
// challenge answered by stand-ins (the real challenge is tested in identity-proof.test.ts and end to
// end in field-discovery.test.ts).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProofResult } from '../../src/peers/identity-proof.ts';
import type { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry, type PeerInfo } from '../../src/peers/registry.ts';

const KEY = `real-1:${Buffer.alloc(32, 1).toString('base64')}`;
const ID = 'a1b2c3d4e5f6a7b8c9d0e1f2';

// Who can prove what: url → result. Everything not listed answers health probes but cannot prove.
function setup(proofs: Map<string, ProofResult>, maxPeers = 64) {
  const alive = new Set<string>();
  const client = { probe: async (url: string) => (alive.has(url) || url.includes('fake') || proofs.has(url) ? 1 : null) } as unknown as PeerClient;
  let challenges = 0;
  const registry = new PeerRegistry({
    client,
    maxPeers,
    isTrusted: (k) => k === KEY,
    proveIdentity: async (p) => {
      challenges++;
      return proofs.get(p.url) ?? 'failed';
    },
    identityRetryMs: 0,
  });
  return { registry, alive, challenges: () => challenges };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function mdns(id: string, url: string, key: string, publicKey: string | null = KEY): PeerInfo {
  const u = new URL(url);
  return { id, name: 'laptop', url, address: u.hostname, port: Number(u.port), platform: null, publicKey, source: 'mdns', key };
}

describe('registry identity', () => {
  it('an impostor that took a departed peer\'s id is not trusted, and yields when the real one proves itself', async () => {
    const realUrl = 'http://10.0.0.2:9999';
    const fakeUrl = 'http://10.0.0.66:9999';
    const { registry } = setup(new Map([[realUrl, 'verified']]));
    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local'));
    await settle();
    const first = registry.views()[0];
    assert.deepEqual([first.url, first.verified, first.trusted], [realUrl, true, true]);

    registry.remove(ID, 'goodbye', 'laptop-aaaa._peernix._tcp.local');
    registry.upsert(mdns(ID, fakeUrl, 'laptop-evil._peernix._tcp.local'));
    await settle();
    const squatted = registry.views();
    console.log(`while squatted: ${JSON.stringify(squatted.map((v) => [v.url, v.state, v.verified, v.trusted]))}`);
    assert.deepEqual(squatted.map((v) => [v.url, v.verified, v.trusted]), [[fakeUrl, false, false]]);

    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local')); // back from sleep
    await settle();
    const back = registry.views();
    console.log(`after return: ${JSON.stringify(back.map((v) => [v.url, v.state, v.verified, v.trusted]))}`);
    assert.deepEqual(back.map((v) => [v.id, v.url, v.state, v.verified, v.trusted]), [[ID, realUrl, 'up', true, true]]);
  });

  it('an impostor cannot displace a proven, live peer, and its goodbye does not remove it', async () => {
    const realUrl = 'http://10.0.0.2:9999';
    const { registry } = setup(new Map([[realUrl, 'verified']]));
    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local'));
    await settle();
    registry.upsert(mdns(ID, 'http://10.0.0.66:9999', 'laptop-evil._peernix._tcp.local'));
    await settle();
    registry.remove(ID, 'goodbye', 'laptop-evil._peernix._tcp.local');
    await settle();
    assert.deepEqual(registry.views().map((v) => [v.url, v.state, v.verified]), [[realUrl, 'up', true]]);
    assert.equal(registry.isProvenService('laptop-aaaa._peernix._tcp.local'), true);
    assert.equal(registry.isProvenService('laptop-evil._peernix._tcp.local'), false);
  });

  it('a key is trusted only once proven; peers that cannot prove stay usable but unverified; static peers are as configured', async () => {
    const { registry } = setup(new Map([['http://10.0.0.3:9999', 'unsupported']]));
    registry.upsert(mdns('other-implementation-1', 'http://10.0.0.3:9999', 'other._peernix._tcp.local'));
    registry.upsert({ id: 'http://build:9999', name: 'build:9999', url: 'http://build:9999', address: 'build', port: 9999, platform: null, publicKey: null, source: 'static' });
    await settle();
    const views = Object.fromEntries(registry.views().map((v) => [v.source, { verified: v.verified, trusted: v.trusted }]));
    console.log(`views: ${JSON.stringify(views)}`);
    assert.deepEqual(views, { mdns: { verified: false, trusted: false }, static: { verified: true, trusted: false } });
    assert.equal(registry.live().length, 1); // the unverified mDNS peer is still asked (static "build" does not answer here)
  });

  it('a full table of unproven fakes makes room for a genuine peer, which then stays', async () => {
    const realUrl = 'http://10.0.0.2:9999';
    const { registry } = setup(new Map([[realUrl, 'verified']]), 64);
    for (let i = 0; i < 64; i++) registry.upsert(mdns(`fake-peer-${String(i).padStart(8, '0')}`, `http://10.0.0.66:${1000 + i}/fake`, `fake-${i}._peernix._tcp.local`, null));
    await settle();
    assert.equal(registry.all().length, 64);
    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local'));
    await settle();
    for (let i = 64; i < 500; i++) registry.upsert(mdns(`fake-peer-${String(i).padStart(8, '0')}`, `http://10.0.0.66:${1000 + i}/fake`, `fake-${i}._peernix._tcp.local`, null));
    await settle();
    const real = registry.get(ID);
    console.log(`after 500 fakes: ${registry.all().length} peers, genuine ${real ? `${real.state} verified=${real.verified}` : 'missing'}`);
    assert.equal(registry.all().length, 64);
    assert.ok(real && real.verified && real.state === 'up');
  });
});
