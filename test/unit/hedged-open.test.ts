import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { systemClock } from '../../src/base/clock.ts';
import { silentLogger } from '../../src/base/log.ts';
import { HedgedOpener, type Lookup } from '../../src/peers/hedged-open.ts';
import type { PeerClient } from '../../src/peers/peer-client.ts';
import type { PeerRegistry } from '../../src/peers/registry.ts';

// The hedged open on its own, over a lookup that never ends (a fan-out still waiting on a slow peer):
// what an open leaves behind on the shared lookup and on the caller's signal once it is over.

function opener(state: Lookup): HedgedOpener {
  const registry = { live: () => [], health: { clock: systemClock } } as unknown as PeerRegistry;
  const client = { openNar: () => Promise.reject(new Error('no peer is opened here')) } as unknown as PeerClient;
  return new HedgedOpener({ registry, client, log: silentLogger, hedgeMs: 50, lookup: () => state });
}

describe('hedged open', () => {
  it('an open whose client left resolves null at once and leaves no waiter on the lookup nor listener on the signal', async (t) => {
    const state: Lookup = { list: [], done: false, doneAt: 0, waiters: new Set() };
    const left = new AbortController();
    const found = opener(state).open('a'.repeat(32), 'b'.repeat(52), new Set(), 0, undefined, left.signal);
    await new Promise((r) => setImmediate(r));
    assert.equal(state.waiters.size, 1, 'waiting for an answer from the lookup');
    left.abort();
    assert.equal(await found, null);
    t.diagnostic(`after the abort: ${state.waiters.size} waiters on the lookup, ${getEventListeners(left.signal, 'abort').length} listeners on the signal`);
    assert.equal(state.waiters.size, 0, 'the waiter went with the open, not when the lookup ends');
    assert.equal(getEventListeners(left.signal, 'abort').length, 0);
  });

  it('an already aborted signal asks nobody', async () => {
    let asked = 0;
    const state: Lookup = { list: [], done: false, doneAt: 0, waiters: new Set() };
    const h = new HedgedOpener({
      registry: { live: () => [], health: { clock: systemClock } } as unknown as PeerRegistry,
      client: {} as PeerClient,
      log: silentLogger,
      hedgeMs: 50,
      lookup: () => (asked++, state),
    });
    assert.equal(await h.open('a'.repeat(32), 'b'.repeat(52), new Set(), 0, undefined, AbortSignal.abort()), null);
    assert.equal(asked, 0);
    assert.equal(state.waiters.size, 0);
  });
});
