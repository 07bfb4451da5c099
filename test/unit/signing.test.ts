import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseNarInfo, renderNarInfo } from '../../src/nix/narinfo.ts';
import type { NarInfo } from '../../src/nix/narinfo.ts';
import { encodeString, encodeU64 } from '../../src/store/wire.ts';
import { generateKeyPair, narInfoFingerprint, parsePublicKey, parseSecretKey, signNarInfo, verifyNarInfoSignature } from '../../src/nix/signing.ts';

const NIX_ENV = {
  ...process.env,
  NIX_CONFIG: 'experimental-features = nix-command\nsandbox = false\nsubstituters =\n',
};

function nix(args: string[], input?: Buffer): string {
  return execFileSync(args[0], args.slice(1), { env: NIX_ENV, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
}

// Input-addressed paths need a signature to be copied with require-sigs; content-addressed ones
// do not, so the trust tests use imported input-addressed paths.
function importInputAddressed(store: string, fsFile: string, storePath: string, refs: string[]): void {
  const nar = execFileSync('nix-store', ['--dump', fsFile]);
  const exported = Buffer.concat([
    encodeU64(1),
    nar,
    encodeU64(0x4558494e),
    encodeString(storePath),
    encodeU64(refs.length),
    ...refs.map((r) => encodeString(r)),
    encodeString(''),
    encodeU64(0),
    encodeU64(0),
  ]);
  nix(['nix-store', '--store', store, '--import', '--option', 'require-sigs', 'false'], exported);
}

function narInfoFile(cache: string, storePath: string): string {
  return path.join(cache, path.basename(storePath).slice(0, 32) + '.narinfo');
}

const INFO: NarInfo = {
  storePath: '/nix/store/mwk1m9cjyqahzs3hkvn1yd7ygk13wi42-d.drv',
  url: 'nar/x.nar',
  compression: 'none',
  narHash: 'sha256:17y420gsvyk73p6smndvr37l6c3rl5d5vdjbzs0f3vfhy7fjjh0b',
  narSize: 456,
  references: ['0ajr02r8s687bpci3xmv1yhy0i73ry94-dep'],
  sigs: [],
};

describe('fingerprint', { timeout: 10_000 }, () => {
  it('matches the reference example', () => {
    assert.equal(
      narInfoFingerprint(INFO),
      '1;/nix/store/mwk1m9cjyqahzs3hkvn1yd7ygk13wi42-d.drv;sha256:17y420gsvyk73p6smndvr37l6c3rl5d5vdjbzs0f3vfhy7fjjh0b;456;/nix/store/0ajr02r8s687bpci3xmv1yhy0i73ry94-dep',
    );
  });

  it('sorts references, ends with ";" when there are none, normalises the hash to nix32', () => {
    const refs = ['w48qq9k6hr91dsj1y96rkmfydi8k0nkw-b', '0ajr02r8s687bpci3xmv1yhy0i73ry94-dep', 'mwk1m9cjyqahzs3hkvn1yd7ygk13wi42-d.drv'];
    assert.match(
      narInfoFingerprint({ ...INFO, references: refs }),
      /;456;\/nix\/store\/0ajr02r8s687bpci3xmv1yhy0i73ry94-dep,\/nix\/store\/mwk1m9cjyqahzs3hkvn1yd7ygk13wi42-d\.drv,\/nix\/store\/w48qq9k6hr91dsj1y96rkmfydi8k0nkw-b$/,
    );
    assert.match(narInfoFingerprint({ ...INFO, references: [] }), /;456;$/);
    const nix32 = narInfoFingerprint(INFO);
    const digest = execFileSync('nix', ['hash', 'to-base16', '--type', 'sha256', INFO.narHash.slice(7)], { env: NIX_ENV, encoding: 'utf8' }).trim();
    const sri = execFileSync('nix', ['hash', 'to-sri', '--type', 'sha256', digest], { env: NIX_ENV, encoding: 'utf8' }).trim();
    assert.equal(narInfoFingerprint({ ...INFO, narHash: `sha256:${digest}` }), nix32);
    assert.equal(narInfoFingerprint({ ...INFO, narHash: sri }), nix32);
  });

  it('refuses to fingerprint nonsense', () => {
    assert.throws(() => narInfoFingerprint({ ...INFO, narSize: 0 }));
    assert.throws(() => narInfoFingerprint({ ...INFO, narHash: 'sha1:0000000000000000000000000000000000000000' }));
    assert.throws(() => narInfoFingerprint({ ...INFO, references: ['x,/nix/store/0ajr02r8s687bpci3xmv1yhy0i73ry94-dep'] }));
    assert.throws(() => narInfoFingerprint({ ...INFO, storePath: '/nix/store/x;y' }));
  });
});

describe('keys', { timeout: 10_000 }, () => {
  it('generates keys in Nix format that parse back', () => {
    const { secretKeyText, publicKeyText } = generateKeyPair('peernix-test-1');
    assert.match(secretKeyText, /^peernix-test-1:[A-Za-z0-9+/]{86}==$/);
    assert.match(publicKeyText, /^peernix-test-1:[A-Za-z0-9+/]{43}=$/);
    const sk = parseSecretKey(secretKeyText + '\n');
    assert.equal(sk.name, 'peernix-test-1');
    assert.equal(sk.publicKey.text, publicKeyText);
    assert.deepEqual(parsePublicKey(publicKeyText + '\n'), sk.publicKey);
    const sig = sk.sign('hello');
    assert.match(sig, /^peernix-test-1:[A-Za-z0-9+/]{86}==$/);
  });

  it('rejects bad key text with clear errors', () => {
    const { secretKeyText, publicKeyText } = generateKeyPair('k');
    const raw = Buffer.from(secretKeyText.slice(2), 'base64');
    for (const bad of ['', 'nocolon', ':' + secretKeyText.slice(2), 'k:', 'k:!!!', publicKeyText, 'k:' + raw.subarray(0, 63).toString('base64')]) {
      assert.throws(() => parseSecretKey(bad), /secret key/, JSON.stringify(bad));
    }
    // Public half not matching the seed.
    const mismatched = Buffer.concat([raw.subarray(0, 32), Buffer.alloc(32, 1)]);
    assert.throws(() => parseSecretKey('k:' + mismatched.toString('base64')), /does not match/);
    for (const bad of ['', 'k', ':' + publicKeyText.slice(2), 'k:', secretKeyText, 'k:' + Buffer.alloc(31).toString('base64')]) {
      assert.throws(() => parsePublicKey(bad), /public key/, JSON.stringify(bad));
    }
    assert.throws(() => generateKeyPair(''));
    assert.throws(() => generateKeyPair('a:b'));
    assert.throws(() => generateKeyPair('a b'));
  });

  it('verify never throws on malformed signatures and checks key names', () => {
    const a = parseSecretKey(generateKeyPair('a').secretKeyText);
    const b = parseSecretKey(generateKeyPair('b').secretKeyText);
    const sig = signNarInfo(INFO, a);
    assert.ok(verifyNarInfoSignature(INFO, sig, [b.publicKey, a.publicKey]));
    assert.ok(!verifyNarInfoSignature(INFO, sig, [b.publicKey]));
    // Same name, different key.
    const a2 = parseSecretKey(generateKeyPair('a').secretKeyText);
    assert.ok(!verifyNarInfoSignature(INFO, sig, [a2.publicKey]));
    assert.ok(verifyNarInfoSignature(INFO, sig, [a2.publicKey, a.publicKey]));
    for (const bad of ['', 'a', 'a:', ':' + sig.slice(2), 'a:###', 'a:' + Buffer.alloc(63).toString('base64'), sig + 'x', sig.replace('a:', 'b:'), null, 7]) {
      assert.equal(verifyNarInfoSignature(INFO, bad as string, [a.publicKey, b.publicKey]), false, String(bad));
    }
    assert.equal(verifyNarInfoSignature({ ...INFO, narSize: 457 }, sig, [a.publicKey]), false);
    assert.equal(verifyNarInfoSignature({ ...INFO, narHash: 'garbage' }, sig, [a.publicKey]), false);
    assert.equal(verifyNarInfoSignature({ ...INFO, references: [] }, sig, [a.publicKey]), false);
    assert.equal(verifyNarInfoSignature(INFO, sig, []), false);
  });
});

describe('signatures against Nix 2.8', { timeout: 180_000 }, () => {
  let dir: string;
  let store: string;
  let dep: string;
  let ia: string; // input-addressed path with a reference
  const NIXKEY_NAME = 'nix-made-1';

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-signing-'));
    store = path.join(dir, 'store');
    fs.writeFileSync(path.join(dir, 'file'), 'payload\n');
    dep = JSON.parse(nix(['nix-instantiate', '--store', store, '--eval', '--read-write-mode', '-E', 'builtins.toFile "dep" "hi"']));
    ia = '/nix/store/00000000000000000000000000000abc-ia';
    importInputAddressed(store, path.join(dir, 'file'), ia, [dep]);
    nix(['nix-store', '--generate-binary-cache-key', NIXKEY_NAME, path.join(dir, 'nix-sk'), path.join(dir, 'nix-pk')]);
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('parses Nix-generated keys and signs byte-identically to Nix', () => {
    const sk = parseSecretKey(fs.readFileSync(path.join(dir, 'nix-sk'), 'utf8'));
    const pk = parsePublicKey(fs.readFileSync(path.join(dir, 'nix-pk'), 'utf8'));
    assert.equal(sk.name, NIXKEY_NAME);
    assert.deepEqual(sk.publicKey, pk);
    assert.equal(fs.readFileSync(path.join(dir, 'nix-pk'), 'utf8'), pk.text);

    const cache = path.join(dir, 'cache-nix');
    nix(['nix', 'copy', '--store', store, '--to', `file://${cache}?compression=none&secret-key=${path.join(dir, 'nix-sk')}`, ia, dep]);
    for (const p of [ia, dep]) {
      const info = parseNarInfo(fs.readFileSync(narInfoFile(cache, p), 'utf8'));
      assert.equal(info.sigs.length, 1);
      assert.equal(signNarInfo(info, sk), info.sigs[0], p);
      assert.ok(verifyNarInfoSignature(info, info.sigs[0], [pk]));
      // Tampering with any signed field breaks it.
      assert.ok(!verifyNarInfoSignature({ ...info, narSize: info.narSize + 1 }, info.sigs[0], [pk]));
      assert.ok(!verifyNarInfoSignature({ ...info, storePath: info.storePath + 'x' }, info.sigs[0], [pk]));
      const raw = Buffer.from(info.sigs[0].split(':')[1], 'base64');
      raw[10] ^= 1;
      assert.ok(!verifyNarInfoSignature(info, `${NIXKEY_NAME}:${raw.toString('base64')}`, [pk]));
    }
  });

  it('Nix accepts secret keys we generate and trusts our signatures', () => {
    const ours = generateKeyPair('peernix-made-1');
    const skFile = path.join(dir, 'our-sk');
    fs.writeFileSync(skFile, ours.secretKeyText, { mode: 0o600 });
    const sk = parseSecretKey(ours.secretKeyText);

    // 1. Nix signs with our secret key file; the signature equals ours.
    const cache = path.join(dir, 'cache-ours');
    nix(['nix', 'copy', '--store', store, '--to', `file://${cache}?compression=none&secret-key=${skFile}`, ia]);
    const file = narInfoFile(cache, ia);
    const info = parseNarInfo(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(info.sigs, [signNarInfo(info, sk)]);
    nix(['nix', 'store', 'verify', '--store', `file://${cache}`, '--trusted-public-keys', ours.publicKeyText, ia]);

    // 2. A narinfo signed only by our code is accepted by a require-sigs copy...
    const signedByUs = (sig: string) => renderNarInfo({ ...info, sigs: [sig] });
    fs.writeFileSync(file, signedByUs(signNarInfo(info, sk)));
    nix(['nix', 'copy', '--from', `file://${cache}`, '--store', path.join(dir, 'dst1'), '--option', 'trusted-public-keys', ours.publicKeyText, ia]);

    // 3. ...and refused when the signature is tampered with or the key is not trusted.
    const raw = Buffer.from(signNarInfo(info, sk).split(':')[1], 'base64');
    raw[0] ^= 0x80;
    fs.writeFileSync(file, signedByUs(`peernix-made-1:${raw.toString('base64')}`));
    assert.throws(
      () => nix(['nix', 'copy', '--from', `file://${cache}`, '--store', path.join(dir, 'dst2'), '--option', 'trusted-public-keys', ours.publicKeyText, ia]),
      /lacks a valid signature|not signed/,
    );
    fs.writeFileSync(file, signedByUs(signNarInfo(info, sk)));
    const other = generateKeyPair('peernix-made-1').publicKeyText; // same name, other key
    assert.throws(
      () => nix(['nix', 'copy', '--from', `file://${cache}`, '--store', path.join(dir, 'dst3'), '--option', 'trusted-public-keys', other, ia]),
      /lacks a valid signature|not signed/,
    );
  });
});
