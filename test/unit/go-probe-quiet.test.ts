import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry } from '../../src/peers/registry.ts';

// A Go peernix logs every request, and we probed each Go host every 2 s (#21). An up Go host seen in
// the last 20 s is not probed; one not seen that long, or not up, is probed as before.

describe('probes of Go hosts', () => {
  it('skips an up Go host seen lately, probes it again once 20 s have passed, and probes a Peernix peer every round', async () => {
    const probed: string[] = [];
    const client = { probe: async (url: string) => (probed.push(url), 1) } as unknown as PeerClient;
    const registry = new PeerRegistry({ client, isTrusted: () => false, proveIdentity: async () => 'unsupported' });
    const goUrl = 'http://10.0.0.9:9999/nix-cache';
    const pnUrl = 'http://10.0.0.8:9999';
    registry.upsert({
      id: 'go:10.0.0.9:9999',
      name: 'Go peernix at 10.0.0.9',
      url: goUrl,
      address: '10.0.0.9',
      port: 9999,
      platform: null,
      publicKey: null,
      source: 'mdns',
      dialect: 'go',
    });
    registry.upsert({ id: 'pn', name: 'pn', url: pnUrl, address: '10.0.0.8', port: 9999, platform: null, publicKey: null, source: 'static' });
    await registry.checkAll();
    const go = registry.get('go:10.0.0.9:9999')!;
    assert.equal(go.state, 'up');
    probed.length = 0;
    for (let i = 0; i < 5; i++) await registry.checkAll();
    assert.deepEqual(
      probed.filter((u) => u === goUrl),
      [],
      'an up Go host seen moments ago is left alone',
    );
    assert.ok(probed.filter((u) => u === pnUrl).length >= 5);
    go.lastSeen -= 21_000;
    go.lastHeard -= 21_000;
    await registry.checkAll();
    assert.deepEqual(
      probed.filter((u) => u === goUrl),
      [goUrl],
    );
    registry.stop();
  });
});
