import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Beat } from '../../src/base/beat.ts';
import { FakeClock } from '../support/fake-clock.ts';

// The process's periodic chores share wake-ups (#26 idle cost): each runs at the multiples of its
// period from one origin, so chores whose cadences meet run in one wake-up, on one timer.

/** A FakeClock that counts the timer callbacks it runs: each is a wake-up of the process. */
class CountingClock extends FakeClock {
  wakes = 0;
  override setTimeout(fn: () => void, ms: number) {
    return super.setTimeout(() => {
      this.wakes++;
      fn();
    }, ms);
  }
}

describe('Beat', () => {
  it('runs chores of 2 s, 4 s and 6 s on the 2 s wake-ups only, each at its own cadence', () => {
    const clock = new CountingClock();
    const beat = new Beat(clock);
    const runs = { two: [] as number[], four: [] as number[], six: [] as number[] };
    const t0 = clock.now();
    beat.every(2000, () => runs.two.push(clock.now() - t0));
    beat.every(4000, () => runs.four.push(clock.now() - t0));
    beat.every(6000, () => runs.six.push(clock.now() - t0));
    assert.equal(clock.pending, 1, 'one timer for all of them');
    clock.advance(12_000);
    assert.deepEqual(runs.two, [2000, 4000, 6000, 8000, 10_000, 12_000]);
    assert.deepEqual(runs.four, [4000, 8000, 12_000]);
    assert.deepEqual(runs.six, [6000, 12_000]);
    assert.equal(clock.wakes, 6, 'six wake-ups for eleven chores run');
  });

  it('a chore added later falls in with the others (multiples from the same origin)', () => {
    const clock = new CountingClock();
    const beat = new Beat(clock);
    const t0 = clock.now();
    const first: number[] = [];
    const later: number[] = [];
    beat.every(2000, () => first.push(clock.now() - t0));
    clock.advance(700);
    beat.every(2000, () => later.push(clock.now() - t0));
    clock.advance(3300);
    assert.deepEqual(first, [2000, 4000]);
    assert.deepEqual(later, [2000, 4000], 'its first run comes at the next shared multiple, sooner than a period');
    assert.equal(clock.wakes, 2);
  });

  it('after a stall each chore runs once, then keeps its cadence', () => {
    const clock = new FakeClock();
    const beat = new Beat(clock);
    const t0 = clock.now();
    const runs: number[] = [];
    beat.every(2000, () => runs.push(clock.now() - t0));
    clock.jump(7000); // the event loop was away: the timer is late
    clock.advance(0);
    clock.advance(3000);
    assert.deepEqual(runs, [7000, 8000, 10_000]);
  });

  it('a chore stopped no longer runs; with none left, no timer waits', () => {
    const clock = new FakeClock();
    const beat = new Beat(clock);
    let a = 0;
    let b = 0;
    const stopA = beat.every(2000, () => a++);
    const stopB = beat.every(10_000, () => b++);
    clock.advance(4000);
    stopA();
    clock.advance(6000);
    assert.deepEqual([a, b], [2, 1]);
    stopB();
    assert.equal(beat.size, 0);
    assert.equal(clock.pending, 0);
  });

  it('a chore may stop itself or start another from its run', () => {
    const clock = new FakeClock();
    const beat = new Beat(clock);
    let ticks = 0;
    let started = 0;
    const stop = beat.every(1000, () => {
      if (++ticks === 2) {
        stop();
        beat.every(500, () => started++);
      }
    });
    clock.advance(4000);
    assert.equal(ticks, 2);
    assert.equal(started, 4);
  });
});
