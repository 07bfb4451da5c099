import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { freshHealth, PeerHealth, type PeerHealthFields } from '../../src/peers/health.ts';
import { tcpReachable } from '../../src/peers/reach-check.ts';

// A lookup left unanswered has its peer's link checked: a host that doesn't answer a connect is
// struck long before the stall threshold, a host that does is only busy and keeps it.

type P = PeerHealthFields & { name: string };
const peer = (): P => ({ ...freshHealth(), state: 'up', rttMs: 1, rttFloorMs: 1, name: 'p' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('health: link checks on silent lookups', () => {
  it('strikes a peer whose host does not answer, releasing its lookups at once', async (tc) => {
    const checks: number[] = [];
    const h = new PeerHealth<P>({ stallMs: 2000 }, () => {}, async (_p, timeoutMs) => {
      checks.push(timeoutMs);
      await sleep(timeoutMs);
      return false;
    });
    const p = peer();
    const t0 = performance.now();
    const aborted: number[] = [];
    const untrack = [h.track(p, () => aborted.push(performance.now() - t0)), h.track(p, () => aborted.push(performance.now() - t0))];
    await sleep(300);
    tc.diagnostic(`connect checks ${checks.length} (timeout ${checks[0]} ms); lookups released after ${aborted.map((x) => x.toFixed(0)).join(', ')} ms`);
    assert.equal(checks.length, 1, 'one check per peer, however many lookups wait');
    assert.equal(aborted.length, 2);
    assert.ok(aborted.every((t) => t < 200), `released after ${aborted} ms, stall threshold 2000`);
    assert.equal(p.state, 'suspect');
    assert.equal(p.strikes, 1);
    for (const u of untrack) u();
  });

  it('keeps a busy peer whose host answers until the stall threshold', async () => {
    let checks = 0;
    const h = new PeerHealth<P>({ stallMs: 400 }, () => {}, async () => {
      checks++;
      return true;
    });
    const p = peer();
    let aborted = false;
    const untrack = h.track(p, () => (aborted = true));
    await sleep(200);
    assert.equal(aborted, false, 'released while its host answers');
    assert.equal(p.state, 'up');
    const second = h.track(p, () => {});
    await sleep(50);
    assert.equal(checks, 1, 'a passed check is believed for a while');
    await sleep(300);
    assert.equal(aborted, true, 'the stall threshold still applies');
    assert.equal(p.state, 'suspect');
    untrack();
    second();
  });

  it('does not strike a peer heard from while the check ran', async () => {
    const h = new PeerHealth<P>({ stallMs: 2000 }, () => {}, async (p) => {
      h.heard(p); // a NAR byte arrived meanwhile
      return false;
    });
    const p = peer();
    const untrack = h.track(p, () => {});
    await sleep(100);
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
