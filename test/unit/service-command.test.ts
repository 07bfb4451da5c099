// `peernix service install|uninstall` as users run it (the CLI in a child process), writing into a
// temporary root so the machine's own /etc and home stay untouched.
import { format } from 'node:util';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { unreadableByOthers } from '../../src/cli/service-command.ts';

const cli = path.join(import.meta.dirname, '../../src/cli/main.ts');

function peernix(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, PEERNIX_SERVICE_ROOT: '', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function withTemp(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-svc-'));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function files(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

test('install writes the system unit under --root (the same text --print shows), uninstall removes it', { timeout: 120_000 }, (t) => {
  withTemp((root) => {
    const serve = ['--', '--no-mdns', '--peer', 'http://10.0.0.2:9999'];
    const printed = peernix(['service', 'install', '--print', '--manager', 'systemd', ...serve]);
    assert.equal(printed.status, 0, printed.stderr);
    const inst = peernix(['service', 'install', '--root', root, '--manager', 'systemd', ...serve]);
    t.diagnostic(format(inst.stdout.trim()));
    assert.equal(inst.status, 0, inst.stderr);
    const unit = path.join(root, 'etc/systemd/system/peernix.service');
    assert.deepEqual(files(root), ['etc/systemd/system/peernix.service']);
    assert.equal(fs.readFileSync(unit, 'utf8'), printed.stdout);
    assert.match(printed.stdout, /\nExecStart=\/\S+ \/\S+\/src\/cli\/main\.ts serve --no-mdns --peer http:\/\/10\.0\.0\.2:9999\n/);
    assert.equal((fs.statSync(unit).mode & 0o777).toString(8), '644');
    assert.match(inst.stdout, /nothing was enabled or started/);
    const verified = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
    t.diagnostic(`systemd-analyze verify of the installed unit: exit ${verified.status} ${verified.stderr.trim()}`);
    assert.equal(verified.status, 0, verified.stderr);
    assert.doesNotMatch(verified.stderr, /peernix\.service/);

    const un = peernix(['service', 'uninstall', '--root', root, '--manager', 'systemd']);
    t.diagnostic(format(un.stdout.trim()));
    assert.equal(un.status, 0, un.stderr);
    assert.deepEqual(files(root), []);
    const again = peernix(['service', 'uninstall', '--root', root, '--manager', 'systemd']);
    assert.equal(again.status, 0);
    assert.match(again.stdout, /does not exist; nothing to remove/);
  });
});

test('--user writes under the home directory; launchd gets a plist; PEERNIX_SERVICE_ROOT works like --root', { timeout: 120_000 }, (t) => {
  withTemp((root) => {
    const home = path.join(root, 'home/ann');
    const env = { HOME: home, XDG_CONFIG_HOME: '', PEERNIX_SERVICE_ROOT: root };
    assert.equal(peernix(['service', 'install', '--user', '--manager', 'systemd'], env).status, 0);
    assert.equal(peernix(['service', 'install', '--user', '--manager', 'launchd'], env).status, 0);
    assert.equal(peernix(['service', 'install', '--manager', 'launchd'], env).status, 0);
    const written = files(root);
    t.diagnostic(`written: ${written.join(', ')}`);
    const rel = path.relative('/', home);
    assert.deepEqual(written, [
      'Library/LaunchDaemons/org.peernix.daemon.plist',
      `${rel}/.config/systemd/user/peernix.service`,
      `${rel}/Library/LaunchAgents/org.peernix.daemon.plist`,
    ]);
    assert.match(fs.readFileSync(path.join(root, written[1]), 'utf8'), /WantedBy=default\.target/);
    for (const args of [
      ['--user', '--manager', 'systemd'],
      ['--user', '--manager', 'launchd'],
      ['--manager', 'launchd'],
    ]) {
      assert.equal(peernix(['service', 'uninstall', ...args], env).status, 0);
    }
    assert.deepEqual(files(root), []);
  });
});

test('bad input gets a clear error, exit 2, and writes nothing', { timeout: 120_000 }, (t) => {
  withTemp((root) => {
    const cases: [string[], RegExp][] = [
      [['service', 'install', '--root', root, '--bogus'], /Unknown option '--bogus'/],
      [['service', 'install', '--root', root, '--', '--no-such-serve-flag'], /serve options after "--" are not valid: Unknown option '--no-such-serve-flag'/],
      [['service', 'install', '--root', root, '--manager', 'runit'], /--manager must be systemd or launchd, got "runit"/],
      [['service', 'install', '--root', 'relative/dir'], /--root must be an absolute path/],
      [['service', 'install', '--root', root, '--user', '--run-as', 'nobody'], /--run-as is for system services/],
      [['service', 'install', '--root', root, '--run-as', 'a b'], /"a b" is not a user name/],
      [['service', 'reinstall', '--root', root], /unknown service action "reinstall"/],
      [['service'], /say install or uninstall/],
    ];
    for (const [args, why] of cases) {
      const r = peernix(args);
      t.diagnostic(`${args.slice(1).join(' ')} → exit ${r.status}: ${r.stderr.split('\n')[0]}`);
      assert.match(r.stderr, why);
      assert.equal(r.status, 2);
    }
    assert.deepEqual(files(root), []);
  });
});

test('a system service that its unprivileged user could not run is refused, naming the path', () => {
  withTemp((dir) => {
    const closed = path.join(dir, 'closed');
    fs.mkdirSync(closed, { mode: 0o700 });
    fs.writeFileSync(path.join(closed, 'peernix.js'), '');
    fs.writeFileSync(path.join(dir, 'open.js'), '', { mode: 0o644 });
    fs.writeFileSync(path.join(dir, 'private.js'), '', { mode: 0o600 });
    fs.chmodSync(dir, 0o755);
    assert.equal(unreadableByOthers(path.join(closed, 'peernix.js')), fs.realpathSync(closed));
    assert.equal(unreadableByOthers(path.join(dir, 'private.js')), fs.realpathSync(path.join(dir, 'private.js')));
    assert.equal(unreadableByOthers(path.join(dir, 'open.js')), undefined);
  });
});
