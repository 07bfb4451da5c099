import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { describe, test } from 'node:test';
import type { PeerView, PeernixEvent } from '../../src/base/api.ts';
import { EventLog } from '../../src/base/events.ts';
import { createLogger } from '../../src/base/log.ts';
import { askerClassifier } from '../../src/cache/asker-class.ts';
import { listen } from '../../src/cache/http-listener.ts';
import { makeTeamCertificate, type TeamCertificate } from '../../src/wire/team-certificate.ts';
import { Notices, SCOPES_NOTICE_TEXT, type NoticeState } from '../../src/domain/notices.ts';
import { keyFingerprint, teamKeyAt } from '../../src/domain/team.ts';
import { PeerClient } from '../../src/peers/peer-client.ts';
import { MAX_TEAM_MEMBERS, TeamRoster } from '../../src/domain/team-roster.ts';
import { generateKeyPair, parsePublicKey, parseSecretKey } from '../../src/nix/signing.ts';

// The live team: a change takes effect at the next read of its keys (the asker classifier reads them
// on every request), is saved first and refused whole when it can't be, is bounded and validated,
// and each change is an event. And the one-time notice of an upgrade to scoped sharing.

const log = createLogger('error');
const own = generateKeyPair('me-1').publicKeyText;
const aliceSecret = generateKeyPair('alice-1');
const alice = aliceSecret.publicKeyText;
const bob = generateKeyPair('bob-1').publicKeyText;
const raw = (text: string) => parsePublicKey(text).key.toString('base64');

function roster(members: string[] = [], persist?: (keys: string[]) => void) {
  const events = new EventLog();
  let changes = 0;
  const r = new TeamRoster({ members, ownKey: own, persist, events, log, changed: () => changes++ });
  return { r, events, changes: () => changes };
}

function peer(over: Partial<PeerView>): PeerView {
  return {
    id: 'p1',
    name: 'laptop-b',
    url: 'http://10.0.0.2:9999',
    address: '10.0.0.2',
    port: 9999,
    platform: null,
    publicKey: null,
    verified: true,
    trusted: false,
    rttMs: 1,
    state: 'up',
    source: 'mdns',
    bytesFrom: 0,
    bytesTo: 0,
    lastSeen: 0,
    bad: null,
    summary: null,
    ...over,
  };
}

