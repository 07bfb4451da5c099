import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { getNar, MAX_HEAD_BYTES } from '../../src/peers/nar-get.ts';

// The lean NAR client against raw bytes from a hostile peer: what it accepts, node:http (llhttp)
// accepts with the same body; what llhttp rejects, it rejects too; and it is stricter still where a
// NAR has no business (odd framings, huge heads, folded lines). Responses also arrive a byte at a time.

type Script = (socket: Socket) => void;
let server: Server;
let port = 0;
const scripts = new Map<string, Script>();

before(async () => {
  server = createServer((socket) => {
    let req = '';
    socket.on('data', (d) => {
      req += d.toString('latin1');
      if (!req.includes('\r\n\r\n')) return;
      const path = /^GET (\S+) /.exec(req)?.[1] ?? '';
      const script = scripts.get(path.slice(1));
      if (script) script(socket);
      else socket.destroy();
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
after(() => server.close());

const send =
  (bytes: Buffer | string, opts: { drip?: boolean; end?: boolean } = {}): Script =>
  (socket) => {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1');
    if (!opts.drip) {
      socket.write(buf);
      if (opts.end !== false) socket.end();
      return;
    }
    let i = 0;
    const step = () => {
      if (socket.destroyed) return;
      if (i >= buf.length) return void (opts.end !== false && socket.end());
      socket.write(buf.subarray(i, i + 1));
      i++;
      setImmediate(step);
    };
    step();
  };

let nextId = 0;
function serve(script: Script): string {
  const id = `r${nextId++}`;
  scripts.set(id, script);
  return `http://127.0.0.1:${port}/${id}`;
}

async function ours(script: Script): Promise<{ ok: true; status: number; body: Buffer } | { ok: false; error: string }> {
  try {
    const res = await getNar(serve(script), { headers: {}, headersMs: 5000, timeoutError: () => new Error('timeout') });
    const parts: Buffer[] = [];
    for await (const c of res) parts.push(Buffer.from(c as Buffer));
    return { ok: true, status: res.statusCode, body: Buffer.concat(parts) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

function nodes(script: Script): Promise<{ ok: true; status: number; body: Buffer } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const req = get(serve(script), { agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        res.complete ? resolve({ ok: true, status: res.statusCode!, body: Buffer.concat(parts) }) : resolve({ ok: false, error: 'incomplete' }),
      );
      res.on('error', (e) => resolve({ ok: false, error: e.message }));
      res.on('aborted', () => resolve({ ok: false, error: 'aborted' }));
    });
    req.on('error', (e) => resolve({ ok: false, error: e.message }));
  });
}

const body = randomBytes(300_000);
const ok = (extra = '') => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n`;

describe('nar-get: well-formed responses', () => {
  it('a Content-Length body, whole and dripped a byte at a time', async () => {
    const r = await ours(send(Buffer.concat([Buffer.from(ok(), 'latin1'), body])));
    assert.ok(r.ok && r.body.equals(body), JSON.stringify(r).slice(0, 200));
    const small = body.subarray(0, 3000);
    const dripped = await ours(send(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${small.length}\r\n\r\n`), small]), { drip: true }));
    assert.ok(dripped.ok && dripped.body.equals(small), JSON.stringify(dripped).slice(0, 200));
  });

  it('a chunked body with extensions and trailers, whole and dripped', async () => {
    const chunks = [body.subarray(0, 100_000), body.subarray(100_000, 100_001), body.subarray(100_001)];
    const wire = Buffer.concat([
      Buffer.from('HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nContent-Range: bytes 5-300004/300005\r\n\r\n'),
      ...chunks.flatMap((c, i) => [Buffer.from(`${c.length.toString(16)}${i === 1 ? ';ext=1' : ''}\r\n`), c, Buffer.from('\r\n')]),
      Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
    ]);
    for (const drip of [false, true]) {
      const w = drip ? Buffer.concat([wire.subarray(0, 200), Buffer.from('')]) : wire;
      if (drip) {
        const small = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;a=b\r\n!\r\n0\r\n\r\n');
        const r = await ours(send(small, { drip: true }));
        assert.ok(r.ok && r.body.toString() === 'hello!', JSON.stringify(r));
        continue;
      }
      const r = await ours(send(w));
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.status, 206);
      assert.ok(r.body.equals(body));
    }
  });

  it('a body delimited by the connection closing', async () => {
    const r = await ours(send(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), body])));
    assert.ok(r.ok && r.body.equals(body));
  });
});

