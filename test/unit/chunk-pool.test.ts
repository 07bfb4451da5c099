import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
