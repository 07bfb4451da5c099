import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { goNarUrl, matchCacheRoute, narUrl } from '../../src/cache/routes.ts';
import { parseRange } from '../../src/cache/range.ts';

const H = '0ajr02r8s687bpci3xmv1yhy0i73ry94';
const N = '03a6lbrg2npwsiggr9img8cbgqc4w7ph36zx828dnfja7d55iz9l';

describe('cache routes', () => {
  it('matches the three resources, with and without the /nix-cache prefix', () => {
    assert.deepEqual(matchCacheRoute('/nix-cache-info'), { kind: 'cache-info' });
    assert.deepEqual(matchCacheRoute('/nix-cache/nix-cache-info'), { kind: 'cache-info' });
    assert.deepEqual(matchCacheRoute(`/${H}.narinfo`), { kind: 'narinfo', hashPart: H });
    // Under /nix-cache/ the narinfo names its NAR the way a Go peernix can follow (routes.ts).
    assert.deepEqual(matchCacheRoute(`/nix-cache/${H}.narinfo`), { kind: 'narinfo', hashPart: H, goForm: true });
    assert.deepEqual(matchCacheRoute(`/${narUrl(H, N)}`), { kind: 'nar', hashPart: H, narHash32: N });
    assert.deepEqual(matchCacheRoute(`/nix-cache/${narUrl(H, N)}?x=1`), { kind: 'nar', hashPart: H, narHash32: N });
  });

  it('serves the Go peernix NAR form <hash>.nar only under /nix-cache/', (t) => {
    assert.equal(goNarUrl(H), `${H}.nar`);
    assert.deepEqual(matchCacheRoute(`/nix-cache/${goNarUrl(H)}`), { kind: 'nar-by-hash', hashPart: H });
    const bad = [`/${H}.nar`, `/nix-cache/${H}.nar.gz`, `/nix-cache/nar/${H}.nar`, `/nix-cache/${H.slice(1)}.nar`, `/nix-cache/${H.toUpperCase()}.nar`, `/nix-cache/../${H}.nar`];
    for (const u of bad) assert.deepEqual(matchCacheRoute(u), { kind: 'none' }, u);
    t.diagnostic(`Go-form NAR URLs refused: ${bad.length}`);
  });

  it('rejects traversal, encodings, wrong lengths and letters outside nix32', () => {
    const bad = [
      '/../etc/passwd',
      `/nix-cache/../${H}.narinfo`,
      `/%2e%2e/${H}.narinfo`,
      `/${H.slice(1)}.narinfo`,
      `/${H}0.narinfo`,
      `/${H.slice(1)}e.narinfo`,
      `/${H.slice(1)}E.narinfo`,
      `/${H.toUpperCase()}.narinfo`,
      `//${H}.narinfo`,
      `/${H}.narinfo/`,
      `/nar/${H}-${N.slice(1)}.nar`,
      `/nar/${H}-${N.slice(1)}o.nar`,
      `/nar/${H}-${N}.nar.xz`,
      `/nar/../${H}-${N}.nar`,
      `/nix-cache/nix-cache/${H}.narinfo`,
      '/' + 'a'.repeat(600),
      '',
      undefined,
    ];
    for (const url of bad) assert.deepEqual(matchCacheRoute(url), { kind: 'none' }, String(url));
  });
});

describe('byte ranges', () => {
  it('parses single ranges, clamps the end, and answers the whole body for odd forms', () => {
    assert.deepEqual(parseRange(undefined, 100), { kind: 'full' });
    assert.deepEqual(parseRange('bytes=10-', 100), { kind: 'partial', start: 10, end: 99 });
    assert.deepEqual(parseRange('bytes=10-19', 100), { kind: 'partial', start: 10, end: 19 });
    assert.deepEqual(parseRange('bytes=10-1000', 100), { kind: 'partial', start: 10, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { kind: 'partial', start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=0-', 100), { kind: 'full' });
    assert.deepEqual(parseRange('bytes=0-5,10-20', 100), { kind: 'full' });
    assert.deepEqual(parseRange('items=0-5', 100), { kind: 'full' });
    assert.deepEqual(parseRange('bytes=20-10', 100), { kind: 'full' });
  });

  it('refuses ranges past the end', () => {
    assert.deepEqual(parseRange('bytes=100-', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=99999999999999-', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-0', 100), { kind: 'unsatisfiable' });
  });
});
