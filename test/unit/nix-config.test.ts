import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_TRUSTED_PUBLIC_KEYS, NixConfigError, readNixTrustSettings } from '../../src/nix/nix-config.ts';
import { readNixTrust } from '../../src/domain/trust.ts';

// The daemon's trust settings read without `nix`, checked case by case against what Nix 2.8 itself
// makes of the same files (`nix show-config --json`, the oracle), including the cases where Nix refuses.

const K = (n: string) => `${n}-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=`;

interface Case {
  name: string;
  files: Record<string, string>; // relative to the conf dir; 'nix.conf' is the top file
  nixConfig?: string;
}

const cases: Case[] = [
  { name: 'no nix.conf: defaults', files: {} },
  { name: 'plain', files: { 'nix.conf': `trusted-public-keys = ${K('a')} ${K('b')}\nrequire-sigs = true\n` } },
  { name: 'comments and tabs', files: { 'nix.conf': `# hello\ntrusted-public-keys\t=\t${K('a')} # trailing\n  require-sigs = false#x\n` } },
  { name: 'extra- appends to the default', files: { 'nix.conf': `extra-trusted-public-keys = ${K('a')}\n` } },
  { name: 'extra- before a plain set is lost', files: { 'nix.conf': `extra-trusted-public-keys = ${K('a')}\ntrusted-public-keys = ${K('b')}\n` } },
  {
    name: 'include in place, after',
    files: { 'nix.conf': `trusted-public-keys = ${K('a')}\ninclude b.conf\n`, 'b.conf': `trusted-public-keys = ${K('b')}\n` },
  },
  {
    name: 'include in place, before',
    files: { 'nix.conf': `include b.conf\nextra-trusted-public-keys = ${K('a')}\n`, 'b.conf': `trusted-public-keys = ${K('b')}\nrequire-sigs = no\n` },
  },
  {
    name: 'nested include relative to its includer',
    files: { 'nix.conf': `include sub/c.conf\n`, 'sub/c.conf': `include d.conf\n`, 'sub/d.conf': `extra-trusted-public-keys = ${K('d')}\nrequire-sigs = 0\n` },
  },
  { name: '!include of a missing file', files: { 'nix.conf': `!include nope.conf\nrequire-sigs = false\n` } },
  { name: 'old alias binary-cache-public-keys', files: { 'nix.conf': `binary-cache-public-keys = ${K('old')}\n` } },
  { name: 'empty list', files: { 'nix.conf': `trusted-public-keys =\n` } },
  {
    name: 'NIX_CONFIG after the files',
    files: { 'nix.conf': `trusted-public-keys = ${K('a')}\n` },
    nixConfig: `extra-trusted-public-keys = ${K('env')}\nrequire-sigs = false`,
  },
  { name: 'error: include of a missing file', files: { 'nix.conf': `include nope.conf\n` } },
  { name: 'error: no spaces around =', files: { 'nix.conf': `require-sigs=false\n` } },
  { name: 'error: line continuation is not a thing', files: { 'nix.conf': `trusted-public-keys = ${K('a')} \\\n  ${K('b')}\n` } },
  { name: 'error: bad boolean', files: { 'nix.conf': `require-sigs = maybe\n` } },
  { name: 'error: include with two arguments', files: { 'nix.conf': `include a b\n` } },
];

function nixShowConfig(
  dir: string,
  home: string,
  nixConfig?: string,
): Promise<{ ok: true; keys: string[]; requireSigs: boolean } | { ok: false; error: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: `${home}/.config`,
    XDG_CONFIG_DIRS: `${home}/xdg`,
    NIX_CONF_DIR: dir,
    NIX_USER_CONF_FILES: `${home}/none.conf`,
  };
  if (nixConfig !== undefined) env.NIX_CONFIG = nixConfig;
  return new Promise((resolve) => {
    execFile('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'], { env, cwd: home, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) return resolve({ ok: false, error: String(stderr).trim() });
      const conf = JSON.parse(stdout) as Record<string, { value: unknown }>;
      resolve({ ok: true, keys: conf['trusted-public-keys'].value as string[], requireSigs: conf['require-sigs'].value as boolean });
    });
  });
}

