import { format } from 'node:util';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../src/base/log.ts';
import { encodeHasPath, encodeHasPathWithNarHash, GO_UDP_MAX_PACKET, isGoNotFound, isGoYes, parseGoQuestion } from '../../src/wire/go-udp.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { UdpResponder } from '../../src/peers/udp-responder.ts';
import { waitFor } from '../support/wait.ts';

const HELD = '0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 32);
const OTHER = 'zyxwvsrqpnmlkjihgfdcba9876543210';
const NAR_HASH = Buffer.alloc(32, 7);
const OTHER_NAR_HASH = Buffer.alloc(32, 9);

describe('Go peernix UDP questions: the codec', { timeout: 10_000 }, () => {
  it('reads has_path?, has_path_with_narhash? and ping exactly as the Go peer (e74df7c) writes them', () => {
    assert.deepEqual(parseGoQuestion(Buffer.from(`has_path?${HELD}`)), { kind: 'has-path', hashPart: HELD });
    const n32 = encodeNix32(NAR_HASH);
    assert.deepEqual(parseGoQuestion(Buffer.from(`has_path_with_narhash?${HELD}:${n32}`)), {
      kind: 'has-path-with-narhash',
      hashPart: HELD,
      narHash: NAR_HASH,
    });
    assert.equal(encodeHasPathWithNarHash(HELD, NAR_HASH).toString(), `has_path_with_narhash?${HELD}:${n32}`);
    assert.ok(isGoNotFound(Buffer.from('not_found')) && !isGoNotFound(Buffer.from('yes')));
    assert.deepEqual(parseGoQuestion(Buffer.from('ping')), { kind: 'ping' });
    assert.equal(encodeHasPath(HELD).toString(), `has_path?${HELD}`);
    assert.ok(isGoYes(Buffer.from('yes')));
    assert.ok(!isGoYes(Buffer.from('yes\n')) && !isGoYes(Buffer.from('no')));
  });

  it('ignores anything else: bad hashes, paths, JSON announcements, oversized or empty packets', (t) => {
    const bad = [
      '',
      'has_path?',
      `has_path?${HELD}x`,
      `has_path?${HELD.slice(1)}`,
      `has_path?${HELD.toUpperCase()}`,
      `has_path?/nix/store/${HELD}`,
      `has_path?${HELD.slice(0, 31)}e`,
      `has_path_with_narhash?${HELD}`,
      `has_path_with_narhash?${HELD}:sha256:${encodeNix32(NAR_HASH)}`,
      `has_path_with_narhash?${HELD}:${'z'.repeat(52)}`,
      `has_path_with_narhash?${HELD}:${encodeNix32(NAR_HASH)}x`,
      'ping\n',
      'PING',
      '{"cmd":"announce","peernix_version":"2.0.0"}',
      `has_path?${HELD}`.padEnd(GO_UDP_MAX_PACKET + 1, 'a'),
    ];
    for (const b of bad) assert.equal(parseGoQuestion(Buffer.from(b)), null, JSON.stringify(b.slice(0, 60)));
    assert.equal(parseGoQuestion(Buffer.from([0xff, 0xfe, 0x00])), null);
    assert.throws(() => encodeHasPath('nope'), RangeError);
    t.diagnostic(`malformed packets refused: ${bad.length + 1}`);
  });
});

/**
 * A Go-style asker: a connected socket (so only the peer's own address and port can answer). `ask`
 * sends its question and then a ping, and returns the replies that came before the pong: loopback
 * datagrams arrive in order and the responder takes them in order, so every reply the question got
 * (from a store lookup that answers at once or fails) is in by then. Nothing is timed.
 */
async function asker(port: number, from?: string) {
  const sock = dgram.createSocket('udp4');
  if (from) await new Promise<void>((r) => sock.bind(0, from, () => r()));
  await new Promise<void>((r) => sock.connect(port, '127.0.0.1', () => r()));
  const replies: string[] = [];
  let wake = () => {};
  sock.on('message', (m) => {
    replies.push(m.toString());
    wake();
  });
  const next = (n: number) =>
    new Promise<void>((r) => {
      wake = () => replies.length >= n && r();
      wake();
    });
  return {
    sock,
    replies,
    /** Resolves once `n` replies in all have come. */
    next,
    async ask(payload: Buffer): Promise<string[]> {
      const from = replies.length;
      sock.send(payload);
      sock.send('ping');
      await new Promise<void>((r) => {
        wake = () => replies.slice(from + (payload.toString() === 'ping' ? 1 : 0)).includes('pong') && r();
        wake();
      });
      const got = replies.slice(from);
      got.splice(got.lastIndexOf('pong'), 1);
      return got;
    },
    close: () => sock.close(),
  };
}

async function ask(port: number, payload: Buffer): Promise<string[]> {
  const a = await asker(port);
  try {
    return await a.ask(payload);
  } finally {
    a.close();
  }
}

