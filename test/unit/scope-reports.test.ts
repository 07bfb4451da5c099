import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventLog } from '../../src/base/events.ts';
import { PeernixMetrics } from '../../src/metrics/metrics.ts';
import { DEFAULT_EXCLUDE, DEFAULT_PUBLIC_KEYS, PathScopes } from '../../src/store/path-scope.ts';
import { promtoolCheck, sample, seriesCount } from '../support/promtool.ts';

// Scope counts and refusals by scope as metrics report them, read from the scope service's own
// counters: a fixed number of series however many paths or refusals, nothing counted twice.

const storePath = (name: string) => `/nix/store/${'a'.repeat(32)}-${name}`;
const facts = (storePathName: string, sigs: string[] = []) => ({
  storePath: storePath(storePathName),
  narHash: `sha256:${'0'.repeat(52)}`,
  narSize: 1,
  references: [],
  sigs,
});

describe('scope counts in metrics', () => {
  it('paths by scope and refusals by scope: three series each, promtool accepts them', async (t) => {
    const scopes = new PathScopes({ publicKeys: DEFAULT_PUBLIC_KEYS, exclude: DEFAULT_EXCLUDE });
    const metrics = new PeernixMetrics({
      peers: () => [],
      peerViews: () => [],
      sharing: () => true,
      daemonUp: () => true,
      subscribe: (l) => new EventLog().subscribe(l),
      scopes: () => ({ ...scopes.counts(), ...scopes.rules }),
    });
    t.after(() => metrics.close());
    scopes.scopeOf(facts('hello-2.12'));
    scopes.scopeOf(facts('deploy.env'));
    for (let i = 0; i < 1000; i++) scopes.countRefusal('team');
    scopes.countRefusal('never');
    const text = await metrics.text();
    assert.equal(sample(text, 'peernix_scope_paths', { scope: 'team' }), 1);
    assert.equal(sample(text, 'peernix_scope_paths', { scope: 'never' }), 1);
    assert.equal(sample(text, 'peernix_scope_paths', { scope: 'public' }), 0);
    assert.equal(sample(text, 'peernix_scope_refused_total', { scope: 'team' }), 1000);
    assert.equal(sample(text, 'peernix_scope_refused_total', { scope: 'never' }), 1);
    assert.equal(seriesCount(text, 'peernix_scope_refused_total'), 3);
    assert.equal((await metrics.text()).includes('peernix_scope_refused_total{scope="team"} 1000'), true, 'a second scrape counts nothing twice');
    const check = await promtoolCheck(text);
    assert.equal(check.code, 0, check.output);
  });
});
