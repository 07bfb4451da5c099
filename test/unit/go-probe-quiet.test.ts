import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry } from '../../src/peers/registry.ts';
import { FakeClock } from '../support/fake-clock.ts';

// A Go peernix logs every request, and we probed each Go host every 2 s (#21). An up Go host seen in
// the last 20 s is not probed; one not seen that long, or not up, is probed as before. The 20 s run
// on the registry's monotonic clock: a wall clock set back a day must not keep it unprobed for a day.

describe('probes of Go hosts', () => {
  it('skips an up Go host seen lately, probes it again once 20 s have passed, and probes a Peernix peer every round', async (t) => {
    const probed: string[] = [];
    const clock = new FakeClock();
    const client = { probe: async (url: string) => (probed.push(url), 1) } as unknown as PeerClient;
    const registry = new PeerRegistry({ client, isTrusted: () => false, proveIdentity: async () => 'unsupported', clock });
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
    // The wall clock goes back a day; the quiet window ends when 20 s have passed all the same.
    const wall = Date.now();
    t.mock.method(Date, 'now', () => wall - 86_400_000);
    clock.advance(19_000);
    await registry.checkAll();
    assert.deepEqual(
      probed.filter((u) => u === goUrl),
      [],
      'still quiet 19 s on',
    );
    clock.advance(2_000);
    await registry.checkAll();
    assert.deepEqual(
      probed.filter((u) => u === goUrl),
      [goUrl],
    );
    registry.stop();
  });
});
