import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { DEFAULT_EXCLUDE, PathScopes, type PathScope } from '../../src/store/path-scope.ts';
import { ScopedSummaries } from '../../src/store/scoped-summaries.ts';
import type { SummarySource } from '../../src/store/store-summary.ts';
import { decodeSummary } from '../../src/wire/summary-wire.ts';

// The two summaries: a stranger's admits public paths only, a team member's public and team paths,
// and an excluded path is in neither; rows not admitted are passed over once, not read again.

describe('scoped summaries', () => {
  const rows: { id: number; hashPart: string; path: string }[] = [];
  const scopeByHash = new Map<string, PathScope | null>();
  let reads = 0;
  const source: SummarySource = {
    rowsAfter: (afterId) => {
      const out = rows.filter((r) => r.id > afterId);
      reads += out.length;
      return out;
    },
    count: () => rows.length,
  };
  function add(name: string, scope: PathScope | null): string {
    const hashPart = encodeNix32(randomBytes(20));
    rows.push({ id: rows.length + 1, hashPart, path: `/nix/store/${hashPart}-${name}` });
    scopeByHash.set(hashPart, scope);
    return hashPart;
  }
  const scopes = new PathScopes({ publicKeys: [], exclude: DEFAULT_EXCLUDE });
  const summaries = new ScopedSummaries({ source, scopes, scopeOf: (h) => scopeByHash.get(h) ?? null });
  const has = (team: boolean, h: string) => decodeSummary(summaries.for(team).full()!).filter.test(h);

  test('public paths in both, team paths in the team one only, excluded names in neither, unknown facts not public', () => {
    const pub = add('hello-2.12', 'public');
    const team = add('my-app-1.0', 'team');
    const never = add('prod.env', 'never');
    const unknown = add('tool-1', null);
    summaries.refresh();
    for (const [h, inPublic, inTeam] of [
      [pub, true, true],
      [team, false, true],
      [never, false, false],
      [unknown, false, true],
    ] as const) {
      assert.equal(has(false, h), inPublic, `${h} public`);
      assert.equal(has(true, h), inTeam, `${h} team`);
    }
    assert.notEqual(summaries.public.current().epoch, summaries.team.current().epoch);
  });

  test('new rows reach each summary as a delta of what it admits; passed-over rows are not read again', () => {
    const { epoch, generation } = summaries.public.current();
    const team = add('my-app-2.0', 'team');
    reads = 0;
    assert.equal(summaries.refresh(), true);
    assert.equal(reads, 2, 'each summary read the one new row once');
    assert.deepEqual(summaries.public.deltaSince(epoch, generation)?.hashParts, [], 'nothing new for strangers');
    assert.equal(summaries.public.current().generation, generation, 'the public summary did not change');
    assert.ok(summaries.team.deltaSince(summaries.team.current().epoch, summaries.team.current().generation - 1)?.hashParts.includes(team));
    reads = 0;
    assert.equal(summaries.refresh(), false);
    assert.equal(reads, 0);
  });

  test('after a rule change both are rebuilt under new epochs', () => {
    const before = [summaries.public.current().epoch, summaries.team.current().epoch];
    summaries.rebuild();
    assert.notEqual(summaries.public.current().epoch, before[0]);
    assert.notEqual(summaries.team.current().epoch, before[1]);
  });
});