describe('nar-get: hostile responses, side by side with node:http', () => {
  const cases: [string, () => Buffer | string, { nodeAccepts: boolean }][] = [
    ['garbage instead of a status line', () => 'SSH-2.0-OpenSSH\r\n\r\n', { nodeAccepts: false }],
    ['a status line with a bad code', () => 'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n', { nodeAccepts: false }],
    ['a header name with a space', () => 'HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n', { nodeAccepts: false }],
    ['a NUL in a header value', () => 'HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n', { nodeAccepts: false }],
    ['Content-Length not a number', () => 'HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n', { nodeAccepts: false }],
    ['conflicting Content-Lengths', () => 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', { nodeAccepts: false }],
    [
      'Content-Length with Transfer-Encoding',
      () => 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      { nodeAccepts: false },
    ],
    ['a chunk size that is not hex', () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', { nodeAccepts: false }],
    ['chunk data longer than its size', () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n', { nodeAccepts: false }],
    ['a body cut short of its Content-Length', () => 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort', { nodeAccepts: false }],
    ['a chunked body cut before its last chunk', () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', { nodeAccepts: false }],
    ['a head larger than 16 KiB', () => `HTTP/1.1 200 OK\r\n${'X-Pad: ' + 'a'.repeat(MAX_HEAD_BYTES)}\r\nContent-Length: 0\r\n\r\n`, { nodeAccepts: false }],
    ['a chunk size of 2^40', () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000\r\nhello\r\n0\r\n\r\n', { nodeAccepts: false }],
    ['bare LF line endings', () => 'HTTP/1.1 200 OK\nContent-Length: 5\n\nhello', { nodeAccepts: false }],
    ['a folded header line (obs-fold)', () => 'HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 5\r\n\r\nhello', { nodeAccepts: false }],
    ['Transfer-Encoding gzip', () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello', { nodeAccepts: true }],
    ['a 100 Continue before the answer', () => 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', { nodeAccepts: true }],
    ['silence after connecting, then close', () => '', { nodeAccepts: false }],
  ];
  for (const [what, make, expect] of cases) {
    it(`refuses ${what}`, async (t) => {
      const [mine, node] = await Promise.all([ours(send(make())), nodes(send(make()))]);
      t.diagnostic(`${what}: ours ${mine.ok ? 'accepted' : `refused (${mine.error})`}; node:http ${node.ok ? 'accepted' : `refused (${node.error})`}`);
      assert.equal(mine.ok, false, 'the lean client must refuse it');
      assert.equal(node.ok, expect.nodeAccepts, 'what node:http does with it (so the comparison is real)');
    });
  }

  it('extra bytes after a Content-Length body are never read as anything', async () => {
    const r = await ours(send('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad'));
    assert.ok(r.ok && r.body.toString() === 'hello', JSON.stringify(r));
  });

  it('times out a peer that never answers, and honours an abort', async () => {
    const silent: Script = () => {};
    await assert.rejects(getNar(serve(silent), { headers: {}, headersMs: 200, timeoutError: () => new Error('no head in time') }), /no head in time/);
    const ac = new AbortController();
    const p = getNar(serve(silent), { headers: {}, headersMs: 5000, signal: ac.signal, timeoutError: () => new Error('timeout') });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(p, /aborted/);
  });

  it('counts idle time only while it wants bytes: a reader that holds the body back is not a silent peer', async () => {
    // 4 MiB sent at once, then silence with the connection open; the reader takes nothing for a while.
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    const res = await getNar(serve(send(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length + 1}\r\n\r\n`), big]), { end: false })), {
      headers: {},
      headersMs: 5000,
      timeoutError: () => new Error('timeout'),
    });
    let timedOut = false;
    res.setIdleTimeout(100, () => {
      timedOut = true;
      res.destroy(new Error('idle'));
    });
    // Held back: its buffer fills and reads from the peer stop. While they are stopped, no idle
    // timer may be armed on the connection (one armed would fire in 100 ms of the peer's silence).
    const socket = (res as unknown as { socket: Socket }).socket;
    while (!socket.isPaused()) await new Promise((r) => setImmediate(r));
    assert.ok(res.readableLength >= res.readableHighWaterMark, 'held because its buffer is full');
    assert.equal(socket.timeout, 0, 'no idle timer while the reader holds the body back');
    assert.equal(timedOut, false, 'no idle timeout while the reader held the body back');
    let got = 0;
    res.on('data', (c: Buffer) => (got += c.length));
    await new Promise((r) => res.once('close', r));
    assert.equal(got, big.length, 'everything sent was read');
    assert.equal(timedOut, true, 'then the silence of the peer, with the reader waiting, does time out');
  });
});
