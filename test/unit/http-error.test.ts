// The one error→status map, on a real HTTP server: each typed error's status, headers and body (text
// for Nix and peers, JSON for the control API), what a client never sees of an unexpected error, and
// a response already under way cut rather than ended.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Logger } from '../../src/base/log.ts';
import { BackendUnavailableError } from '../../src/cache/backend.ts';
import {
  BadRequest,
  Busy,
  Forbidden,
  HttpError,
  MethodNotAllowed,
  NotFound,
  RangeNotSatisfiable,
  TooLarge,
  TooOften,
  Unavailable,
  writeError,
  type ErrorBody,
} from '../../src/cache/http-error.ts';
import { GET_HEAD, serveRoutes, type Route } from '../../src/cache/route-table.ts';
import { get } from '../support/http.ts';

const logged: string[] = [];
const log: Logger = {
  debugEnabled: false,
  debug() {},
  info() {},
  warn: (m) => void logged.push(`warn ${m}`),
  error: (m) => void logged.push(`error ${m}`),
  child: () => log,
};

let handler: (req: IncomingMessage, res: ServerResponse) => void = () => {};
const server = createServer((req, res) => handler(req, res));
let base = '';
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

async function answer(error: unknown, body: ErrorBody = 'text', method = 'GET') {
  handler = (_req, res) => writeError(res, error, { body, log });
  const r = await get(`${base}/x`, {}, method);
  return { status: r.status, headers: r.headers, body: r.body.toString() };
}

describe('error map', () => {
  it('each typed error has its status, headers and a one-line text body', async () => {
    const cases: [unknown, number, string, Record<string, string>][] = [
      [new BadRequest('body is not JSON'), 400, 'body is not JSON', {}],
      [new Forbidden('no'), 403, 'no', {}],
      [new NotFound(), 404, 'not found', {}],
      [new MethodNotAllowed(['GET', 'HEAD']), 405, 'method not allowed', { allow: 'GET, HEAD' }],
      [new TooLarge('too big'), 413, 'too big', {}],
      [new RangeNotSatisfiable(100), 416, 'range not satisfiable', { 'content-range': 'bytes */100' }],
      [new TooOften('later', 60), 429, 'later', { 'retry-after': '60' }],
      [new Busy('busy: too many', { retryAfterS: 2, close: true }), 503, 'busy: too many', { 'retry-after': '2', connection: 'close' }],
      [new Unavailable('summary not ready', { retryAfterS: 5 }), 503, 'summary not ready', { 'retry-after': '5' }],
    ];
    for (const [error, status, text, headers] of cases) {
      const r = await answer(error);
      assert.equal(r.status, status, text);
      assert.equal(r.body, `${text}\n`);
      assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
      for (const [k, v] of Object.entries(headers)) assert.equal(r.headers[k], v, `${status} ${k}`);
    }
  });

  it('JSON bodies for the control API, and none on HEAD', async () => {
    const r = await answer(new Forbidden('missing or wrong control token'), 'json');
    assert.equal(r.status, 403);
    assert.deepEqual(JSON.parse(r.body), { error: 'missing or wrong control token' });
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.equal(r.headers['cache-control'], 'no-store');
    const head = await answer(new NotFound(), 'text', 'HEAD');
    assert.equal(head.status, 404);
    assert.equal(head.body, '');
  });

  it('an unexpected error is a 500 that says nothing of itself; the log gets the stack', async () => {
    logged.length = 0;
    const r = await answer(new Error('/secret/path: EACCES'));
    assert.equal(r.status, 500);
    assert.equal(r.body, 'internal error\n');
    assert.equal(logged.length, 1);
    assert.match(logged[0], /^error internal error: Error: \/secret\/path: EACCES/);
  });

  it('a store that is down is a 503 "store unavailable", its reason logged as a warning', async () => {
    logged.length = 0;
    const r = await answer(new BackendUnavailableError('nix-daemon: connection refused'));
    assert.equal(r.status, 503);
    assert.equal(r.body, 'store unavailable\n');
    assert.equal(r.headers['retry-after'], '5');
    assert.deepEqual(logged, ['warn nix-daemon: connection refused']);
  });

  it('a response already under way is cut, never ended cleanly', async () => {
    handler = (_req, res) => {
      // Chunked, as a framed NAR is: ending it would tell the client the body was complete.
      res.writeHead(200, { 'Content-Type': 'application/x-nix-nar' });
      res.write('x'.repeat(100), () => writeError(res, new HttpError('internal', 'internal error')));
    };
    const r = await get(`${base}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.complete, false);
    assert.equal(r.body.length, 100);
  });

  it('a route table runs the guard before the method check, and maps sync and async throws', async () => {
    const order: string[] = [];
    const routes: Route[] = [
      {
        name: 'guarded',
        methods: ['POST'],
        path: '/g',
        listener: 'loopback',
        reveals: 'control',
        errorBody: 'json',
        guard: () => void order.push('guard'),
        handler: () => void order.push('handler'),
      },
      {
        name: 'forbidden',
        methods: GET_HEAD,
        path: '/f',
        listener: 'loopback',
        reveals: 'control',
        errorBody: 'json',
        guard: () => {
          throw new Forbidden('this Host is not allowed');
        },
        handler: () => void order.push('never'),
      },
      {
        name: 'sync',
        methods: GET_HEAD,
        path: '/sync',
        listener: 'share',
        reveals: 'nothing',
        handler: () => {
          throw new NotFound();
        },
      },
      {
        name: 'async',
        methods: GET_HEAD,
        path: '/async',
        listener: 'share',
        reveals: 'nothing',
        handler: async () => {
          await Promise.resolve();
          throw new Busy('busy', { retryAfterS: 1 });
        },
      },
    ];
    const serve = serveRoutes(routes, { log });
    let unmatched = 0;
    handler = (req, res) => {
      if (!serve(req, res)) {
        unmatched++;
        res.writeHead(418).end();
      }
    };
    const wrongMethod = await get(`${base}/g`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'POST');
    assert.deepEqual(JSON.parse(wrongMethod.body.toString()), { error: 'method not allowed' });
    assert.deepEqual(order, ['guard']);
    const refused = await get(`${base}/f`, {}, 'DELETE');
    assert.equal(refused.status, 403, 'the guard refuses before the method is looked at');
    assert.equal((await get(`${base}/sync`)).status, 404);
    const busy = await get(`${base}/async`);
    assert.equal(busy.status, 503);
    assert.equal(busy.body.toString(), 'busy\n');
    assert.equal((await get(`${base}/elsewhere`)).status, 418);
    assert.equal((await get(`${base}/sync?${'x'.repeat(600)}`)).status, 418, 'over-long: no route');
    assert.equal(unmatched, 2);
    assert.deepEqual(order, ['guard']);
    // The last table of a listener answers what matched nothing itself: never a request left hanging.
    const last = serveRoutes(routes, { log, last: true });
    handler = (req, res) => void last(req, res);
    for (const url of ['/elsewhere', `/sync?${'x'.repeat(600)}`]) {
      const r = await get(`${base}${url}`);
      assert.equal(r.status, 404, url);
      assert.equal(r.body.toString(), 'not found\n');
    }
  });
});
