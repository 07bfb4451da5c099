import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { listen } from '../../src/cache/http-listener.ts';
import { createLogger } from '../../src/base/log.ts';
import { get } from '../support/http.ts';

// The loopback listener's Host pin: its own loopback names and the address it was bound to are
// answered, any other name (a page that rebound its own name to 127.0.0.1) is refused.

describe('listen with pinLoopbackHost', () => {
  for (const host of ['127.0.0.1', '127.0.0.2']) {
    test(`bound to ${host}: its own URL answers, a foreign Host is refused`, { timeout: 10_000 }, async () => {
      const l = await listen({ host, port: 0, log: createLogger('error'), loopbackOnly: true, pinLoopbackHost: true, handler: (_req, res) => res.end('ok') });
      try {
        assert.equal((await get(`${l.url}/nix-cache-info`)).status, 200, l.url);
        assert.equal((await get(`${l.url}/nix-cache-info`, { Host: `localhost:${l.port}` })).status, 200);
        assert.equal((await get(`${l.url}/nix-cache-info`, { Host: `evil.example:${l.port}` })).status, 403);
      } finally {
        await l.close(0);
      }
    });
  }
});
