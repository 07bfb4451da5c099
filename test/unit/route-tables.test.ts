// Every listener's route table, resolved as a request line would be: each route, a few near misses,
// an unknown path, a wrong method and an over-long URL, and what each route says it reveals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CacheHandlers } from '../../src/cache/cache-handler.ts';
import { MAX_URL_LENGTH, resolveRoute, type Route, type RouteHandler } from '../../src/cache/route-table.ts';
import { shareRoutes } from '../../src/cache/share-routes.ts';
import { substituterRoutes } from '../../src/cache/substituter-routes.ts';
import { loopbackRoutes, type ControlHandlers } from '../../src/control/routes.ts';

const H = '0ajr02r8s687bpci3xmv1yhy0i73ry94';
const N = '03a6lbrg2npwsiggr9img8cbgqc4w7ph36zx828dnfja7d55iz9l';

const marker = (name: string): RouteHandler => Object.assign(() => {}, { marker: name });
const cache: CacheHandlers = {
  cacheInfo: marker('cacheInfo'),
  narInfo: marker('narInfo'),
  goNarInfo: marker('goNarInfo'),
  nar: marker('nar'),
  narByHash: marker('narByHash'),
  notFound: marker('notFound'),
};
const control: ControlHandlers = {
  guard: () => {},
  toDashboard: marker('toDashboard'),
  dashboard: marker('dashboard'),
  asset: marker('asset'),
  snapshot: marker('snapshot'),
  changes: marker('changes'),
  doctor: marker('doctor'),
  sharing: marker('sharing'),
  clearBad: marker('clearBad'),
  network: marker('network'),
  team: marker('team'),
  notice: marker('notice'),
  shareWhy: marker('shareWhy'),
  notFound: marker('controlNotFound'),
  close: () => {},
};
const shareParts = { cache, identity: marker('identity'), summary: marker('summary'), reachBack: marker('reachBack'), realisation: marker('realisation') };

/** "handler status" for a request line: the handler reached, or the error status the listener answers. */
function outcome(routes: Route[], method: string, url: string | undefined): string {
  const r = resolveRoute(routes, method, url);
  if (r.kind === 'route')
    return `${(r.route.handler as RouteHandler & { marker: string }).marker}${r.match.params.length ? ` ${r.match.params.join(' ')}` : ''}`;
  if (r.kind === 'method') return `${r.route.name} ${r.error.status} allow ${r.error.headers.Allow}`;
  return `none ${r.error.status}`;
}

