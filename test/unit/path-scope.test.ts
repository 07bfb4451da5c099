import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseNarInfo } from '../../src/nix/narinfo.ts';
import { generateKeyPair, parseSecretKey, signNarInfo } from '../../src/nix/signing.ts';
import type { PathInfo } from '../../src/store/daemon-connection.ts';
import { DEFAULT_EXCLUDE, DEFAULT_PUBLIC_KEYS, PathScopes, type ScopeFacts } from '../../src/store/path-scope.ts';
import { CACHE_NIXOS_ORG_NARINFO } from '../fixtures/cache-nixos-org-narinfo.ts';

// The scope of a path: public only with a verifying signature by a public key, never by name, team otherwise.

const org = generateKeyPair('org-cache-1');
const orgKey = parseSecretKey(org.secretKeyText);
const mine = parseSecretKey(generateKeyPair('laptop-1').secretKeyText);

function facts(name: string, sigs: (f: ScopeFacts) => string[] = () => []): ScopeFacts {
  const f: ScopeFacts = {
    storePath: `/nix/store/0a9m2q7yl3gr2dxhhvs4bkz6ix0kdxnr-${name}`,
    narHash: 'sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0',
    narSize: 1234,
    references: [],
    sigs: [],
  };
  f.sigs = sigs(f);
  return f;
}

describe('path scopes', () => {
  const scopes = new PathScopes({ publicKeys: [org.publicKeyText], exclude: DEFAULT_EXCLUDE });

  test('a path signed by a public key is public, and why names the key', () => {
    const f = facts('hello-2.12', (x) => [signNarInfo(x, mine), signNarInfo(x, orgKey)]);
    assert.deepEqual(scopes.why(f), { scope: 'public', why: 'signed by org-cache-1, a public key' });
  });

  test('unsigned, or signed only by keys not in publicKeys, is team', () => {
    assert.deepEqual(scopes.why(facts('my-app-1.0')), { scope: 'team', why: 'unsigned' });
    const f = facts('my-app-1.1', (x) => [signNarInfo(x, mine)]);
    assert.equal(scopes.scopeOf(f), 'team');
    assert.match(scopes.why(f).why, /laptop-1/);
  });

  test('fails closed: a signature by a public key name that does not verify, or over other facts, is team', () => {
    const forged = facts('hello-2.12', () => [`org-cache-1:${Buffer.alloc(64, 7).toString('base64')}`]);
    assert.equal(scopes.scopeOf(forged), 'team');
    assert.match(scopes.why(forged).why, /does not verify/);
    const other = facts('hello-2.12', (x) => [signNarInfo({ ...x, narSize: 99 }, orgKey)]);
    assert.equal(scopes.scopeOf(other), 'team');
    const garbage = facts('hello-2.12', () => ['org-cache-1:', ':', 'nonsense']);
    assert.equal(scopes.scopeOf(garbage), 'team');
    const malformed = { ...facts('hello-2.12', (x) => [signNarInfo(x, orgKey)]), narHash: 'md5:zzz' };
    assert.equal(scopes.scopeOf(malformed), 'team');
  });

  test('an excluded name is never, even when signed by a public key; why names the pattern', () => {
    for (const name of [
      'prod.env',
      'app.env.local',
      'secrets.yaml',
      'db-secret.txt',
      'client_secret.json',
      'server.key',
      'tls.pem',
      'id_ed25519',
      'aws-credentials',
      'main.tfstate',
      'kubeconfig',
    ]) {
      assert.equal(scopes.scopeOf(facts(name, (x) => [signNarInfo(x, orgKey)])), 'never', name);
    }
    assert.deepEqual(scopes.why(facts('PROD.ENV')), { scope: 'never', why: 'its name matches the exclude pattern "*.env"' });
  });

  test('the default patterns spare common public package names', () => {
    for (const name of [
      'libsecret-0.21.4',
      'password-store-1.7.4',
      'keyutils-1.6.3',
      'python3.12-python-dotenv-1.0.1',
      'openssl-3.0.13',
      'envsubst-1.4.2',
      'gnupg-2.4.5',
    ]) {
      assert.notEqual(scopes.scopeOf(facts(name)), 'never', name);
    }
  });

  test('verdicts are cached by facts: a new signature is judged again', () => {
    const s = new PathScopes({ publicKeys: [org.publicKeyText], exclude: [] });
    const f = facts('tool-1');
    assert.equal(s.scopeOf(f), 'team');
    assert.equal(s.scopeOf({ ...f }), 'team');
    assert.deepEqual(s.counts().judged, { public: 0, team: 1, never: 0 });
    assert.equal(s.scopeOf({ ...f, sigs: [signNarInfo(f, orgKey)] }), 'public');
    assert.deepEqual(s.counts().judged, { public: 1, team: 1, never: 0 });
  });

  test('new rules judge every path again', () => {
    const s = new PathScopes({ publicKeys: [], exclude: [] });
    const f = facts('tool-2', (x) => [signNarInfo(x, orgKey)]);
    assert.equal(s.scopeOf(f), 'team');
    let told = 0;
    s.onChange = () => told++;
    s.configure({ publicKeys: [org.publicKeyText], exclude: [] });
    assert.equal(s.scopeOf(f), 'public');
    s.configure({ publicKeys: [org.publicKeyText], exclude: ['tool-*'] });
    assert.equal(s.scopeOf(f), 'never');
    assert.equal(told, 2);
  });

  test('refusals are counted by scope, as numbers', () => {
    const s = new PathScopes({ publicKeys: [], exclude: [] });
    for (let i = 0; i < 1000; i++) s.countRefusal('team');
    s.countRefusal('never');
    assert.deepEqual(s.counts().refused, { public: 0, team: 1000, never: 1 });
  });

  test('a PathInfo from the daemon or the database is judged by the same facts', () => {
    const f = facts('lib-3', (x) => [signNarInfo(x, orgKey)]);
    const info: PathInfo = {
      path: f.storePath,
      deriver: null,
      narHash: Buffer.from('f'.repeat(64), 'hex'),
      references: [],
      registrationTime: 0,
      narSize: 1234,
      ultimate: false,
      sigs: [],
      ca: null,
    };
    assert.equal(scopes.scopeOfInfo(info), 'team');
  });

  test('bad keys and patterns in the rules trust and exclude nothing', () => {
    const s = new PathScopes({ publicKeys: ['nokey', 'x:AAAA'], exclude: ['', 'a/b', 42 as unknown as string] });
    assert.deepEqual(s.rules, { publicKeys: [], exclude: [] });
    assert.equal(s.scopeOf(facts('a')), 'team');
  });
});

describe('the real cache.nixos.org-1 key (the default)', () => {
  test('accepts a real cache.nixos.org narinfo signature, and nothing else', () => {
    const info = parseNarInfo(CACHE_NIXOS_ORG_NARINFO);
    const scopes = new PathScopes({ publicKeys: DEFAULT_PUBLIC_KEYS, exclude: DEFAULT_EXCLUDE });
    assert.deepEqual(scopes.why(info), { scope: 'public', why: 'signed by cache.nixos.org-1, a public key' });
    assert.equal(scopes.scopeOf({ ...info, narSize: info.narSize + 1 }), 'team');
    assert.equal(scopes.scopeOf({ ...info, references: info.references.slice(1) }), 'team');
  });
});
