import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { describe, it } from 'node:test';
import { NarSlots, type Admission, type NarSlot } from '../../src/base/nar-slots.ts';
import { ClaimedNarSlots, type ClaimAnswer, type ClaimRequest, SlotClaimsHost } from '../../src/base/nar-slot-claims.ts';
import { FakeClock } from '../support/fake-clock.ts';

// Two claiming loops and the holder's own loop on one NarSlots, over real message ports (as the share
// listener's worker threads talk to the main thread).

function loop(slots: NarSlots) {
  const { port1, port2 } = new MessageChannel();
  const host = new SlotClaimsHost(slots, (a) => port1.postMessage(a));
  port1.on('message', (m: ClaimRequest) => host.handle(m));
  const claimed = new ClaimedNarSlots((m) => port2.postMessage(m));
  port2.on('message', (m: ClaimAnswer) => claimed.handle(m));
  return {
    host,
    claimed,
    close() {
      port1.close();
      port2.close();
    },
  };
}

const slotOf = (a: Admission): NarSlot => {
  assert.ok('slot' in a, `expected a slot, got ${JSON.stringify(a)}`);
  return a.slot;
};

/** Until the holder's count settles (messages in flight land). */
async function settled(f: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !f(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(f(), 'did not settle');
}

describe('NAR slots claimed across loops', () => {
  it('one address spread over three loops gets its per-address cap in all, and no more', async (t) => {
    const clock = new FakeClock();
    const slots = new NarSlots({ total: 10, perAddress: 3, queue: 10, waitMs: 2000, clock });
    const [a, b] = [loop(slots), loop(slots)];
    t.after(() => (a.close(), b.close()));
    const own = slotOf(await slots.acquire('10.0.0.5'));
    const fromA = slotOf(await a.claimed.acquire('10.0.0.5'));
    const fromB = slotOf(await b.claimed.acquire('10.0.0.5'));
    assert.equal(slots.inUseBy('10.0.0.5'), 3);
    // The fourth, from either loop, waits, and another address still gets in.
    const waitingA = a.claimed.acquire('10.0.0.5');
    assert.ok(waitingA instanceof Promise);
    slotOf(await b.claimed.acquire('10.0.0.6'));
    await settled(() => slots.queued === 1);
    // A release in another loop admits the waiter in this one.
    fromB.release();
    fromB.release(); // idempotent
    const late = slotOf(await waitingA);
    assert.equal(slots.inUseBy('10.0.0.5'), 3);
    // Over the cap past the wait: refused, as in one loop.
    const refused = b.claimed.acquire('10.0.0.5');
    await settled(() => slots.queued === 1);
    clock.advance(2000);
    assert.deepEqual(await refused, { refused: 'busy' });
    for (const s of [own, fromA, late]) s.release();
    await settled(() => slots.inUseBy('10.0.0.5') === 0);
    assert.equal(a.host.holding, 0);
  });

  it('a client that leaves while waiting gives its place back; a loop that goes releases what it held', async (t) => {
    const slots = new NarSlots({ total: 2, perAddress: 2, queue: 10, waitMs: 60_000, clock: new FakeClock() });
    const a = loop(slots);
    t.after(() => a.close());
    slotOf(await a.claimed.acquire('x'));
    slotOf(await a.claimed.acquire('y'));
    const gone = new AbortController();
    const waiting = a.claimed.acquire('z', gone.signal);
    await settled(() => slots.queued === 1);
    gone.abort();
    assert.deepEqual(await waiting, { refused: 'gone' });
    await settled(() => slots.queued === 0);
    assert.equal(slots.inUse, 2);
    // The loop stops (or its thread dies) without releasing: the holder drops all it held.
    a.host.drop();
    assert.equal(slots.inUse, 0);
    a.claimed.close();
    assert.deepEqual(a.claimed.acquire('x'), { refused: 'closed' });
  });
});
