import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/base/log.ts';
import { createRealisationSource, type RealisationPeers } from '../../src/domain/realisations.ts';
import { policyFromKeys } from '../../src/domain/trust.ts';
import {
  parseRealisation,
  RealisationError,
  realisationFingerprint,
  renderRealisation,
  signRealisation,
  verifyRealisationSignature,
} from '../../src/nix/realisation.ts';
import { generateKeyPair, parseSecretKey } from '../../src/nix/signing.ts';
import type { Peer } from '../../src/peers/registry.ts';
import { versionAtLeast } from '../../src/store/daemon-connection.ts';

// Realisations as Nix 2.34 writes them (this text is what its `nix copy --to file://` wrote for a
// content-addressed derivation, see test/e2e/modern-nix.test.ts for the real exchange), what their
// signatures sign, and where the substituter takes one from: this store, else a peer whose
// signature the local Nix trusts.

const ID = 'sha256:5a95804d54fc7899833ddc61487a2029b6f6c07e266dfaefaa14385c5329c83c!out';
const FROM_NIX = `{"dependentRealisations":{},"id":"${ID}","outPath":"05d35zh81km7335cr7xw8r6zwhgh3v4j-pn-ca","signatures":[]}`;
const key = (name: string) => parseSecretKey(generateKeyPair(name).secretKeyText);

describe('realisation format', () => {
  it('reads what Nix wrote and writes it back byte for byte; the fingerprint is that JSON without signatures', () => {
    const r = parseRealisation(FROM_NIX, ID);
    assert.equal(r.outPath, '05d35zh81km7335cr7xw8r6zwhgh3v4j-pn-ca');
    assert.equal(renderRealisation(r), FROM_NIX);
    assert.equal(realisationFingerprint(r), `{"dependentRealisations":{},"id":"${ID}","outPath":"05d35zh81km7335cr7xw8r6zwhgh3v4j-pn-ca"}`);
  });

  it('a signature verifies for its key only, and not once any signed field changes', () => {
    const k = key('host-b-1');
    const signed = signRealisation(parseRealisation(FROM_NIX, ID), k);
    assert.equal(signed.signatures.length, 1);
    assert.equal(signRealisation(signed, k).signatures.length, 1, 'signing twice adds nothing');
    assert.ok(verifyRealisationSignature(signed, signed.signatures[0], [k.publicKey]));
    assert.ok(!verifyRealisationSignature(signed, signed.signatures[0], [key('host-b-1').publicKey]), 'same name, other key');
    const moved = { ...signed, outPath: '11111111111111111111111111111111-pn-ca' };
    assert.ok(!verifyRealisationSignature(moved, signed.signatures[0], [k.publicKey]));
    // Round trip through the wire keeps the signature valid.
    const again = parseRealisation(renderRealisation(signed), ID);
    assert.ok(verifyRealisationSignature(again, again.signatures[0], [k.publicKey]));
  });

  it('refuses what is not exactly a realisation of the output asked for', () => {
    const bad = [
      FROM_NIX.replace('!out', '!dev'), // another output than asked
      FROM_NIX.replace('05d35zh81km7335cr7xw8r6zwhgh3v4j-pn-ca', '../../etc/passwd'),
      FROM_NIX.replace('"signatures":[]', '"signatures":["k:not-base64"]'),
      FROM_NIX.replace('"dependentRealisations":{}', '"dependentRealisations":[]'),
      '[]',
      'not json',
      `{"id":"${ID}","outPath":"05d35zh81km7335cr7xw8r6zwhgh3v4j-pn-ca","pad":"${'x'.repeat(70_000)}"}`,
    ];
    for (const text of bad) assert.throws(() => parseRealisation(text, ID), RealisationError, text.slice(0, 80));
  });
});

describe('where the substituter takes a realisation from', () => {
  const peer = (name: string) => ({ name, url: `http://${name}` }) as Peer;
  const peersAnswering = (answers: Record<string, string | null>, asked: string[] = []): RealisationPeers => ({
    live: () => Object.keys(answers).map(peer),
    fetch: async (p) => {
      asked.push(p.name);
      return answers[p.name];
    },
  });
  const mine = key('this-host-1');

  it('this store first, signed with this machine’s key, and only while the output is here', async () => {
    let valid = true;
    const asked: string[] = [];
    const source = createRealisationSource({
      local: { realisation: async () => [FROM_NIX], isValidPath: async () => valid },
      key: mine,
      log: silentLogger,
      peers: peersAnswering({ b: null }, asked),
      trust: () => policyFromKeys([]),
    });
    const r = parseRealisation((await source(ID))!, ID);
    assert.ok(verifyRealisationSignature(r, r.signatures[0], [mine.publicKey]));
    assert.deepEqual(asked, [], 'peers not asked');
    valid = false; // garbage-collected output: the realisation alone is no use to Nix
    assert.equal(await source(ID), null);
    assert.deepEqual(asked, ['b']);
  });

  it('a peer’s realisation passes only with a signature the local Nix trusts (require-sigs), passed on unchanged', async () => {
    const b = key('host-b-1');
    const c = key('host-c-1');
    const signedByB = renderRealisation(signRealisation(parseRealisation(FROM_NIX, ID), b));
    const signedByC = renderRealisation(signRealisation(parseRealisation(FROM_NIX, ID), c));
    const none = { realisation: async () => [], isValidPath: async () => false };
    const trustB = () => policyFromKeys([b.publicKey.text]);
    const source = (answers: Record<string, string | null>, trust = trustB) =>
      createRealisationSource({ local: none, key: mine, log: silentLogger, peers: peersAnswering(answers), trust });

    assert.equal(await source({ c: signedByC })(ID), null, 'signed by a key Nix does not trust');
    assert.equal(await source({ c: FROM_NIX })(ID), null, 'unsigned');
    assert.equal(await source({ c: signedByC, b: signedByB })(ID), signedByB);
    assert.equal(await source({ c: FROM_NIX.replace('!out', '!dev'), b: 'junk' })(ID), null, 'malformed answers count for nothing');
    // Without require-sigs Nix takes anything, and so do we.
    assert.equal(await source({ c: FROM_NIX }, () => policyFromKeys([b.publicKey.text], false))(ID), FROM_NIX);
  });
});

describe('which daemons may be asked for realisations without ca-derivations', () => {
  it('upstream Nix from 2.34 (and Determinate 3.x); not 2.8, 2.26, or a version that can’t be read', () => {
    assert.ok(versionAtLeast('2.34.8', 2, 34));
    assert.ok(versionAtLeast('3.12.0', 2, 34));
    assert.ok(!versionAtLeast('2.26.3', 2, 34));
    assert.ok(!versionAtLeast('2.8.0', 2, 34));
    assert.ok(!versionAtLeast(null, 2, 34));
    assert.ok(!versionAtLeast('nix', 2, 34));
  });
});
