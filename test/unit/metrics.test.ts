import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeerView } from '../../src/base/api.ts';
import type { CacheBackend, NarBody } from '../../src/cache/backend.ts';
import { EventLog } from '../../src/base/events.ts';
import { probeBackend } from '../../src/metrics/backend-probe.ts';
import { PeernixMetrics } from '../../src/metrics/metrics.ts';
import { PathScopes } from '../../src/store/path-scope.ts';
import type { NarInfo } from '../../src/nix/narinfo.ts';
import type { Peer } from '../../src/peers/registry.ts';
import { promtoolCheck, sample, seriesCount } from '../support/promtool.ts';
import { Readable } from 'node:stream';

// The metrics module on its own: its figures from events and peers, a backend seen through the probe,
// the exposition checked by promtool, and the LAN unable to choose how many series exist.

const peer = (id: string, verified: boolean, bytesFrom = 0, bytesTo = 0): Peer =>
  ({
    id,
    name: `host-${id}`,
    url: `http://10.0.0.1:9999`,
    address: '10.0.0.1',
    port: 9999,
    platform: null,
    publicKey: null,
    source: 'mdns',
    verified,
    bytesFrom,
    bytesTo,
  }) as unknown as Peer;

function setup(peers: Peer[], cap?: number) {
  const events = new EventLog();
  const views = () => peers.map((p) => ({ state: 'up', verified: p.verified }) as PeerView);
  const lanToday = () => ({ fetchedBytes: 4321, fetchedPaths: 2, servedBytes: 99, servedPaths: 1, misses: 7 });
  const metrics = new PeernixMetrics({
    peers: () => peers,
    peerViews: views,
    sharing: () => true,
    daemonUp: () => true,
    subscribe: (l) => events.subscribe(l),
    lanToday,
    peerLabelCap: cap,
  });
  return { events, metrics };
}

