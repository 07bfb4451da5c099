import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import { askGoHasPath } from '../../src/peers/go-has-path.ts';
import { waitFor } from '../support/wait.ts';

// Asking a Go peernix over UDP whether it holds a path: only its exact "yes" counts, silence lasts
// until the lookup gives up, and the socket is gone either way.

const HASH = '0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 32);

/** A UDP responder on loopback answering each question with `reply(question, n)` (null: silence). */
async function responder(reply: (q: string, n: number) => string | null) {
  const sock = dgram.createSocket('udp4');
  const asked: string[] = [];
  let from: dgram.RemoteInfo | null = null;
  sock.on('message', (msg, rinfo) => {
    from = rinfo;
    asked.push(msg.toString('latin1'));
    const r = reply(msg.toString('latin1'), asked.length);
    if (r !== null) sock.send(r, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  /** Sends `text` to whoever asked last. */
  const say = (text: string) => sock.send(text, from!.port, from!.address);
  return { port: sock.address().port, asked, say, close: () => sock.close() };
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
      assert.equal(typeof ms, 'number', `${ms}`);
      assert.equal(r.asked.length, 2);
    } finally {
      r.close();
    }
  });

  it('takes nothing but the exact "yes": another reply leaves the question open', async () => {
    // Loopback datagrams arrive in order: a "yes please" taken for a hit would resolve with a time
    // before the "not_found" behind it could be read.
    const r = await responder(() => null);
    try {
      const asking = askGoHasPath('127.0.0.1', r.port, HASH, AbortSignal.timeout(60_000));
      await waitFor('the question', async () => r.asked.length >= 1, 60_000);
      r.say('yes please');
      r.say('not_found');
      assert.equal(await asking, 'not-found');
    } finally {
      r.close();
    }
  });

  it('silence ends as null when the lookup gives up', async () => {
    const r = await responder(() => null);
    try {
      const lookup = new AbortController();
      const asking = askGoHasPath('127.0.0.1', r.port, HASH, lookup.signal);
      await waitFor('the question', async () => r.asked.length >= 1, 60_000);
      lookup.abort();
      assert.equal(await asking, null);
    } finally {
      r.close();
    }
  });

  it('a closed port (ICMP unreachable) or an already aborted lookup is null at once', async () => {
    const r = await responder(() => null);
    const port = r.port;
    r.close();
    // Null before the lookup gives up: the unreachable port ended it, not the signal.
    const lookup = new AbortController();
    const giveUp = setTimeout(() => lookup.abort(), 60_000);
    try {
      assert.equal(await askGoHasPath('127.0.0.1', port, HASH, lookup.signal), null);
      assert.equal(lookup.signal.aborted, false, 'ended by the port, not by giving up');
    } finally {
      clearTimeout(giveUp);
    }
    assert.equal(await askGoHasPath('127.0.0.1', port, HASH, AbortSignal.abort()), null);
  });
});