/** Resolves once the responder has taken `n` datagrams in all. */
async function received(r: UdpResponder, n: number): Promise<void> {
  await waitFor(`${n} datagrams received`, async () => r.stats.received >= n, 10_000);
}

describe('Go peernix UDP questions: the responder', { timeout: 30_000 }, () => {
  const open: UdpResponder[] = [];
  after(async () => {
    for (const r of open) await r.close();
  });
  const start = async (opts: Partial<ConstructorParameters<typeof UdpResponder>[0]> = {}) => {
    const asked: string[] = [];
    const r = new UdpResponder({ host: '127.0.0.1', port: 0, log: silentLogger, narHash: (h) => (asked.push(h), h === HELD ? NAR_HASH : null), ...opts });
    await r.bind();
    open.push(r);
    return { r, port: r.port!, asked };
  };

  it('answers "yes" for a held path, "not_found" for one it lacks, "pong" to ping, and ignores junk', async (t) => {
    const { r, port, asked } = await start();
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), ['yes']);
    assert.deepEqual(await ask(port, encodeHasPath(OTHER)), ['not_found']);
    assert.deepEqual(await ask(port, Buffer.from('ping')), ['pong']);
    assert.deepEqual(await ask(port, Buffer.from('{"cmd":"announce"}')), []);
    assert.deepEqual(await ask(port, Buffer.alloc(4000, 0x61)), []);
    t.diagnostic(format('stats', JSON.stringify(r.stats), 'store asked', asked.length));
    assert.deepEqual(asked, [HELD, OTHER]);
    assert.equal(r.stats.yes, 1);
    assert.equal(r.stats.notFound, 1);
    assert.equal(r.stats.ignored, 2);
  });

  it('answers has_path_with_narhash? with yes, narhash_mismatch or not_found, as e74df7c does', async () => {
    const { r, port } = await start();
    assert.deepEqual(await ask(port, encodeHasPathWithNarHash(HELD, NAR_HASH)), ['yes']);
    assert.deepEqual(await ask(port, encodeHasPathWithNarHash(HELD, OTHER_NAR_HASH)), ['narhash_mismatch']);
    assert.deepEqual(await ask(port, encodeHasPathWithNarHash(OTHER, NAR_HASH)), ['not_found']);
    assert.deepEqual([r.stats.yes, r.stats.mismatch, r.stats.notFound], [1, 1, 1]);
  });

  it('keeps a share of the overall budget for peers proven over HTTP', async (ctx) => {
    // Two sources on loopback: 127.0.0.1 plays a stranger flooding, 127.0.0.2 a proven peer.
    const t = 0;
    const { r, port } = await start({
      perSourceBurst: 1000,
      perSourceRate: 1000,
      totalRate: 10,
      totalBurst: 40,
      provenShare: 0.25,
      now: () => t,
      proven: (a) => a === '127.0.0.2',
    });
    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((res) => stranger.connect(port, '127.0.0.1', () => res()));
    let strangerAnswers = 0;
    stranger.on('message', () => strangerAnswers++);
    for (let i = 0; i < 100; i++) stranger.send(encodeHasPath(HELD));
    await received(r, 100);
    await waitFor('the answers', async () => strangerAnswers >= r.stats.yes, 10_000);
    assert.equal(strangerAnswers, 30, 'a stranger gets the general 75 % of the burst, no more');
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((res) => peer.bind(0, '127.0.0.2', () => res()));
    await new Promise<void>((res) => peer.connect(port, '127.0.0.1', () => res()));
    let peerAnswers = 0;
    peer.on('message', () => peerAnswers++);
    for (let i = 0; i < 20; i++) peer.send(encodeHasPath(HELD));
    await received(r, 120);
    await waitFor('the answers', async () => strangerAnswers + peerAnswers >= r.stats.yes, 10_000);
    ctx.diagnostic(`after a stranger's flood of 100: stranger ${strangerAnswers} answered, proven peer ${peerAnswers} of 20 (${r.stats.limited} limited)`);
    assert.equal(peerAnswers, 10, 'the proven peer still gets the reserved 25 %');
    stranger.close();
    peer.close();
  });

  it('answers from an asynchronous store lookup, and a lookup that throws or rejects answers nothing', async () => {
    let mode: 'ok' | 'throw' | 'reject' = 'ok';
    const { port } = await start({
      narHash: (h) => {
        if (mode === 'throw') throw new Error('db gone');
        if (mode === 'reject') return Promise.reject(new Error('daemon gone'));
        return new Promise((r) => setImmediate(() => r(h === HELD ? NAR_HASH : null)));
      },
    });
    // An asynchronous answer may come after the pong: it is waited for.
    const later = async () => {
      const a = await asker(port);
      a.sock.send(encodeHasPath(HELD));
      await a.next(1);
      a.close();
      return a.replies;
    };
    assert.deepEqual(await later(), ['yes']);
    mode = 'throw';
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), []);
    mode = 'reject';
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), []);
    mode = 'ok';
    assert.deepEqual(await later(), ['yes']);
  });

  it('bounds the rate per source address: a burst beyond it goes unanswered until tokens return', async (tc) => {
    let t = 0;
    const { r, port } = await start({ perSourceRate: 5, perSourceBurst: 10, now: () => t });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res) => sock.connect(port, '127.0.0.1', () => res()));
    let yes = 0;
    sock.on('message', () => yes++);
    for (let i = 0; i < 50; i++) sock.send(encodeHasPath(HELD));
    await received(r, 50);
    await waitFor('the answers', async () => yes >= r.stats.yes, 10_000);
    tc.diagnostic(`burst of 50 with burst 10: ${yes} answered, ${r.stats.limited} limited`);
    assert.equal(yes, 10);
    assert.equal(r.stats.limited, 40);
    t += 1000; // one second later: 5 more tokens
    for (let i = 0; i < 20; i++) sock.send(encodeHasPath(HELD));
    await received(r, 70);
    await waitFor('the answers', async () => yes >= r.stats.yes, 10_000);
    tc.diagnostic(`after 1 s at 5/s: ${yes - 10} more answered`);
    assert.equal(yes, 15);
    sock.close();
  });

  it("gives a proven peer's own address four times a stranger's rate and burst", async (ctx) => {
    const t = 0;
    const { r, port } = await start({ perSourceRate: 5, perSourceBurst: 10, proven: (a) => a === '127.0.0.3', now: () => t });
    const burst = async (from: string): Promise<number> => {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((res) => sock.bind(0, from, () => res()));
      await new Promise<void>((res) => sock.connect(port, '127.0.0.1', () => res()));
      let n = 0;
      sock.on('message', () => n++);
      const seen = r.stats.received;
      const answered = r.stats.yes;
      for (let i = 0; i < 100; i++) sock.send(encodeHasPath(HELD));
      await received(r, seen + 100);
      await waitFor('the answers', async () => n >= r.stats.yes - answered, 10_000);
      sock.close();
      return n;
    };
    const stranger = await burst('127.0.0.4');
    const peer = await burst('127.0.0.3');
    ctx.diagnostic(`a burst of 100 with burst 10: stranger ${stranger} answered, proven peer ${peer} (${r.stats.limited} limited)`);
    assert.equal(stranger, 10);
    assert.equal(peer, 40);
  });

  it('bounds store lookups in flight', async (t) => {
    const pending: (() => void)[] = [];
    const { r, port } = await start({
      maxInFlight: 3,
      perSourceBurst: 100,
      narHash: () => new Promise<Buffer | null>((res) => pending.push(() => res(NAR_HASH))),
    });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res) => sock.connect(port, '127.0.0.1', () => res()));
    let yes = 0;
    sock.on('message', () => yes++);
    for (let i = 0; i < 10; i++) sock.send(encodeHasPath(HELD));
    await received(r, 10);
    assert.equal(pending.length, 3);
    for (const p of pending) p();
    await waitFor('the answers', async () => yes >= 3, 10_000);
    await waitFor('the answers counted', async () => r.stats.yes === 3, 10_000);
    t.diagnostic(`10 questions with 3 lookups at most in flight: ${yes} answered, ${r.stats.limited} dropped`);
    assert.equal(yes, 3);
    assert.equal(r.stats.limited, 7);
    sock.close();
  });

  it('answers nothing once closed, not even a lookup that was under way; binds again; a busy port rejects', async () => {
    let release: () => void = () => {};
    let lookups = 0;
    const { r, port } = await start({ narHash: () => (lookups++, new Promise<Buffer | null>((res) => (release = () => res(NAR_HASH)))) });
    const asking = await asker(port);
    asking.sock.send(encodeHasPath(HELD));
    await waitFor('the lookup under way', async () => lookups === 1, 10_000);
    await r.close();
    release();
    assert.equal(r.port, null);
    const other = new UdpResponder({ host: '127.0.0.1', port, log: silentLogger, narHash: () => NAR_HASH });
    await other.bind();
    open.push(other);
    // The same asking socket: a late "yes" from the closed responder would come before this pong.
    assert.deepEqual(await asking.ask(Buffer.from('ping')), ['pong']);
    assert.ok(!asking.replies.includes('yes'), 'nothing from the closed responder');
    asking.close();
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), ['yes']);
    const clash = new UdpResponder({ host: '127.0.0.1', port, log: silentLogger, narHash: () => NAR_HASH });
    await assert.rejects(clash.bind(), /EADDRINUSE/);
    assert.equal(clash.open, false);
  });
});
