import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiChange, ShareWhyView, TeamView } from '../../src/base/api.ts';
import { generateKeyPair } from '../../src/nix/signing.ts';
import { ControlError, baseUrlFromListen, fetchSnapshot, setSharing } from '../../src/control/client.ts';
import { createControlRoutes, type ControlHandler } from '../../src/control/routes.ts';
import { loadOrCreateToken, readToken } from '../../src/control/token.ts';
import { DemoApi } from '../support/dashboard-demo.ts';
import { snapshotFixture } from '../support/snapshot-fixture.ts';

const T = { timeout: 10_000 };
const TOKEN = '0123456789abcdef'.repeat(4);

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let server: http.Server;
let port: number;
let host: string;
let routes: ControlHandler;
let api: DemoApi;
let tmp: string;

function request(opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers: { host, ...opts.headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const postSharing = (body: unknown, headers: Record<string, string> = {}) =>
  request({
    method: 'POST',
    path: '/peernix/api/sharing',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/** Opens the SSE stream and collects what arrives. */
function openStream(): Promise<{ res: http.IncomingMessage; text: () => string; untilMatch: (re: RegExp) => Promise<string>; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/peernix/api/changes', headers: { host }, agent: false }, (res) => {
      let buf = '';
      const waiters: (() => void)[] = [];
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        for (const w of waiters.splice(0)) w();
      });
      const untilMatch = (re: RegExp) =>
        new Promise<string>((ok, fail) => {
          const timer = setTimeout(() => fail(new Error(`timed out waiting for ${re} in ${JSON.stringify(buf)}`)), 3000);
          const check = () => {
            const m = re.exec(buf);
            if (m) {
              clearTimeout(timer);
              ok(m[0]);
            } else waiters.push(check);
          };
          check();
        });
      resolve({ res, text: () => buf, untilMatch, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-control-'));
  const rendererDir = path.join(tmp, 'renderer');
  fs.mkdirSync(rendererDir);
  fs.writeFileSync(
    path.join(rendererDir, 'index.html'),
    '<!doctype html><html><head><meta charset="utf-8"><script src="app.js" defer></script></head><body></body></html>',
  );
  fs.writeFileSync(path.join(rendererDir, 'app.js'), 'console.log("app")');
  fs.writeFileSync(path.join(rendererDir, 'styles.css'), 'body{}');
  fs.writeFileSync(path.join(rendererDir, 'secret.txt'), 'not an asset');
  fs.writeFileSync(path.join(tmp, 'secret.txt'), 'outside');

  api = new DemoApi(snapshotFixture({ nixConf: 'extra-substituters = http://127.0.0.1:9998\n' }));
  server = http.createServer((req, res) => {
    if (routes(req, res)) return;
    res.writeHead(418, { 'content-type': 'text/plain' }).end('cache routes');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  host = `127.0.0.1:${port}`;
  routes = createControlRoutes({ api, token: TOKEN, rendererDir, allowedHosts: [host, `localhost:${port}`], heartbeatMs: 50 });
});

after(async () => {
  routes?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('control routes', () => {
  test('other paths fall through to the cache routes', T, async () => {
    for (const p of ['/nix-cache-info', '/peernixx', '/abc.narinfo', '/']) {
      const r = await request({ path: p });
      assert.equal(r.status, 418, p);
      assert.equal(r.body, 'cache routes');
    }
  });

  test('snapshot is JSON, with no CORS headers', T, async () => {
    const r = await request({ path: '/peernix/api/snapshot' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(r.body), api.snap);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    for (const h of Object.keys(r.headers)) assert.ok(!h.startsWith('access-control-'), h);
  });

  test('the dashboard page: CSP header, token meta, no inline script', T, async () => {
    const r = await request({ path: '/peernix/' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    const csp = String(r.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.ok(r.body.includes(`<meta name="peernix-token" content="${TOKEN}">`));
    assert.ok(r.body.includes('<base href="/peernix/assets/">'));
    assert.doesNotMatch(r.body, /<script>(?!<\/script>)/, 'no inline script');
    assert.equal(r.headers['cache-control'], 'no-store');
    const redirect = await request({ path: '/peernix' });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, '/peernix/');
  });

  test('assets: only the built files, nothing else and no traversal', T, async () => {
    const js = await request({ path: '/peernix/assets/app.js' });
    assert.equal(js.status, 200);
    assert.equal(js.body, 'console.log("app")');
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    assert.match(String((await request({ path: '/peernix/assets/styles.css' })).headers['content-type']), /^text\/css/);
    for (const p of [
      '/peernix/assets/../secret.txt',
      '/peernix/assets/../../secret.txt',
      '/peernix/assets/%2e%2e/secret.txt',
      '/peernix/assets/..%2fsecret.txt',
      '/peernix/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/peernix/assets/..\\secret.txt',
      '/peernix/assets/secret.txt',
      '/peernix/assets/index.html',
      '/peernix/assets/',
      '/peernix/assets/app.js/',
      '/peernix/assets//etc/passwd',
      '/peernix/assets/favicon.png', // allowed name, but not built here
    ]) {
      const r = await request({ path: p });
      assert.equal(r.status, 404, p);
      assert.doesNotMatch(r.body, /outside|not an asset/, p);
    }
  });

  test('a foreign Host header is refused everywhere (DNS rebinding)', T, async () => {
    for (const [p, method] of [
      ['/peernix/', 'GET'],
      ['/peernix/api/snapshot', 'GET'],
      ['/peernix/api/changes', 'GET'],
      ['/peernix/assets/app.js', 'GET'],
    ] as const) {
      const r = await request({ path: p, method, headers: { host: `evil.example:${port}` } });
      assert.equal(r.status, 403, p);
      assert.doesNotMatch(r.body, new RegExp(TOKEN));
    }
    const post = await postSharing({ enabled: false }, { host: `attacker.test:${port}` });
    assert.equal(post.status, 403);
    assert.equal((await request({ path: '/peernix/api/snapshot', headers: { host: `localhost:${port}` } })).status, 200);
    assert.deepEqual(api.sharingCalls, []);
  });

  test('POST sharing needs the bearer token', T, async () => {
    const none = await request({ method: 'POST', path: '/peernix/api/sharing', headers: { 'content-type': 'application/json' }, body: '{"enabled":false}' });
    assert.equal(none.status, 403);
    assert.equal((await postSharing({ enabled: false }, { authorization: `Bearer ${'f'.repeat(64)}` })).status, 403);
    assert.equal((await postSharing({ enabled: false }, { authorization: `Bearer ${TOKEN.slice(0, 32)}` })).status, 403);
    assert.equal((await postSharing({ enabled: false }, { authorization: TOKEN })).status, 403);
    assert.deepEqual(api.sharingCalls, []);
  });

  test('POST sharing needs application/json and no foreign Origin', T, async () => {
    assert.equal((await postSharing({ enabled: false }, { 'content-type': 'text/plain' })).status, 403);
    assert.equal((await postSharing({ enabled: false }, { 'content-type': 'application/x-www-form-urlencoded' })).status, 403);
    assert.equal((await postSharing({ enabled: false }, { origin: 'https://evil.example' })).status, 403);
    assert.equal((await postSharing({ enabled: false }, { origin: 'null' })).status, 403);
    assert.equal((await postSharing({ enabled: false }, { origin: `http://localhost:${port}` })).status, 403, 'another allowed host is still another origin');
    assert.deepEqual(api.sharingCalls, []);
  });

  test('POST sharing with the token calls setSharing', T, async () => {
    const off = await postSharing({ enabled: false });
    assert.equal(off.status, 200);
    assert.deepEqual(JSON.parse(off.body), { sharing: false });
    const on = await postSharing({ enabled: true }, { origin: `http://${host}`, 'content-type': 'application/json; charset=utf-8' });
    assert.equal(on.status, 200);
    assert.deepEqual(api.sharingCalls, [false, true]);
    for (const h of Object.keys(on.headers)) assert.ok(!h.startsWith('access-control-'), h);
  });

  test('POST sharing validates the body', T, async () => {
    const before = api.sharingCalls.length;
    for (const body of ['{"enabled":"no"}', '{}', 'nope', '{"enabled":true,"x":1}', '[true]']) {
      assert.equal((await postSharing(body)).status, 400, body);
    }
    assert.equal((await postSharing('{"enabled":true,"pad":"' + 'x'.repeat(5000) + '"}')).status, 413);
    assert.equal(api.sharingCalls.length, before);
  });

  test('POST network: token required, one verb with an id, errors as 409 with the reason', T, async () => {
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      request({
        method: 'POST',
        path: '/peernix/api/network',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
        body: JSON.stringify(body),
      });
    const current = { id: 'subnet 10.77.0.0/24', name: '10.77.0.0/24 (no router)' };
    const saved = api.snap.status;
    api.snap.status = { ...api.snap.status, network: { current, trusted: false, trustAll: false, trustedNetworks: [], ask: true } };
    assert.equal((await post({ trust: 'current' }, { authorization: `Bearer ${'f'.repeat(64)}` })).status, 403);
    for (const bad of [{}, { trust: 1 }, { trust: 'a', dismiss: 'b' }, { share: 'x' }, ['trust']])
      assert.equal((await post(bad)).status, 400, JSON.stringify(bad));
    assert.deepEqual(api.networkCalls, [], 'nothing refused reached the API');
    const ok = await post({ trust: 'current' });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body) as { trusted: boolean }).trusted, true);
    assert.deepEqual(api.networkCalls, [{ trust: 'current' }]);
    api.snap.status = saved;
    const refused = await post({ forget: 'current' });
    assert.equal(refused.status, 409);
    assert.match(refused.body, /no network in this snapshot/);
    api.networkCalls.length = 0;
  });

  test('POST team and notice: token required, one verb, the roster’s refusal as 409 with its reason', T, async () => {
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
        body: JSON.stringify(body),
      });
    const key = generateKeyPair('colleague-1').publicKeyText;
    assert.equal((await post('/peernix/api/team', { add: key }, { authorization: `Bearer ${'f'.repeat(64)}` })).status, 403);
    assert.equal((await post('/peernix/api/team', { add: key }, { origin: 'http://evil.example' })).status, 403);
    for (const bad of [{}, { add: 1 }, { add: key, remove: key }, { invite: key }, ['add'], { add: 'x'.repeat(301) }])
      assert.equal((await post('/peernix/api/team', bad)).status, 400, JSON.stringify(bad));
    assert.deepEqual(api.teamCalls, [], 'nothing refused reached the API');
    const ok = await post('/peernix/api/team', { add: key });
    assert.equal(ok.status, 200);
    assert.ok((JSON.parse(ok.body) as TeamView).members.some((m) => m.publicKey === key));
    const refused = await post('/peernix/api/team', { add: 'colleague-1:AAAA' });
    assert.equal(refused.status, 409);
    assert.match(refused.body, /not a public key/);
    assert.equal((await post('/peernix/api/notice', { seen: 'other' })).status, 400);
    assert.equal((await post('/peernix/api/notice', { seen: 'scopes' }, { authorization: 'Bearer 00' })).status, 403);
    assert.equal((await post('/peernix/api/notice', { seen: 'scopes' })).status, 200);
    assert.deepEqual(api.noticesSeen, ['scopes']);
  });

  test('GET share-why: the API’s answer, 404 for a path not held, 400 for no path or a bad one', T, async () => {
    const hash = '0'.repeat(32);
    api.shareWhy = async (p: string) => {
      if (p.startsWith('bad')) throw new Error('not a store path or hash part: bad');
      return p === hash ? { storePath: `/nix/store/${hash}-x`, scope: 'team', why: 'unsigned', servedTo: 'team members only' } : null;
    };
    const ok = await request({ path: `/peernix/api/share-why?path=${hash}` });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body) as ShareWhyView).scope, 'team');
    assert.equal((await request({ path: `/peernix/api/share-why?path=${'1'.repeat(32)}` })).status, 404);
    assert.equal((await request({ path: '/peernix/api/share-why' })).status, 400);
    const bad = await request({ path: '/peernix/api/share-why?path=bad' });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /not a store path/);
    assert.equal((await request({ path: `/peernix/api/share-why?path=${hash}`, headers: { host: 'evil.example' } })).status, 403);
  });

  test('wrong methods are refused', T, async () => {
    assert.equal((await request({ path: '/peernix/api/sharing' })).status, 405);
    assert.equal((await request({ method: 'POST', path: '/peernix/api/snapshot', body: '' })).status, 405);
    assert.equal((await request({ method: 'DELETE', path: '/peernix/' })).status, 405);
    assert.equal((await request({ path: '/peernix/api/nope' })).status, 404);
  });

  test('SSE delivers changes, heartbeats, and ends on close()', T, async () => {
    const stream = await openStream();
    assert.equal(stream.res.statusCode, 200);
    assert.match(String(stream.res.headers['content-type']), /^text\/event-stream/);
    await stream.untilMatch(/: connected\n\n/);
    const listenersBefore = api.listeners.size;
    assert.ok(listenersBefore >= 1);

    const change: ApiChange = { topic: 'event', event: { type: 'peer-up', id: 7, time: 1, peerId: 'p', peerName: 'bob <b>' } };
    api.emit(change);
    const line = await stream.untilMatch(/data: .*\n\n/);
    assert.deepEqual(JSON.parse(line.slice('data: '.length)), change);
    api.emit({ topic: 'peers' });
    await stream.untilMatch(/data: \{"topic":"peers"\}\n\n/);
    await stream.untilMatch(/: ping\n\n/);

    const ended = new Promise<void>((resolve) => stream.res.on('end', resolve));
    routes.close();
    await ended;
    assert.equal(api.listeners.size, listenersBefore - 1, 'unsubscribed');
    const refused = await request({ path: '/peernix/api/changes' });
    assert.equal(refused.status, 503);
  });

  test('a client that goes away is unsubscribed', T, async () => {
    const fresh = createControlRoutes({ api, token: TOKEN, rendererDir: tmp, allowedHosts: [host] });
    const old = routes;
    routes = fresh;
    try {
      const before = api.listeners.size;
      const stream = await openStream();
      await stream.untilMatch(/: connected/);
      assert.equal(api.listeners.size, before + 1);
      stream.close();
      for (let i = 0; i < 50 && api.listeners.size !== before; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(api.listeners.size, before);
    } finally {
      fresh.close();
      routes = old;
    }
  });
});

describe('control client (fetch)', () => {
  test('fetchSnapshot and setSharing against the routes', T, async () => {
    const fresh = createControlRoutes({ api, token: TOKEN, rendererDir: tmp, allowedHosts: [host] });
    const old = routes;
    routes = fresh;
    try {
      const base = `http://${host}`;
      assert.deepEqual(await fetchSnapshot(base), api.snap);
      assert.equal(await setSharing(base, TOKEN, false), false);
      assert.equal(api.sharingCalls.at(-1), false);
      await assert.rejects(setSharing(base, 'e'.repeat(64), true), (e: unknown) => e instanceof ControlError && e.status === 403 && /refused/.test(e.message));
    } finally {
      fresh.close();
      routes = old;
    }
  });

  test('a Peernix that is not running gives a sentence, not a stack', T, async () => {
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const freePort = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    await assert.rejects(fetchSnapshot(`http://127.0.0.1:${freePort}`), /Peernix is not running at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)/);
  });

  test('baseUrlFromListen', T, () => {
    assert.equal(baseUrlFromListen('127.0.0.1:9998'), 'http://127.0.0.1:9998');
    assert.equal(baseUrlFromListen('[::1]:9998'), 'http://[::1]:9998');
    assert.throws(() => baseUrlFromListen('nope'), ControlError);
  });
});

describe('control token', () => {
  test('created once: 32 random bytes as hex, mode 0600, reused', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-token-'));
    try {
      assert.equal(await readToken(dir), null);
      const a = await loadOrCreateToken(dir);
      assert.match(a, /^[0-9a-f]{64}$/);
      if (process.platform !== 'win32') assert.equal(fs.statSync(path.join(dir, 'control-token')).mode & 0o777, 0o600);
      assert.equal(await loadOrCreateToken(dir), a);
      assert.equal(await readToken(dir), a);
      assert.deepEqual(fs.readdirSync(dir), ['control-token'], 'no temp files left behind');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('concurrent starts agree on one token', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-token-'));
    try {
      const tokens = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateToken(dir)));
      assert.equal(new Set(tokens).size, 1);
      assert.deepEqual(fs.readdirSync(dir), ['control-token']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a damaged token file is replaced; loose permissions are tightened', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-token-'));
    try {
      fs.writeFileSync(path.join(dir, 'control-token'), 'garbage');
      fs.writeFileSync(path.join(dir, 'settings.json'), '{}');
      const t = await loadOrCreateToken(dir);
      assert.match(t, /^[0-9a-f]{64}$/);
      assert.equal(fs.readFileSync(path.join(dir, 'settings.json'), 'utf8'), '{}');
      if (process.platform !== 'win32') {
        fs.chmodSync(path.join(dir, 'control-token'), 0o644);
        assert.equal(await loadOrCreateToken(dir), t);
        assert.equal(fs.statSync(path.join(dir, 'control-token')).mode & 0o777, 0o600);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('control routes: clearing a bad peer', () => {
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    request({
      method: 'POST',
      path: '/peernix/api/peer-clear-bad',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
      body: JSON.stringify(body),
    });

  test('needs the token, takes {"id"} of a known peer, and answers whether it was marked', T, async () => {
    const peer = {
      id: 'bad-peer',
      name: 'liar',
      url: 'http://10.0.0.9:9999',
      address: '10.0.0.9',
      port: 9999,
      platform: null,
      publicKey: null,
      verified: true,
      trusted: false,
      summary: null,
      rttMs: 1,
      state: 'suspect' as const,
      source: 'static' as const,
      bytesFrom: 0,
      bytesTo: 0,
      lastSeen: 1,
      bad: { since: 1, until: 2, reason: 'served bytes that do not match the NarHash' },
    };
    api.snap.peers = [peer, { ...peer, id: 'good-peer', name: 'honest', bad: null }];
    try {
      assert.equal((await post({ id: 'bad-peer' }, { authorization: 'Bearer nope' })).status, 403);
      assert.equal((await post({ id: 'bad-peer', extra: 1 })).status, 400);
      assert.equal((await post({ id: 42 })).status, 400);
      assert.equal((await post({ id: 'stranger' })).status, 404);
      assert.deepEqual(api.clearedBad, []);
      const r = await post({ id: 'bad-peer' });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { id: 'bad-peer', cleared: true });
      assert.deepEqual(JSON.parse((await post({ id: 'good-peer' })).body), { id: 'good-peer', cleared: false });
      assert.deepEqual(api.clearedBad, ['bad-peer', 'good-peer']);
      assert.equal((await request({ path: '/peernix/api/peer-clear-bad' })).status, 405);
    } finally {
      api.snap.peers = [];
    }
  });
});
