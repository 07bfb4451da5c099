// The service definitions `peernix service install` writes: systemd units checked by systemd's own
// `systemd-analyze verify`, launchd plists parsed by Python's plistlib (the format's reference reader).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { launchdPlist, servicePath, systemdUnit, systemdWord, type ServiceSpec } from '../../src/cli/service-units.ts';

const node = fs.realpathSync(process.execPath);
const entry = fs.realpathSync(path.join(import.meta.dirname, '../../src/cli/main.ts'));
// Arguments that need systemd's quoting and escaping (spaces, quotes, % specifiers, $ variables) and XML's.
const awkward = ['--peer', 'http://build box:9999/?a=1&b=<2>', '--name', `it's "50%" $HOME \\ done`, '--no-mdns'];

function spec(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return { node, entry, serveArgs: awkward, user: false, ...over };
}

function verify(unitText: string, user: boolean): { status: number | null; stderr: string; ours: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-unit-'));
  try {
    const file = path.join(dir, 'peernix.service');
    fs.writeFileSync(file, unitText);
    // A user manager needs a runtime directory even to verify.
    const env = { ...process.env, XDG_RUNTIME_DIR: dir, SYSTEMD_LOG_LEVEL: 'notice' };
    const r = spawnSync('systemd-analyze', [...(user ? ['--user'] : []), 'verify', file], { encoding: 'utf8', env, timeout: 60_000 });
    // Unknown keys and bad values are only warned about (exit 0): any line about our unit counts as a failure.
    const ours = r.stderr.split('\n').filter((l) => l.includes('peernix.service'));
    return { status: r.status, stderr: r.stderr, ours };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the system unit passes systemd-analyze verify, runs the real Node and CLI, and is sandboxed', { timeout: 60_000 }, (t) => {
  const unit = systemdUnit(spec());
  const r = verify(unit, false);
  t.diagnostic(`systemd-analyze verify (system): exit ${r.status}, ${r.ours.length} warnings about the unit ${r.ours.join(' | ')}`);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.ours, []);
  const exec = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  assert.equal(exec, `ExecStart=${node} ${entry} serve --peer "http://build box:9999/?a=1&b=<2>" --name "it's \\"50%%\\" $$HOME \\\\ done" --no-mdns`);
  for (const line of [
    'DynamicUser=yes',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'StateDirectory=peernix',
    'Environment=PEERNIX_STATE_DIR=%S/peernix',
    'WantedBy=multi-user.target',
  ]) {
    assert.ok(unit.split('\n').includes(line), `missing ${line}`);
  }
  const withUser = systemdUnit(spec({ runAs: 'peernix' }));
  assert.ok(withUser.includes('\nUser=peernix\n') && !withUser.includes('DynamicUser'));
  assert.equal(verify(withUser, false).ours.length, 0);
});

test('the user unit passes systemd-analyze --user verify and starts with the session', { timeout: 60_000 }, (t) => {
  const unit = systemdUnit(spec({ user: true }));
  const r = verify(unit, true);
  t.diagnostic(`systemd-analyze --user verify: exit ${r.status}, ${r.ours.length} warnings about the unit`);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.ours, []);
  assert.ok(unit.includes('\nWantedBy=default.target\n'));
  assert.ok(!unit.includes('DynamicUser') && !unit.includes('ProtectSystem'), 'no system-manager-only sandboxing in a user unit');
});

test('verify has teeth: a unit whose ExecStart binary does not exist fails it', { timeout: 60_000 }, (t) => {
  const r = verify(systemdUnit(spec({ node: '/nonexistent/peernix-test/node' })), false);
  t.diagnostic(`missing binary: exit ${r.status}: ${r.stderr.trim()}`);
  assert.notEqual(r.status, 0);
});

test('systemd words: plain paths stay bare; spaces, quotes, backslashes, % and $ are quoted and escaped', () => {
  assert.equal(systemdWord('/nix/store/x-node/bin/node'), '/nix/store/x-node/bin/node');
  assert.equal(systemdWord('0.0.0.0:9999'), '0.0.0.0:9999');
  assert.equal(systemdWord('a b'), '"a b"');
  assert.equal(systemdWord(''), '""');
  assert.equal(systemdWord('100%'), '100%%');
  assert.equal(systemdWord('$X'), '"$$X"');
  assert.equal(systemdWord('a"b\\c'), '"a\\"b\\\\c"');
});

test('the launchd plist parses with plistlib and carries what launchd needs, arguments intact', { timeout: 30_000 }, (t) => {
  for (const user of [false, true]) {
    const text = launchdPlist(spec({ user }), user ? '/Users/u/Library/Logs' : '/var/log');
    const py = 'import plistlib,sys,json; print(json.dumps(plistlib.loads(sys.stdin.buffer.read(), fmt=plistlib.FMT_XML)))';
    const r = spawnSync('python3', ['-c', py], { input: text, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const plist = JSON.parse(r.stdout) as Record<string, unknown>;
    t.diagnostic(`${user ? 'agent' : 'daemon'} plist keys: ${Object.keys(plist).join(', ')}`);
    assert.equal(plist.Label, 'org.peernix.daemon');
    assert.deepEqual(plist.ProgramArguments, [node, entry, 'serve', ...awkward]);
    assert.equal(plist.RunAtLoad, true);
    assert.deepEqual(plist.KeepAlive, { SuccessfulExit: false });
    assert.equal(plist.StandardErrorPath, user ? '/Users/u/Library/Logs/peernix.log' : '/var/log/peernix.log');
    const env = plist.EnvironmentVariables as Record<string, string>;
    assert.equal(env.PEERNIX_STATE_DIR, user ? undefined : '/var/lib/peernix');
  }
  const asUser = launchdPlist(spec({ runAs: '_peernix' }), '/var/log');
  assert.ok(asUser.includes('<key>UserName</key><string>_peernix</string>'));
});

test('bad specs are refused with a clear error: relative paths, control characters, odd user names', () => {
  assert.throws(() => systemdUnit(spec({ node: 'node' })), /Node binary must be an absolute path, got "node"/);
  assert.throws(() => launchdPlist(spec({ entry: 'dist/cli/peernix.js' }), '/var/log'), /CLI entry must be an absolute path/);
  assert.throws(() => systemdUnit(spec({ serveArgs: ['--name', 'a\nExecStartPre=/bin/rm'] })), /control character/);
  assert.throws(() => systemdUnit(spec({ runAs: 'root\nUser=x' })), /control character|not a user name/);
  assert.throws(() => systemdUnit(spec({ runAs: 'a b' })), /"a b" is not a user name/);
});

test('where the definitions go: system, user (XDG_CONFIG_HOME honoured), launchd daemon and agent', () => {
  const env = { home: '/home/ann' };
  assert.equal(servicePath('systemd', false, env), '/etc/systemd/system/peernix.service');
  assert.equal(servicePath('systemd', true, env), '/home/ann/.config/systemd/user/peernix.service');
  assert.equal(servicePath('systemd', true, { ...env, xdgConfigHome: '/cfg' }), '/cfg/systemd/user/peernix.service');
  assert.equal(servicePath('systemd', true, { ...env, xdgConfigHome: 'relative' }), '/home/ann/.config/systemd/user/peernix.service');
  assert.equal(servicePath('launchd', false, env), '/Library/LaunchDaemons/org.peernix.daemon.plist');
  assert.equal(servicePath('launchd', true, env), '/home/ann/Library/LaunchAgents/org.peernix.daemon.plist');
});
