import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, parsePublicKey } from '../../src/nix/signing.ts';
import { keyFingerprint } from '../../src/domain/team.ts';
import { addPath, cleanup, makeTempDir, run, startNixHost, type NixHost } from '../support/nix-host.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';

// `peernix team add|remove|list` and `peernix share why` against a running `peernix serve` and a real
// nix-daemon, through the control API: a change shows at once in status and is saved for the next
// start; an unsigned `nix-store --add` path is team-only, an excluded name is nobody's. And an
// upgrade from a settings file written before scopes: told once, until `peernix team list` shows it.

describe('peernix team and share why', { timeout: 240_000 }, () => {
  let dir: string;
  let host: NixHost;
  let pn: PeernixProcess;
  let state: string;
  let plainPath: string;
  let envPath: string;
  const colleague = generateKeyPair('colleague-1').publicKeyText;
  const fingerprint = keyFingerprint(parsePublicKey(colleague).key);
  const cli = (args: string[]) =>
    run(process.execPath, [MAIN, ...args, '--listen', new URL(pn.substituterUrl).host, '--state-dir', state], { timeoutMs: 30_000 });
  const start = () =>
    startPeernixProcess(['--store', host.storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', state, '--no-mdns'], {
      scoped: true,
    });
  const status = async () => JSON.parse((await cli(['status', '--json'])).stdout).status;

  before(async () => {
    dir = await makeTempDir('pn-team');
    host = await startNixHost(`${dir}/host`);
    plainPath = await addPath(host, 'team-only-tool', { type: 'file', size: 4096, seed: 'team-cli' });
    envPath = await addPath(host, 'deploy.env', { type: 'file', size: 64, seed: 'team-cli-env' });
    state = `${dir}/state`;
    // A settings file as the version before scopes wrote it: no publicKeys, exclude or scopesNotice.
    mkdirSync(state, { recursive: true, mode: 0o700 });
    writeFileSync(`${state}/settings.json`, JSON.stringify({ sharing: true, mdns: false, team: [] }), { mode: 0o600 });
    pn = await start();
  });

  after(async () => {
    await pn?.stop();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  it('an upgrade is told once: event and notice; `team list` shows it in full and it is not shown again', async () => {
    const s = await status();
    assert.equal(s.notices.length, 1);
    assert.match(s.notices[0].text, /team paths|go only to your team/);
    const text = (await cli(['status'])).stdout;
    assert.match(text, /NOTICE: .*only to your team/);
    const snap = JSON.parse((await cli(['status', '--json'])).stdout);
    assert.equal(snap.events.filter((e: { type: string }) => e.type === 'notice').length, 1);
    const list = await cli(['team', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /NOTICE: /);
    assert.match(list.stdout, /team: nobody yet/);
    assert.deepEqual((await status()).notices, []);
    assert.equal(JSON.parse(readFileSync(`${state}/settings.json`, 'utf8')).scopesNotice, 'seen');
    await pn.stop();
    pn = await start();
    const again = JSON.parse((await cli(['status', '--json'])).stdout);
    assert.deepEqual(again.status.notices, [], 'not after a restart');
    assert.equal(again.events.filter((e: { type: string }) => e.type === 'notice').length, 0, 'no second event');
  });

  it('team add shows the member with its fingerprint at once, and it is saved for the next start', async () => {
    const add = await cli(['team', 'add', colleague]);
    assert.equal(add.code, 0, add.stderr);
    assert.ok(add.stdout.includes(`colleague-1  ${fingerprint}`), add.stdout);
    const s = await status();
    assert.deepEqual(
      s.team.members.map((m: { publicKey: string; fingerprint: string }) => [m.publicKey, m.fingerprint]),
      [[colleague, fingerprint]],
    );
    assert.match((await cli(['status'])).stdout, new RegExp(`team: +colleague-1 \\(${fingerprint}\\)`));
    assert.deepEqual(JSON.parse(readFileSync(`${state}/settings.json`, 'utf8')).team, [colleague]);
    const events = JSON.parse((await cli(['status', '--json'])).stdout).events;
    assert.ok(events.some((e: { type: string; change?: string }) => e.type === 'team' && e.change === 'added'));
  });

  it('refuses a bad key, a second copy and an unknown member, with the reason and exit 1', async () => {
    const bad = await cli(['team', 'add', 'colleague-1:AAAA']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not a public key/);
    const twice = await cli(['team', 'add', colleague]);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /already in the team as colleague-1/);
    const nobody = await cli(['team', 'remove', 'nobody-1']);
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /no team member "nobody-1"/);
    assert.equal((await cli(['team'])).code, 2, 'usage');
  });

  it('team remove by fingerprint: gone at once and from the saved file', async () => {
    const rm = await cli(['team', 'remove', fingerprint]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual((await status()).team.members, []);
    assert.deepEqual(JSON.parse(readFileSync(`${state}/settings.json`, 'utf8')).team, []);
  });

  it('share why: an added path (signed only by this machine) is team only, an .env file nobody’s, by path or hash part', async () => {
    const team = await cli(['share', 'why', plainPath]);
    assert.equal(team.code, 0, team.stderr);
    // Served with this machine's own signature, whose key is not in publicKeys: team.
    assert.match(team.stdout, /scope: team \(signed only by keys not in publicKeys .*\)\n {2}served to: team members only/);
    const never = await cli(['share', 'why', envPath.slice('/nix/store/'.length, '/nix/store/'.length + 32), '--json']);
    const v = JSON.parse(never.stdout);
    assert.equal(v.scope, 'never');
    assert.equal(v.servedTo, 'nobody');
    assert.match(v.why, /\*\.env/);
    const missing = await cli(['share', 'why', `/nix/store/${'0'.repeat(32)}-absent`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not hold/);
    const junk = await cli(['share', 'why', 'not-a-path']);
    assert.equal(junk.code, 1);
    assert.match(junk.stderr, /not a store path or hash part/);
    const s = await status();
    assert.ok(s.scopes.judged.team >= 1 && s.scopes.judged.never >= 1, JSON.stringify(s.scopes));
    assert.match((await cli(['status'])).stdout, /scopes: +public \d+, team \d+, never \d+ judged/);
  });
});
