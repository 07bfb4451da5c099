import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TransferView } from '../../src/base/api.ts';
import { TransferTracker } from '../../src/domain/transfers.ts';

// The tracker with an explicit clock and explicit ticks: progress is sampled, not pushed per chunk,
// so a fast transfer costs one update per tick however many chunks it moves.

function rig() {
  let now = 1_000_000;
  const updates: TransferView[][] = [];
  const flows: [string, number][] = [];
  const tracker = new TransferTracker({
    onUpdate: (v) => updates.push(v),
    onFlow: (d, n) => flows.push([d, n]),
    now: () => now,
    lingerMs: 1000,
    rateWindowMs: 1000,
  });
  return { tracker, updates, flows, advance: (ms: number) => (now += ms) };
}

describe('TransferTracker', () => {
  test('a served path’s scope shows once it is known, in the next update', () => {
    const { tracker, updates, advance } = rig();
    let scope: 'public' | 'team' | 'never' | undefined;
    tracker.begin({ storePath: '/nix/store/x-tool', direction: 'out', peerName: 'b', total: 10, bytes: () => 0, scope: () => scope });
    tracker.tick();
    assert.equal(updates.at(-1)![0].scope, undefined, 'not judged yet');
    scope = 'team';
    advance(250);
    tracker.tick();
    assert.equal(updates.at(-1)![0].scope, 'team');
    assert.equal(tracker.views()[0].scope, 'team');
  });

  test('one update per tick with bytes, total and rate; nothing when nothing moved', (t) => {
    const { tracker, updates, flows, advance } = rig();
    let bytes = 0;
    const h = tracker.begin({ storePath: '/nix/store/x-big', direction: 'in', peerName: 'b', total: 10_000, bytes: () => bytes });
    tracker.tick();
    assert.equal(updates.length, 1);
    assert.equal(updates[0][0].bytes, 0);
    for (let i = 0; i < 100; i++) bytes += 10; // a hundred chunks within one tick
    advance(250);
    tracker.tick();
    assert.equal(updates.length, 2, 'one update for the whole tick');
    assert.equal(updates[1][0].bytes, 1000);
    assert.equal(updates[1][0].bytesPerSec, 4000);
    advance(250);
    tracker.tick();
    assert.equal(updates.length, 3, 'a stalled transfer updates once (its rate falls) …');
    advance(250);
    tracker.tick();
    assert.equal(updates.at(-1)![0].bytesPerSec, 1333);
    bytes = 10_000;
    h.end('ok');
    advance(250);
    tracker.tick();
    const last = updates.at(-1)![0];
    t.diagnostic(`updates: ${updates.length}; last: ${JSON.stringify(last)}; flows: ${JSON.stringify(flows)}`);
    assert.equal(last.outcome, 'ok');
    assert.equal(last.bytes, 10_000);
    assert.deepEqual(
      flows,
      [
        ['in', 1000],
        ['in', 9000],
      ],
      'every byte reaches the per-minute chart once',
    );
    advance(1000);
    tracker.tick();
    assert.deepEqual(updates.at(-1), [], 'the finished row left after lingerMs');
  });

  test('a transfer the client abandoned leaves at once; wireBytes and a changing peer show', () => {
    const { tracker, updates, advance } = rig();
    let wire = 0;
    let peer = 'b';
    const a = tracker.begin({ storePath: '/nix/store/x-a', direction: 'out', peerName: () => peer, total: 100, bytes: () => 50, wireBytes: () => (wire = 20) });
    advance(250);
    tracker.tick();
    assert.equal(updates.at(-1)![0].wireBytes, 20);
    assert.equal(wire, 20);
    peer = 'c';
    advance(250);
    tracker.tick();
    assert.equal(updates.at(-1)![0].peerName, 'c');
    a.end('aborted');
    a.end('ok'); // idempotent
    tracker.tick();
    assert.deepEqual(updates.at(-1), []);
    tracker.close();
  });
});
