import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CacheHandlers } from '../../src/cache/cache-handler.ts';
import { resolveRoute, type Route, type RouteHandler } from '../../src/cache/route-table.ts';
import { goNarUrl, narUrl } from '../../src/cache/routes.ts';
import { shareRoutes } from '../../src/cache/share-routes.ts';
import { substituterRoutes } from '../../src/cache/substituter-routes.ts';
import { parseRange } from '../../src/cache/range.ts';

const H = '0ajr02r8s687bpci3xmv1yhy0i73ry94';
const N = '03a6lbrg2npwsiggr9img8cbgqc4w7ph36zx828dnfja7d55iz9l';

// The cache routes as both listeners declare them: each handler is a marker whose name the test reads back.
const marker = (name: string): RouteHandler => Object.assign(() => {}, { marker: name });
const cache: CacheHandlers = {
  cacheInfo: marker('cacheInfo'),
  narInfo: marker('narInfo'),
  goNarInfo: marker('goNarInfo'),
  nar: marker('nar'),
  narByHash: marker('narByHash'),
  notFound: marker('notFound'),
};
const subst = substituterRoutes(cache, marker('realisation'));
const share = shareRoutes({
  cache,
  identity: marker('identity'),
  summary: marker('summary'),
  reachBack: marker('reachBack'),
  realisation: marker('realisation'),
  metrics: null,
});

/** Which handler a GET of this URL reaches, with what it captured; 'none' when no route matches. */
function resolve(routes: Route[], url: string | undefined): { handler: string; params: string[] } | { handler: 'none' } {
  const r = resolveRoute(routes, 'GET', url);
  if (r.kind !== 'route') return { handler: 'none' };
  return { handler: (r.route.handler as RouteHandler & { marker: string }).marker, params: r.match.params };
}

describe('cache routes', () => {
  it('matches the three resources, with and without the /nix-cache prefix, on both listeners', () => {
    for (const routes of [subst, share]) {
      assert.deepEqual(resolve(routes, '/nix-cache-info'), { handler: 'cacheInfo', params: [] });
      assert.deepEqual(resolve(routes, '/nix-cache/nix-cache-info'), { handler: 'cacheInfo', params: [] });
      assert.deepEqual(resolve(routes, `/${H}.narinfo`), { handler: 'narInfo', params: [H] });
      // Under /nix-cache/ the narinfo names its NAR the way a Go peernix can follow (routes.ts).
      assert.deepEqual(resolve(routes, `/nix-cache/${H}.narinfo`), { handler: 'goNarInfo', params: [H] });
      assert.deepEqual(resolve(routes, `/${narUrl(H, N)}`), { handler: 'nar', params: [H, N] });
      assert.deepEqual(resolve(routes, `/nix-cache/${narUrl(H, N)}?x=1`), { handler: 'nar', params: [H, N] });
    }
  });

  it('names NARs for Go hosts in the stateless form <hash>-<narhash>.nar and serves it under /nix-cache/', () => {
    // Today's Go peernix (e74df7c) follows this form after its restart; <hash>.nar only while it remembers.
    assert.equal(goNarUrl(H, N), `${H}-${N}.nar`);
    for (const routes of [subst, share]) {
      assert.deepEqual(resolve(routes, `/nix-cache/${goNarUrl(H, N)}`), { handler: 'nar', params: [H, N] });
      assert.deepEqual(resolve(routes, `/${goNarUrl(H, N)}`), { handler: 'notFound', params: [] });
      assert.deepEqual(resolve(routes, `/nix-cache/${H}-${N.slice(1)}.nar`), { handler: 'notFound', params: [] });
    }
  });

  it('serves the older Go peernix NAR form <hash>.nar only under /nix-cache/', () => {
    assert.deepEqual(resolve(subst, `/nix-cache/${H}.nar`), { handler: 'narByHash', params: [H] });
    const bad = [
      `/${H}.nar`,
      `/nix-cache/${H}.nar.gz`,
      `/nix-cache/nar/${H}.nar`,
      `/nix-cache/${H.slice(1)}.nar`,
      `/nix-cache/${H.toUpperCase()}.nar`,
      `/nix-cache/../${H}.nar`,
    ];
    for (const u of bad) assert.deepEqual(resolve(subst, u), { handler: 'notFound', params: [] }, u);
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
    ];
    for (const url of bad) assert.deepEqual(resolve(subst, url), { handler: 'notFound', params: [] }, url);
    // Not even the catch-all takes these: the listener answers 404 without running any handler.
    for (const url of ['/' + 'a'.repeat(600), `/${H}.narinfo?${'x'.repeat(600)}`, '', undefined, `http://127.0.0.1/${H}.narinfo`]) {
      assert.deepEqual(resolve(subst, url), { handler: 'none' }, String(url));
    }
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
