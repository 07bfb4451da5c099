// Framing (src/store/wire.ts) against in-memory streams, plus the daemon connection's handling of
// the stderr loop and hostile replies against a scripted fake daemon on a Unix socket (cases a
// real Nix 2.8 daemon cannot be made to produce).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { encodeBool, encodeString, encodeStringList, encodeU64, padLength, RawByteStream, WireError, WireReader } from '../../src/store/wire.ts';
import { DaemonConnection, DaemonError } from '../../src/store/daemon-connection.ts';

const T = { timeout: 10_000 };

/** Feed buffers into a fresh reader one byte at a time (worst-case fragmentation). */
function dribble(parts: Buffer[], end = true): { src: PassThrough; reader: WireReader } {
  const src = new PassThrough();
  const reader = new WireReader(src);
  const all = Buffer.concat(parts);
  let i = 0;
  const tick = (): void => {
    if (i < all.length) {
      src.write(all.subarray(i, i + 1));
      i++;
      setImmediate(tick);
    } else if (end) src.end();
  };
  setImmediate(tick);
  return { src, reader };
}

function isWire(code: string) {
  return (err: unknown): boolean => err instanceof WireError && err.code === code;
}

describe('encoding', () => {
  test('u64 is little-endian and rejects out-of-range values', T, () => {
    assert.deepEqual(encodeU64(1), Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
    assert.deepEqual(encodeU64(0x6e697863), Buffer.from('6378696e00000000', 'hex'));
    assert.deepEqual(encodeU64(2 ** 32), Buffer.from([0, 0, 0, 0, 1, 0, 0, 0]));
    assert.equal(encodeU64(Number.MAX_SAFE_INTEGER).readBigUInt64LE(), BigInt(Number.MAX_SAFE_INTEGER));
    assert.deepEqual(encodeU64(2n ** 64n - 1n), Buffer.alloc(8, 0xff));
    assert.throws(() => encodeU64(-1), RangeError);
    assert.throws(() => encodeU64(1.5), RangeError);
    assert.throws(() => encodeU64(2 ** 53), RangeError);
    assert.throws(() => encodeU64(2n ** 64n), RangeError);
    assert.deepEqual(encodeBool(true), encodeU64(1));
    assert.deepEqual(encodeBool(false), encodeU64(0));
  });

  test('strings are padded with zeros to a multiple of 8', T, () => {
    for (let len = 0; len <= 17; len++) {
      const s = 'x'.repeat(len);
      const b = encodeString(s);
      assert.equal(b.length, 8 + len + padLength(len));
      assert.equal(b.length % 8, 0);
      assert.equal(Number(b.readBigUInt64LE(0)), len);
      assert.equal(b.subarray(8, 8 + len).toString(), s);
      assert.ok(b.subarray(8 + len).every((x) => x === 0));
    }
    assert.equal(encodeString('').length, 8);
    assert.equal(encodeString('12345678').length, 16);
    assert.equal(encodeString(Buffer.from([0xff, 0])).length, 16);
    // Length counts bytes, not UTF-16 units.
    assert.equal(Number(encodeString('é').readBigUInt64LE(0)), 2);
  });

  test('string lists', T, () => {
    const b = encodeStringList(['a', 'bcdefghij']);
    assert.equal(b.length, 8 + 16 + 24);
    assert.equal(Number(b.readBigUInt64LE(0)), 2);
    assert.deepEqual(encodeStringList([]), encodeU64(0));
  });
});

describe('WireReader', () => {
  test('round trip with one-byte fragments', T, async () => {
    const { reader } = dribble([
      encodeU64(42),
      encodeBool(true),
      encodeString('hello'),
      encodeString(''),
      encodeString('exactly8'),
      encodeStringList(['/nix/store/a', 'b', '']),
      encodeU64(Number.MAX_SAFE_INTEGER),
      encodeString(Buffer.from([0, 1, 2, 255])),
    ]);
    assert.equal(await reader.u64(), 42);
    assert.equal(await reader.bool(), true);
    assert.equal(await reader.str(100), 'hello');
    assert.equal(await reader.str(100), '');
    assert.equal(await reader.str(8), 'exactly8');
    assert.deepEqual(await reader.strList(10, 100), ['/nix/store/a', 'b', '']);
    assert.equal(await reader.u64(), Number.MAX_SAFE_INTEGER);
    assert.deepEqual(await reader.strBytes(4), Buffer.from([0, 1, 2, 255]));
    await assert.rejects(reader.u64(), isWire('EOF'));
  });

  test('many values in one chunk', T, async () => {
    const src = new PassThrough();
    const reader = new WireReader(src);
    src.end(Buffer.concat(Array.from({ length: 1000 }, (_, i) => encodeString(`s${i}`))));
    for (let i = 0; i < 1000; i++) assert.equal(await reader.str(10), `s${i}`);
  });

  test('non-zero padding is a protocol error', T, async () => {
    const b = encodeString('abc');
    b[12] = 1;
    const { reader } = dribble([b]);
    await assert.rejects(reader.str(10), isWire('PROTOCOL'));
  });

  test('oversized string fails on the length, before its body arrives', T, async () => {
    const src = new PassThrough();
    const reader = new WireReader(src);
    src.write(encodeU64(2 ** 40)); // a 1 TiB string that never comes
    await assert.rejects(reader.str(1024), isWire('OVERSIZE'));
    const src2 = new PassThrough();
    const r2 = new WireReader(src2);
    src2.write(encodeString('x'.repeat(11)));
    await assert.rejects(r2.str(10), isWire('OVERSIZE'));
  });

  test('oversized list count fails before reading elements', T, async () => {
    const src = new PassThrough();
    const reader = new WireReader(src);
    src.write(encodeU64(10_000_000));
    await assert.rejects(reader.strList(1000, 100), isWire('OVERSIZE'));
  });

  test('integers above 2^53 are rejected', T, async () => {
    const src = new PassThrough();
    const reader = new WireReader(src);
    src.write(encodeU64(2n ** 63n));
    await assert.rejects(reader.u64(), isWire('OVERSIZE'));
  });

  test('bytes(n) above the hard limit is rejected', T, async () => {
    const reader = new WireReader(new PassThrough(), { maxRead: 1024 });
    await assert.rejects(reader.bytes(1025), isWire('OVERSIZE'));
  });

  test('EOF in the middle of a string, a length, or padding', T, async () => {
    const full = encodeString('hello world');
    for (const cut of [3, 8, 12, 19]) {
      const { reader } = dribble([full.subarray(0, cut)]);
      await assert.rejects(reader.str(100), isWire('EOF'), `cut at ${cut}`);
    }
  });

  test('a destroyed source fails pending and later reads', T, async () => {
    const src = new PassThrough();
    const reader = new WireReader(src);
    const p = reader.u64();
    src.destroy(new Error('boom'));
    await assert.rejects(p, isWire('EOF'));
    await assert.rejects(reader.u64(), isWire('EOF'));
  });

  test('concurrent reads are refused', T, async () => {
    const src = new PassThrough();
    const reader = new WireReader(src);
    const p = reader.u64();
    await assert.rejects(reader.u64(), isWire('BUSY'));
    src.end(encodeU64(7));
    assert.equal(await p, 7);
  });

  test('skipStr discards without keeping the payload', T, async () => {
    const { reader } = dribble([encodeString('x'.repeat(100)), encodeU64(5)]);
    await reader.skipStr(1000);
    assert.equal(await reader.u64(), 5);
  });

  test('source is paused when unread data piles up', T, async () => {
    const src = new PassThrough({ highWaterMark: 1024 });
    const reader = new WireReader(src, { maxBuffered: 4096 });
    for (let i = 0; i < 64; i++) src.write(Buffer.alloc(1024));
    await new Promise((r) => setImmediate(r));
    assert.ok(src.isPaused());
    assert.ok(reader.bufferedBytes <= 4096 + 1024, `buffered ${reader.bufferedBytes}`);
    // Reading drains it again.
    await reader.bytes(64 * 1024);
  });
});

describe('raw hand-off', () => {
  test('delivers exactly n bytes and leaves the rest for normal reads', T, async () => {
    const payload = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i & 0xff));
    const { reader } = dribble([encodeU64(1), payload.subarray(0, 5000)], false);
    assert.equal(await reader.u64(), 1);
    // Feed the rest in bigger chunks alongside a trailing value.
    const src2 = new PassThrough();
    const r2 = new WireReader(src2);
    src2.write(payload.subarray(0, 70_000));
    src2.end(Buffer.concat([payload.subarray(70_000), encodeU64(99)]));
    const s = r2.rawStream(payload.length);
    const got: Buffer[] = [];
    for await (const b of s) got.push(b as Buffer);
    assert.deepEqual(Buffer.concat(got), payload);
    assert.equal(await r2.u64(), 99);
  });

  test('zero bytes ends immediately', T, async () => {
    const src = new PassThrough();
    const r = new WireReader(src);
    const s = r.rawStream(0);
    const got: Buffer[] = [];
    for await (const b of s) got.push(b as Buffer);
    assert.equal(got.length, 0);
  });

  test('backpressure: a consumer that does not read pauses the source', T, async () => {
    const src = new PassThrough({ highWaterMark: 64 * 1024 });
    const r = new WireReader(src);
    const s = new RawByteStream(64 * 1024 * 1024, { highWaterMark: 128 * 1024 });
    const done = r.handOff(s);
    done.catch(() => {});
    s.resume(); // start flowing, then stop
    s.pause();
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 7);
    // Push as long as the source accepts; it must stop accepting quickly.
    for (let i = 0; i < 1000 && src.write(chunk); i++) written += chunk.length;
    await new Promise((res) => setTimeout(res, 50));
    for (let i = 0; i < 20; i++) {
      src.write(chunk);
      written += chunk.length;
    }
    await new Promise((res) => setTimeout(res, 50));
    // Bytes held in memory are bounded by the high-water marks, not by what was written.
    const held = s.readableLength + r.bufferedBytes;
    assert.ok(held <= 512 * 1024, `held ${held}`);
    assert.ok(src.isPaused());
    s.destroy();
    await assert.rejects(done, isWire('ABORTED'));
    assert.ok(written > held);
  });

  test('early EOF destroys the stream with an error', T, async () => {
    const src = new PassThrough();
    const r = new WireReader(src);
    const s = r.rawStream(1000);
    src.end(Buffer.alloc(600));
    await assert.rejects(
      async () => {
        for await (const _ of s) {
          // drain
        }
      },
      (err: unknown) => err instanceof WireError && err.code === 'EOF' && /600 of 1000/.test(err.message),
    );
  });

  test('consumer destroy releases the reader', T, async () => {
    const src = new PassThrough();
    const r = new WireReader(src);
    const s = new RawByteStream(1000);
    const done = r.handOff(s);
    src.write(Buffer.alloc(10));
    s.destroy();
    await assert.rejects(done, isWire('ABORTED'));
  });
});

