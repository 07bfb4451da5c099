import { format } from 'node:util';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PeerView } from '../../src/base/api.ts';
import { explainPeer, PeerHistory } from '../../src/domain/peer-history.ts';

// A peer's recent RTT and throughput (explicit clock), and why it is not used, in words.

const base: PeerView = {
  id: 'p',
  name: 'bob',
  url: 'http://10.0.0.2:9999',
  address: '10.0.0.2',
  port: 9999,
  platform: null,
  publicKey: 'bob-1:AAAA',
  verified: true,
  trusted: true,
  rttMs: 1,
  state: 'up',
  source: 'mdns',
  bytesFrom: 0,
  bytesTo: 0,
  lastSeen: 0,
  bad: null,
  summary: null,
};

describe('PeerHistory', () => {
  test('keeps the last samples of RTT and bytes per second; forgets peers that left', (t) => {
    let now = 0;
    const h = new PeerHistory({ intervalMs: 1000, samples: 3, now: () => now });
    const seq: Partial<PeerView>[] = [
      { rttMs: 1 },
      { rttMs: 2, bytesFrom: 5000 },
      { rttMs: 3, bytesFrom: 5000, bytesTo: 1000 },
      { state: 'gone', rttMs: null, bytesFrom: 5000, bytesTo: 1000 },
    ];
    for (const over of seq) {
      h.sample([{ ...base, ...over }]);
      now += 1000;
    }
    h.noteDown('p', 'health check failed');
    const v = h.annotate({ ...base, state: 'gone' });
    t.diagnostic(format(JSON.stringify(v.history), v.why));
    assert.deepEqual(v.history, { intervalMs: 1000, rttMs: [2, 3, null], bytesPerSec: [5000, 1000, 0] });
    assert.match(v.why ?? '', /^Unreachable: health check failed/);
    h.sample([]);
    assert.deepEqual(h.annotate(base).history?.rttMs, [], 'forgotten');
  });
});

describe('explainPeer', () => {
  const base: PeerView = {
    id: 'p',
    name: 'bob',
    url: 'http://10.0.0.2:9999',
    address: '10.0.0.2',
    port: 9999,
    platform: null,
    publicKey: 'bob-1:AAAA',
    verified: true,
    trusted: true,
    rttMs: 1,
    state: 'up',
    source: 'mdns',
    bytesFrom: 0,
    bytesTo: 0,
    lastSeen: 0,
    bad: null,
    summary: null,
  };
  test('says why a peer is not up or not trusted, and nothing when all is well', () => {
    const cases: [Partial<PeerView>, string | null, RegExp | null][] = [
      [{}, null, null],
      [{ state: 'gone' }, 'no answer to 3 health checks', /^Unreachable: no answer to 3 health checks/],
      [{ state: 'suspect' }, null, /waiting for it to answer a health check/],
      [{ verified: false, trusted: false }, null, /has not proved it holds the signing key/i],
      [{ trusted: false }, null, /add bob-1:AAAA to trusted-public-keys/],
      [{ trusted: false, publicKey: null }, null, /announced no signing key/],
      [
        { bad: { since: 0, until: 1, reason: 'served bytes that do not match the NarHash' }, state: 'suspect' },
        null,
        /Not used for NARs \(served bytes that do not match the NarHash\).*peernix peer clear bob/,
      ],
    ];
    for (const [over, down, want] of cases) {
      const why = explainPeer({ ...base, ...over }, down);
      if (want === null) assert.equal(why, null);
      else assert.match(why ?? '', want);
    }
  });
});
