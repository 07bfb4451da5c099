// Evaluating the project's Nix files with Nix 2.8's nix-instantiate, without nixpkgs: the modules
// against the stand-in library in test/support/nix/, the flake against a stand-in nixpkgs.
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
    '--arg', 'module', path.join(repoRoot, module),
    '--arg', 'settings', settings,
    '--argstr', 'storeDir', opts.storeDir ?? '/nix/store',
    '--arg', 'isDarwin', opts.isDarwin ? 'true' : 'false',
  ]);
}

/** The error nix-instantiate gives for a module and settings the stand-in must refuse. */
export function evalModuleError(module: string, settings: string): string {
  const r = nixInstantiate(['--readonly-mode', '--eval', '--strict', '--json', evalModuleNix, '--arg', 'module', path.join(repoRoot, module), '--arg', 'settings', settings]);
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
