import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry } from '../../src/peers/registry.ts';
import { FakeClock } from '../support/fake-clock.ts';

// After a Go host's UDP "yes", its narinfo is waited for at its own pace. Its narinfo costs about
// five nix-store runs where its "yes" cost one, so a slow "yes" (a loaded host) lengthens the wait
// even before any narinfo of it was seen: on a busy laptop, a 404 for a path the host said it has
// is a substitution lost (and remembered by Nix for an hour).

describe('the wait for a Go narinfo after a "yes"', () => {
  const world = () => {
    const clock = new FakeClock();
    const registry = new PeerRegistry({
      client: { probe: async () => 1 } as unknown as PeerClient,
      isTrusted: () => false,
      proveIdentity: async () => 'unsupported',
      clock,
    });
    registry.upsert({
      id: 'go:10.0.0.9:9999',
      name: 'Go peernix at 10.0.0.9',
      url: 'http://10.0.0.9:9999/nix-cache',
      address: '10.0.0.9',
      port: 9999,
      platform: null,
      publicKey: null,
      source: 'mdns',
      dialect: 'go',
    });
    return { clock, registry, go: registry.get('go:10.0.0.9:9999')! };
  };

  it('is 2.4 s after a quick "yes", and grows with a slow one: three times the five runs its "yes" took one of, at most 20 s', () => {
    const { registry, go } = world();
    assert.equal(registry.goHeldMs(go), 2400);
    assert.equal(registry.goHeldMs(go, 20), 2400, 'an idle host');
    assert.equal(registry.goHeldMs(go, 800), 12_000, 'a "yes" after 0.8 s: a loaded host');
    assert.equal(registry.goHeldMs(go, 5000), 20_000, 'never past 20 s');
  });

  it('still follows the slowest recent narinfo when that is longer, fading with time', () => {
    const { clock, registry, go } = world();
    registry.reportGoHeld(go, 3000);
    assert.equal(registry.goHeldMs(go, 100), 9000);
    clock.advance(60_000);
    assert.ok(registry.goHeldMs(go, 100) < 9000, 'an old slow narinfo counts less');
  });
});
