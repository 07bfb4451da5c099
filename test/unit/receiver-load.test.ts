import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { PeerClient } from '../../src/peers/peer-client.ts';
import { LINK_RATE_HEADER, parseLinkRate, parseReceiverHeld, ReceiverLoad, RECEIVER_HELD_HEADER, watchPace } from '../../src/wire/receiver-load.ts';

// A Peernix tells the peer it fetches NARs from whether its own side (its consumer: Nix, the disk,
// a CPU shared with both) held the peer's bytes back, so the peer doesn't take a busy receiver for a
// slow link and compress for nothing. Measured on real sockets: a slow consumer reads as held, a
// slow sender as not.

const SIZE = 8 * 1024 * 1024;

/** A peer that serves SIZE bytes, at `bytesPerSec` (Infinity: as fast as the socket takes them), and notes each request's headers. */
async function peer(bytesPerSec: number, seen: IncomingHttpHeaders[]): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-length': String(SIZE) });
    const piece = Buffer.alloc(256 * 1024, 7);
    let sent = 0;
    const more = () => {
      while (sent < SIZE) {
        sent += piece.length;
        const ok = res.write(piece);
        if (sent >= SIZE) return res.end();
        if (bytesPerSec !== Infinity) return void setTimeout(more, (piece.length / bytesPerSec) * 1000);
        if (!ok) return void res.once('drain', more);
      }
    };
    more();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/nar/x.nar` };
}

/** Takes what it is given at `bytesPerSec` (Infinity: at once). */
function consumer(bytesPerSec: number): Writable {
  return new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _e, cb) {
      if (bytesPerSec === Infinity) return cb();
      setTimeout(cb, (chunk.length / bytesPerSec) * 1000);
    },
  });
}

async function fetchTwice(peerRate: number, consumerRate: number, header = RECEIVER_HELD_HEADER) {
  const seen: IncomingHttpHeaders[] = [];
  const { server, url } = await peer(peerRate, seen);
  const client = new PeerClient({}, 'test', {}, { frames: true });
  try {
    for (let i = 0; i < 2; i++) await pipeline(await client.openNar(url, { offset: 0, expectedSize: SIZE }), consumer(consumerRate));
    return seen.map((h) => h[header]);
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

describe('receiver load', () => {
  it('a consumer slower than the peer reads as held; the next request says so', async (t) => {
    const hints = await fetchTwice(Infinity, 20e6);
    t.diagnostic(`fast peer, consumer at 20 MB/s: hints sent ${JSON.stringify(hints)}`);
    assert.equal(hints[0], undefined, 'nothing is known before the first transfer');
    assert.ok(Number(hints[1]) >= 0.6, `held share ${hints[1]}`);
  });

  it('a peer slower than the consumer reads as not held', async (t) => {
    const hints = await fetchTwice(20e6, Infinity);
    t.diagnostic(`peer at 20 MB/s, fast consumer: hints sent ${JSON.stringify(hints)}`);
    assert.equal(hints[0], undefined);
    assert.ok(Number(hints[1]) <= 0.1, `held share ${hints[1]}`);
  });

  it('counts transfers long enough to tell, weighted by their length, the older fading', (t) => {
    const load = new ReceiverLoad();
    load.note('a', { heldMs: 90, spanMs: 100 });
    assert.equal(load.hint('a'), undefined, 'too short to tell');
    load.note('a', { heldMs: 800, spanMs: 1000 });
    assert.equal(load.hint('a'), '0.80');
    load.note('a', { heldMs: 0, spanMs: 3000 });
    const mixed = Number(load.hint('a'));
    t.diagnostic(`1 s held 80 %, then 3 s held 0 %: hint ${mixed}`);
    assert.ok(mixed > 0.1 && mixed < 0.3, `${mixed}`);
    load.note('a', { heldMs: 0, spanMs: 12_000 });
    assert.equal(load.hint('a'), '0.00', 'a long transfer outweighs what came well before it');
    assert.equal(load.hint('b'), undefined);
  });

  it('a peer slower than the consumer: the next request states the link rate it measured', async (t) => {
    const rates = await fetchTwice(20e6, Infinity, LINK_RATE_HEADER);
    t.diagnostic(`peer at 20 MB/s: link rates sent ${JSON.stringify(rates)}`);
    assert.equal(rates[0], undefined);
    // 8 MiB paced by timers at 20 MB/s; timers only ever fire late, so the rate can only come out lower.
    assert.ok(Number(rates[1]) > 5e6 && Number(rates[1]) < 25e6, `link rate ${rates[1]}`);
  });

  it('a link rate comes only from transfers big enough and not held by our side', () => {
    const load = new ReceiverLoad();
    load.note('a', { heldMs: 0, spanMs: 1000, wireBytes: 1024 * 1024 });
    assert.equal(load.linkHint('a'), undefined, 'too few bytes: slow start and the round trip set that pace');
    load.note('a', { heldMs: 600, spanMs: 1000, wireBytes: 8e6 });
    assert.equal(load.linkHint('a'), undefined, 'our side held it: the link was not the limit');
    load.note('a', { heldMs: 200, spanMs: 1000, wireBytes: 8e6 });
    assert.equal(load.linkHint('a'), '10000000', 'counted over the time the link had');
    load.note('a', { heldMs: 0, spanMs: 1000, wireBytes: 100e6 });
    assert.equal(load.linkHint('a'), '73000000', 'the latest transfer weighs most');
    load.note('b', { heldMs: 0, spanMs: 1000 });
    assert.equal(load.linkHint('b'), undefined, 'no wire bytes (TLS, node:http): no figure');
  });

  it("a body read through node:http (https: a team member's NARs) has its pace from its pauses, and watching it starts no flow", async () => {
    let now = 0;
    const body = new Readable({ read() {} });
    const pace = watchPace(body, () => now);
    body.push(Buffer.alloc(1024));
    await new Promise((r) => setImmediate(r));
    assert.equal(body.readableFlowing, null, 'the body waits for its reader');
    body.on('data', () => {});
    now = 100;
    body.pause();
    now = 400;
    body.resume();
    await new Promise((r) => setImmediate(r)); // 'resume' is emitted on the next tick
    now = 1000;
    body.push(null);
    await once(body, 'end');
    assert.deepEqual(pace(), { heldMs: 300, spanMs: 1000 });
  });

  it('a peer reads the link rate strictly: a plain whole number or nothing', () => {
    assert.equal(parseLinkRate('12500000'), 12_500_000);
    for (const bad of [undefined, '', '0', '-5', '1e7', '12.5', '0x10', '99999999999999', '1, 2', ['5']]) assert.equal(parseLinkRate(bad), null, String(bad));
  });

  it('a peer reads the hint strictly: anything but a share from 0 to 1 is no hint', () => {
    assert.equal(parseReceiverHeld('0.62'), 0.62);
    assert.equal(parseReceiverHeld('1'), 1);
    assert.equal(parseReceiverHeld(' 0 '), 0);
    for (const bad of [undefined, '', '1.5', '-0.1', '0.1234', 'NaN', '0x1', '0.5, 0.6', ['0.5']]) assert.equal(parseReceiverHeld(bad), null, String(bad));
  });
});
