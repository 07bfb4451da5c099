import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NarSlots, type Admission, type NarSlot } from '../../src/base/nar-slots.ts';
import { DEFAULT_LIMITS, parseLimits } from '../../src/cache/limits.ts';
import { FakeClock } from '../support/fake-clock.ts';

const slotOf = (a: Admission): NarSlot => {
  assert.ok('slot' in a, `expected a slot, got ${JSON.stringify(a)}`);
  return a.slot;
};

describe('NarSlots', () => {
  it('grants up to the overall cap at once, then queues, then refuses past the queue', async (t) => {
    const slots = new NarSlots({ total: 3, perAddress: 10, queue: 2, waitMs: 60_000 });
    const held = ['a', 'b', 'c'].map((addr) => slotOf(slots.acquire(addr) as Admission));
    assert.equal(slots.inUse, 3);
    const w1 = slots.acquire('d');
    const w2 = slots.acquire('e');
    assert.ok(w1 instanceof Promise && w2 instanceof Promise);
    assert.equal(slots.queued, 2);
    assert.deepEqual(slots.acquire('f'), { refused: 'busy' }, 'queue full: refused at once');
    held[0].release();
    held[0].release(); // idempotent
    const got1 = slotOf(await w1);
    assert.equal(slots.inUse, 3);
    held[1].release();
    slotOf(await w2);
    t.diagnostic(`in use ${slots.inUse}, queued ${slots.queued}, refused ${slots.refused}`);
    assert.equal(slots.queued, 0);
    assert.equal(slots.refused, 1);
    got1.release();
    assert.equal(slots.inUse, 2);
  });

  it('caps one address while others still get slots, first come first served among those that fit', async () => {
    const slots = new NarSlots({ total: 10, perAddress: 2, queue: 10, waitMs: 60_000 });
    const a1 = slotOf(slots.acquire('A') as Admission);
    slotOf(slots.acquire('A') as Admission);
    const a3 = slots.acquire('A');
    assert.ok(a3 instanceof Promise, 'third from A waits');
    const b = slots.acquire('B');
    assert.ok(!(b instanceof Promise), 'B is not held up behind A');
    assert.equal(slots.inUseBy('A'), 2);
    a1.release();
    slotOf(await a3);
    assert.equal(slots.inUseBy('A'), 2);
    assert.equal(slots.inUse, 3);
  });

  it('a waiter is refused after the wait, and one whose client left is dropped from the queue', async () => {
    const clock = new FakeClock();
    const slots = new NarSlots({ total: 1, perAddress: 1, queue: 5, waitMs: 50, clock });
    const held = slotOf(slots.acquire('x') as Admission);
    let outcome: Admission | null = null;
    const y = (slots.acquire('y') as Promise<Admission>).then((a) => (outcome = a));
    clock.advance(49);
    await Promise.resolve();
    assert.equal(outcome, null, 'still waiting before waitMs');
    clock.advance(1);
    await y;
    assert.deepEqual(outcome, { refused: 'busy' });
    const gone = new AbortController();
    const w = slots.acquire('z', gone.signal);
    assert.equal(slots.queued, 1);
    gone.abort();
    assert.deepEqual(await w, { refused: 'gone' });
    assert.equal(slots.queued, 0);
    held.release();
    assert.equal(slots.inUse, 0, 'the slot is not handed to the client that left');
  });

  it('close() ends every wait at once and refuses what comes after; slots held stay valid', async () => {
    // The peer client's use: a cap per peer only, a queue without bound.
    const slots = new NarSlots({ total: Infinity, perAddress: 1, queue: Infinity, waitMs: 60_000 });
    const held = slotOf(slots.acquire('http://peer:9999') as Admission);
    const waits = Array.from({ length: 40 }, () => slots.acquire('http://peer:9999'));
    assert.ok(!(slots.acquire('http://other:9999') instanceof Promise), 'another peer is not held up');
    assert.equal(slots.queued, 40);
    slots.close();
    for (const w of waits) assert.deepEqual(await w, { refused: 'closed' });
    assert.equal(slots.queued, 0);
    assert.deepEqual(slots.acquire('http://third:9999'), { refused: 'closed' });
    held.release();
    assert.equal(slots.inUseBy('http://peer:9999'), 0);
  });

  it('limits: defaults sit far above what one Nix asks for; PEERNIX_LIMITS overrides with clear errors', () => {
    assert.ok(DEFAULT_LIMITS.narStreamsPerAddress > 25 && DEFAULT_LIMITS.narStreams >= DEFAULT_LIMITS.narStreamsPerAddress);
    assert.ok(DEFAULT_LIMITS.narQueueWaitMs < 3000, 'under the peer client header timeout');
    assert.deepEqual(parseLimits('stallMs=2000, narStreams=8'), { ...DEFAULT_LIMITS, stallMs: 2000, narStreams: 8 });
    assert.throws(() => parseLimits('bogus=1'), /bogus/);
    assert.throws(() => parseLimits('stallMs=0'), /at least 1/);
    assert.throws(() => parseLimits('stallMs=-5'), /stallMs/);
  });
});
