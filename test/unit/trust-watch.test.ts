import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/base/log.ts';
import { readNixTrust } from '../../src/domain/trust.ts';
import { TrustWatch } from '../../src/domain/trust-watch.ts';
import { watchFolder } from '../../src/store/folder-watch.ts';
import { FakeClock } from '../support/fake-clock.ts';

// A change to nix.conf is noticed when the kernel tells of a write in its folder (#26 idle cost: no
// stat every 2 s), also when an editor replaces the file; within 10 s when the kernel says nothing,
// and within 2 s while the folder can't be watched. Real files and events, the fake clock's timers.

const log = createLogger('error');
const KEY_A = `a-1:${Buffer.alloc(32, 1).toString('base64')}`;
const KEY_B = `b-1:${Buffer.alloc(32, 2).toString('base64')}`;

describe('TrustWatch notices changes to nix.conf', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'trust-watch-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  function setUp(name: string, watch: 'kernel' | 'silent' | 'refused', exists = true) {
    const dir = path.join(root, name, 'etc');
    const conf = path.join(dir, 'nix.conf');
    fs.mkdirSync(exists ? dir : path.join(root, name), { recursive: true });
    if (exists) fs.writeFileSync(conf, `trusted-public-keys = ${KEY_A}\n`);
    const env = { NIX_CONF_DIR: dir } as NodeJS.ProcessEnv;
    const clock = new FakeClock();
    let told: () => void = () => {};
    const nextEvent = () => new Promise<void>((resolve) => (told = resolve));
    const tw = new TrustWatch({
      log,
      changed: () => {},
      read: () => readNixTrust(env),
      clock,
      watch:
        watch === 'kernel'
          ? (f, onEvent, onError) =>
              watchFolder(
                f,
                () => {
                  onEvent();
                  told();
                },
                onError,
              )
          : watch === 'silent'
            ? () => ({ close: () => {} })
            : () => {
                throw new Error('ENOSPC');
              },
    });
    const keys = () => tw.policy.keys.map((k) => k.text);
    return { conf, dir, clock, tw, keys, nextEvent };
  }

  it('reads nix.conf again when the kernel tells of an edit, and of a file replaced by rename', async (t) => {
    const s = setUp('told', 'kernel');
    t.after(() => s.tw.stop());
    assert.equal(s.tw.watching, true);
    assert.deepEqual(s.keys(), [KEY_A]);

    let seen = s.nextEvent();
    fs.writeFileSync(s.conf, `trusted-public-keys = ${KEY_B}\n`);
    await seen;
    s.clock.advance(100);
    assert.deepEqual(s.keys(), [KEY_B]);

    // As editors save: a new file renamed over the old one.
    seen = s.nextEvent();
    fs.writeFileSync(`${s.conf}.tmp`, `trusted-public-keys = ${KEY_A} ${KEY_B}\n`);
    fs.renameSync(`${s.conf}.tmp`, s.conf);
    await seen;
    s.clock.advance(1_100); // the event, and the second look a second later
    assert.deepEqual(s.keys(), [KEY_A, KEY_B]);
  });

  it('notices a change the kernel never told of within 10 s', (t) => {
    const s = setUp('silent', 'silent');
    t.after(() => s.tw.stop());
    fs.writeFileSync(s.conf, `trusted-public-keys = ${KEY_B}\n`);
    s.clock.advance(9_900);
    assert.deepEqual(s.keys(), [KEY_A]);
    s.clock.advance(100);
    assert.deepEqual(s.keys(), [KEY_B]);
  });

  it("watches the nearest existing folder while nix.conf's folder doesn't exist, and the folder once it does", async (t) => {
    const s = setUp('absent', 'kernel', false);
    t.after(() => s.tw.stop());
    assert.equal(s.tw.watching, true, 'the kernel tells: the parent is watched, no fast tick');
    assert.ok(!s.keys().includes(KEY_B), "no nix.conf: Nix's default keys");

    let seen = s.nextEvent();
    fs.mkdirSync(s.dir);
    await seen;
    s.clock.advance(100);

    seen = s.nextEvent();
    fs.writeFileSync(s.conf, `trusted-public-keys = ${KEY_B}\n`);
    await seen; // told by the watch on the folder itself now
    s.clock.advance(100);
    assert.deepEqual(s.keys(), [KEY_B]);
    assert.equal(s.tw.watching, true);
  });

  it('looks every 2 s while the folder cannot be watched', (t) => {
    const s = setUp('refused', 'refused');
    t.after(() => s.tw.stop());
    assert.equal(s.tw.watching, false);
    fs.writeFileSync(s.conf, `trusted-public-keys = ${KEY_B}\n`);
    s.clock.advance(2_000);
    assert.deepEqual(s.keys(), [KEY_B]);
  });
});
