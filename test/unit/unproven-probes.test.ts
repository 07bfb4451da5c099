import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry, type PeerInfo } from '../../src/peers/registry.ts';

// mDNS as a pointer: hosts announced on the LAN that never answer as a Peernix cache are probed
// ever more rarely and, all together, at most a few times a second; a proven peer is probed every
// round as before. The registry's probe and identity challenge are stand-ins, its clock driven.

function announced(i: number, url: string): PeerInfo {
  const u = new URL(url);
  return { id: `id-${i}`, name: `host-${i}`, url, address: u.hostname, port: Number(u.port), platform: null, publicKey: null, source: 'mdns', key: `host-${i}._peernix._tcp.local` };
}

describe('probes of announced hosts that never answered as a cache', () => {
  it('back off from seconds to minutes and are capped overall; a proven peer is probed every round', async (t) => {
    let now = 0;
    const probes = new Map<string, number>();
    const realUrl = 'http://10.0.0.2:9999';
    const client = {
      probe: async (url: string) => {
        probes.set(url, (probes.get(url) ?? 0) + 1);
        return url === realUrl ? 1 : null; // the pointed-at hosts are no caches
      },
    } as unknown as PeerClient;
    const registry = new PeerRegistry({
      client,
      isTrusted: () => false,
      proveIdentity: async (p) => (p.url === realUrl ? 'verified' : 'failed'),
      unprovenProbes: { now: () => now },
    });
    registry.upsert(announced(0, realUrl));
    for (let i = 1; i <= 20; i++) registry.upsert(announced(i, `http://10.0.1.${i}:80`));
    // Ten minutes of health rounds, every 2 s.
    const unprovenSoFar = () => [...probes].filter(([u]) => u !== realUrl).reduce((a, [, n]) => a + n, 0);
    let busiestRound = 0;
    for (; now <= 600_000; now += 2000) {
      const before = unprovenSoFar();
      await registry.checkAll();
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      if (now > 0) busiestRound = Math.max(busiestRound, unprovenSoFar() - before);
    }
    const pointed = [...probes].filter(([u]) => u !== realUrl).map(([, n]) => n);
    const total = pointed.reduce((a, b) => a + b, 0);
    t.diagnostic(`in 10 min: the proven peer probed ${probes.get(realUrl)} times; 20 pointed-at hosts ${total} times (most ${Math.max(...pointed)} for one, ${busiestRound} in the busiest round after their first)`);
    assert.ok((probes.get(realUrl) ?? 0) >= 300, 'the proven peer is probed every round');
    assert.ok(Math.max(...pointed) <= 12, 'each pointed-at host: 2 s, 4 s, … up to 5 min apart');
    assert.ok(busiestRound <= 4, `${busiestRound} probes of unproven hosts in one round: at most four a second, all together`);
  });
});
