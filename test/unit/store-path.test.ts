import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isHashPart, isStorePathName, parseBaseName, parseStorePath, STORE_DIR } from '../../src/nix/store-path.ts';

const HASH = 'pn1xxnd0li7pg464ydxxwm5fqv7lxikf';

describe('store paths', { timeout: 10_000 }, () => {
  it('parses a store path and a basename', () => {
    assert.equal(STORE_DIR, '/nix/store');
    assert.deepEqual(parseStorePath(`/nix/store/${HASH}-hello-2.12.1`), {
      hashPart: HASH,
      name: 'hello-2.12.1',
      baseName: `${HASH}-hello-2.12.1`,
    });
    assert.deepEqual(parseBaseName(`${HASH}-x.drv`), { hashPart: HASH, name: 'x.drv' });
    // Every allowed character class, and a name with dashes of its own.
    assert.equal(parseBaseName(`${HASH}-Aa0+._?=-`).name, 'Aa0+._?=-');
    assert.equal(parseBaseName(`${HASH}-a-b-c`).name, 'a-b-c');
  });

  it('checks hash parts', () => {
    assert.ok(isHashPart(HASH));
    assert.ok(isHashPart('0'.repeat(32)));
    assert.ok(!isHashPart(HASH.slice(1)));
    assert.ok(!isHashPart(HASH + 'a'));
    for (const c of ['e', 'o', 't', 'u', 'A', '.', '/', '%', '-']) {
      assert.ok(!isHashPart(c + HASH.slice(1)), c);
    }
    assert.ok(!isHashPart(''));
    assert.ok(!isHashPart(undefined as unknown as string));
  });

  it('checks names', () => {
    assert.ok(isStorePathName('a'));
    assert.ok(isStorePathName('x'.repeat(211)));
    assert.ok(!isStorePathName('x'.repeat(212)));
    assert.ok(!isStorePathName(''));
    assert.ok(isStorePathName('.a'));
    assert.ok(isStorePathName('..a'));
    assert.ok(isStorePathName('...'));
    for (const bad of ['.', '..', '.-foo', '..-foo', 'a/b', 'a b', 'a%2e', 'a\nb', 'a\0', 'é', 'a:b', 'a,b', 'a;b', '~a', 'a@b']) {
      assert.ok(!isStorePathName(bad), JSON.stringify(bad));
    }
  });

  it('rejects anything that is not exactly /nix/store/<hash>-<name>', () => {
    for (const bad of [
      '',
      '/nix/store',
      '/nix/store/',
      `/nix/store/${HASH}`,
      `/nix/store/${HASH}-`,
      `/nix/store/${HASH}-foo/`,
      `/nix/store/${HASH}-foo/bin/sh`,
      `/nix/store/${HASH}-foo/../..`,
      `/nix/store/../store/${HASH}-foo`,
      `/nix/store/./${HASH}-foo`,
      `/nix//store/${HASH}-foo`,
      `//nix/store/${HASH}-foo`,
      `nix/store/${HASH}-foo`,
      `/nix/store/${HASH}-%2e%2e`,
      `/nix/store/${HASH}-..`,
      `/nix/store/${HASH}-.`,
      `/nix/store/${HASH}-.-x`,
      `/nix/store/${HASH}-..-x`,
      `/nix/store/${HASH}_foo`,
      `/nix/store/${HASH.slice(1)}-foo`,
      `/nix/store/${HASH}a-foo`,
      `/nix/store/${HASH.replace('p', 'e')}-foo`,
      `/nix/store/${HASH.replace('p', 'o')}-foo`,
      `/nix/store/${HASH.replace('p', 't')}-foo`,
      `/nix/store/${HASH.replace('p', 'u')}-foo`,
      `/nix/store/${HASH.toUpperCase()}-foo`,
      `/nix/store/${HASH}-${'x'.repeat(212)}`,
      `/nix/store/${HASH}-foo\n`,
      `/nix/store/${HASH}-foo `,
      `/gnu/store/${HASH}-foo`,
      `/nix/store/../../etc/passwd`,
      `../${HASH}-foo`,
    ]) {
      assert.throws(() => parseStorePath(bad), Error, JSON.stringify(bad));
    }
    assert.equal(parseStorePath(`/nix/store/${HASH}-${'x'.repeat(211)}`).name.length, 211);
    assert.throws(() => parseStorePath(undefined as unknown as string));
  });

  it('rejects bad basenames', () => {
    for (const bad of ['', HASH, `${HASH}-`, `-${HASH}`, `${HASH}-a/b`, `../${HASH}-a`, `${HASH}x-a`, `${HASH}-a\n`]) {
      assert.throws(() => parseBaseName(bad), Error, JSON.stringify(bad));
    }
  });
});
