import { format } from 'node:util';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../src/base/log.ts';
import { encodeHasPath, GO_UDP_MAX_PACKET, isGoYes, parseGoQuestion } from '../../src/wire/go-udp.ts';
import { UdpResponder } from '../../src/peers/udp-responder.ts';

const HELD = '0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 32);
const OTHER = 'zyxwvsrqpnmlkjihgfdcba9876543210';

describe('Go peernix UDP questions: the codec', { timeout: 10_000 }, () => {
  it('reads has_path? and ping exactly as the Go peer writes them', () => {
    assert.deepEqual(parseGoQuestion(Buffer.from(`has_path?${HELD}`)), { kind: 'has-path', hashPart: HELD });
    assert.deepEqual(parseGoQuestion(Buffer.from('ping')), { kind: 'ping' });
    assert.equal(encodeHasPath(HELD).toString(), `has_path?${HELD}`);
    assert.ok(isGoYes(Buffer.from('yes')));
    assert.ok(!isGoYes(Buffer.from('yes\n')) && !isGoYes(Buffer.from('no')));
  });

  it('ignores anything else: bad hashes, paths, JSON announcements, oversized or empty packets', (t) => {
    const bad = [
      '', 'has_path?', `has_path?${HELD}x`, `has_path?${HELD.slice(1)}`, `has_path?${HELD.toUpperCase()}`, `has_path?/nix/store/${HELD}`,
      `has_path?${HELD.slice(0, 31)}e`, 'ping\n', 'PING', '{"cmd":"announce","peernix_version":"2.0.0"}', `has_path?${HELD}`.padEnd(GO_UDP_MAX_PACKET + 1, 'a'),
    ];
    for (const b of bad) assert.equal(parseGoQuestion(Buffer.from(b)), null, JSON.stringify(b.slice(0, 60)));
    assert.equal(parseGoQuestion(Buffer.from([0xff, 0xfe, 0x00])), null);
    assert.throws(() => encodeHasPath('nope'), RangeError);
    t.diagnostic(`malformed packets refused: ${bad.length + 1}`);
  });
});

// A Go-style asker: a connected socket (so only the peer's own address and port can answer), one
// question, the replies within `ms`.
async function ask(port: number, payload: Buffer, ms = 300): Promise<string[]> {
  const sock = dgram.createSocket('udp4');
  const replies: string[] = [];
  await new Promise<void>((r) => sock.connect(port, '127.0.0.1', () => r()));
  sock.on('message', (m) => replies.push(m.toString()));
  sock.send(payload);
  await new Promise((r) => setTimeout(r, ms));
  sock.close();
  return replies;
}

describe('Go peernix UDP questions: the responder', { timeout: 30_000 }, () => {
  const open: UdpResponder[] = [];
  after(async () => {
    for (const r of open) await r.close();
  });
  const start = async (opts: Partial<ConstructorParameters<typeof UdpResponder>[0]> = {}) => {
    const asked: string[] = [];
    const r = new UdpResponder({ host: '127.0.0.1', port: 0, log: silentLogger, has: (h) => (asked.push(h), h === HELD), ...opts });
    await r.bind();
    open.push(r);
    return { r, port: r.port!, asked };
  };

  it('answers "yes" for a held path, nothing for one it lacks, "pong" to ping, and ignores junk', async (t) => {
    const { r, port, asked } = await start();
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), ['yes']);
    assert.deepEqual(await ask(port, encodeHasPath(OTHER)), []);
    assert.deepEqual(await ask(port, Buffer.from('ping')), ['pong']);
    assert.deepEqual(await ask(port, Buffer.from('{"cmd":"announce"}')), []);
    assert.deepEqual(await ask(port, Buffer.alloc(4000, 0x61)), []);
    t.diagnostic(format('stats', JSON.stringify(r.stats), 'store asked', asked.length));
    assert.deepEqual(asked, [HELD, OTHER]);
    assert.equal(r.stats.yes, 1);
    assert.equal(r.stats.silent, 1);
    assert.equal(r.stats.ignored, 2);
  });

  it('answers from an asynchronous store lookup, and a lookup that throws or rejects answers nothing', async () => {
    let mode: 'ok' | 'throw' | 'reject' = 'ok';
    const { port } = await start({
      has: (h) => {
        if (mode === 'throw') throw new Error('db gone');
        if (mode === 'reject') return Promise.reject(new Error('daemon gone'));
        return new Promise((r) => setTimeout(() => r(h === HELD), 20));
      },
    });
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), ['yes']);
    mode = 'throw';
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), []);
    mode = 'reject';
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), []);
    mode = 'ok';
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), ['yes']);
  });

  it('bounds the rate per source address: a burst beyond it goes unanswered until tokens return', async (tc) => {
    let t = 0;
    const { r, port } = await start({ perSourceRate: 5, perSourceBurst: 10, now: () => t });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res) => sock.connect(port, '127.0.0.1', () => res()));
    let yes = 0;
    sock.on('message', () => yes++);
    for (let i = 0; i < 50; i++) sock.send(encodeHasPath(HELD));
    await new Promise((res) => setTimeout(res, 400));
    tc.diagnostic(`burst of 50 with burst 10: ${yes} answered, ${r.stats.limited} limited`);
    assert.equal(yes, 10);
    assert.equal(r.stats.limited, 40);
    t += 1000; // one second later: 5 more tokens
    for (let i = 0; i < 20; i++) sock.send(encodeHasPath(HELD));
    await new Promise((res) => setTimeout(res, 400));
    tc.diagnostic(`after 1 s at 5/s: ${yes - 10} more answered`);
    assert.equal(yes, 15);
    sock.close();
  });

  it('bounds store lookups in flight', async (t) => {
    const pending: (() => void)[] = [];
    const { r, port } = await start({ maxInFlight: 3, perSourceBurst: 100, has: () => new Promise<boolean>((res) => pending.push(() => res(true))) });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((res) => sock.connect(port, '127.0.0.1', () => res()));
    let yes = 0;
    sock.on('message', () => yes++);
    for (let i = 0; i < 10; i++) sock.send(encodeHasPath(HELD));
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(pending.length, 3);
    for (const p of pending) p();
    await new Promise((res) => setTimeout(res, 200));
    t.diagnostic(`10 questions with 3 lookups at most in flight: ${yes} answered, ${r.stats.limited} dropped`);
    assert.equal(yes, 3);
    assert.equal(r.stats.limited, 7);
    sock.close();
  });

  it('answers nothing once closed, not even a lookup that was under way; binds again; a busy port rejects', async () => {
    let release: () => void = () => {};
    const { r, port } = await start({ has: () => new Promise<boolean>((res) => (release = () => res(true))) });
    const asking = ask(port, encodeHasPath(HELD), 400);
    await new Promise((res) => setTimeout(res, 100));
    await r.close();
    release();
    assert.deepEqual(await asking, []);
    assert.equal(r.port, null);
    const other = new UdpResponder({ host: '127.0.0.1', port, log: silentLogger, has: () => true });
    await other.bind();
    open.push(other);
    assert.deepEqual(await ask(port, encodeHasPath(HELD)), ['yes']);
    const clash = new UdpResponder({ host: '127.0.0.1', port, log: silentLogger, has: () => true });
    await assert.rejects(clash.bind(), /EADDRINUSE/);
    assert.equal(clash.open, false);
  });
});
