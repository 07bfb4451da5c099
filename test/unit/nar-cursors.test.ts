import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type NarCursor, NarCursors } from '../../src/nix/nar-cursors.ts';

// The memo of places a NAR dump can pick up at (nar-cursors.ts): the nearest cursor at or before an
// offset, and its bounds: cursors half a MiB apart, paths, and the directory listings they hold.
// (That dumps resumed from cursors are byte-exact is nar-writer.test.ts's.)

const MiB = 1024 * 1024;
const listing = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.from(`f${i}`));
const at = (offset: number, ...names: Buffer[][]): NarCursor => ({ at: offset, frames: names.map((n) => ({ names: n, index: 0 })) });

describe('NAR cursors', () => {
  it('finds the nearest cursor at or before an offset, per path', () => {
    const memo = new NarCursors();
    const root = listing(3);
    for (const o of [5 * MiB, 1 * MiB, 3 * MiB]) memo.note('p', at(o, root));
    assert.equal(memo.find('p', 1 * MiB - 1), undefined);
    assert.equal(memo.find('p', 1 * MiB)?.at, 1 * MiB);
    assert.equal(memo.find('p', 4 * MiB)?.at, 3 * MiB);
    assert.equal(memo.find('p', 100 * MiB)?.at, 5 * MiB);
    assert.equal(memo.find('q', 4 * MiB), undefined, 'another path has none');
  });

  it('keeps cursors at least half a MiB apart', () => {
    const memo = new NarCursors();
    const root = listing(3);
    memo.note('p', at(2 * MiB, root));
    memo.note('p', at(2 * MiB + 100, root));
    memo.note('p', at(2 * MiB - 100, root));
    assert.equal(memo.find('p', 3 * MiB)?.at, 2 * MiB);
    memo.note('p', at(2 * MiB + MiB / 2, root));
    assert.equal(memo.find('p', 3 * MiB)?.at, 2 * MiB + MiB / 2);
  });

  it('holds listings of at most maxNames names, each counted once per path, and frees them with the path', () => {
    const memo = new NarCursors({ maxNames: 1000, maxKeys: 2 });
    const big = listing(600);
    const small = listing(10);
    memo.note('a', at(1 * MiB, big, small));
    memo.note('a', at(2 * MiB, big, small)); // the same listings: nothing more held
    assert.equal(memo.namesHeld, 610);
    memo.note('b', at(1 * MiB, listing(600)));
    assert.equal(memo.find('b', 1 * MiB), undefined, 'past the budget: not kept');
    assert.equal(memo.namesHeld, 610);
    memo.note('b', at(1 * MiB, listing(300)));
    assert.equal(memo.namesHeld, 910);
    // A third path pushes out the least recently used one ('a'), and its listings with it.
    memo.find('b', 1 * MiB);
    memo.note('c', at(1 * MiB, listing(50)));
    assert.equal(memo.find('a', 2 * MiB), undefined);
    assert.equal(memo.namesHeld, 350);
  });

  it('keeps at most maxPerKey cursors per path', () => {
    const memo = new NarCursors({ maxPerKey: 4 });
    const root = listing(2);
    for (let i = 0; i < 10; i++) memo.note('p', at(i * MiB, root));
    assert.equal(memo.find('p', 100 * MiB)?.at, 3 * MiB);
  });
});
