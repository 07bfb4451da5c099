import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SampledLoopLag } from '../../src/base/loop-lag.ts';
import { freshHealth, MAX_EXCUSED, PeerHealth, type PeerHealthFields } from '../../src/peers/health.ts';
import { FakeClock } from '../support/fake-clock.ts';

// Peer health on a busy machine: our own event loop's stalls are not the peer's silence, a peer
// that promised an answer is not released for another lookup's strike, and what health remembers is
// on its own (monotonic) clock. Time is a FakeClock; jump() is this process being away.

type P = PeerHealthFields & { name: string };
const peer = (): P => ({ ...freshHealth(), state: 'up', rttMs: 1, rttFloorMs: 1, name: 'p' });
/** Lets the judgement a timer deferred past pending I/O (setImmediate) run. */
const turn = () => new Promise((r) => setImmediate(r));

function setup(reach: ((p: P, ms: number) => Promise<boolean>) | null = null) {
  const clock = new FakeClock();
  const lag = new SampledLoopLag({ clock, everyMs: 20 });
  const h = new PeerHealth<P>({ stallMs: 500 }, () => {}, reach, { clock, lag });
  return { clock, lag, h };
}

describe('health on a busy machine', () => {
  it('the loop-lag sampler counts the time the loop was away, only while held', () => {
    const clock = new FakeClock();
    const lag = new SampledLoopLag({ clock, everyMs: 20 });
    const t0 = clock.now();
    clock.jump(300); // not held: nothing is sampled, nothing is known
    assert.equal(lag.stalledBetween(t0, clock.now()), 0);
    const release = lag.hold();
    const t1 = clock.now();
    clock.advance(100);
    assert.equal(lag.stalledBetween(t1, clock.now()), 0, 'timers on time: no stall');
    clock.jump(300);
    clock.advance(20);
    const away = lag.stalledBetween(t1, clock.now());
    assert.ok(away >= 280 && away <= 300, `away ${away} ms of a 300 ms stall`);
    assert.equal(lag.stalledBetween(clock.now() - 10, clock.now()), 0, 'a window after the stall holds none of it');
    release();
    assert.equal(clock.pending, 0, 'the sampler stops when no one holds it');
  });

  it('silence we slept through is not a stall: the peer is struck only after stallMs of silence we were awake for', async () => {
    const { clock, h } = setup();
    const p = peer();
    let aborted = 0;
    const untrack = h.track(p, () => aborted++);
    clock.advance(100);
    clock.jump(450); // our loop away for 450 ms: the 500 ms stall timer comes due meanwhile
    clock.advance(0);
    await turn();
    assert.equal(aborted, 0, 'released for our own stall');
    assert.equal(p.strikes, 0);
    assert.equal(p.state, 'up');
    // Awake so far: 100 ms before the stall, 20 ms of it (one sampling interval is never counted as
    // a stall) and none since: 380 ms more of silence make 500.
    clock.advance(370);
    await turn();
    assert.equal(aborted, 0, 'struck before 500 ms of awake silence');
    clock.advance(10);
    await turn();
    assert.equal(aborted, 1, 'a peer silent for 500 ms we were awake for is struck');
    assert.equal(p.state, 'suspect');
    untrack();
  });

  it('an answer that arrived while we were away is read before the peer is judged', async () => {
    const { clock, h } = setup();
    const p = peer();
    let aborted = 0;
    const untrack = h.track(p, () => aborted++);
    clock.jump(800);
    clock.advance(0); // the stall timer runs first, as timers do after a stall …
    h.heard(p); // … and then the socket's data, before the deferred judgement
    await turn();
    assert.equal(aborted, 0);
    assert.equal(p.strikes, 0);
    untrack();
    // The same wait with nothing arriving is a stall.
    clock.advance(1);
    const again = h.track(p, () => aborted++);
    clock.advance(500);
    await turn();
    assert.equal(aborted, 1);
    again();
  });

  it('a timeout that fell in our own stall is not a strike; the same timeout while awake is', () => {
    const { clock, lag, h } = setup();
    const p = peer();
    const release = lag.hold();
    h.heard(p);
    clock.advance(100);
    clock.jump(900);
    clock.advance(20);
    assert.equal(h.strike(p, 'no answer within 1000 ms', true), false);
    assert.equal(p.state, 'up');
    clock.advance(1000);
    assert.equal(h.strike(p, 'no answer within 1000 ms', true), true);
    assert.equal(p.state, 'suspect');
    release();
  });

  it('a link check that timed out while our loop was away strikes no one', async () => {
    let clock!: FakeClock;
    let stalled = true;
    const { clock: c, h } = setup(async () => {
      if (stalled) {
        clock.jump(400); // the connect's timeout ran while we were away
        clock.advance(1);
      }
      return false;
    });
    clock = c;
    const p = peer();
    let aborted = 0;
    const untrack = h.track(p, () => aborted++);
    clock.advance(10); // the quick check's time
    await turn();
    await turn();
    assert.equal(aborted, 0);
    assert.equal(p.strikes, 0);
    untrack();
    // The same check failing while we are awake is a cut link: struck at once.
    stalled = false;
    const again = h.track(p, () => aborted++);
    clock.advance(10);
    await turn();
    await turn();
    assert.equal(aborted, 1);
    assert.equal(p.strikes, 1);
    again();
  });

  it('a machine stalled through every wait excuses a silent peer only MAX_EXCUSED times in a row', () => {
    const { clock, lag, h } = setup();
    const release = lag.hold();
    const p = peer();
    const failedWait = () => {
      const from = clock.now();
      clock.advance(100);
      clock.jump(300); // away for part of every wait, as on a machine saturated for good
      clock.advance(100);
      return h.wasAway(p, from, clock.now(), 450);
    };
    const verdicts = Array.from({ length: MAX_EXCUSED + 1 }, failedWait);
    assert.deepEqual(verdicts, [...Array(MAX_EXCUSED).fill(true), false], 'the wait after the excused ones counts');
    // A wait we were awake for counts at once, and starts the excuses again.
    const from = clock.now();
    clock.advance(500);
    assert.equal(h.wasAway(p, from, clock.now(), 450), false);
    assert.equal(failedWait(), true);
    release();
  });

  it('a strike for one lookup releases the others but not those the peer promised to answer', () => {
    const { h } = setup();
    const p = peer();
    const aborted: string[] = [];
    const u1 = h.track(
      p,
      () => aborted.push('promised'),
      500,
      () => true,
    );
    const u2 = h.track(p, () => aborted.push('plain'));
    h.strike(p, 'a lookup went unanswered');
    assert.deepEqual(aborted, ['plain']);
    h.forget(p); // the peer leaves: then everything goes
    assert.deepEqual(aborted, ['plain', 'promised']);
    u1();
    u2();
  });

  it('backoffs and bad marks run on the health clock, not the wall clock', () => {
    const { clock, h } = setup();
    const p = peer();
    h.markBad(p, 'wrong bytes');
    assert.equal(h.isBad(p), true);
    const wallUntil = h.wallTime(p.badUntil);
    assert.ok(Math.abs(wallUntil - (Date.now() + h.opts.badPeerMs)) < 5000, 'shown as a wall time');
    clock.advance(h.opts.badPeerMs - 1);
    assert.equal(h.isBad(p), true);
    clock.advance(1);
    assert.equal(h.isBad(p), false, 'expires after badPeerMs of health-clock time');
    h.strike(p, 'x');
    h.probed(p, true, 1);
    assert.equal(p.state, 'suspect', 'not back before its backoff');
    clock.advance(h.backoffMs(p.strikes));
    h.probed(p, true, 1);
    assert.equal(p.state, 'up');
  });
});
