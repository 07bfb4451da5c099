import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { PeerClient } from '../../src/peers/peer-client.ts';

// A holder that ignores Range (the Go peernix: 200 and the whole NAR, chunked) is resumed from by
// reading its NAR from the start and dropping what was already sent, not refused as a faulty peer.

const NAR = randomBytes(300_000);

async function server(handler: (range: string | undefined, res: import('node:http').ServerResponse) => void) {
  const s = createServer((req, res) => handler(req.headers.range, res));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as { port: number }).port}/nix-cache/x.nar`;
  return { url, close: () => (s.closeAllConnections(), new Promise((r) => s.close(r))) };
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('resuming from a holder that ignores Range', () => {
  it('takes a 200 with the whole NAR (chunked, as Go sends it) and yields the bytes after the offset', async () => {
    const ranges: (string | undefined)[] = [];
    const srv = await server((range, res) => {
      ranges.push(range);
      res.writeHead(200, { 'content-type': 'application/x-nix-nar' }); // no Content-Length: chunked
      for (let i = 0; i < NAR.length; i += 7000) res.write(NAR.subarray(i, i + 7000));
      res.end();
    });
    const client = new PeerClient({}, 'test');
    try {
      const offset = 123_457;
      const rest = await readAll(await client.openNar(srv.url, { offset, expectedSize: NAR.length }));
      assert.equal(rest.length, NAR.length - offset);
      assert.ok(rest.equals(NAR.subarray(offset)));
      assert.deepEqual(ranges, [`bytes=${offset}-`]);
    } finally {
      client.close();
      await srv.close();
    }
  });

  it('a 200 cut before the offset is reached fails as a cut connection, and a wrong Content-Length is still refused', async () => {
    const srv = await server((_range, res) => {
      res.writeHead(200);
      res.write(NAR.subarray(0, 1000));
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const client = new PeerClient({}, 'test');
    try {
      const s = await client.openNar(srv.url, { offset: 5000, expectedSize: NAR.length });
      await assert.rejects(readAll(s), /closed mid/);
    } finally {
      client.close();
      await srv.close();
    }
    const liar = await server((_range, res) => {
      res.writeHead(200, { 'content-length': String(NAR.length - 10) });
      res.end(NAR.subarray(10));
    });
    const client2 = new PeerClient({}, 'test');
    try {
      await assert.rejects(client2.openNar(liar.url, { offset: 5000, expectedSize: NAR.length }), /Content-Length/);
    } finally {
      client2.close();
      await liar.close();
    }
  });
});
