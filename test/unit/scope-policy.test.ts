import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/base/log.ts';
import type { AskerClass } from '../../src/cache/asker-class.ts';
import type { CacheBackend, NarBody } from '../../src/cache/backend.ts';
import { createCacheHandlers } from '../../src/cache/cache-handler.ts';
import { NotFound } from '../../src/cache/http-error.ts';
import { serveRoutes, type RouteHandler } from '../../src/cache/route-table.ts';
import { scopePolicy } from '../../src/cache/scope-policy.ts';
import { shareRoutes } from '../../src/cache/share-routes.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import type { NarInfo } from '../../src/nix/narinfo.ts';
import { generateKeyPair, parseSecretKey, signNarInfo } from '../../src/nix/signing.ts';
import { DEFAULT_EXCLUDE, PathScopes } from '../../src/store/path-scope.ts';
import { get, type Fetched } from '../support/http.ts';

// The share listener's one scope policy over its real route table and cache handlers: to an
// anonymous asker a team or excluded path is, on every route and URL form, byte for byte an absent
// one; a team member gets team paths; nobody gets an excluded one. The asker's class is stood in
// by a header here (the real classifier needs a TLS connection: test/e2e/team-channel.test.ts).

const org = parseSecretKey(generateKeyPair('org-cache-1').secretKeyText);
const NAR = Buffer.from('a NAR of 32 bytes, more or less.');
const narHash = createHash('sha256').update(NAR).digest();
const narHash32 = formatSha256Nix32(narHash).slice('sha256:'.length);

function info(hashPart: string, name: string, signed: boolean): NarInfo {
  const i: NarInfo = {
    storePath: `/nix/store/${hashPart}-${name}`,
    url: `nar/${hashPart}-${narHash32}.nar`,
    compression: 'none',
    fileHash: `sha256:${narHash32}`,
    fileSize: NAR.length,
    narHash: `sha256:${narHash32}`,
    narSize: NAR.length,
    references: [],
    sigs: [],
  };
  if (signed) i.sigs = [signNarInfo(i, org)];
  return i;
}

const PUB = '0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxn1';
const TEAM = '0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxn2';
const NEVER = '0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxn3';
const ABSENT = '0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxn4';
/** A team path that appears between the policy's lookup and the handler's (a build finishing). */
const LATE = '0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxn5';
const store = new Map<string, NarInfo>([
  [PUB, info(PUB, 'hello-2.12', true)],
  [TEAM, info(TEAM, 'my-app-1.0', false)],
  [NEVER, info(NEVER, 'prod.env', true)],
  [LATE, info(LATE, 'just-built-1.0', false)],
]);

const backend: CacheBackend = {
  narInfo: (h) => store.get(h) ?? null,
  nar: async (h): Promise<NarBody | null> => {
    const i = store.get(h);
    if (!i) return null;
    return { narSize: NAR.length, narHash, storePath: i.storePath, hashCheck: false, stream: () => Readable.from([NAR]), release: () => {} };
  },
};

/** Every URL form that names a path, as the share listener takes them. */
function pathUrls(h: string): string[] {
  return [
    `/${h}.narinfo`,
    `/nix-cache/${h}.narinfo`,
    `/nar/${h}-${narHash32}.nar`,
    `/nix-cache/nar/${h}-${narHash32}.nar`,
    `/nix-cache/${h}-${narHash32}.nar`,
    `/nix-cache/${h}.nar`,
  ];
}

