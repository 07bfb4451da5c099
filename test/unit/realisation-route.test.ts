import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/base/log.ts';
import { createRealisationHandler } from '../../src/cache/realisation-route.ts';
import { shareRouteOnly } from '../support/share-route.ts';
import { get } from '../support/http.ts';

// The realisation route over real HTTP: both URL forms Nix sends (2.34 percent-encodes the "!", 2.26
// does not), hostile URLs refused before any lookup, the store being down a 503, anything else untouched.

const ID = `sha256:${'0123456789abcdef'.repeat(4)}!out`;

describe('GET /realisations/<id>.doi', () => {
  let server: Server;
  let base: string;
  const asked: string[] = [];
  let answer: () => Promise<string | null> = async () => '{"x":1}';

  before(async () => {
    const handler = createRealisationHandler(async (id) => {
      asked.push(id);
      return answer();
    }, silentLogger);
    // The route as the share listener declares it; every other URL falls through to a 418.
    const route = shareRouteOnly('realisation', handler);
    server = createServer((req, res) => {
      if (!route(req, res)) res.writeHead(418).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('answers both URL forms with the lookup’s JSON, and a 404 when there is none', async () => {
    answer = async () => '{"x":1}';
    for (const u of [`/realisations/${ID.replace('!', '%21')}.doi`, `/realisations/${ID}.doi`]) {
      const r = await get(base + u);
      assert.equal(r.status, 200, u);
      assert.equal(r.body.toString(), '{"x":1}');
      assert.equal(r.headers['content-type'], 'application/json');
    }
    assert.deepEqual(asked.splice(0), [ID, ID]);
    answer = async () => null;
    assert.equal((await get(`${base}/realisations/${ID}.doi`)).status, 404);
    answer = async () => {
      throw new Error('daemon down');
    };
    assert.equal((await get(`${base}/realisations/${ID}.doi`)).status, 503);
    asked.splice(0);
  });

  it('refuses anything but the exact shape of a derivation output id, without a lookup', async () => {
    for (const u of [
      `/realisations/${ID.replace('sha256:', 'md5:')}.doi`,
      '/realisations/sha256:zz!out.doi',
      `/realisations/${ID.replace('!out', '!../../etc')}.doi`,
      `/realisations/${ID.replace('!out', '%2521out')}.doi`,
    ]) {
      assert.equal((await get(base + u)).status, 404, u);
    }
    // Not the route's shape at all: left to the listener's catch-all (a 404 there).
    assert.equal((await get(`${base}/realisations/${ID.slice(0, -1)}.doi.x`)).status, 418);
    // Over the URL limit it is no route's: the listener's last table answers 404 to any such URL.
    assert.equal((await get(`${base}/realisations/${'a'.repeat(600)}.doi`)).status, 418);
    assert.deepEqual(asked, []);
    assert.equal((await get(`${base}/realisations/${ID}.doi`, {}, 'POST')).status, 405);
    assert.equal((await get(`${base}/nix-cache-info`)).status, 418, 'other URLs are left to the next handler');
  });
});
