import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QuerySignOfLife } from '../../src/peers/query-sign-of-life.ts';

// A stranger's mDNS query for _peernix._tcp (a Go peernix that just started browsing) makes us query
// soon, once per gap however many arrive; our own and known peers' queries change nothing.

function setup(known: string[] = []) {
  let t = 0;
  const timers: (() => void)[] = [];
  let sent = 0;
  const s = new QuerySignOfLife({
    serviceName: '_peernix._tcp.local',
    known: (a) => known.includes(a),
    requery: () => sent++,
    minGapMs: 5000,
    now: () => t,
    setTimer: (fn) => void timers.push(fn),
  });
  const q = (name: string) => ({ questions: [{ name, type: 'PTR' }] });
  const runTimers = () => timers.splice(0).forEach((f) => f());
  return { s, q, runTimers, sent: () => sent, advance: (ms: number) => (t += ms) };
}

describe('a stranger browsing for us is a sign of life', () => {
  it('queries after a stranger asks for _peernix._tcp (any case, trailing dot), at most once per gap', () => {
    const { s, q, runTimers, sent, advance } = setup();
    s.heard(q('_peernix._tcp.local.'), { address: '10.0.0.9' });
    s.heard(q('_PEERNIX._tcp.local'), { address: '10.0.0.8' });
    assert.equal(sent(), 0, 'not before the delay');
    runTimers();
    assert.equal(sent(), 1);
    for (let i = 0; i < 50; i++) s.heard(q('_peernix._tcp.local'), { address: '10.0.0.7' });
    runTimers();
    assert.equal(sent(), 1, 'a flood within the gap sends nothing more');
    advance(5000);
    s.heard(q('_peernix._tcp.local'), { address: '10.0.0.7' });
    runTimers();
    assert.equal(sent(), 2);
  });

  it('ignores other services, ourselves and known peers, and stops', () => {
    const { s, q, runTimers, sent, advance } = setup(['10.0.0.1', '10.0.0.2']);
    s.heard(q('_http._tcp.local'), { address: '10.0.0.9' });
    s.heard(q('_peernix._tcp.local'), { address: '10.0.0.1' });
    s.heard(q('_peernix._tcp.local'), { address: '10.0.0.2' });
    s.heard({ questions: 'x' }, { address: '10.0.0.9' });
    s.heard(null, null);
    runTimers();
    assert.equal(sent(), 0);
    s.heard(q('_peernix._tcp.local'), { address: '10.0.0.9' });
    s.stop();
    runTimers();
    advance(10_000);
    s.heard(q('_peernix._tcp.local'), { address: '10.0.0.9' });
    runTimers();
    assert.equal(sent(), 0);
  });
});
