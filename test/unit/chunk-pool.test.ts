import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { CHUNK_SIZE, freeChunks, releaseChunk, takeChunk } from '../../src/base/chunk-pool.ts';

describe('chunk pool', () => {
  it('hands a released chunk out again, and only once', () => {
    const a = takeChunk();
    assert.equal(a.length, CHUNK_SIZE);
    const before = freeChunks();
    releaseChunk(a.subarray(100, 200)); // a slice releases the whole chunk
    assert.equal(freeChunks(), before + 1);
    releaseChunk(a); // second release of the same chunk: ignored
    assert.equal(freeChunks(), before + 1);
    const b = takeChunk();
    assert.equal(b.buffer, a.buffer);
    const c = takeChunk();
    assert.notEqual(c.buffer, b.buffer, 'a chunk still out is never handed out twice');
    releaseChunk(b);
    releaseChunk(c);
  });

  it('ignores buffers it did not hand out', () => {
    const before = freeChunks();
    releaseChunk(Buffer.alloc(CHUNK_SIZE));
    releaseChunk(Buffer.from('small'));
    releaseChunk(new Uint8Array(10));
    assert.equal(freeChunks(), before);
  });

  it('keeps a bounded number of chunks for reuse', () => {
    const out = Array.from({ length: 200 }, () => takeChunk());
    for (const c of out) releaseChunk(c);
    assert.ok(freeChunks() <= 64, `${freeChunks()} free chunks kept`);
    assert.ok(freeChunks() > 0);
  });
});

describe('chunk pool in a worker thread', () => {
  it('keeps a quarter of what the main thread keeps', async () => {
    // A share loop's own pool (app/share-worker.ts): the same module, loaded in a worker.
    const code = `
      const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(new URL('../../src/base/chunk-pool.ts', import.meta.url).href)}).then((pool) => {
        const out = Array.from({ length: 80 }, () => pool.takeChunk());
        for (const c of out) pool.releaseChunk(c);
        parentPort.postMessage(pool.freeChunks());
      });`;
    const worker = new Worker(code, { eval: true });
    try {
      const free = await new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      assert.equal(free, 16);
    } finally {
      await worker.terminate();
    }
  });
});