describe('route tables', () => {
  it('the share listener: every route, and what it reveals', () => {
    const table = shareRoutes({ ...shareParts, metrics: marker('metrics') });
    const cases: [string, string, string][] = [
      ['GET', '/metrics', 'metrics'],
      ['GET', '/peernix/identity?nonce=abc', 'identity'],
      ['HEAD', '/peernix/summary?epoch=1&since=2', 'summary'],
      ['GET', '/nix-cache/peernix/summary', 'summary'],
      ['GET', '/peernix/reach-back', 'reachBack'],
      ['GET', '/nix-cache-info', 'cacheInfo'],
      ['GET', `/${H}.narinfo`, `narInfo ${H}`],
      ['GET', `/nix-cache/${H}.narinfo`, `goNarInfo ${H}`],
      ['GET', `/nar/${H}-${N}.nar`, `nar ${H} ${N}`],
      ['GET', `/nix-cache/${H}.nar`, `narByHash ${H}`],
      // Near misses: a query where none is taken, a wrong method, a path one character off.
      ['GET', '/peernix/reach-back?host=10.0.0.9', 'notFound'],
      ['HEAD', '/peernix/reach-back', 'reach-back 405 allow GET'],
      ['POST', '/peernix/summary', 'summary 405 allow GET, HEAD'],
      ['GET', '/peernix/summaryx', 'notFound'],
      ['GET', '/metrics/x', 'notFound'],
      ['GET', '/peernix/', 'notFound'],
      ['POST', '/anything', 'not-found 405 allow GET, HEAD'],
      ['GET', '/' + 'a'.repeat(MAX_URL_LENGTH), 'none 404'],
    ];
    for (const [method, url, want] of cases) assert.equal(outcome(table, method, url), want, `${method} ${url}`);
    const reveals = Object.fromEntries(table.map((r) => [r.name, r.reveals]));
    assert.deepEqual(reveals, {
      metrics: 'figures',
      identity: 'nothing',
      summary: 'summary',
      'summary-prefixed': 'summary',
      'reach-back': 'nothing',
      'cache-info': 'nothing',
      narinfo: 'path',
      'narinfo-go': 'path',
      nar: 'path',
      'nar-go-stateless': 'path',
      'nar-go': 'path',
      realisation: 'path',
      'not-found': 'nothing',
    });
    assert.ok(table.every((r) => r.listener === 'share'));
  });

  it('the share listener serves metrics only when asked to', () => {
    assert.equal(outcome(shareRoutes({ ...shareParts, metrics: null }), 'GET', '/metrics'), 'notFound');
  });

  it('the substituter listener: the cache routes and nothing of the share side', () => {
    const table = substituterRoutes(cache, marker('realisation'));
    const cases: [string, string, string][] = [
      ['GET', '/nix-cache/nix-cache-info', 'cacheInfo'],
      ['HEAD', `/${H}.narinfo`, `narInfo ${H}`],
      ['GET', `/nix-cache/nar/${H}-${N}.nar?x=1`, `nar ${H} ${N}`],
      ['GET', `/nix-cache/${H}.nar`, `narByHash ${H}`],
      ['GET', '/peernix/identity?nonce=abc', 'notFound'],
      ['GET', '/peernix/summary', 'notFound'],
      ['GET', '/peernix/reach-back', 'notFound'],
      ['PUT', `/${H}.narinfo`, 'narinfo 405 allow GET, HEAD'],
      ['GET', `/${H}.narinfo?${'q'.repeat(MAX_URL_LENGTH)}`, 'none 404'],
      ['GET', 'no-slash', 'none 404'],
    ];
    for (const [method, url, want] of cases) assert.equal(outcome(table, method, url), want, `${method} ${url}`);
    assert.ok(table.every((r) => r.listener === 'substituter'));
  });

  it('the loopback routes: metrics and the control API, and no cache path', () => {
    const table = loopbackRoutes({ metrics: marker('metrics'), control });
    const cases: [string, string, string][] = [
      ['GET', '/metrics?x', 'metrics'],
      ['POST', '/peernix', 'toDashboard'],
      ['GET', '/peernix/', 'dashboard'],
      ['GET', '/peernix/assets/app.js', 'asset app.js'],
      ['GET', '/peernix/assets/../x', 'asset ../x'],
      ['GET', '/peernix/api/snapshot', 'snapshot'],
      ['GET', '/peernix/api/changes', 'changes'],
      ['GET', '/peernix/api/doctor', 'doctor'],
      ['POST', '/peernix/api/peer-clear-bad', 'clearBad'],
      ['POST', '/peernix/api/network', 'network'],
      ['POST', '/peernix/api/peer-clear-bad', 'clearBad'],
      ['HEAD', '/peernix/api/snapshot', 'snapshot 405 allow GET'],
      ['GET', '/peernix/api/sharing', 'sharing 405 allow POST'],
      ['DELETE', '/peernix/', 'dashboard 405 allow GET, HEAD'],
      ['GET', '/peernix/api/nope', 'controlNotFound'],
      ['GET', '/peernixx', 'none 404'],
      ['GET', '/nix-cache-info', 'none 404'],
      ['POST', '/metrics', 'metrics 405 allow GET, HEAD'],
    ];
    for (const [method, url, want] of cases) assert.equal(outcome(table, method, url), want, `${method} ${url}`);
    for (const r of table) assert.equal(r.reveals, r.name === 'metrics' ? 'figures' : 'control', r.name);
    assert.ok(table.filter((r) => r.name !== 'metrics').every((r) => r.guard === control.guard && r.errorBody === 'json'));
    // Without a service around the core, the loopback listener serves metrics alone.
    assert.deepEqual(
      loopbackRoutes({ metrics: marker('metrics'), control: null }).map((r) => r.name),
      ['metrics'],
    );
  });
});
