// Evaluating the project's Nix files with Nix 2.8's nix-instantiate, without nixpkgs: the modules
// against the stand-in library in test/support/nix/, the flake against a stand-in nixpkgs. And with
// Debian sid's Nix 2.34 against the real nixpkgs lib and nix-darwin (modernNixInstantiate).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const repoRoot = path.join(import.meta.dirname, '../..');
const evalModuleNix = path.join(import.meta.dirname, 'nix/eval-module.nix');

// Quiet: the machine's nix.conf names a build group that does not exist, which only matters for builds.
const env = { ...process.env, NIX_CONFIG: 'build-users-group =' };

export function nixInstantiate(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nix-instantiate', args, { encoding: 'utf8', env, timeout: 60_000, cwd: repoRoot });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function evalJson<T>(args: string[]): T {
  const r = nixInstantiate(['--readonly-mode', '--eval', '--strict', '--json', ...args]);
  if (r.status !== 0) throw new Error(`nix-instantiate failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as T;
}

export interface ModuleEval {
  options: Record<string, unknown>;
  config: Record<string, any>;
  failedAssertions: string[];
}

/** One module (a path under nix/) with `settings` (a Nix expression) evaluated by the stand-in. */
export function evalModule(module: string, settings: string, opts: { storeDir?: string; isDarwin?: boolean } = {}): ModuleEval {
  return evalJson<ModuleEval>([
    evalModuleNix,
    '--arg',
    'module',
    path.join(repoRoot, module),
    '--arg',
    'settings',
    settings,
    '--argstr',
    'storeDir',
    opts.storeDir ?? '/nix/store',
    '--arg',
    'isDarwin',
    opts.isDarwin ? 'true' : 'false',
  ]);
}

/** The error nix-instantiate gives for a module and settings the stand-in must refuse. */
export function evalModuleError(module: string, settings: string): string {
  const r = nixInstantiate([
    '--readonly-mode',
    '--eval',
    '--strict',
    '--json',
    evalModuleNix,
    '--arg',
    'module',
    path.join(repoRoot, module),
    '--arg',
    'settings',
    settings,
  ]);
  if (r.status === 0) throw new Error(`expected an evaluation error, got ${r.stdout}`);
  return r.stderr;
}

/** Every .nix file of the project (not node_modules'). */
export function nixFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === '.git' || e.name === 'dist') continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.nix')) out.push(path.relative(repoRoot, p));
    }
  };
  walk(repoRoot);
  return out.sort();
}

type Value = string | number | boolean | string[];

function systemdValue(v: string | number | boolean): string {
  return typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v);
}

/** A unit file from sections of key → value, lists as repeated lines (as NixOS and home-manager write them). */
export function renderUnit(sections: Record<string, Record<string, Value>>): string {
  let text = '';
  for (const [name, keys] of Object.entries(sections)) {
    text += `[${name}]\n`;
    for (const [k, v] of Object.entries(keys)) {
      for (const item of Array.isArray(v) ? v : [v]) text += `${k}=${systemdValue(item)}\n`;
    }
    text += '\n';
  }
  return text;
}

// --- Nix 2.34 and the real Nix sources

const MODERN_CACHE = process.env.PEERNIX_TEST_CACHE ?? '/var/cache/peernix-test';

/**
 * nix-instantiate from the sid root scripts/nix-root.sh keeps (made there once if missing), run outside
 * the chroot through the root's own dynamic loader and libraries: evaluating needs no store, mounts or
 * privileges. Its nix.conf is an empty one of ours, so the machine's does not leak in.
 */
export function modernNixInstantiate(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const made = spawnSync('sh', [path.join(repoRoot, 'scripts/nix-root.sh'), 'sid'], { encoding: 'utf8', timeout: 1_800_000 });
  if (made.status !== 0) throw new Error(`scripts/nix-root.sh sid: ${made.stderr}`);
  const root = made.stdout.trim().split('\n').pop()!;
  const confDir = path.join(MODERN_CACHE, 'nix-eval-conf');
  fs.mkdirSync(confDir, { recursive: true });
  fs.writeFileSync(path.join(confDir, 'nix.conf'), 'build-users-group =\n');
  const r = spawnSync(
    path.join(root, 'usr/lib64/ld-linux-x86-64.so.2'),
    ['--library-path', path.join(root, 'usr/lib/x86_64-linux-gnu'), path.join(root, 'usr/bin/nix-instantiate'), ...args],
    {
      encoding: 'utf8',
      timeout: 120_000,
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: confDir, NIX_CONF_DIR: confDir, XDG_CACHE_HOME: path.join(confDir, 'cache') },
    },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The real nixpkgs lib, home-manager and nix-darwin (unmodified snapshots, see their README), unpacked
 * once beside the Nix roots. PEERNIX_NIX_SOURCES names the folder of tarballs (default ../shared/nix-sources).
 */
export function realNixSources(): { lib: string; homeManager: string; nixDarwin: string } {
  const from = process.env.PEERNIX_NIX_SOURCES ?? path.join(repoRoot, '../shared/nix-sources');
  const into = path.join(MODERN_CACHE, 'nix-sources');
  fs.mkdirSync(into, { recursive: true });
  for (const name of ['nixpkgs-lib', 'home-manager', 'nix-darwin']) {
    if (fs.existsSync(path.join(into, `${name}.unpacked`))) continue;
    fs.rmSync(path.join(into, name), { recursive: true, force: true });
    const r = spawnSync('tar', ['-xzf', path.join(from, `${name}.tar.gz`), '-C', into], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`unpacking ${name} from ${from}: ${r.stderr}`);
    fs.writeFileSync(path.join(into, `${name}.unpacked`), '');
  }
  return { lib: path.join(into, 'nixpkgs-lib/lib'), homeManager: path.join(into, 'home-manager'), nixDarwin: path.join(into, 'nix-darwin') };
}

/** One of our modules through the real module system (test/support/nix/eval-real.nix), or its error. */
export function evalRealModule(kind: 'nixos' | 'darwin' | 'home' | 'home-darwin', settings: string): { ok: true; value: any } | { ok: false; error: string } {
  const src = realNixSources();
  const module = path.join(repoRoot, kind === 'nixos' ? 'nix/nixos-module.nix' : kind === 'darwin' ? 'nix/darwin-module.nix' : 'nix/home-manager-module.nix');
  const r = modernNixInstantiate([
    '--readonly-mode',
    '--eval',
    '--strict',
    '--json',
    path.join(import.meta.dirname, 'nix/eval-real.nix'),
    '--arg',
    'lib',
    src.lib,
    '--arg',
    'nixDarwin',
    src.nixDarwin,
    '--arg',
    'module',
    module,
    '--argstr',
    'kind',
    kind,
    '--arg',
    'settings',
    settings,
  ]);
  return r.status === 0 ? { ok: true, value: JSON.parse(r.stdout) } : { ok: false, error: r.stderr };
}