describe('the scope policy over the share route table', () => {
  let server: Server;
  let base: string;
  const scopes = new PathScopes({ publicKeys: [org.publicKey.text], exclude: DEFAULT_EXCLUDE });
  const summaryAsker: AskerClass[] = [];
  const marker =
    (body: string): RouteHandler =>
    (_req, res) =>
      void res.end(body);

  before(async () => {
    const cache = createCacheHandlers({ backend, log: silentLogger, priority: 30 });
    const serve = serveRoutes(
      shareRoutes({
        cache,
        identity: marker('identity'),
        summary: (_req, res, m) => {
          summaryAsker.push(m.asker);
          res.end(`summary for ${m.asker}`);
        },
        reachBack: marker('reach-back'),
        realisation: (_req, res, m) => {
          if (m.params[0].startsWith('none')) throw new NotFound();
          res.end('{"realisation":1}');
        },
        // Which output each stand-in realisation names: "pub…" the public path, "team…" the team one.
        realisationPath: async (m) => (m.params[0].startsWith('pub') ? PUB : m.params[0].startsWith('team') ? TEAM : m.params[0].startsWith('odd') ? '' : null),
        metrics: marker('peernix_up 1'),
      }),
      {
        last: true,
        policy: scopePolicy({
          classify: (req) => (req.headers['x-test-asker'] === 'team' ? 'team' : 'anonymous'),
          scopes,
          narInfo: (h) => (h === LATE ? null : backend.narInfo(h)),
        }),
      },
    );
    server = createServer(serve);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const ask = (url: string, asker: AskerClass, headers: Record<string, string> = {}, method = 'GET') =>
    get(base + url, { ...headers, ...(asker === 'team' ? { 'x-test-asker': 'team' } : {}) }, method);
  // What a client could compare: status, body and every header but the date.
  const seen = (r: Fetched) => ({ status: r.status, body: r.body.toString('latin1'), headers: { ...r.headers, date: undefined } });

  for (const asker of ['anonymous', 'team'] as const) {
    it(`${asker}: a public path is served on every URL form, ranges included`, async () => {
      for (const u of pathUrls(PUB)) {
        const r = await ask(u, asker);
        assert.equal(r.status, 200, u);
        if (u.endsWith('.nar')) assert.deepEqual(r.body, NAR, u);
        const part = await ask(u, asker, { Range: 'bytes=2-5' });
        assert.equal(part.status, u.endsWith('.nar') ? 206 : 200, u);
      }
    });
  }

  it('anonymous: a team or excluded path is an absent one, byte for byte, on every URL form, method and range', async () => {
    const before = scopes.counts().refused;
    for (const [i, u] of pathUrls(ABSENT).entries()) {
      for (const method of ['GET', 'HEAD']) {
        for (const headers of [{}, { Range: 'bytes=2-5' }, { Range: 'bytes=0-' }] as Record<string, string>[]) {
          const absent = seen(await ask(u, 'anonymous', headers, method));
          assert.equal(absent.status, 404, u);
          for (const h of [TEAM, NEVER]) assert.deepEqual(seen(await ask(pathUrls(h)[i], 'anonymous', headers, method)), absent, `${h} ${u} ${method}`);
        }
      }
    }
    const after = scopes.counts().refused;
    assert.equal(after.team - before.team, 36);
    assert.equal(after.never - before.never, 36);
  });

  it('team: a team path is served on every URL form; an excluded path is still an absent one', async () => {
    for (const [i, u] of pathUrls(TEAM).entries()) {
      const r = await ask(u, 'team');
      assert.equal(r.status, 200, u);
      assert.deepEqual(seen(await ask(pathUrls(NEVER)[i], 'team')), seen(await ask(pathUrls(ABSENT)[i], 'team')), u);
    }
  });

  it('a path the policy found absent is absent to an anonymous asker even if the handler would find it (fail closed)', async () => {
    for (const [i, u] of pathUrls(ABSENT).entries()) {
      const absent = seen(await ask(u, 'anonymous'));
      assert.equal(absent.status, 404, u);
      assert.deepEqual(seen(await ask(pathUrls(LATE)[i], 'anonymous')), absent, pathUrls(LATE)[i]);
      assert.equal((await ask(pathUrls(LATE)[i], 'team')).status, 200, `a team member still gets ${pathUrls(LATE)[i]}`);
    }
  });

  it('a realisation is judged by the output it names: a team output is an absent realisation to anonymous askers', async () => {
    const absent = seen(await ask('/realisations/none!out.doi', 'anonymous'));
    assert.equal(absent.status, 404);
    assert.equal((await ask('/realisations/pub!out.doi', 'anonymous')).status, 200);
    assert.deepEqual(seen(await ask('/realisations/team!out.doi', 'anonymous')), absent);
    assert.deepEqual(seen(await ask('/realisations/odd!out.doi', 'anonymous')), absent, 'an output that is no hash part: fails closed');
    assert.equal((await ask('/realisations/team!out.doi', 'team')).status, 200);
  });

  it('share metrics are for team members only: to others they are an unknown URL', async () => {
    const anon = await ask('/metrics', 'anonymous');
    assert.deepEqual(seen(anon), seen(await ask('/no-such-thing', 'anonymous')));
    assert.equal(anon.status, 404);
    assert.equal((await ask('/metrics', 'team')).body.toString(), 'peernix_up 1');
  });

  it('the summary route learns who asks, for both paths it is served on; what reveals nothing is served to all', async () => {
    summaryAsker.length = 0;
    assert.equal((await ask('/peernix/summary', 'anonymous')).body.toString(), 'summary for anonymous');
    assert.equal((await ask('/nix-cache/peernix/summary', 'team')).body.toString(), 'summary for team');
    assert.deepEqual(summaryAsker, ['anonymous', 'team']);
    for (const asker of ['anonymous', 'team'] as const) {
      assert.equal((await ask('/nix-cache-info', asker)).status, 200);
      assert.equal((await ask('/peernix/identity', asker)).status, 200);
    }
  });
});
