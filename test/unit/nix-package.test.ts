// nix/package.nix and nix/tray.nix, read through stand-ins for nixpkgs' builders (no nixpkgs here): what
// they would build from, and a rehearsal of the build on exactly the package's source file set, laid
// out as the install phase lays it out, so the wrappers' paths are known to exist.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { evalJson, repoRoot } from '../support/nix-eval.ts';

interface PackageEval {
  package: {
    pname: string;
    version: string;
    npmFlags: string[];
    env: Record<string, string>;
    preBuild: string;
    installPhase: string;
    npmConfigHook: string;
    lockUrls: (string | null)[];
    src: { root: string; fileset: string[] };
    meta: { platforms: string[]; mainProgram: string };
  };
  tray: { name: string; script: string; meta: { platforms: string[]; mainProgram: string } };
}

const evaluated = () => evalJson<PackageEval>([path.join(repoRoot, 'test/support/nix/eval-package.nix'), '--argstr', 'storeDir', '/nix/store']);

test('the package: importNpmLock with every URL filled in, no install scripts, nixpkgs Node in the wrapper', { timeout: 60_000 }, (t) => {
  const { package: p, tray } = evaluated();
  const pkgJson = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  t.diagnostic(
    `${p.pname} ${p.version}: ${p.lockUrls.filter(Boolean).length} tarball URLs, flags ${p.npmFlags.join(' ')}, source ${p.src.fileset.length} paths`,
  );
  assert.equal(p.version, pkgJson.version);
  assert.equal(p.npmConfigHook, 'importNpmLock.npmConfigHook');
  assert.deepEqual(p.npmFlags, ['--ignore-scripts']);
  assert.equal(p.env.ELECTRON_SKIP_BINARY_DOWNLOAD, '1');
  assert.equal(p.lockUrls.filter((u) => u === null).length, 1, 'only the root package has no URL');
  assert.match(p.preBuild, /rm -f node_modules\/\.bin\/node/);
  assert.match(p.installPhase, /makeWrapper \/nix\/store\/nodejs-24\/bin\/node \$out\/bin\/peernix \\\n\s+--add-flags \$dir\/dist\/cli\/peernix\.js/);
  assert.match(p.installPhase, /npm prune --omit=dev/);
  // Either npm config hook: its patched package.json and lock are put back before the prune, whatever
  // the hook left, and the installed package.json is the source's (no store paths in it).
  const at = (re: RegExp) => p.installPhase.search(re);
  assert.ok(
    at(/cp --no-preserve=mode \$npmDeps\/package\.json package\.json/) >= 0 &&
      at(/cp --no-preserve=mode \$npmDeps\/package-lock\.json package-lock\.json/) >= 0,
    p.installPhase,
  );
  assert.ok(at(/\$npmDeps\/package-lock\.json/) < at(/npm prune/));
  assert.match(p.installPhase, /cp \/nix\/store\/source\/package\.json \$dir\/package\.json/);
  assert.doesNotMatch(p.installPhase, /\.package\.json\.orig/);
  assert.deepEqual(p.meta.platforms, ['x86_64-linux', 'aarch64-linux', 'x86_64-darwin', 'aarch64-darwin']);
  for (const f of p.src.fileset) assert.ok(fs.existsSync(f), `${f} is in the source file set but does not exist`);
  assert.match(
    tray.script,
    /makeWrapper \/nix\/store\/electron\/bin\/electron \$out\/bin\/peernix-app \\\n\s+--add-flags \/nix\/store\/peernix\/lib\/peernix\/dist\/electron\/main\.js/,
  );
  assert.deepEqual(tray.meta.platforms, ['x86_64-linux', 'aarch64-linux'], 'where both Electron and the daemon build');
});

test('rehearsal: the build runs on the source file set alone, and the installed layout has what the wrappers run', { timeout: 180_000 }, (t) => {
  const { package: p, tray } = evaluated();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-nixpkg-'));
  try {
    const src = path.join(work, 'src');
    for (const f of p.src.fileset) {
      fs.cpSync(f, path.join(src, path.relative(p.src.root, f)), { recursive: true });
    }
    // The dependencies npm would install from the lock (the checkout's own, read-only use).
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(src, 'node_modules'));
    const build = spawnSync(process.execPath, ['scripts/build.ts'], { cwd: src, encoding: 'utf8', timeout: 120_000 });
    t.diagnostic(`build on the file set: exit ${build.status} ${build.stdout.trim()} ${build.stderr.trim()}`);
    assert.equal(build.status, 0, build.stderr);

    // The install phase's layout: $out/lib/peernix/{dist,node_modules,assets,package.json}.
    const dir = path.join(work, 'out/lib/peernix');
    fs.mkdirSync(dir, { recursive: true });
    for (const d of ['dist', 'assets']) fs.cpSync(path.join(src, d), path.join(dir, d), { recursive: true });
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
    fs.copyFileSync(path.join(src, 'package.json'), path.join(dir, 'package.json'));
    const referenced = [
      ...[...p.installPhase.matchAll(/\$dir\/(\S+)/g)].map((m) => m[1]),
      ...[...tray.script.matchAll(/\/nix\/store\/peernix\/lib\/peernix\/(\S+)/g)].map((m) => m[1]),
    ].filter((f) => f !== 'package.json' && !f.endsWith('/'));
    t.diagnostic(`paths the wrappers name: ${referenced.join(', ')}`);
    assert.ok(referenced.includes('dist/cli/peernix.js') && referenced.includes('dist/electron/main.js'));
    for (const f of referenced) assert.ok(fs.existsSync(path.join(dir, f)), `${f} missing from the installed layout`);

    const version = spawnSync(process.execPath, [path.join(dir, 'dist/cli/peernix.js'), '--version'], { encoding: 'utf8', timeout: 30_000 });
    t.diagnostic(`installed peernix --version: ${version.stdout.trim()}`);
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), `peernix ${p.version}`);
    assert.ok(fs.existsSync(path.join(dir, 'dist/renderer/index.html')), 'the dashboard the daemon serves');

    // `npm prune --omit=dev` leaves only the dependencies: the built code may import nothing else.
    const deps = Object.keys(
      (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies,
    );
    const built = [...fs.readdirSync(path.join(dir, 'dist/cli')).map((f) => `dist/cli/${f}`), 'dist/electron/main.js'];
    const imported = new Set<string>();
    for (const f of built) {
      const code = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const m of code.matchAll(/^import\b[^'"]*?["']([^"'.][^"']*)["'];?$/gm)) imported.add(m[1]);
      for (const m of code.matchAll(/\bimport\(["']([^"'.][^"']*)["']\)/g)) imported.add(m[1]);
    }
    const packages = [...imported].filter((s) => !s.startsWith('node:')).map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]));
    t.diagnostic(`packages the built code imports: ${[...new Set(packages)].sort().join(', ')}`);
    assert.ok(packages.includes('bonjour-service') && packages.includes('electron'), 'the scan sees the imports');
    for (const name of packages) assert.ok(name === 'electron' || deps.includes(name), `${name} is imported but not a production dependency`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
