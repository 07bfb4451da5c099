import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import { askGoHasPath } from '../../src/peers/go-has-path.ts';

// Asking a Go peernix over UDP whether it holds a path: only its exact "yes" counts, silence lasts
// until the lookup gives up, and the socket is gone either way.

const HASH = '0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 32);

/** A UDP responder on loopback answering each question with `reply(question, n)` (null: silence). */
async function responder(reply: (q: string, n: number) => string | null) {
  const sock = dgram.createSocket('udp4');
  const asked: string[] = [];
  sock.on('message', (msg, rinfo) => {
    asked.push(msg.toString('latin1'));
    const r = reply(msg.toString('latin1'), asked.length);
    if (r !== null) sock.send(r, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { port: sock.address().port, asked, close: () => sock.close() };
}

describe('askGoHasPath', () => {
  it('resolves on "yes", with the time it took', async (t) => {
    const r = await responder(() => 'yes');
    try {
      const ms = await askGoHasPath('127.0.0.1', r.port, HASH, AbortSignal.timeout(2000));
      t.diagnostic(`"yes" after ${ms} ms; asked ${JSON.stringify(r.asked)}`);
      assert.equal(typeof ms, 'number');
      assert.deepEqual(r.asked, [`has_path?${HASH}`]);
    } finally {
      r.close();
    }
  });

  it('resolves "not-found" at once on today\'s definitive "not_found" (e74df7c), without asking again', async () => {
    const r = await responder(() => 'not_found');
    try {
      assert.equal(await askGoHasPath('127.0.0.1', r.port, HASH, AbortSignal.timeout(2000)), 'not-found');
      assert.deepEqual(r.asked, [`has_path?${HASH}`]);
    } finally {
      r.close();
    }
  });

  it('asks once more when the first question goes unanswered (a lost datagram)', async (t) => {
    const r = await responder((_q, n) => (n === 2 ? 'yes' : null));
    try {
      const ms = await askGoHasPath('127.0.0.1', r.port, HASH, AbortSignal.timeout(2000));
      t.diagnostic(`"yes" to the second question after ${ms} ms`);
      assert.ok(typeof ms === 'number' && ms >= 200, `${ms}`);
      assert.equal(r.asked.length, 2);
    } finally {
      r.close();
    }
  });

  it('takes nothing but the exact "yes": other replies and silence end as null when the lookup gives up', async () => {
    const r = await responder(() => 'yes please');
    try {
      const t0 = performance.now();
      const ms = await askGoHasPath('127.0.0.1', r.port, HASH, AbortSignal.timeout(400));
      assert.equal(ms, null);
      assert.ok(performance.now() - t0 < 1000);
    } finally {
      r.close();
    }
  });

  it('a closed port (ICMP unreachable) or an already aborted lookup is null at once', async (t) => {
    const r = await responder(() => null);
    const port = r.port;
    r.close();
    const t0 = performance.now();
    assert.equal(await askGoHasPath('127.0.0.1', port, HASH, AbortSignal.timeout(5000)), null);
    const ms = performance.now() - t0;
    t.diagnostic(`closed port: null after ${ms.toFixed(1)} ms`);
    assert.ok(ms < 1000, `${ms}`);
    assert.equal(await askGoHasPath('127.0.0.1', port, HASH, AbortSignal.abort()), null);
  });
});
