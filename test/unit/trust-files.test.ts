import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { readNixTrust } from '../../src/domain/trust.ts';
import { TrustFiles } from '../../src/domain/trust-files.ts';

// Trust read live: a change to nix.conf or any file it includes, or an optional include appearing, is
// seen at the next check (every 2 s in the daemon), and re-reading gives the new keys.

const KEY_A = 'a-1:' + Buffer.alloc(32, 1).toString('base64');
const KEY_B = 'b-1:' + Buffer.alloc(32, 2).toString('base64');

describe('the Nix trust settings are watched', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trust-watch-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { NIX_CONF_DIR: dir } as NodeJS.ProcessEnv;

  it('sees an edit to nix.conf, to an included file, and an optional include that appears', () => {
    const conf = path.join(dir, 'nix.conf');
    const inc = path.join(dir, 'keys.conf');
    const later = path.join(dir, 'later.conf');
    fs.writeFileSync(conf, `include keys.conf\n!include later.conf\n`);
    fs.writeFileSync(inc, `trusted-public-keys = ${KEY_A}\n`);
    let files = readNixTrust(env).files;
    assert.deepEqual(files, [conf, inc]);
    let changes = 0;
    const watch = new TrustFiles({ files: () => files, changed: () => changes++ });
    assert.equal(watch.check(), false);

    fs.writeFileSync(inc, `trusted-public-keys = ${KEY_B}\n`); // same size, other content
    assert.equal(watch.check(), true);
    assert.equal(watch.check(), false, 'one change is reported once');
    assert.deepEqual(
      readNixTrust(env).policy.keys.map((k) => k.text),
      [KEY_B],
    );

    fs.writeFileSync(later, `extra-trusted-public-keys = ${KEY_A}\n`);
    assert.equal(watch.check(), true, 'a file created beside them changes their folder');
    const read = readNixTrust(env);
    files = read.files;
    assert.deepEqual(
      read.policy.keys.map((k) => k.text),
      [KEY_B, KEY_A],
    );

    fs.writeFileSync(conf, `include keys.conf\n`);
    assert.equal(watch.check(), true);
    assert.equal(changes, 3);
  });

  it('watches the top nix.conf even while it does not exist', () => {
    const empty = fs.mkdtempSync(path.join(dir, 'none-'));
    const read = readNixTrust({ NIX_CONF_DIR: empty } as NodeJS.ProcessEnv);
    const watch = new TrustFiles({ files: () => read.files, changed: () => {} });
    fs.writeFileSync(path.join(empty, 'nix.conf'), `trusted-public-keys = ${KEY_A}\n`);
    assert.equal(watch.check(), true);
  });
});
