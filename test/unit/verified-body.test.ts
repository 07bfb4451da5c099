import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { NarMismatchError, VerifiedBody } from '../../src/cache/verified-body.ts';

async function run(chunks: Buffer[], opts: ConstructorParameters<typeof VerifiedBody>[0]) {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(c, _e, cb) {
      out.push(c);
      cb();
    },
  });
  let error: unknown = null;
  try {
    await pipeline(Readable.from(chunks), new VerifiedBody(opts), sink);
  } catch (e) {
    error = e;
  }
  return { out: Buffer.concat(out), error };
}

const data = randomBytes(100_000);
const chunks = [data.subarray(0, 33_333), data.subarray(33_333, 70_001), data.subarray(70_001)];
const narHash = createHash('sha256').update(data).digest();

describe('VerifiedBody', () => {
  it('passes the whole body when hash and size match', async () => {
    const { out, error } = await run(chunks, { narHash, narSize: data.length });
    assert.equal(error, null);
    assert.ok(out.equals(data));
  });

  it('emits exactly the requested slice, across chunk borders', async () => {
    for (const [start, end] of [
      [0, 0],
      [33_332, 33_334],
      [50_000, 99_999],
      [99_999, 99_999],
      [1, 70_001],
    ]) {
      const { out, error } = await run(chunks, { narHash, narSize: data.length, start, end });
      assert.equal(error, null);
      assert.ok(out.equals(data.subarray(start, end + 1)), `${start}-${end}`);
    }
  });

  it('withholds the last chunk and errors on a wrong hash', async () => {
    const bad = Buffer.from(data);
    bad[99_000] ^= 1;
    const { out, error } = await run([bad.subarray(0, 50_000), bad.subarray(50_000)], { narHash, narSize: data.length });
    assert.ok(error instanceof NarMismatchError);
    assert.ok(out.length < data.length, 'the tail must never be released');
  });

  it('errors on a short or long body', async () => {
    const short = await run([data.subarray(0, 99_999)], { narHash, narSize: data.length });
    assert.ok(short.error instanceof NarMismatchError);
    const long = await run([data, Buffer.from('x')], { narHash, narSize: data.length });
    assert.ok(long.error instanceof NarMismatchError);
  });
});
