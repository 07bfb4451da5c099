// settleOnce, driven by Node's mock timers: whichever of outcome, deadline and abort comes first wins,
// and the cleanup, the timer and the abort listener go exactly once.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, mock, test } from 'node:test';
import { settleOnce } from '../../src/base/settle-once.ts';

describe('settleOnce', () => {
  test('the outcome first: later outcomes and the deadline change nothing; cleanup runs once', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let settle!: (v: string) => void;
      let cleanups = 0;
      const ac = new AbortController();
      const p = settleOnce({ ms: 1000, onTimeout: () => 'timeout', signal: ac.signal }, (s) => {
        settle = s;
        return () => cleanups++;
      });
      settle('answer');
      settle('late answer');
      mock.timers.tick(5000);
      ac.abort();
      assert.equal(await p, 'answer');
      assert.equal(cleanups, 1);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind');
    } finally {
      mock.timers.reset();
    }
  });

  test('the deadline first: onTimeout, then a late outcome is ignored', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let settle!: (v: string) => void;
      let cleanups = 0;
      const p = settleOnce({ ms: 1000, onTimeout: () => 'timeout' }, (s) => {
        settle = s;
        return () => cleanups++;
      });
      mock.timers.tick(999);
      let resolved = false;
      void p.then(() => (resolved = true));
      await Promise.resolve();
      assert.equal(resolved, false, 'not before the deadline');
      mock.timers.tick(1);
      assert.equal(await p, 'timeout');
      settle('late');
      assert.equal(cleanups, 1);
    } finally {
      mock.timers.reset();
    }
  });

  test('an abort first: onAbort; an aborted signal never starts the work', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const ac = new AbortController();
      let cleanups = 0;
      const p = settleOnce({ ms: 1000, onTimeout: () => 'timeout', signal: ac.signal, onAbort: () => 'aborted' }, () => () => cleanups++);
      ac.abort();
      assert.equal(await p, 'aborted');
      assert.equal(cleanups, 1);
      let started = false;
      assert.equal(
        await settleOnce({ ms: 1000, onTimeout: () => 'timeout', signal: ac.signal, onAbort: () => 'aborted' }, () => void (started = true)),
        'aborted',
      );
      assert.equal(started, false);
    } finally {
      mock.timers.reset();
    }
  });

  test('work that settles at once still has its cleanup run', async () => {
    let cleanups = 0;
    assert.equal(await settleOnce({ ms: 1000, onTimeout: () => 0 }, (settle) => (settle(7), () => cleanups++)), 7);
    assert.equal(cleanups, 1);
  });
});
