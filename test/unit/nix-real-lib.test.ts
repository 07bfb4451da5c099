// The NixOS and nix-darwin modules through the real module system, evaluated by Debian sid's Nix 2.34:
// nixpkgs' own lib (evalModules, its types, mkPackageOption) and nix-darwin's real launchd module. The
// stand-in (test/support/nix/) is only where nixpkgs' pkgs/ and nixos/ trees would be; see
// eval-real.nix for what that leaves unchecked.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import path from 'node:path';
import { evalRealModule, modernNixInstantiate, realNixSources, repoRoot } from '../support/nix-eval.ts';

const ok = (kind: 'nixos' | 'darwin' | 'home' | 'home-darwin', settings: string) => {
  const r = evalRealModule(kind, settings);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

test('the real nixpkgs lib needs a modern Nix, and Nix 2.34 evaluates it', { timeout: 1_800_000 }, (t) => {
  const r = modernNixInstantiate(['--version']);
  assert.match(r.stdout, /nix-instantiate \(Nix\) 2\.3[4-9]/);
  const v = modernNixInstantiate(['--readonly-mode', '--eval', '-E', `(import ${realNixSources().lib}).version`]);
  t.diagnostic(`${r.stdout.trim()}; nixpkgs lib ${v.stdout.trim()}`);
  assert.equal(v.status, 0, v.stderr);
});

test('NixOS, real module system: the service, its typed options, its assertions', { timeout: 300_000 }, () => {
  const full = ok(
    'nixos',
    `{ services.peernix = { enable = true; openFirewall = true; addToNixSettings = true; publicKey = "b-peernix-1:AAAA="; shareListen = "[::]:9997"; peers = [ "http://b:9999" ]; }; }`,
  );
  assert.deepEqual(full.failedAssertions, []);
  assert.equal(full.package, 'peernix', 'mkPackageOption defaults to pkgs.peernix');
  assert.equal(
    full.service.serviceConfig.ExecStart,
    '"/nix/store/peernix/bin/peernix" "serve" "--share-listen" "[::]:9997" "--listen" "127.0.0.1:9998" "--peer" "http://b:9999"',
  );
  assert.deepEqual(full.service.requires, ['nix-daemon.socket']);
  assert.deepEqual(full.nixSettings, {
    substituters: ['http://127.0.0.1:9998'],
    'trusted-public-keys': ['b-peernix-1:AAAA='],
    'extra-allowed-users': ['peernix'],
  });
  assert.deepEqual(full.firewall, { allowedTCPPorts: [9997], allowedUDPPorts: [5353] });

  // Without a key: the module's own message, and no null in a list of strings for NixOS to trip on first.
  const noKey = ok('nixos', '{ services.peernix = { enable = true; addToNixSettings = true; }; }');
  assert.match(noKey.failedAssertions.join('\n'), /addToNixSettings needs services\.peernix\.publicKey/);
  assert.deepEqual(noKey.nixSettings['trusted-public-keys'], []);

  const bad = evalRealModule('nixos', '{ services.peernix = { enable = true; listen = "127.0.0.1:70000"; }; }');
  assert.ok(!bad.ok && /services\.peernix\.listen' is not of type `string matching the pattern/.test(bad.error), JSON.stringify(bad).slice(0, 400));
});

test('nix-darwin, its real launchd module: the daemon waits for /nix/store, and its plist is well-formed', { timeout: 300_000 }, (t) => {
  const r = ok('darwin', `{ services.peernix = { enable = true; secretKeyFile = "/etc/nix/peernix key"; }; }`);
  t.diagnostic(`ProgramArguments: ${JSON.stringify(r.daemon.serviceConfig.ProgramArguments)}`);
  assert.deepEqual(r.daemon.serviceConfig.ProgramArguments, ['/bin/sh', '-c', `/bin/wait4path /nix/store && exec ${r.daemon.command}`]);
  // The shell gets back exactly the daemon's words (the key path has a space).
  const words = spawnSync('sh', ['-c', `for w in ${r.daemon.command}; do printf '%s\\n' "$w"; done`], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n');
  assert.deepEqual(words, [
    '/nix/store/peernix/bin/peernix',
    'serve',
    '--share-listen',
    '0.0.0.0:9999',
    '--listen',
    '127.0.0.1:9998',
    '--secret-key-file',
    '/etc/nix/peernix key',
  ]);
  const py = spawnSync(
    'python3',
    ['-c', 'import plistlib,sys,json; d=plistlib.loads(sys.stdin.buffer.read()); print(json.dumps([d["Label"], d["ProgramArguments"], d["RunAtLoad"]]))'],
    { input: r.plist, encoding: 'utf8' },
  );
  assert.equal(py.status, 0, py.stderr);
  assert.deepEqual(JSON.parse(py.stdout), ['org.nixos.peernix', r.daemon.serviceConfig.ProgramArguments, true]);
});

test('the flake on the real nixpkgs lib: packages per system, the tray app where Electron is, apps, the VM check on Linux', { timeout: 300_000 }, () => {
  const r = modernNixInstantiate([
    '--readonly-mode',
    '--eval',
    '--strict',
    '--json',
    path.join(repoRoot, 'test/support/nix/eval-flake.nix'),
    '--arg',
    'flake',
    path.join(repoRoot, 'flake.nix'),
    '--arg',
    'electronOn',
    '[ "x86_64-linux" "aarch64-darwin" ]',
    '--arg',
    'realLib',
    realNixSources().lib,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const f = JSON.parse(r.stdout);
  assert.deepEqual(f.packages['x86_64-linux'], { default: 'package.nix', peernix: 'package.nix', 'peernix-app': 'tray.nix' });
  assert.deepEqual(f.packages['aarch64-linux'], { default: 'package.nix', peernix: 'package.nix' });
  assert.deepEqual(Object.keys(f.apps['aarch64-darwin']).sort(), ['default', 'peernix-app']);
  assert.deepEqual(f.checks['x86_64-linux'], { default: 'package.nix', 'vm-substitution': 'vm-test-run-peernix-substitution' });
  assert.deepEqual(f.checks['x86_64-darwin'], { default: 'package.nix' });
  // The real mkDefault: the modules' package is a default a configuration can override.
  assert.deepEqual(f.nixos.config.services.peernix.package, { _type: 'override', priority: 1000, content: '/nix/store/x86_64-linux-package.nix' });
  assert.equal(f.homeManagerIsHomeModules, true);
});

test('home-manager module, real module system: the tray app needs the tray; a launchd agent on macOS', { timeout: 300_000 }, () => {
  const linux = ok('home', '{ services.peernix-app.enable = true; }');
  assert.equal(linux.package, 'peernix-app', 'mkPackageOption defaults to pkgs.peernix-app');
  assert.deepEqual(linux.services['peernix-app'].Unit.Requires, ['tray.target']);
  assert.equal(linux.services['peernix-app'].Service.ExecStart, '/nix/store/peernix-app/bin/peernix-app --hidden');
  assert.deepEqual(linux.agents, {});
  const mac = ok('home-darwin', '{ services.peernix-app.enable = true; }');
  assert.deepEqual(mac.services, {});
  assert.deepEqual(mac.agents['peernix-app'].config.ProgramArguments, ['/nix/store/peernix-app/bin/peernix-app', '--hidden']);
});
