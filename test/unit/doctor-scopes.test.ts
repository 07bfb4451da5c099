import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ScopeCountsView, Snapshot } from '../../src/base/api.ts';
import type { DoctorFacts } from '../../src/doctor/facts.ts';
import { peernixChecks } from '../../src/doctor/peernix-checks.ts';

// The doctor's word on scoped sharing: the counts, and a warning with the fix when team paths were
// refused (a colleague's Nix not getting what this machine built).

const facts = (scopes: ScopeCountsView | undefined): DoctorFacts =>
  ({
    peernix: {
      snapshot: {
        status: { sharing: true, mdns: false, version: 't', hostName: 'h', substituterUrl: 'http://127.0.0.1:1', scopes },
        peers: [],
      } as unknown as Snapshot,
      error: null,
    },
    shareProbe: { port: 9999, listening: true, error: null },
    reachBack: [],
    system: { files: [] },
  }) as unknown as DoctorFacts;
const check = (s: ScopeCountsView | undefined) => peernixChecks(facts(s)).find((c) => c.id === 'share.scopes');
const counts = (refusedTeam: number, refusedNever: number): ScopeCountsView => ({
  judged: { public: 10, team: 3, never: 1 },
  refused: { public: 0, team: refusedTeam, never: refusedNever },
  publicKeys: ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='],
  exclude: ['*.env'],
});

describe('doctor: what is shared with whom', () => {
  it('is ok with the counts while no team path was refused', () => {
    const c = check(counts(0, 2))!;
    assert.equal(c.status, 'ok');
    assert.match(c.detail, /10 public, 3 team, 1 never.*cache\.nixos\.org-1.*2 requests refused/);
  });
  it('warns, with the fix, when team paths were refused', () => {
    const c = check(counts(5, 0))!;
    assert.equal(c.status, 'warn');
    assert.match(c.detail, /5 requests for team paths/);
    assert.match(c.fix!, /team/);
  });
  it('says nothing for a core that does not report scopes', () => {
    assert.equal(check(undefined), undefined);
  });
});
