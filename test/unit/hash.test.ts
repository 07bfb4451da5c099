import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatSha256Nix32, parseSha256 } from '../../src/nix/hash.ts';

const HEX = '7d305aa622385d5c4d0714e5ce7b0e184947c2aeb84962f64abca254546852cf';
const NIX32 = '1ksjd1a598mw9bv64jdqmv14fj8q1rxwxr8l0x6mqp9q4ak5lc3x';
const B64 = 'fTBapiI4XVxNBxTlznsOGElHwq64SWL2SryiVFRoUs8=';
const DIGEST = Buffer.from(HEX, 'hex');

describe('sha256 parsing', { timeout: 10_000 }, () => {
  it('accepts every form Nix uses for the same digest', () => {
    for (const text of [
      `sha256:${NIX32}`,
      `sha256:${HEX}`,
      `sha256:${HEX.toUpperCase()}`,
      `sha256:${B64}`,
      `sha256-${B64}`,
      HEX, // the daemon's form
    ]) {
      assert.deepEqual(parseSha256(text), DIGEST, text);
    }
  });

  it('formats as sha256:<nix32>', () => {
    assert.equal(formatSha256Nix32(DIGEST), `sha256:${NIX32}`);
    assert.equal(formatSha256Nix32(parseSha256(`sha256-${B64}`)), `sha256:${NIX32}`);
    assert.throws(() => formatSha256Nix32(Buffer.alloc(20)));
  });

  it('rejects everything else', () => {
    for (const text of [
      '',
      'sha256:',
      'sha256-',
      NIX32, // bare nix32 is not a form Nix accepts for a typed field
      `sha512:${NIX32}`,
      `md5:${HEX}`,
      `SHA256:${NIX32}`,
      `sha256:${NIX32} `,
      ` sha256:${NIX32}`,
      `sha256:${NIX32}\n`,
      `sha256:${NIX32.slice(1)}`,
      `sha256:${NIX32}0`,
      `sha256:e${NIX32.slice(1)}`,
      `sha256:2${NIX32.slice(1)}`, // bits beyond 256
      `sha256:${HEX.slice(2)}`,
      `sha256:${HEX}00`,
      `sha256:${HEX.slice(1)}g`,
      `sha256-${B64.slice(0, -1)}`, // no padding
      `sha256-${B64.replace('T', '-')}`, // base64url is not accepted
      `sha256-fTBapiI4XVxNBxTlznsOGElHwq64SWL2SryiVFRoUs9=`, // non-canonical trailing bits
      `sha256-${B64}=`,
      `sha256:${B64.slice(0, 43)}`,
      HEX.slice(1),
      HEX + '0',
      `sha256:${'0'.repeat(44)}`,
    ]) {
      assert.throws(() => parseSha256(text), Error, JSON.stringify(text));
    }
    assert.throws(() => parseSha256(undefined as unknown as string));
    assert.throws(() => parseSha256(42 as unknown as string));
  });
});
