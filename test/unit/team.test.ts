import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateSettings } from '../../src/app/settings.ts';
import { teamKeyAt, teamKeySet } from '../../src/domain/team.ts';
import { generateKeyPair } from '../../src/nix/signing.ts';

// The team setting and which peer the channel treats as a member: only one that proved a key in the team.

const a = generateKeyPair('alice-1').publicKeyText;
const b = generateKeyPair('bob-1').publicKeyText;
const raw = (text: string) => text.slice(text.indexOf(':') + 1);

describe('team setting', () => {
  test('keeps valid public keys once each, reports and drops the rest', () => {
    const { settings, problems } = validateSettings({ team: [a, ` ${a} `, 'nokey', `${b.split(':')[0]}:AAAA`, b] });
    assert.deepEqual(settings.team, [a, b]);
    assert.equal(problems.length, 2, problems.join('\n'));
  });
  test('a fresh install has no team', () => {
    assert.deepEqual(validateSettings({}).settings.team, []);
  });
});

describe('teamKeyAt', () => {
  const team = teamKeySet([a]);
  test('a verified peer whose key is in the team is talked to as a member, by its raw key', () => {
    assert.equal(teamKeyAt('http://10.0.0.2:9999', [{ url: 'http://10.0.0.2:9999', publicKey: a, verified: true }], team), raw(a));
  });
  test('an unverified peer claiming a member key, a non-member, or another origin is not', () => {
    assert.equal(teamKeyAt('http://10.0.0.2:9999', [{ url: 'http://10.0.0.2:9999', publicKey: a, verified: false }], team), null);
    assert.equal(teamKeyAt('http://10.0.0.2:9999', [{ url: 'http://10.0.0.2:9999', publicKey: b, verified: true }], team), null);
    assert.equal(teamKeyAt('http://10.0.0.3:9999', [{ url: 'http://10.0.0.2:9999', publicKey: a, verified: true }], team), null);
  });
  test('member names do not matter, only the key', () => {
    assert.ok(teamKeySet([`renamed-1:${raw(a)}`]).has(raw(a)));
  });
});
