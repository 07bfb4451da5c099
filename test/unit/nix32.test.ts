import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { decodeNix32, encodeNix32, NIX32_ALPHABET } from '../../src/nix/nix32.ts';

const NIX_ENV = { ...process.env, NIX_CONFIG: 'experimental-features = nix-command' };

const HEX = '7d305aa622385d5c4d0714e5ce7b0e184947c2aeb84962f64abca254546852cf';
const NIX32 = '1ksjd1a598mw9bv64jdqmv14fj8q1rxwxr8l0x6mqp9q4ak5lc3x';

describe('nix32', { timeout: 60_000 }, () => {
  it('matches the reference vector both ways', () => {
    assert.equal(encodeNix32(Buffer.from(HEX, 'hex')), NIX32);
    assert.equal(decodeNix32(NIX32, 32).toString('hex'), HEX);
  });

  it('has the expected lengths and edge values', () => {
    assert.equal(encodeNix32(new Uint8Array(0)), '');
    assert.equal(encodeNix32(Buffer.alloc(20)), '0'.repeat(32));
    assert.equal(encodeNix32(Buffer.alloc(32)).length, 52);
    assert.equal(encodeNix32(Buffer.alloc(16, 0xff)), '7' + 'z'.repeat(25));
    assert.deepEqual(decodeNix32('7' + 'z'.repeat(25), 16), Buffer.alloc(16, 0xff));
  });

  it('agrees with `nix hash to-base32` on random digests of several sizes', () => {
    for (const [type, size] of [
      ['sha256', 32],
      ['sha1', 20],
      ['sha512', 64],
      ['md5', 16],
    ] as const) {
      const samples = Array.from({ length: 8 }, () => randomBytes(size));
      const out = execFileSync('nix', ['hash', 'to-base32', '--type', type, ...samples.map((b) => b.toString('hex'))], {
        env: NIX_ENV,
        encoding: 'utf8',
      })
        .trim()
        .split('\n');
      assert.equal(out.length, samples.length);
      samples.forEach((b, i) => {
        assert.equal(encodeNix32(b), out[i], `${type} ${b.toString('hex')}`);
        assert.deepEqual(decodeNix32(out[i], size), b);
      });
    }
  });

  it('round-trips random buffers of every length up to 70', () => {
    for (let len = 0; len <= 70; len++) {
      const b = randomBytes(len);
      assert.deepEqual(decodeNix32(encodeNix32(b), len), b);
    }
  });

  it('rejects characters outside the alphabet', () => {
    for (const bad of ['e', 'o', 't', 'u', 'A', 'Z', '-', ' ', '/', '\u00e9', '\0']) {
      const text = bad + NIX32.slice(1);
      assert.throws(() => decodeNix32(text, 32), /invalid character/, JSON.stringify(bad));
    }
    assert.equal(NIX32_ALPHABET.length, 32);
    for (const c of 'eotu') assert.ok(!NIX32_ALPHABET.includes(c));
  });

  it('rejects the wrong length', () => {
    assert.throws(() => decodeNix32(NIX32.slice(1), 32), /expected 52/);
    assert.throws(() => decodeNix32(NIX32 + '0', 32), /expected 52/);
    assert.throws(() => decodeNix32(NIX32, 20), /expected 32/);
    assert.throws(() => decodeNix32('', 1));
  });

  it('rejects bits beyond the byte length, like Nix', () => {
    // 52 characters carry 260 bits; the top four must be zero for a 32-byte value.
    assert.throws(() => decodeNix32('2' + NIX32.slice(1), 32), /bits beyond/);
    assert.throws(() => decodeNix32('z' + NIX32.slice(1), 32), /bits beyond/);
    assert.throws(() => decodeNix32('8' + 'z'.repeat(25), 16), /bits beyond/);
    // Nix refuses the same inputs.
    assert.throws(() => execFileSync('nix', ['hash', 'to-base16', '--type', 'sha256', '2' + NIX32.slice(1)], { env: NIX_ENV, stdio: 'pipe' }));
  });
});