// ---------------------------------------------------------------------------------------------
// Scripted fake daemon

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pnx-wire-'));
const servers: net.Server[] = [];
const serverSockets = new Set<net.Socket>();
after(async () => {
  for (const s of serverSockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  fs.rmSync(tmp, { recursive: true, force: true });
});

function track(server: net.Server): net.Server {
  servers.push(server);
  server.on('connection', (s: net.Socket) => {
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
  });
  return server;
}

let sockCounter = 0;

const LAST = 0x616c7473;
const ERROR = 0x63787470;
const NEXT = 0x6f6c6d67;
const START = 0x53545254;
const STOP = 0x53544f50;
const RESULT = 0x52534c54;
const WRITE = 0x64617416;
const READ = 0x64617461;

const P = (c: string) => `/nix/store/${c.repeat(32)}-x`;

type Script = (sock: net.Socket, r: WireReader, n: number) => Promise<void>;

/** A server that does the handshake as daemon `version`, then runs `script`. */
async function fakeDaemon(version: number, script: Script, extra: { features?: string[]; trusted?: number } = {}): Promise<string> {
  const sockPath = path.join(tmp, `s${sockCounter++}`);
  const server = net.createServer((sock) => {
    const r = new WireReader(sock);
    (async () => {
      assert.equal(await r.u64(), 0x6e697863);
      const client = await r.u64();
      sock.write(Buffer.concat([encodeU64(0x6478696f), encodeU64(version)]));
      const n = Math.min(client, version);
      if ((n & 0xff) >= 38) {
        assert.deepEqual(await r.strList(10, 100), []);
        sock.write(encodeStringList(extra.features ?? []));
      }
      if ((n & 0xff) >= 14) assert.equal(await r.u64(), 0);
      if ((n & 0xff) >= 11) assert.equal(await r.u64(), 0);
      if ((n & 0xff) >= 33) sock.write(encodeString('9.9.9-fake'));
      if ((n & 0xff) >= 35) sock.write(encodeU64(extra.trusted ?? 2));
      sock.write(encodeU64(LAST));
      await script(sock, r, n);
    })().catch(() => sock.destroy());
  });
  track(server);
  await new Promise<void>((res) => server.listen(sockPath, res));
  return sockPath;
}

function errorFrame(n: number, msg: string, traces: string[] = []): Buffer {
  if ((n & 0xff) >= 26) {
    return Buffer.concat([
      encodeU64(ERROR),
      encodeString('Error'),
      encodeU64(0),
      encodeString('Error'),
      encodeString(msg),
      encodeU64(0),
      encodeU64(traces.length),
      ...traces.flatMap((t) => [encodeU64(0), encodeString(t)]),
    ]);
  }
  return Buffer.concat([encodeU64(ERROR), encodeString(msg), encodeU64(1)]);
}

describe('DaemonConnection against a scripted daemon', () => {
  test('handshake at 1.38: features and trusted flag', T, async () => {
    const sock = await fakeDaemon(0x126, async () => {}, { features: ['x-feature'], trusted: 1 });
    const c = await DaemonConnection.connect(sock);
    assert.equal(c.protocolVersion, 0x126);
    assert.equal(c.daemonVersion, '9.9.9-fake');
    assert.equal(c.trusted, true);
    assert.deepEqual(c.features, ['x-feature']);
    c.close();
    await c.whenClosed();
  });

  test('full stderr loop, then the reply; errors of both forms keep the connection usable', T, async () => {
    for (const version of [0x126, 0x119 /* 1.25: old error form */]) {
      const logs: string[] = [];
      const sock = await fakeDaemon(version, async (s, r, n) => {
        // op 1: noise then the reply
        assert.equal(await r.u64(), 1);
        assert.equal(await r.str(1000), P('a'));
        s.write(
          Buffer.concat([
            encodeU64(NEXT),
            encodeString('a log line\n'),
            encodeU64(START),
            encodeU64(7),
            encodeU64(3),
            encodeU64(109),
            encodeString('querying \x1b[1mthings\x1b[0m'),
            encodeU64(2),
            encodeU64(0),
            encodeU64(5),
            encodeU64(1),
            encodeString('field'),
            encodeU64(0),
            encodeU64(RESULT),
            encodeU64(7),
            encodeU64(105),
            encodeU64(1),
            encodeU64(0),
            encodeU64(1),
            encodeU64(WRITE),
            encodeString('sink data'),
            encodeU64(STOP),
            encodeU64(7),
            encodeU64(LAST),
            encodeU64(1),
          ]),
        );
        // op 2: an error
        assert.equal(await r.u64(), 1);
        await r.str(1000);
        s.write(errorFrame(n, "path '\x1b[35;1m/nix/store/bad\x1b[0m' is broken", ['while doing \x1b[1mX\x1b[0m']));
        // op 3: fine again
        assert.equal(await r.u64(), 1);
        await r.str(1000);
        s.write(Buffer.concat([encodeU64(LAST), encodeU64(0)]));
      });
      const c = await DaemonConnection.connect(sock, { onLog: (l) => logs.push(l) });
      const [a, b, d] = await Promise.allSettled([c.isValidPath(P('a')), c.isValidPath(P('b')), c.isValidPath(P('c'))]);
      assert.deepEqual(a, { status: 'fulfilled', value: true });
      assert.equal(b.status, 'rejected');
      const err = (b as PromiseRejectedResult).reason as DaemonError;
      assert.ok(err instanceof DaemonError);
      assert.equal(err.fatal, false);
      assert.equal(err.message, "path '/nix/store/bad' is broken");
      if ((version & 0xff) >= 26) assert.deepEqual(err.traces, ['while doing X']);
      assert.deepEqual(d, { status: 'fulfilled', value: false });
      assert.ok(logs.includes('a log line') && logs.includes('querying things'), JSON.stringify(logs));
      assert.equal(c.closed, false);
      c.close();
    }
  });

  test('STDERR_READ is fatal and fails every pipelined call', T, async () => {
    const sock = await fakeDaemon(0x122, async (s) => {
      s.write(Buffer.concat([encodeU64(READ), encodeU64(100)]));
    });
    const c = await DaemonConnection.connect(sock);
    const calls = [c.isValidPath(P('a')), c.queryPathFromHashPart('a'.repeat(32)), c.isValidPath(P('b'))];
    for (const p of calls) {
      await assert.rejects(p, (e: unknown) => e instanceof DaemonError && e.fatal && /STDERR_READ/.test(e.message));
    }
    assert.equal(c.closed, true);
    await assert.rejects(c.isValidPath(P('a')), (e: unknown) => e instanceof DaemonError && e.fatal);
  });

  test('hostile sizes are refused without allocating', T, async () => {
    const sock = await fakeDaemon(0x122, async (s, r) => {
      await r.u64();
      await r.str(1000);
      // QueryPathInfo reply claiming 2^40 references.
      s.write(Buffer.concat([encodeU64(LAST), encodeU64(1), encodeString(''), encodeString('0'.repeat(64)), encodeU64(2 ** 40)]));
    });
    const c = await DaemonConnection.connect(sock);
    await assert.rejects(c.queryPathInfo(P('a')), (e: unknown) => e instanceof DaemonError && e.fatal && /exceeds limit/.test(e.message));
  });

  test('old daemons (< 1.17) report a missing path as an error: null', T, async () => {
    const sock = await fakeDaemon(0x110, async (s, r, n) => {
      await r.u64();
      await r.str(1000);
      s.write(errorFrame(n, `path '${P('a')}' is not valid`));
      await r.u64();
      await r.str(1000);
      // 1.16 reply: no found flag, has ultimate/sigs/ca.
      s.write(
        Buffer.concat([
          encodeU64(LAST),
          encodeString(''),
          encodeString('ab'.repeat(32)),
          encodeStringList([P('c')]),
          encodeU64(1234),
          encodeU64(5678),
          encodeU64(1),
          encodeStringList(['k:sig']),
          encodeString(''),
        ]),
      );
    });
    const c = await DaemonConnection.connect(sock);
    assert.equal(c.daemonVersion, null);
    assert.equal(await c.queryPathInfo(P('a')), null);
    const info = await c.queryPathInfo(P('b'));
    assert.deepEqual(info, {
      path: P('b'),
      deriver: null,
      narHash: Buffer.from('ab'.repeat(32), 'hex'),
      references: [P('c')],
      registrationTime: 1234,
      narSize: 5678,
      ultimate: true,
      sigs: ['k:sig'],
      ca: null,
    });
    c.close();
  });

  test('narFromPath: exactly narSize bytes, then the connection is closed', T, async () => {
    const nar = Buffer.alloc(300_000, 9);
    const sock = await fakeDaemon(0x122, async (s, r) => {
      assert.equal(await r.u64(), 11); // AddTempRoot
      await r.str(1000);
      s.write(Buffer.concat([encodeU64(LAST), encodeU64(1)]));
      assert.equal(await r.u64(), 38);
      await r.str(1000);
      s.write(Buffer.concat([encodeU64(LAST), nar, Buffer.from('trailing junk')]));
    });
    const c = await DaemonConnection.connect(sock);
    const root = c.addTempRoot(P('a'));
    const s = c.narFromPath(P('a'), nar.length);
    await root;
    await assert.rejects(c.isValidPath(P('a')), (e: unknown) => e instanceof DaemonError && e.fatal);
    const got: Buffer[] = [];
    for await (const b of s) got.push(b as Buffer);
    assert.deepEqual(Buffer.concat(got), nar);
    assert.equal(c.closed, true);
  });

  test('narFromPath: short stream is an error', T, async () => {
    const sock = await fakeDaemon(0x122, async (s, r) => {
      await r.u64();
      await r.str(1000);
      s.end(Buffer.concat([encodeU64(LAST), Buffer.alloc(100)]));
    });
    const c = await DaemonConnection.connect(sock);
    const s = c.narFromPath(P('a'), 1000);
    await assert.rejects(async () => {
      for await (const _ of s) {
        // drain
      }
    }, /100 of 1000/);
    assert.equal(c.closed, true);
  });

  test('bad arguments are refused locally', T, async () => {
    const sock = await fakeDaemon(0x122, async () => {});
    const c = await DaemonConnection.connect(sock);
    for (const bad of [
      '/tmp/x',
      '/nix/store/abc-x',
      `/nix/store/${'e'.repeat(32)}-x`,
      `${P('a')}/sub`,
      `/nix/store/${'a'.repeat(32)}-..`,
      `/nix/store/${'a'.repeat(32)}-a b`,
    ]) {
      await assert.rejects(c.isValidPath(bad), (e: unknown) => e instanceof DaemonError && e.code === 'EINVAL' && !e.fatal, bad);
    }
    await assert.rejects(c.queryPathFromHashPart('../x'), (e: unknown) => e instanceof DaemonError && e.code === 'EINVAL');
    assert.throws(() => c.narFromPath('/etc/passwd', 10), DaemonError);
    assert.equal(c.closed, false);
    c.close();
  });

  test('connect errors name the socket', T, async () => {
    const missing = path.join(tmp, 'nope');
    await assert.rejects(
      DaemonConnection.connect(missing),
      (e: unknown) => e instanceof DaemonError && e.code === 'ENOENT' && e.fatal && e.message.includes(missing),
    );
    // Accepts but never answers the handshake.
    const silent = path.join(tmp, 'silent');
    const server = track(net.createServer(() => {}));
    await new Promise<void>((res) => server.listen(silent, res));
    await assert.rejects(
      DaemonConnection.connect(silent, { timeoutMs: 200 }),
      (e: unknown) => e instanceof DaemonError && e.code === 'ETIMEDOUT' && e.message.includes(silent),
    );
    // Hangs up during the handshake (what a daemon does to a client it does not allow).
    const rude = path.join(tmp, 'rude');
    const server2 = track(net.createServer((s) => s.destroy()));
    await new Promise<void>((res) => server2.listen(rude, res));
    await assert.rejects(DaemonConnection.connect(rude), (e: unknown) => e instanceof DaemonError && e.fatal && e.message.includes(rude));
  });

  test('op timeout kills a stuck connection', T, async () => {
    const sock = await fakeDaemon(0x122, async () => {
      // never answer
    });
    const c = await DaemonConnection.connect(sock, { opTimeoutMs: 200 });
    await assert.rejects(c.isValidPath(P('a')), (e: unknown) => e instanceof DaemonError && e.code === 'ETIMEDOUT' && e.fatal);
    assert.equal(c.closed, true);
  });
});
