import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { PeerClient, PeerError } from '../../src/peers/peer-client.ts';

// A piece of a NAR by bounded Range (several holders at once, swarm-nar.ts): the peer client asks
// `bytes=a-b` and takes only the 206 with that Content-Range and length; a holder that answers the
// whole NAR (200), another range or a wrong length fails, and nothing past the piece is passed on.
// A real HTTP server on loopback, answering as told.

const NAR = randomBytes(256 * 1024);

type Answer = (range: string | undefined) => { status: number; headers: Record<string, string>; body: Buffer };

async function holder(answer: Answer, seen: IncomingHttpHeaders[]): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    seen.push(req.headers);
    const a = answer(req.headers.range);
    res.writeHead(a.status, a.headers);
    res.end(a.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/nar/x.nar` };
}

const honest: Answer = (range) => {
  const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
  if (!m) return { status: 200, headers: { 'content-length': String(NAR.length) } as Record<string, string>, body: NAR };
  const [a, b] = [Number(m[1]), Number(m[2])];
  return {
    status: 206,
    headers: { 'content-length': String(b - a + 1), 'content-range': `bytes ${a}-${b}/${NAR.length}` },
    body: NAR.subarray(a, b + 1),
  };
};

async function piece(answer: Answer, start: number, end: number): Promise<{ bytes: Buffer; range: string | undefined }> {
  const seen: IncomingHttpHeaders[] = [];
  const { server, url } = await holder(answer, seen);
  const client = new PeerClient({}, 'test', {}, { frames: false });
  try {
    const parts: Buffer[] = [];
    const stream = await client.openNar(url, { offset: start, end, expectedSize: NAR.length });
    await pipeline(
      stream,
      new Writable({
        write(c: Buffer, _e, cb) {
          parts.push(c);
          cb();
        },
      }),
    );
    return { bytes: Buffer.concat(parts), range: seen[0]?.range };
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

describe('a NAR piece by bounded Range', () => {
  it('asks bytes=a-b and passes on exactly that piece', async () => {
    const r = await piece(honest, 1000, 70_999);
    assert.equal(r.range, 'bytes=1000-70999');
    assert.ok(r.bytes.equals(NAR.subarray(1000, 71_000)));
  });

  it('the first piece is a range too (a NAR from byte 0 to short of its end)', async () => {
    const r = await piece(honest, 0, 4095);
    assert.equal(r.range, 'bytes=0-4095');
    assert.ok(r.bytes.equals(NAR.subarray(0, 4096)));
  });

  const bad: [string, Answer, RegExp][] = [
    ['the whole NAR (200: no Range support)', () => ({ status: 200, headers: { 'content-length': String(NAR.length) }, body: NAR }), /no range support/],
    [
      'another range',
      () => ({ status: 206, headers: { 'content-length': '4096', 'content-range': `bytes 0-4095/${NAR.length}` }, body: NAR.subarray(0, 4096) }),
      /wrong Content-Range/,
    ],
    [
      'the right range with the wrong length',
      () => ({ status: 206, headers: { 'content-length': '5000', 'content-range': `bytes 1000-5095/${NAR.length}` }, body: NAR.subarray(1000, 6000) }),
      /Content-Length 5000/,
    ],
  ];
  for (const [what, answer, error] of bad) {
    it(`refuses ${what}`, async () => {
      await assert.rejects(piece(answer, 1000, 5095), (e: unknown) => e instanceof PeerError && e.kind === 'bad-response' && error.test(e.message));
    });
  }
});
