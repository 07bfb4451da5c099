// The flake and the NixOS, nix-darwin and home-manager modules, without nixpkgs (our machines have
// none): every .nix file parses, the modules evaluate against a stand-in of the library functions they
// use (test/support/nix/), and what they produce is checked — the NixOS service and the home-manager
// user service by systemd-analyze verify, the launchd definitions by plistlib.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { evalJson, evalModule, evalModuleError, nixFiles, nixInstantiate, renderUnit, repoRoot } from '../support/nix-eval.ts';

const NIXOS = 'nix/nixos-module.nix';
const DARWIN = 'nix/darwin-module.nix';
const HOME = 'nix/home-manager-module.nix';

/** A directory standing in for the store, with the packages' executables, so systemd can check ExecStart. */
function withStore(fn: (store: string) => void): void {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-nixstore-'));
  try {
    for (const [pkg, exe] of [
      ['peernix', 'peernix'],
      ['peernix-app', 'peernix-app'],
    ]) {
      fs.mkdirSync(path.join(store, pkg, 'bin'), { recursive: true });
      fs.writeFileSync(path.join(store, pkg, 'bin', exe), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    }
    fn(store);
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

function systemdVerify(unitText: string, user: boolean, otherUnits: Record<string, string> = {}): { status: number | null; stderr: string; ours: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-nixunit-'));
  try {
    const file = path.join(dir, 'peernix.service');
    fs.writeFileSync(file, unitText);
    // Units the configuration around it defines (systemd finds them beside the verified file).
    for (const [name, text] of Object.entries(otherUnits)) fs.writeFileSync(path.join(dir, name), text);
    const r = spawnSync('systemd-analyze', [...(user ? ['--user'] : []), 'verify', file], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, XDG_RUNTIME_DIR: dir },
    });
    // Unknown keys and bad values are only warned about: any line about our unit is a failure.
    return { status: r.status, stderr: r.stderr, ours: r.stderr.split('\n').filter((l) => l.includes('peernix.service')) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function plistRoundTrip(value: unknown): unknown {
  const py = 'import plistlib,sys,json; print(json.dumps(plistlib.loads(plistlib.dumps(json.load(sys.stdin)))))';
  const r = spawnSync('python3', ['-c', py], { input: JSON.stringify(value), encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const FULL = `{ services.peernix = {
  enable = true; openFirewall = true; addToNixSettings = true; udpPort = 9999;
  publicKey = "build-1-peernix-1:AAAA="; secretKeyFile = "/etc/nix/peernix-key";
  peers = [ "http://buildbox.lan:9999/%7Ex" ]; shareListen = "0.0.0.0:9997";
}; }`;

test('every .nix file of the project parses with nix-instantiate --parse', { timeout: 120_000 }, (t) => {
  const files = nixFiles();
  t.diagnostic(`${files.length} .nix files: ${files.join(', ')}`);
  for (const f of ['flake.nix', NIXOS, DARWIN, HOME, 'nix/package.nix', 'nix/tray.nix']) assert.ok(files.includes(f), `${f} missing`);
  for (const f of files) {
    const r = nixInstantiate(['--parse', f]);
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
  const broken = nixInstantiate(['--parse', '-E', '{ a = ; }']);
  assert.notEqual(broken.status, 0, 'a syntax error must fail the parse');
});

test('NixOS: the options, and a sandboxed service with firewall and nix.settings for a full configuration', { timeout: 120_000 }, (t) => {
  withStore((store) => {
    const r = evalModule(NIXOS, FULL, { storeDir: store });
    const opts = (r.options.services as any).peernix as Record<string, { type: string; default: unknown; description: string }>;
    t.diagnostic(`options: ${Object.keys(opts).join(', ')}`);
    for (const name of [
      'enable',
      'package',
      'dynamicUser',
      'user',
      'group',
      'stateDir',
      'secretKeyFile',
      'publicKey',
      'shareListen',
      'listen',
      'peers',
      'mdns',
      'openFirewall',
      'udpPort',
      'addToNixSettings',
    ]) {
      assert.ok(opts[name], `option ${name} missing`);
    }
    assert.deepEqual(opts.openFirewall, { type: 'bool', default: false, description: opts.openFirewall.description });
    assert.equal(opts.udpPort.type, 'null or port');
    assert.equal(opts.package.default, 'pkgs.peernix');
    assert.equal(opts.stateDir.default, '/var/lib/peernix');
    assert.deepEqual(r.failedAssertions, []);

    const svc = r.config.systemd.services.peernix;
    const sc = svc.serviceConfig;
    t.diagnostic(`ExecStart: ${sc.ExecStart}`);
    assert.equal(
      sc.ExecStart,
      `"${store}/peernix/bin/peernix" "serve" "--share-listen" "0.0.0.0:9997" "--listen" "127.0.0.1:9998" "--peer" "http://buildbox.lan:9999/%%7Ex" --secret-key-file %d/secret-key`,
    );
    assert.deepEqual(sc.LoadCredential, ['secret-key:/etc/nix/peernix-key']);
    assert.deepEqual(sc.RestrictAddressFamilies, ['AF_UNIX', 'AF_INET', 'AF_INET6', 'AF_NETLINK']);
    for (const [k, v] of Object.entries({
      DynamicUser: true,
      NoNewPrivileges: true,
      ProtectSystem: 'strict',
      ProtectHome: true,
      PrivateTmp: true,
      StateDirectory: 'peernix',
      RestrictNamespaces: true,
    })) {
      assert.equal(sc[k], v, k);
    }
    assert.deepEqual(svc.environment, { PEERNIX_STATE_DIR: '/var/lib/peernix' });
    assert.deepEqual(r.config.environment.systemPackages, [`${store}/peernix`]);
    assert.deepEqual(r.config.networking.firewall, { allowedTCPPorts: [9997], allowedUDPPorts: [5353, 9999] });
    assert.deepEqual(r.config.nix.settings, {
      substituters: ['http://127.0.0.1:9998'],
      'trusted-public-keys': ['build-1-peernix-1:AAAA='],
      'extra-allowed-users': ['peernix'],
    });
    assert.deepEqual(svc.requires, ['nix-daemon.socket'], 'no Peernix without the nix-daemon');

    // The service as NixOS writes it, checked by systemd itself.
    const env = Object.entries(svc.environment as Record<string, string>).map(([k, v]) => `"${k}=${v}"`);
    const unit = renderUnit({
      Unit: { Description: svc.description, After: svc.after, Wants: svc.wants },
      Service: { Environment: env, ...sc },
      Install: { WantedBy: svc.wantedBy },
    });
    const v = systemdVerify(unit, false);
    t.diagnostic(`systemd-analyze verify of the NixOS service: exit ${v.status}, ${v.ours.length} warnings about it ${v.ours.join(' | ')}`);
    assert.equal(v.status, 0, v.stderr);
    assert.deepEqual(v.ours, []);
  });
});

test('NixOS: defaults open nothing and add nothing; mdns, sharing and the user follow their options', { timeout: 120_000 }, (t) => {
  const plain = evalModule(NIXOS, '{ services.peernix.enable = true; }');
  assert.equal(plain.config.networking, undefined);
  assert.deepEqual(plain.config.nix, { settings: { 'extra-allowed-users': ['peernix'] } }, 'only let in by the daemon, nothing else added');
  assert.equal(plain.config.users, undefined);
  assert.equal(
    plain.config.systemd.services.peernix.serviceConfig.ExecStart,
    '"/nix/store/peernix/bin/peernix" "serve" "--share-listen" "0.0.0.0:9999" "--listen" "127.0.0.1:9998"',
  );
  assert.deepEqual(plain.config.systemd.services.peernix.serviceConfig.LoadCredential, []);

  const quiet = evalModule(
    NIXOS,
    '{ services.peernix = { enable = true; mdns = false; share = false; trustAllNetworks = true; openFirewall = true; dynamicUser = false; }; }',
  );
  t.diagnostic(
    `mdns off: ExecStart ${quiet.config.systemd.services.peernix.serviceConfig.ExecStart}; firewall ${JSON.stringify(quiet.config.networking.firewall)}`,
  );
  assert.match(quiet.config.systemd.services.peernix.serviceConfig.ExecStart, / "--no-mdns" "--no-share" "--trust-all-networks"$/);
  assert.deepEqual(quiet.config.networking.firewall, { allowedTCPPorts: [9999], allowedUDPPorts: [] });
  assert.deepEqual(quiet.config.users, { users: { peernix: { isSystemUser: true, group: 'peernix' } }, groups: { peernix: {} } });
  assert.equal(quiet.config.systemd.services.peernix.serviceConfig.DynamicUser, false);

  const off = evalModule(NIXOS, '{ services.peernix = { openFirewall = true; }; }');
  assert.deepEqual(off.config, {}, 'a disabled service configures nothing');
});

test('NixOS: what the module system would refuse is refused, with the reason', { timeout: 120_000 }, (t) => {
  const noKey = evalModule(NIXOS, '{ services.peernix = { enable = true; addToNixSettings = true; }; }');
  const badDir = evalModule(NIXOS, '{ services.peernix = { enable = true; stateDir = "/srv/peernix"; secretKeyFile = "key"; }; }');
  t.diagnostic(`assertions: ${[...noKey.failedAssertions, ...badDir.failedAssertions].join(' / ')}`);
  assert.equal(noKey.failedAssertions.length, 1);
  assert.match(noKey.failedAssertions[0], /addToNixSettings needs services\.peernix\.publicKey/);
  // The settings carry no null for a key that isn't there (NixOS would fail on its type first, hiding the reason).
  assert.deepEqual(noKey.config.nix.settings['trusted-public-keys'], []);
  assert.equal(badDir.failedAssertions.length, 2);
  assert.match(badDir.failedAssertions.join('\n'), /secretKeyFile must be an absolute path/);
  assert.match(badDir.failedAssertions.join('\n'), /stateDir must be under \/var\/lib\//);

  assert.match(
    evalModuleError(NIXOS, '{ services.peernix = { enable = true; openFirewall = "yes"; }; }'),
    /services\.peernix\.openFirewall' is not of type `bool'/,
  );
  assert.match(evalModuleError(NIXOS, '{ services.peernix = { enable = true; udpPort = 70000; }; }'), /udpPort' is not of type `null or port'/);
  assert.match(evalModuleError(NIXOS, '{ services.peernix = { enabel = true; }; }'), /services\.peernix\.enabel' does not exist/);
  // Listeners are HOST:PORT with a port that exists.
  for (const bad of ['9999', '0.0.0.0:70000', '0.0.0.0:', 'host:0', '[::1:9999']) {
    assert.match(
      evalModuleError(NIXOS, `{ services.peernix = { enable = true; shareListen = "${bad}"; }; }`),
      /shareListen' is not of type `string matching the pattern/,
      bad,
    );
  }
  for (const good of ['[::]:9999', '[fe80::1%eth0]:9999', 'buildbox.lan:65535', '10.0.0.1:1']) {
    assert.equal(
      evalModule(NIXOS, `{ services.peernix = { enable = true; shareListen = "${good}"; }; }`).config.systemd.services.peernix.serviceConfig.ExecStart.includes(
        good.replace('%', '%%'),
      ),
      true,
      good,
    );
  }
});

test('nix-darwin: a launchd daemon with the same serve options, plist-ready, and nix.settings', { timeout: 120_000 }, (t) => {
  const r = evalModule(DARWIN, FULL.replace(' openFirewall = true;', '').replace(' udpPort = 9999;', ''), { isDarwin: true });
  assert.deepEqual(r.failedAssertions, []);
  const daemon = r.config.launchd.daemons.peernix;
  const sc = daemon.serviceConfig;
  // A `command`, which nix-darwin starts as /bin/sh -c "/bin/wait4path /nix/store && exec …": at boot
  // launchd runs daemons before /nix/store is mounted. The shell must get back exactly these words.
  t.diagnostic(`command: ${daemon.command}`);
  assert.equal(sc.ProgramArguments, undefined, 'left to nix-darwin, which adds the wait');
  const words = spawnSync('sh', ['-c', `for w in ${daemon.command}; do printf '%s\\n' "$w"; done`], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n');
  assert.deepEqual(words, [
    '/nix/store/peernix/bin/peernix',
    'serve',
    '--share-listen',
    '0.0.0.0:9997',
    '--listen',
    '127.0.0.1:9998',
    '--peer',
    'http://buildbox.lan:9999/%7Ex',
    '--secret-key-file',
    '/etc/nix/peernix-key',
  ]);
  assert.deepEqual(sc.EnvironmentVariables, { PEERNIX_STATE_DIR: '/var/lib/peernix' });
  assert.equal(sc.RunAtLoad, true);
  assert.deepEqual(sc.KeepAlive, { SuccessfulExit: false });
  assert.equal(sc.StandardErrorPath, '/var/log/peernix.log');
  assert.deepEqual(plistRoundTrip(sc), sc, 'every value has a plist type');
  assert.deepEqual(r.config.nix.settings.substituters, ['http://127.0.0.1:9998']);
  const opts = Object.keys((r.options.services as any).peernix);
  assert.ok(opts.includes('logFile') && !opts.includes('openFirewall'), opts.join(', '));
  assert.match(evalModuleError(DARWIN, '{ services.peernix = { enable = true; openFirewall = true; }; }'), /openFirewall' does not exist/);
});

test('home-manager: the tray app starts hidden at login (systemd user service on Linux, launchd agent on macOS)', { timeout: 120_000 }, (t) => {
  withStore((store) => {
    const linux = evalModule(HOME, '{ services.peernix-app.enable = true; }', { storeDir: store });
    const svc = linux.config.systemd.user.services['peernix-app'];
    t.diagnostic(`Linux: ExecStart ${svc.Service.ExecStart}; WantedBy ${svc.Install.WantedBy}`);
    assert.equal(svc.Service.ExecStart, `${store}/peernix-app/bin/peernix-app --hidden`);
    assert.deepEqual(svc.Install.WantedBy, ['graphical-session.target']);
    assert.deepEqual(svc.Unit.Requires, ['tray.target'], 'a tray icon needs the tray');
    assert.equal(linux.config.home.packages.length, 1);
    assert.equal(linux.config.launchd, undefined);
    const v = systemdVerify(renderUnit(svc), true, { 'tray.target': '[Unit]\nDescription=stands for the tray.target home-manager defines\n' });
    t.diagnostic(`systemd-analyze --user verify of the home-manager service: exit ${v.status}, ${v.ours.length} warnings`);
    assert.equal(v.status, 0, v.stderr);
    assert.deepEqual(v.ours, []);
  });
  const mac = evalModule(HOME, '{ services.peernix-app.enable = true; }', { isDarwin: true });
  const agent = mac.config.launchd.agents['peernix-app'];
  assert.equal(mac.config.systemd, undefined);
  assert.equal(agent.enable, true);
  assert.deepEqual(agent.config.ProgramArguments, ['/nix/store/peernix-app/bin/peernix-app', '--hidden']);
  assert.equal(agent.config.RunAtLoad, true);
  assert.deepEqual(plistRoundTrip(agent.config), agent.config);
  assert.deepEqual(evalModule(HOME, '{ }').config, {});
});

test('the flake: four systems, the tray app only where nixpkgs has Electron, apps, overlay, modules defaulting to its package', { timeout: 120_000 }, (t) => {
  const f = evalJson<any>([
    path.join(repoRoot, 'test/support/nix/eval-flake.nix'),
    '--arg',
    'flake',
    path.join(repoRoot, 'flake.nix'),
    '--arg',
    'electronOn',
    '[ "x86_64-linux" "aarch64-darwin" ]',
  ]);
  t.diagnostic(`packages: ${JSON.stringify(f.packages)}`);
  assert.deepEqual(Object.keys(f.packages).sort(), ['aarch64-darwin', 'aarch64-linux', 'x86_64-darwin', 'x86_64-linux']);
  assert.deepEqual(f.packages['x86_64-linux'], { default: 'package.nix', peernix: 'package.nix', 'peernix-app': 'tray.nix' });
  assert.deepEqual(f.packages['aarch64-linux'], { default: 'package.nix', peernix: 'package.nix' });
  assert.deepEqual(f.apps['x86_64-linux'].default, {
    type: 'app',
    program: '/nix/store/x86_64-linux-package.nix/bin/peernix',
    meta: { description: 'Peernix, the headless daemon and its CLI (peernix serve, status, doctor, …)' },
  });
  assert.equal(f.apps['x86_64-linux']['peernix-app'].meta.description, 'Peernix, the tray app');
  assert.equal(f.apps['aarch64-linux']['peernix-app'], undefined);
  assert.deepEqual(f.overlay, { peernix: 'package.nix', 'peernix-app': 'tray.nix' });
  assert.deepEqual(f.nixos.imports, ['nixos-module.nix']);
  assert.deepEqual(f.nixos.config.services.peernix.package, { _type: 'override', priority: 1000, content: '/nix/store/x86_64-linux-package.nix' });
  assert.equal(f.darwin.config.services.peernix.package.content, '/nix/store/aarch64-darwin-package.nix');
  assert.equal(f.homeManager.config.services['peernix-app'].package.content, '/nix/store/x86_64-linux-tray.nix');
  assert.equal(f.homeManagerIsHomeModules, true, 'homeModules, and homeManagerModules as its old name');
  // The VM test is a check on Linux only (it needs KVM), with the package build.
  assert.deepEqual(f.checks['x86_64-linux'], { default: 'package.nix', 'vm-substitution': 'vm-test-run-peernix-substitution' });
  assert.deepEqual(f.checks['aarch64-darwin'], { default: 'package.nix' });
});

test('the NixOS VM test: two machines on the flake’s module with settings it accepts, and a test script that parses', { timeout: 120_000 }, () => {
  // What can be checked without nixpkgs' nixos/ tree (and KVM): runNixOSTest itself is not run here.
  const f = evalJson<any>([
    path.join(repoRoot, 'test/support/nix/eval-flake.nix'),
    '--arg',
    'flake',
    path.join(repoRoot, 'flake.nix'),
    '--arg',
    'electronOn',
    '[ "x86_64-linux" ]',
  ]);
  const t = f.vmTest as {
    name: string;
    testScript: string;
    nodes: Record<string, { imports: string[]; services: { peernix: Record<string, unknown> }; nix: { extraOptions: string } }>;
  };
  assert.deepEqual(Object.keys(t.nodes).sort(), ['a', 'b']);
  for (const [name, node] of Object.entries(t.nodes)) {
    assert.deepEqual(node.imports, ['lambda'], `${name} imports the flake's NixOS module`);
    const other = name === 'a' ? 'b' : 'a';
    // The node's services.peernix, evaluated by our module: accepted, and a service that asks the other machine.
    const r = evalModule(NIXOS, `{ services.peernix = builtins.fromJSON ''${JSON.stringify(node.services.peernix)}''; }`);
    assert.deepEqual(r.failedAssertions, []);
    assert.match(r.config.systemd.services.peernix.serviceConfig.ExecStart, new RegExp(`"--peer" "http://${other}:9999"`));
    assert.deepEqual(r.config.networking.firewall.allowedTCPPorts, [9999]);
    assert.match(node.nix.extraOptions, /^!include \/run\/peernix-trust\.conf$/);
  }
  const py = spawnSync('python3', ['-c', 'import ast,sys; ast.parse(sys.stdin.read())'], { input: t.testScript, encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  assert.match(t.testScript, /a\.succeed\(f"nix-store -r \{path\}"\)/);
});

test('the npm lock gets a registry URL for every package importNpmLock must fetch', { timeout: 120_000 }, (t) => {
  const lock = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, any> };
  const out = evalJson<Record<string, string | null>>([
    '-E',
    `builtins.mapAttrs (_: m: m.resolved or null) (import ${path.join(repoRoot, 'nix/npm-lock.nix')} (builtins.fromJSON (builtins.readFile ${path.join(repoRoot, 'package-lock.json')}))).packages`,
  ]);
  const fetched = Object.entries(lock.packages).filter(([k, m]) => k !== '' && m.integrity && !m.link);
  t.diagnostic(`${fetched.length} packages with an integrity hash; ${Object.values(out).filter(Boolean).length} got a URL`);
  assert.ok(fetched.length > 300);
  for (const [key, m] of fetched) {
    const name: string = m.name ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    assert.equal(out[key], `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${m.version}.tgz`, key);
  }
  assert.equal(out[''], null);
  assert.equal(
    out['node_modules/bonjour-service'],
    `https://registry.npmjs.org/bonjour-service/-/bonjour-service-${lock.packages['node_modules/bonjour-service'].version}.tgz`,
  );
  assert.equal(out['node_modules/@types/node'], `https://registry.npmjs.org/@types/node/-/node-${lock.packages['node_modules/@types/node'].version}.tgz`);
});