describe('nix.conf read the way Nix 2.8 reads it', () => {
  let tmp: string;
  before(async () => {
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pn-nixconf-'));
  });
  after(async () => {
    await fsp.rm(tmp, { recursive: true, force: true });
  });

  it('agrees with `nix show-config` on every case, errors included', async (t) => {
    let agreed = 0;
    let errors = 0;
    for (const [i, c] of cases.entries()) {
      const dir = path.join(tmp, `c${i}`);
      const home = path.join(tmp, `h${i}`);
      await fsp.mkdir(home, { recursive: true });
      await fsp.mkdir(dir, { recursive: true });
      for (const [rel, text] of Object.entries(c.files)) {
        await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
        await fsp.writeFile(path.join(dir, rel), text);
      }
      const oracle = await nixShowConfig(dir, home, c.nixConfig);
      let ours: { ok: true; keys: string[]; requireSigs: boolean } | { ok: false; error: string };
      try {
        const s = readNixTrustSettings({ NIX_CONF_DIR: dir, ...(c.nixConfig !== undefined ? { NIX_CONFIG: c.nixConfig } : {}) });
        ours = { ok: true, keys: s.trustedPublicKeys, requireSigs: s.requireSigs };
      } catch (e) {
        assert.ok(e instanceof NixConfigError, `${c.name}: ${(e as Error).message}`);
        ours = { ok: false, error: e.message };
      }
      assert.equal(
        ours.ok,
        oracle.ok,
        `${c.name}: Nix ${oracle.ok ? 'accepts' : `refuses (${(oracle as { error: string }).error})`}, we ${ours.ok ? 'accept' : `refuse (${(ours as { error: string }).error})`}`,
      );
      if (ours.ok && oracle.ok) {
        assert.deepEqual(ours.keys, oracle.keys, `${c.name}: keys`);
        assert.equal(ours.requireSigs, oracle.requireSigs, `${c.name}: require-sigs`);
      } else errors++;
      assert.equal(c.name.startsWith('error:'), !ours.ok, `${c.name}: case label`);
      agreed++;
    }
    t.diagnostic(`${agreed}/${cases.length} configurations read as Nix 2.8 reads them (${errors} refused by both)`);
  });

  it('says where the settings came from, and refuses what it cannot read instead of guessing', async (tc) => {
    const dir = path.join(tmp, 'prov');
    await fsp.mkdir(path.join(dir, 'more'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'nix.conf'), `include more/keys.conf\n`);
    await fsp.writeFile(path.join(dir, 'more', 'keys.conf'), `trusted-public-keys = ${K('a')} not-a-key ${K('b')}\n`);
    const t = readNixTrust({ NIX_CONF_DIR: dir });
    assert.equal(t.source, `${dir}/nix.conf, ${dir}/more/keys.conf`);
    assert.deepEqual(
      t.policy.keys.map((k) => k.name),
      ['a-1', 'b-1'],
    ); // an unparseable key is skipped, as Nix does
    assert.equal(t.policy.requireSigs, true);
    const none = readNixTrust({ NIX_CONF_DIR: path.join(tmp, 'absent') });
    assert.equal(none.source, `Nix's defaults (no ${tmp}/absent/nix.conf)`);
    assert.deepEqual(
      none.policy.keys.map((k) => k.text),
      DEFAULT_TRUSTED_PUBLIC_KEYS,
    );
    // Nix silently skips an include it cannot read (its daemon, as root, reads it); we cannot know it, so: an error.
    await fsp.writeFile(path.join(dir, 'nix.conf'), `include more\n`);
    assert.throws(
      () => readNixTrust({ NIX_CONF_DIR: dir }),
      (e: Error) => e instanceof NixConfigError && /cannot read '.*\/more' \(included from '.*nix\.conf'\): EISDIR/.test(e.message),
    );
    await fsp.writeFile(path.join(dir, 'nix.conf'), `include nix.conf\n`);
    assert.throws(() => readNixTrust({ NIX_CONF_DIR: dir }), /nested deeper than 16/);
    tc.diagnostic('provenance, defaults, unreadable include and include cycle: as expected');
  });
});
