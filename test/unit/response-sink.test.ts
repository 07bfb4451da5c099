import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { freeChunks, releaseChunk, takeChunk } from '../../src/base/chunk-pool.ts';
import { ResponseSink } from '../../src/cache/response-sink.ts';

// A body of pooled chunks, each filled from `data` just before it is pushed: if a chunk were
// reused while still queued for the socket, the client would see the wrong bytes.
function pooledBody(data: Buffer): Readable {
  let pos = 0;
  return new Readable({
    highWaterMark: 256 * 1024,
    read() {
      if (pos >= data.length) return void this.push(null);
      const c = takeChunk();
      const n = data.copy(c, 0, pos, Math.min(data.length, pos + c.length));
      pos += n;
      this.push(c.subarray(0, n));
    },
  });
}

describe('ResponseSink', { timeout: 60_000 }, () => {
  const data = randomBytes(24 * 1024 * 1024 + 7);
  const digest = createHash('sha256').update(data).digest('hex');
  let server: Server;
  let base: string;
  const results: (Error | null)[] = [];

  before(async () => {
    server = createServer((req, res) => {
      res.setHeader('Content-Length', String(data.length));
      pipeline(pooledBody(data), new ResponseSink(res), (err) => results.push(err ?? null));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  function fetchHash(): Promise<string> {
    return new Promise((resolve, reject) => {
      get(base, (res) => {
        const h = createHash('sha256');
        res.on('data', (c: Buffer) => h.update(c));
        res.on('end', () => resolve(h.digest('hex')));
        res.on('error', reject);
      }).on('error', reject);
    });
  }

  it('parallel transfers through reused chunks all arrive intact, and end cleanly', async () => {
    // Drain the pool first so that only chunks released by the sink can come back.
    const held = Array.from({ length: 64 }, () => takeChunk());
    for (const c of held) releaseChunk(c);
    results.length = 0;
    const hashes = await Promise.all([fetchHash(), fetchHash(), fetchHash(), fetchHash()]);
    assert.deepEqual(hashes, [digest, digest, digest, digest]);
    // Each server-side pipeline reports its end: waited for, not guessed to come within 50 ms.
    while (results.length < 4) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(results, [null, null, null, null]);
    assert.ok(freeChunks() > 0, 'written chunks went back to the pool');
  });

  it('a client that goes away fails the pipeline as a premature close', async () => {
    results.length = 0;
    await new Promise<void>((resolve) => {
      const req = get(base, (res) => {
        res.once('data', () => req.destroy());
        res.on('error', () => {});
      });
      req.on('error', () => {});
      req.on('close', () => resolve());
    });
    for (let i = 0; i < 100 && results.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(results.length, 1);
    assert.equal((results[0] as NodeJS.ErrnoException | null)?.code, 'ERR_STREAM_PREMATURE_CLOSE');
  });
});
