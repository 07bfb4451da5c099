// What the dependencies promise: bonjour-service exactly at the version whose private fields
// src/peers/bonjour-internals.ts reads, the Node toolchain (the `node` package) kept out of what
// packages carry, and no runtime dependency that nothing imports.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BONJOUR_SERVICE_VERSION } from '../../src/peers/bonjour-internals.ts';

const root = path.join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; dev?: boolean; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }>;
};

test('bonjour-service is pinned to exactly the version bonjour-internals.ts was written against', () => {
  assert.equal(pkg.dependencies['bonjour-service'], BONJOUR_SERVICE_VERSION, 'an exact version, no range');
  assert.equal(lock.packages['node_modules/bonjour-service']?.version, BONJOUR_SERVICE_VERSION);
  assert.equal(lock.packages['']?.dependencies?.['bonjour-service'], BONJOUR_SERVICE_VERSION, 'the lock agrees with package.json');
});

test('the Node toolchain is a devDependency, so neither npm prune --omit=dev nor electron-builder carries it', () => {
  assert.ok(pkg.devDependencies.node, 'the `node` package stays for bin/peernix and the scripts');
  assert.equal(pkg.dependencies.node, undefined);
  assert.equal(lock.packages['node_modules/node']?.dev, true);
  const builder = JSON.parse(fs.readFileSync(path.join(root, 'electron-builder.json'), 'utf8')) as { files: string[] };
  assert.ok(!builder.files.some((f) => f.includes('node_modules/node')), 'no exclusion needed any more');
});

test('every runtime dependency is imported by the core or the app', () => {
  const sources = ['src', 'electron'].flatMap((d) =>
    fs
      .readdirSync(path.join(root, d), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.readFileSync(path.join(root, d, f), 'utf8')),
  );
  for (const name of Object.keys(pkg.dependencies)) {
    assert.ok(
      // `import 'x'` counts too: a polyfill is imported for its effect alone.
      sources.some((text) => text.includes(`from '${name}'`) || text.includes(`from '${name}/`) || text.includes(`import '${name}';`)),
      `${name} is a runtime dependency that nothing imports`,
    );
  }
});
