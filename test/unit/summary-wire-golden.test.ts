// Fixes the summary wire format (scheme 1) independently of the bloomfilter package: the hashing is
// written out here from its documentation (64-bit FNV-1a over the hash part's characters, the two
// 32-bit halves read as signed integers and reduced mod m, then enhanced double hashing; bit b sits in
// bucket b >> 5 at bit b & 31) and checked against FNV's published vectors; the bytes of a summary are
// laid out here by hand. A bloomfilter release that hashed differently would make Peernix versions
// misread each other's summaries (false "has it" or, worse, silent misses), and fails this test.
import assert from 'node:assert/strict';
import { BloomFilter } from 'bloomfilter';
import { describe, test } from 'node:test';
import { decodeSummary, encodeSummary } from '../../src/wire/summary-wire.ts';

const MASK64 = (1n << 64n) - 1n;
function fnv1a64(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(s, 'latin1')) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & MASK64;
  return h;
}
const floorMod = (x: number, m: number) => ((x % m) + m) % m;
/** The k bit positions of `s` in a filter of m bits. */
function positions(s: string, m: number, k: number): number[] {
  const h = fnv1a64(s);
  let a = floorMod(Number(BigInt.asIntN(32, h >> 32n)), m);
  let b = floorMod(Number(BigInt.asIntN(32, h)), m);
  const out = [a];
  for (let i = 1; i < k; i++) {
    a = (a + b) % m;
    b = (b + i) % m;
    out.push(a);
  }
  return out;
}
/** A whole summary, byte by byte, as the header comment of summary-wire.ts describes it. */
function summaryBytes(members: string[], m: number, k: number, epoch: string, generation: number): Buffer {
  const buckets = new Uint32Array(m / 32);
  for (const s of members) for (const p of positions(s, m, k)) buckets[p >>> 5] |= 1 << (p & 31);
  const out = Buffer.alloc(28 + buckets.length * 4);
  out.write('PNXS', 0, 'latin1');
  out.set([1, 1, k, 0], 4); // version, scheme, k, reserved
  out.write(epoch, 8, 'hex');
  out.writeUInt32BE(generation, 16);
  out.writeUInt32BE(members.length, 20);
  out.writeUInt32BE(buckets.length, 24);
  buckets.forEach((v, i) => out.writeUInt32BE(v, 28 + i * 4));
  return out;
}

const MEMBERS = [
  'p4pclmv1gyja5kzc26npqpia1qqxrf0l',
  '0000000000000000000000000000000v',
  'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz',
  'a4b1n4k9gqdyd5xhxm9s4wwb6kja8lch',
  '9zm2nzrbc9l2vpvkxsqn9d8d6w7czqz0',
];
const isMember = (buckets: Uint32Array, s: string, m: number, k: number) => positions(s, m, k).every((p) => (buckets[p >>> 5] & (1 << (p & 31))) !== 0);

describe('summary wire format, scheme 1', () => {
  test('the hashing written here matches FNV-1a 64 as published', () => {
    assert.equal(fnv1a64('').toString(16), 'cbf29ce484222325');
    assert.equal(fnv1a64('a').toString(16), 'af63dc4c8601ec8c');
    assert.equal(fnv1a64('foobar').toString(16), '85944171f73967e8');
  });

  test('golden positions: fixed numbers, for a small filter and a 3 MiB one', () => {
    assert.deepEqual(positions(MEMBERS[0], 1024, 7), [970, 824, 679, 536, 396, 260, 129]);
    assert.deepEqual(positions(MEMBERS[1], 1024, 7), [861, 528, 196, 890, 563, 240, 946]);
    assert.deepEqual(positions(MEMBERS[2], 1024, 7), [31, 580, 106, 658, 189, 748, 288]);
    assert.deepEqual(positions(MEMBERS[0], 3 * 2 ** 23, 7), [21852106, 21028664, 20205223, 19381784, 18558348, 17734916, 16911489]);
    assert.deepEqual(positions(MEMBERS[2], 3 * 2 ** 23, 7), [11680799, 13448772, 15216746, 16984722, 18752701, 20520684, 22288672]);
  });

  for (const [m, k] of [
    [1024, 7],
    [32 * 1000, 10],
    [3 * 2 ** 23, 7],
  ] as const) {
    test(`what Peernix sends is what the documented hashing gives (m=${m}, k=${k}), and it reads back the same`, () => {
      const filter = new BloomFilter(m, k);
      for (const s of MEMBERS) filter.add(s);
      const sent = encodeSummary({ epoch: '0123456789abcdef', generation: 42, paths: MEMBERS.length, filter });
      const expected = summaryBytes(MEMBERS, m, k, '0123456789abcdef', 42);
      assert.ok(sent.equals(expected), 'byte for byte');

      const read = decodeSummary(expected);
      assert.equal(read.epoch, '0123456789abcdef');
      assert.equal(read.generation, 42);
      assert.equal(read.paths, MEMBERS.length);
      for (const s of MEMBERS) assert.equal(read.filter.test(s), true, `${s} is in`);
      // Non-members: the library's answer must be the documented one, false positives included.
      const buckets = new Uint32Array(m / 32);
      for (let i = 0; i < m / 32; i++) buckets[i] = expected.readUInt32BE(28 + i * 4);
      let outside = 0;
      for (let i = 0; i < 2000; i++) {
        const probe = i
          .toString(32)
          .padStart(32, '0')
          .replace(/[eotu]/g, 'x');
        const want = isMember(buckets, probe, m, k);
        if (!want) outside++;
        assert.equal(read.filter.test(probe), want, probe);
      }
      assert.ok(outside > 0, 'some probes are outside the filter');
    });
  }
});