describe('metrics', () => {
  it('counts events, answers and bytes, and promtool accepts the text', async (t) => {
    const a = peer('a', true);
    const { events, metrics } = setup([a]);
    events.emit({ type: 'fallback', storePath: '/nix/store/x', from: 'this machine', to: 'host-a', reason: 'gc', outcome: 'served' });
    events.emit({ type: 'transfer', storePath: '/nix/store/x', direction: 'in', peerName: 'host-a', bytes: 10, wireBytes: 4, outcome: 'ok' });
    events.emit({ type: 'peer-up', peerId: 'a', peerName: 'host-a' });
    const info = { storePath: '/nix/store/x' } as NarInfo;
    const body: NarBody = {
      narSize: 3,
      narHash: Buffer.alloc(32),
      storePath: '/nix/store/x',
      hashCheck: true,
      stream: () => Readable.from([Buffer.from('abc')]),
      release: () => {},
    };
    const backend: CacheBackend = { narInfo: (h) => (h === 'x'.repeat(32) ? info : null), nar: async () => body };
    const probed = probeBackend(backend, { listener: 'substituter', metrics, sourceOf: () => 'peer' });
    assert.equal(probed.narInfo('x'.repeat(32)), info, 'a synchronous answer stays synchronous');
    assert.equal(probed.narInfo('y'.repeat(32)), null);
    const got = await probed.nar('x'.repeat(32), Buffer.alloc(32));
    let text = await metrics.text();
    assert.equal(sample(text, 'peernix_nars_in_flight', { listener: 'substituter' }), 1);
    got!.release('done');
    got!.release('done'); // idempotent
    a.bytesFrom = 5000;
    for (const url of ['/x.narinfo', '/nix-cache/y.narinfo', '/nar/a-b.nar', '/nix-cache-info', '/metrics', undefined])
      metrics.countRequest('substituter', url);
    text = await metrics.text();
    assert.deepEqual(
      ['narinfo', 'nar', 'cache-info', 'other'].map((route) => sample(text, 'peernix_requests_total', { listener: 'substituter', route })),
      [2, 1, 1, 2],
    );
    const check = await promtoolCheck(text);
    t.diagnostic(`promtool: exit ${check.code} ${check.output || '(no complaints)'}; ${text.split('\n').length} lines`);
    assert.equal(check.code, 0, check.output);
    assert.equal(sample(text, 'peernix_fallbacks_total', { reason: 'gc', outcome: 'served' }), 1);
    assert.equal(sample(text, 'peernix_transfers_total', { direction: 'in', outcome: 'ok' }), 1);
    assert.equal(sample(text, 'peernix_transfer_nar_bytes_total', { direction: 'in' }), 10);
    assert.equal(sample(text, 'peernix_transfer_wire_bytes_total', { direction: 'in' }), 4, 'bytes on the wire: fewer when compressed');
    assert.equal(sample(text, 'peernix_lan_today_bytes', { direction: 'in' }), 4321, 'the totals the window shows');
    assert.equal(sample(text, 'peernix_lan_today_paths', { direction: 'out' }), 1);
    assert.equal(sample(text, 'peernix_peer_transitions_total', { transition: 'up' }), 1);
    assert.equal(sample(text, 'peernix_answers_total', { listener: 'substituter', route: 'narinfo', source: 'peer' }), 1);
    assert.equal(sample(text, 'peernix_answers_total', { listener: 'substituter', route: 'narinfo', source: 'miss' }), 1);
    assert.equal(sample(text, 'peernix_answers_total', { listener: 'substituter', route: 'nar', source: 'peer' }), 1);
    assert.equal(sample(text, 'peernix_nars_in_flight', { listener: 'substituter' }), 0);
    assert.equal(sample(text, 'peernix_nar_transfer_duration_seconds_count', { listener: 'substituter', source: 'peer', outcome: 'done' }), 1);
    assert.equal(sample(text, 'peernix_lookup_duration_seconds_count', { listener: 'substituter' }), 2);
    assert.equal(sample(text, 'peernix_peer_fetched_bytes_total', { peer: 'host-a', peer_id: 'a' }), 5000);
    // A second scrape counts only what moved since: nothing twice.
    a.bytesFrom = 5500;
    text = await metrics.text();
    assert.equal(sample(text, 'peernix_peer_fetched_bytes_total', { peer: 'host-a', peer_id: 'a' }), 5500);
    metrics.close();
  });

  it('a NAR request whose client left is no miss: nobody was answered', async (t) => {
    const { metrics } = setup([]);
    const backend: CacheBackend = { narInfo: () => null, nar: async () => null };
    const probed = probeBackend(backend, { listener: 'substituter', metrics, sourceOf: () => 'peer' });
    const left = new AbortController();
    left.abort();
    assert.equal(await probed.nar('x'.repeat(32), Buffer.alloc(32), { signal: left.signal }), null);
    assert.equal(await probed.nar('y'.repeat(32), Buffer.alloc(32), { signal: new AbortController().signal }), null);
    const text = await metrics.text();
    const misses = sample(text, 'peernix_answers_total', { listener: 'substituter', route: 'nar', source: 'miss' });
    t.diagnostic(`NAR misses counted: ${misses} (one real miss, one client that left)`);
    assert.equal(misses, 1);
    metrics.close();
  });

  it('a flood of unverified peers adds no series; proven ones are capped', async (t) => {
    const peers: Peer[] = [];
    for (let i = 0; i < 500; i++) peers.push(peer(`u${i}`, false, 100, 1));
    for (let i = 0; i < 10; i++) peers.push(peer(`v${i}`, true, 7, 0));
    const { metrics } = setup(peers, 4);
    const text = await metrics.text();
    const fetchedSeries = seriesCount(text, 'peernix_peer_fetched_bytes_total');
    const servedSeries = seriesCount(text, 'peernix_peer_served_bytes_total');
    t.diagnostic(`500 unverified + 10 proven peers, cap 4: ${fetchedSeries} fetched-bytes series, ${servedSeries} served-bytes series`);
    assert.equal(fetchedSeries, 5); // 4 proven peers + "other"
    assert.equal(servedSeries, 1); // only unverified ones served to: all "other"
    assert.equal(sample(text, 'peernix_peer_fetched_bytes_total', { peer: 'other' }), 500 * 100 + 6 * 7);
    assert.equal(sample(text, 'peernix_peer_fetched_bytes_total'), 500 * 100 + 10 * 7, 'no byte lost or counted twice');
    assert.equal(sample(text, 'peernix_peers', { state: 'up', verified: 'false' }), 500);
    assert.equal((await promtoolCheck(text)).code, 0);
    metrics.close();
  });

  it('two cores in one process keep separate figures', async () => {
    const one = setup([]);
    const two = setup([]);
    one.events.emit({ type: 'peer-down', peerId: 'a', peerName: 'a', reason: 'x' });
    assert.equal(sample(await one.metrics.text(), 'peernix_peer_transitions_total', { transition: 'down' }), 1);
    assert.equal(sample(await two.metrics.text(), 'peernix_peer_transitions_total', { transition: 'down' }), 0);
    one.metrics.close();
    two.metrics.close();
  });

  it('scope counts: paths judged and requests refused, by scope', async () => {
    const scopes = new PathScopes({ publicKeys: [], exclude: ['*.env'] });
    scopes.scopeOf({ storePath: '/nix/store/0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxn1-a', narHash: 'sha256:x', narSize: 1, references: [], sigs: [] });
    scopes.scopeOf({ storePath: '/nix/store/0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxn2-b.env', narHash: 'sha256:x', narSize: 1, references: [], sigs: [] });
    for (let i = 0; i < 3; i++) scopes.countRefusal('team');
    const metrics = new PeernixMetrics({
      peers: () => [],
      peerViews: () => [],
      sharing: () => true,
      daemonUp: () => true,
      subscribe: () => () => {},
      scopes: () => ({ ...scopes.counts(), ...scopes.rules }),
    });
    const text = await metrics.text();
    assert.equal(sample(text, 'peernix_scope_paths', { scope: 'team' }), 1);
    assert.equal(sample(text, 'peernix_scope_paths', { scope: 'never' }), 1);
    assert.equal(sample(text, 'peernix_scope_refused_total', { scope: 'team' }), 3);
    scopes.countRefusal('never');
    assert.equal(sample(await metrics.text(), 'peernix_scope_refused_total', { scope: 'team' }), 3, 'counted once, not added again per scrape');
    assert.equal(sample(await metrics.text(), 'peernix_scope_refused_total', { scope: 'never' }), 1);
    assert.equal((await promtoolCheck(text)).code, 0);
    metrics.close();
  });
});
