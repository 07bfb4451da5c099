import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NarInfo } from '../../src/nix/narinfo.ts';
import { generateKeyPair, parseSecretKey, signNarInfo } from '../../src/nix/signing.ts';
import { judgeNarInfo, policyFromKeys, shadowedKeys } from '../../src/domain/trust.ts';
import { keyNameChecks } from '../../src/doctor/key-name-checks.ts';
import type { DoctorFacts } from '../../src/doctor/facts.ts';

// Every Go peernix host signs with a key named peernix-1; Nix keeps the first trusted key of a name
// (its PublicKeys map is filled with emplace) and refuses what the others signed. We must judge alike
// (never hand Nix a narinfo it then refuses), and say so in the status and the doctor with the fix.

const goA = generateKeyPair('peernix-1');
const goB = generateKeyPair('peernix-1');
const other = generateKeyPair('cache.example-1');

const info: NarInfo = {
  storePath: '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x',
  url: 'nar/x.nar',
  compression: 'none',
  fileHash: null,
  fileSize: null,
  narHash: 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s',
  narSize: 120,
  references: [],
  deriver: null,
  sigs: [],
  ca: null,
} as unknown as NarInfo;
const signedBy = (k: { secretKeyText: string }): NarInfo => ({ ...info, sigs: [signNarInfo(info, parseSecretKey(k.secretKeyText))] });

describe('two trusted keys with one name (the Go peernix-1 clash)', () => {
  it('trusts only the first key of a name, as Nix does', () => {
    const policy = policyFromKeys([goA.publicKeyText, other.publicKeyText, goB.publicKeyText]);
    assert.deepEqual(
      policy.keys.map((k) => k.text),
      [goA.publicKeyText, other.publicKeyText],
    );
    assert.equal(judgeNarInfo(signedBy(goA), policy), 'trusted');
    assert.equal(judgeNarInfo(signedBy(goB), policy), 'rejected', 'Nix would refuse this one');
    assert.equal(judgeNarInfo(signedBy(other), policy), 'trusted');
  });

  it('names the clash: which key Nix honours and which it ignores', () => {
    assert.deepEqual(shadowedKeys([goA.publicKeyText, other.publicKeyText, goB.publicKeyText, goA.publicKeyText, 'junk']), [
      { name: 'peernix-1', honoured: goA.publicKeyText, ignored: [goB.publicKeyText] },
    ]);
    assert.deepEqual(shadowedKeys([goA.publicKeyText, other.publicKeyText]), []);
  });

  it('the doctor fails it with the fix (a key name per Go host)', (t) => {
    const facts = (keys: string[]) =>
      ({
        system: { files: ['/etc/nix/nix.conf'], error: null, layer: { sources: [], settings: new Map([['trusted-public-keys', keys]]) } },
      }) as unknown as DoctorFacts;
    const checks = keyNameChecks(facts([goA.publicKeyText, goB.publicKeyText]));
    assert.equal(checks.length, 1);
    assert.equal(checks[0].status, 'fail');
    assert.match(checks[0].detail, /Nix honours only the first/);
    assert.match(checks[0].fix ?? '', /key-name = <host>-peernix-1/);
    t.diagnostic(`doctor: ${checks[0].title}: ${checks[0].detail}\nfix: ${checks[0].fix}`);
    assert.deepEqual(keyNameChecks(facts([goA.publicKeyText, other.publicKeyText])), []);
  });
});
