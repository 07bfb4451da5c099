import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ScopeCountsView } from '../../src/base/api.ts';
import { EventLog } from '../../src/base/events.ts';
import { scopeChecks } from '../../src/doctor/scope-checks.ts';
import type { DoctorFacts } from '../../src/doctor/facts.ts';
import { PeernixMetrics } from '../../src/metrics/metrics.ts';
import { DEFAULT_EXCLUDE, DEFAULT_PUBLIC_KEYS, PathScopes } from '../../src/store/path-scope.ts';
import { snapshotFixture } from '../support/snapshot-fixture.ts';
import { promtoolCheck, sample, seriesCount } from '../support/promtool.ts';

// Scope counts and refusals by scope as metrics and the doctor report them, read from the scope
// service's own counters: a fixed number of series however many paths or refusals, and the doctor's
// fix when peers ask for team paths of a machine with no team.

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
      scopes: () => scopes.counts(),
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

describe('the doctor on scopes', () => {
  const scopesView = (refusedTeam: number): ScopeCountsView => ({
    judged: { public: 5, team: 3, never: 1 },
    refused: { public: 0, team: refusedTeam, never: 2 },
    publicKeys: [...DEFAULT_PUBLIC_KEYS],
    exclude: [...DEFAULT_EXCLUDE],
  });
  const doctorFacts = (status: Parameters<typeof snapshotFixture>[0]) => ({ peernix: { snapshot: snapshotFixture(status), error: null } }) as DoctorFacts;
  const team = (n: number) => ({
    members: Array.from({ length: n }, (_, i) => ({ name: `m${i}`, publicKey: `m${i}:x`, fingerprint: 'f', peerName: null })),
    max: 256,
    saved: true,
    candidates: [],
  });

  it('reports the counts', () => {
    const [c] = scopeChecks(doctorFacts({ scopes: scopesView(0), team: team(1) }));
    assert.equal(c.status, 'ok');
    assert.match(c.detail, /5 public .*3 team .*1 never.*refused by scope: 2 \(team 0, never 2\).*Team: 1 member.*cache\.nixos\.org-1/);
  });

  it('warns, with the fix, when peers asked for team paths and there is no team', () => {
    const [c] = scopeChecks(doctorFacts({ scopes: scopesView(4), team: team(0) }));
    assert.equal(c.status, 'warn');
    assert.match(c.fix ?? '', /peernix team add/);
  });

  it('says nothing about a Peernix too old to have scopes', () => {
    assert.deepEqual(scopeChecks(doctorFacts({})), []);
  });
});