describe('the live team', () => {
  test('adding a member lets its next request in as team; removing it makes the next one a stranger’s', { timeout: 20_000 }, async (t) => {
    const saved: string[][] = [];
    const { r, events } = roster([], (keys) => saved.push(keys));
    // The classifier as the share listener builds it, on a real TLS listener: it reads the roster at each request.
    const classify = askerClassifier(() => r.keys());
    const server = await listen({
      host: '127.0.0.1',
      port: 0,
      log,
      tls: await makeTeamCertificate(parseSecretKey(generateKeyPair('owner-1').secretKeyText)),
      handler: (req, res) => res.end(classify(req)),
    });
    t.after(() => server.close(0));
    const aliceCert = await makeTeamCertificate(parseSecretKey(aliceSecret.secretKeyText));
    const asked = () => tlsGet(server.port, aliceCert);
    assert.equal(await asked(), 'anonymous');
    const view = r.act({ add: alice }, []);
    assert.equal(await asked(), 'team');
    assert.deepEqual(
      view.members.map((m) => [m.name, m.fingerprint]),
      [['alice-1', keyFingerprint(parsePublicKey(alice).key)]],
    );
    r.act({ remove: 'alice-1' }, []);
    assert.equal(await asked(), 'anonymous');
    assert.deepEqual(saved, [[alice], []]);
    const teamEvents = events.recent().filter((e): e is Extract<PeernixEvent, { type: 'team' }> => e.type === 'team');
    assert.deepEqual(
      teamEvents.map((e) => `${e.change} ${e.name}`),
      ['removed alice-1', 'added alice-1'],
    );
  });

  test('the peer client’s TLS choice follows the roster at once: plain before, the team channel after add, plain after remove', {
    timeout: 20_000,
  }, async (t) => {
    const ownerSecret = generateKeyPair('owner-1');
    const owner = parseSecretKey(ownerSecret.secretKeyText);
    const me = parseSecretKey(aliceSecret.secretKeyText);
    // The owner has this machine (alice) in its team: a request of ours over TLS is 'team' there.
    const ownerClassify = askerClassifier(() => new Set([me.publicKey.key.toString('base64')]));
    const asked: string[] = [];
    const server = await listen({
      host: '127.0.0.1',
      port: 0,
      log,
      tls: await makeTeamCertificate(owner),
      handler: (req, res) => {
        asked.push(ownerClassify(req));
        res.statusCode = 404;
        res.end();
      },
    });
    t.after(() => server.close(0));
    const { r } = roster();
    const peers = [{ url: server.url, publicKey: ownerSecret.publicKeyText, verified: true }];
    const client = new PeerClient(
      { narInfoMs: 3000 },
      'test',
      {},
      { team: { cert: await makeTeamCertificate(me), keyOf: (origin) => teamKeyAt(origin, peers, r.keys()) } },
    );
    t.after(() => client.close());
    await client.narInfo(server.url, 'a'.repeat(32));
    r.act({ add: ownerSecret.publicKeyText }, []);
    await client.narInfo(server.url, 'a'.repeat(32));
    r.act({ remove: 'owner-1' }, []);
    await client.narInfo(server.url, 'a'.repeat(32));
    assert.deepEqual(asked, ['anonymous', 'team', 'anonymous']);
  });

  test('bad keys, duplicates under another name, its own key and an unknown member are refused with a reason', () => {
    const { r, changes } = roster([alice]);
    assert.throws(() => r.act({ add: 'alice-1:AAAA' }, []), /not a public key/);
    assert.throws(() => r.act({ add: 'not a key' }, []), /not a public key/);
    assert.throws(() => r.act({ add: `renamed-1:${alice.split(':')[1]}` }, []), /already in the team as alice-1/);
    assert.throws(() => r.act({ add: own }, []), /own key/);
    assert.throws(() => r.act({ remove: 'carol-1' }, []), /no team member "carol-1"/);
    assert.equal(r.keys().size, 1);
    assert.equal(changes(), 0, 'nothing changed, nothing announced');
  });

  test('a member is removed by key, name or fingerprint (spaces or not); two of one name need the fingerprint', () => {
    const twin = generateKeyPair('alice-1').publicKeyText;
    const { r } = roster([alice, twin, bob]);
    assert.throws(() => r.act({ remove: 'alice-1' }, []), /2 members are named alice-1/);
    const fp = keyFingerprint(parsePublicKey(twin).key);
    r.act({ remove: fp.replace(/ /g, '') }, []);
    r.act({ remove: bob }, []);
    assert.deepEqual([...r.keys()], [raw(alice)]);
  });

  test('a change that cannot be saved is not made', () => {
    const { r } = roster([], () => {
      throw new Error('disk full');
    });
    assert.throws(() => r.act({ add: alice }, []), /could not save the team: disk full/);
    assert.equal(r.keys().size, 0);
  });

  test(`at most ${MAX_TEAM_MEMBERS} members`, () => {
    const many = Array.from({ length: MAX_TEAM_MEMBERS + 3 }, (_, i) => generateKeyPair(`m${i}-1`).publicKeyText);
    const { r } = roster(many);
    assert.equal(r.keys().size, MAX_TEAM_MEMBERS);
    assert.throws(() => r.act({ add: alice }, []), new RegExp(`already has ${MAX_TEAM_MEMBERS} members`));
  });

  test('the view: which member is seen now, and the proven peers Nix trusts that are not members yet', () => {
    const carol = generateKeyPair('carol-1').publicKeyText;
    const { r } = roster([alice]);
    const peers = [
      peer({ id: 'a', name: 'alice-laptop', publicKey: alice, trusted: true }),
      peer({ id: 'b', name: 'bob-box', publicKey: bob, trusted: true }),
      peer({ id: 'c', name: 'carol-claims', publicKey: carol, trusted: true, verified: false }),
      peer({ id: 'd', name: 'dave-untrusted', publicKey: generateKeyPair('dave-1').publicKeyText, trusted: false }),
      peer({ id: 'e', name: 'me-again', publicKey: own, trusted: true }),
    ];
    const v = r.view(peers);
    assert.equal(v.members[0].peerName, 'alice-laptop');
    assert.deepEqual(
      v.candidates.map((c) => c.name),
      ['bob-box'],
      'not the member, the unproven, the untrusted or itself',
    );
    assert.equal(v.candidates[0].fingerprint, keyFingerprint(parsePublicKey(bob).key));
    assert.equal(v.saved, false, 'no persist: this run only');
  });
});

describe('the scopes notice', () => {
  function notices(scopes: NoticeState, upgraded: boolean) {
    const events = new EventLog();
    const saved: NoticeState[] = [];
    const n = new Notices({ scopes, upgradedFromBeforeScopes: upgraded, persist: (s) => saved.push(s), events, log, changed: () => {} });
    return { n, events, saved };
  }

  test('an upgrade is told once: one event, a pending notice remembered, then seen for good', () => {
    const first = notices('none', true);
    assert.deepEqual(first.n.view(), [{ id: 'scopes', text: SCOPES_NOTICE_TEXT }]);
    assert.equal(first.events.recent().filter((e) => e.type === 'notice').length, 1);
    assert.deepEqual(first.saved, ['pending']);
    // The next start reads 'pending': shown again, no second event.
    const second = notices('pending', false);
    assert.equal(second.n.view().length, 1);
    assert.equal(second.events.recent().length, 0);
    second.n.seen('scopes');
    assert.deepEqual(second.saved, ['seen']);
    assert.deepEqual(second.n.view(), []);
    const third = notices('seen', false);
    assert.deepEqual(third.n.view(), []);
  });

  test('a fresh install is told nothing', () => {
    const { n, events, saved } = notices('none', false);
    assert.deepEqual(n.view(), []);
    assert.equal(events.recent().length, 0);
    assert.deepEqual(saved, []);
  });
});

/** One request on a fresh TLS connection proving `cert`'s key; the body is the server's verdict. */
function tlsGet(port: number, cert: TeamCertificate): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/', agent: false, rejectUnauthorized: false, cert: cert.cert, key: cert.key }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}
