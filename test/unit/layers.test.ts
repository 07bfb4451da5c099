// Keeps the layers of src/ visible as folders: every import points down the list below (or stays in its
// own folder), the core never reaches for Electron, and the renderer never reaches for Node.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

const root = path.join(import.meta.dirname, '..', '..');

/** src/ folders from the bottom up. A file may import its own folder and any folder before it. */
const LAYERS = [
  'base', // log, chunk pool, addresses, state dir, version, signals, the API types and event bus
  'nix', // Nix's formats and settings, pure
  'wire', // what both sides of a peer connection speak: frames, summaries, TXT, UDP, identity proof
  'store', // the local store through the nix-daemon and its database
  'peers', // discovery, registry, health, the peer client
  'cache', // the HTTP side: listeners, routes, responses
  'domain', // where a request is answered from, and what the user sees of it
  'metrics',
  'doctor',
  'control', // the loopback control API and dashboard
  'app', // the composition root and the service around it
  'cli',
];

interface Edge {
  from: string;
  to: string;
}

function tsFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

const SPECIFIER = /(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s*'([^']+)'/g;

function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(SPECIFIER)].map((m) => m[1] ?? m[2] ?? m[3]);
}

function relativeEdges(dir: string): Edge[] {
  const edges: Edge[] = [];
  for (const file of tsFiles(dir)) {
    for (const spec of importsOf(file)) {
      if (!spec.startsWith('.')) continue;
      edges.push({ from: path.relative(root, file), to: path.relative(root, path.resolve(path.dirname(file), spec)) });
    }
  }
  return edges;
}

function layerOf(file: string): string | undefined {
  const [top, folder] = file.split(path.sep);
  return top === 'src' ? folder : undefined;
}

test('every src/ file lives in a layer folder (no loose files at src/ root)', () => {
  const loose = fs.readdirSync(path.join(root, 'src')).filter((f) => f.endsWith('.ts'));
  assert.deepEqual(loose, []);
  const folders = fs
    .readdirSync(path.join(root, 'src'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'types')
    .map((d) => d.name)
    .sort();
  assert.deepEqual(folders, [...LAYERS].sort(), 'a new src/ folder needs a place in LAYERS');
});

test('imports inside src/ point down the layers or stay in their folder', () => {
  const edges = relativeEdges(path.join(root, 'src'));
  assert.ok(edges.length > 200, `found only ${edges.length} imports: the scan is broken`);
  const back = edges.filter(({ from, to }) => {
    const a = LAYERS.indexOf(layerOf(from)!);
    const b = LAYERS.indexOf(layerOf(to)!);
    return b === -1 || (b >= a && layerOf(from) !== layerOf(to));
  });
  assert.deepEqual(
    back.map((e) => `${e.from} → ${e.to}`),
    [],
  );
});

test('the core never imports Electron, the shell or the renderer', () => {
  const offenders: string[] = [];
  for (const file of tsFiles(path.join(root, 'src'))) {
    for (const spec of importsOf(file)) {
      const target = spec.startsWith('.') ? path.relative(root, path.resolve(path.dirname(file), spec)) : spec;
      if (/^electron(-store)?($|\/)/.test(spec) || /^(electron|renderer)\//.test(target)) offenders.push(`${path.relative(root, file)} → ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('the renderer imports no Node module and from the core only the shared API types and contract', () => {
  const allowedCore = new Set(['src/base/api.ts', 'src/base/summary-text.ts', 'src/base/dnssd-text.ts', 'src/control/contract.ts']);
  const offenders: string[] = [];
  for (const file of tsFiles(path.join(root, 'renderer'))) {
    for (const spec of importsOf(file)) {
      if (!spec.startsWith('.')) {
        offenders.push(`${path.relative(root, file)} → ${spec}`);
        continue;
      }
      const target = path.relative(root, path.resolve(path.dirname(file), spec));
      if (!target.startsWith('renderer/') && !allowedCore.has(target)) offenders.push(`${path.relative(root, file)} → ${target}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('the scan sees the imports it judges (a back-arrow written here would be caught)', () => {
  const probe = "import { x } from '../app/peernix.ts';\nexport { y } from './log.ts';\nconst z = await import('../cli/main.ts');\n";
  const specs = [...probe.matchAll(SPECIFIER)].map((m) => m[1] ?? m[2] ?? m[3]);
  assert.deepEqual(specs, ['../app/peernix.ts', './log.ts', '../cli/main.ts']);
  assert.ok(LAYERS.indexOf('app') > LAYERS.indexOf('base'));
});
