import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { freshHealth, PeerHealth, type PeerHealthFields } from '../../src/peers/health.ts';
import { tcpReachable } from '../../src/peers/reach-check.ts';
import { FakeClock } from '../support/fake-clock.ts';

// A lookup left unanswered has its peer's link checked: a host that doesn't answer a connect is
// struck long before the stall threshold, a host that does is only busy and keeps it.

type P = PeerHealthFields & { name: string };
const peer = (): P => ({ ...freshHealth(), state: 'up', rttMs: 1, rttFloorMs: 1, name: 'p' });
/** Lets deferred judgements (setImmediate) and the check's promise run. */
const turns = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function health(stallMs: number, reach: (p: P, ms: number) => Promise<boolean>) {
  const clock = new FakeClock();
  return { clock, h: new PeerHealth<P>({ stallMs }, () => {}, reach, { clock }) };
}

describe('health: link checks on silent lookups', () => {
  it('strikes a peer whose host does not answer, releasing its lookups at once', async () => {
    const checks: number[] = [];
    const { clock, h } = health(2000, async (_p, timeoutMs) => {
      checks.push(timeoutMs);
      return false; // the connect timed out (or was refused)
    });
    const p = peer();
    const released: number[] = [];
    const t0 = clock.now();
    const untrack = [h.track(p, () => released.push(clock.now() - t0)), h.track(p, () => released.push(clock.now() - t0))];
    clock.advance(10); // reachAfterMs: the link is checked
    await turns();
    assert.equal(checks.length, 1, 'one check per peer, however many lookups wait');
    assert.deepEqual(released, [10, 10], 'released when the check failed, long before the 2000 ms stall threshold');
    assert.equal(p.state, 'suspect');
    assert.equal(p.strikes, 1);
    for (const u of untrack) u();
  });

  it('keeps a busy peer whose host answers until the stall threshold', async () => {
    let checks = 0;
    const { clock, h } = health(400, async () => {
      checks++;
      return true;
    });
    const p = peer();
    let aborted = false;
    const untrack = h.track(p, () => (aborted = true));
    clock.advance(200);
    await turns();
    assert.equal(checks, 1);
    assert.equal(aborted, false, 'released while its host answers');
    assert.equal(p.state, 'up');
    const second = h.track(p, () => {});
    clock.advance(50);
    await turns();
    assert.equal(checks, 1, 'a passed check is believed for a while');
    clock.advance(150);
    await turns();
    assert.equal(aborted, true, 'the stall threshold still applies');
    assert.equal(p.state, 'suspect');
    untrack();
    second();
  });

  it('does not strike a peer heard from while the check ran', async () => {
    const { clock, h } = health(2000, async (p) => {
      h.heard(p); // a NAR byte arrived meanwhile
      return false;
    });
    const p = peer();
    let aborted = false;
    const untrack = h.track(p, () => (aborted = true));
    clock.advance(100);
    await turns();
    assert.equal(aborted, false);
    assert.equal(p.state, 'up');
    assert.equal(p.strikes, 0);
    untrack();
  });
});

describe('tcpReachable', () => {
  it('is true for a listening port and false for a closed one', async () => {
    const server: Server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      assert.equal(await tcpReachable('127.0.0.1', port, 500), true);
    } finally {
      await new Promise((r) => server.close(r));
    }
    assert.equal(await tcpReachable('127.0.0.1', port, 500), false);
    assert.equal(await tcpReachable('no-such-host.invalid', 80, 500), false);
  });
});
