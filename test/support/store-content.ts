// Test content for end-to-end tests: file trees, imported exactly as given into a host's store, and
// a small closure of real derivations.
//
// Why test closures are imported rather than built: Nix refuses to build into a store whose files
// are not at /nix/store without its chroot sandbox (even with sandbox = false), and that sandbox
// needs mount/user namespaces that CI runners often forbid. So addTestClosure instantiates real
// derivations (real .drv files, real output paths) and then imports hand-made contents for
// those outputs with `nix-store --import`, which needs no sandbox or privileges and lets us set
// references and derivers exactly.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { encodeU64 } from '../../src/store/wire.ts';
import type { NixHost } from './nix-host.ts';
import { NIX_ENV } from './nix-env.ts';
import { dir, file, narOf, pseudoRandom, str, symlink, writeAll, type TreeNode } from './tree-nar.ts';

export interface ImportItem {
  path: string;
  tree: TreeNode;
  references: string[];
  deriver?: string | null;
}

/**
 * Import paths with exactly the given contents, references and derivers (`nix-store --import`
 * of a hand-made export stream; no sandbox, no signatures needed). Items must be in dependency
 * order (references first). Paths that are already valid are skipped by Nix.
 */
export async function importPaths(host: NixHost, items: ImportItem[]): Promise<void> {
  const child = spawn('nix-store', ['--store', host.root, '--import'], {
    env: { ...host.env, NIX_CONFIG: `${NIX_ENV.NIX_CONFIG}\nrequire-sigs = false` },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => {}); // reported through the exit code
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  function* stream(): Generator<Buffer> {
    for (const it of items) {
      yield encodeU64(1);
      yield* narOf(it.tree);
      yield encodeU64(0x4558494e); // export magic "NIXE"
      yield* str(it.path);
      yield encodeU64(it.references.length);
      for (const r of it.references) yield* str(r);
      yield* str(it.deriver ?? '');
      yield encodeU64(0); // no legacy signature
    }
    yield encodeU64(0);
  }
  await writeAll(child.stdin, stream());
  child.stdin.end();
  const [code, sig] = await closed;
  if (code !== 0) throw new Error(`nix-store --import failed (${code ?? sig}):\n${Buffer.concat(err).toString()}`);
}

export interface TestClosureOptions {
  /** Size in bytes of the large file. Default 20 MiB. */
  largeSize?: number;
  /** Number of small files in the data path. Default 300. */
  smallFiles?: number;
  /** Makes the store paths unique; default random. Same tag + same store = same paths. */
  tag?: string;
}

export interface TestClosure {
  /** The top of the closure (references every other path, directly or not, and itself). */
  top: string;
  /** The whole closure, top included, sorted. */
  paths: string[];
  /** Single-file path holding the large file (a NAR whose root is a regular file). */
  large: string;
  /** Path with the ~300 small files, symlinks, executable and empty dir; added with `nix-store --add`
   * so it is content-addressed (has `ca`) and has no deriver. */
  data: string;
  /** Path between top and data. */
  lib: string;
  /** Deriver of each path that has one (top, lib, large). */
  derivers: Record<string, string>;
}

const FIXTURE_EXPR = `
{ tag, data, largeSize }:
let
  mk = name: attrs: builtins.derivation ({
    name = "\${name}-\${tag}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo 'peernix test fixture: imported by the test suite, never built' >&2; exit 1" ];
  } // attrs);
  lib = mk "peernix-test-lib" { data = builtins.storePath data; };
  large = mk "peernix-test-large" { size = largeSize; };
  top = mk "peernix-test-top" { inherit lib large; };
  show = d: { drv = d.drvPath; out = d.outPath; };
in { lib = show lib; large = show large; top = show top; }
`;

/**
 * Put a small but realistic closure into the host's store, without building anything:
 *
 *   top  -> lib, large, top (self-reference)      deriver: real .drv
 *   lib  -> data                                  deriver: real .drv
 *   large                                         deriver: real .drv; one regular file
 *   data (nix-store --add, content-addressed)     no deriver; ~300 small files, symlinks
 *
 * Contents mention the referenced paths (as a build's output would), include relative and
 * absolute symlinks, executables, empty files and an empty directory.
 */
export async function addTestClosure(host: NixHost, opts: TestClosureOptions = {}): Promise<TestClosure> {
  const tag = opts.tag ?? randomBytes(4).toString('hex');
  const largeSize = opts.largeSize ?? 20 * 1024 * 1024;
  const smallFiles = opts.smallFiles ?? 300;
  const work = path.join(host.dir, `fixture-${tag}`);
  await fsp.mkdir(work, { recursive: true });

  // data: a real directory added by Nix itself.
  const dataDir = path.join(work, `peernix-test-data-${tag}`);
  await writeTree(dataDir, dataTree(tag, smallFiles));
  const data = (await host.nixStore(['--add', dataDir], { check: true })).stdout.trim();

  // Instantiate the derivations for the other paths: real .drv files with real output paths.
  const exprFile = path.join(work, 'fixture.nix');
  await fsp.writeFile(exprFile, FIXTURE_EXPR);
  const ev = await host.run(
    'nix-instantiate',
    [
      '--store',
      host.root,
      '--eval',
      '--strict',
      '--json',
      '--read-write-mode',
      exprFile,
      '--argstr',
      'tag',
      tag,
      '--argstr',
      'data',
      data,
      '--argstr',
      'largeSize',
      String(largeSize),
    ],
    { check: true },
  );
  const drvs = JSON.parse(ev.stdout) as Record<'lib' | 'large' | 'top', { drv: string; out: string }>;
  const lib = drvs.lib.out;
  const large = drvs.large.out;
  const top = drvs.top.out;

  const libTree = dir({
    lib: dir({
      'libpeernix.so': file(`\x7fELF not really; data at ${data}/share\n`),
      'libpeernix.so.1': symlink('libpeernix.so'),
    }),
    share: dir({
      'data-location': file(`${data}\n`),
      data: symlink(`${data}/share`), // absolute, into another store path
    }),
  });
  const topTree = dir({
    bin: dir({
      hello: file(`#!/bin/sh\n# lib: ${lib}\nexec cat ${top}/share/greeting\n`, true),
      hi: symlink('hello'),
    }),
    lib: symlink(`${lib}/lib`),
    share: dir({
      greeting: file(`hello from ${top}\n`),
      large: symlink(large),
      'up-and-over': symlink('../bin/hello'),
    }),
    'nix-support': dir({ 'propagated-inputs': file(`${lib} ${large}\n`) }),
  });
  await importPaths(host, [
    { path: large, tree: { type: 'file', size: largeSize, seed: `peernix-large-${tag}` }, references: [], deriver: drvs.large.drv },
    { path: lib, tree: libTree, references: [data], deriver: drvs.lib.drv },
    { path: top, tree: topTree, references: [large, lib, top], deriver: drvs.top.drv },
  ]);
  await fsp.rm(work, { recursive: true, force: true });
  return {
    top,
    paths: [top, lib, large, data].sort(),
    large,
    data,
    lib,
    derivers: { [top]: drvs.top.drv, [lib]: drvs.lib.drv, [large]: drvs.large.drv },
  };
}

function dataTree(tag: string, smallFiles: number): TreeNode {
  const groups: Record<string, TreeNode> = {};
  for (let i = 0; i < smallFiles; i++) {
    const g = `group-${String(i % 10).padStart(2, '0')}`;
    const entries = (groups[g] as { entries: Record<string, TreeNode> } | undefined)?.entries ?? {};
    // Sizes vary from 0 to a few KiB so the NAR has every padding length.
    entries[`file-${String(i).padStart(4, '0')}.txt`] = file(`${tag} small file ${i}\n`.repeat(i % 97));
    groups[g] = dir(entries);
  }
  return dir({
    share: dir({
      files: dir(groups),
      empty: file(''),
      'empty-dir': dir({}),
      'B-sorts-first': file('byte order: B < _z < a.txt < aa\n'),
      _z: file('z\n'),
      'a.txt': file('a\n'),
      aa: file('aa\n'),
    }),
    bin: dir({
      'run-me': file('#!/bin/sh\necho run\n', true),
      'also-me': symlink('run-me'),
    }),
    'sh-link': symlink('/bin/sh'), // absolute, outside the store
  });
}

async function writeTree(p: string, node: TreeNode): Promise<void> {
  if (node.type === 'directory') {
    await fsp.mkdir(p, { recursive: true });
    for (const [name, child] of Object.entries(node.entries)) await writeTree(path.join(p, name), child);
  } else if (node.type === 'symlink') {
    await fsp.symlink(node.target, p);
  } else if ('contents' in node) {
    await fsp.writeFile(p, node.contents, { mode: node.executable ? 0o755 : 0o644 });
  } else {
    const fh = await fsp.open(p, 'w', node.executable ? 0o755 : 0o644);
    try {
      for (const b of pseudoRandom(node.seed, node.size)) await fh.write(b);
    } finally {
      await fh.close();
    }
  }
}

/** Add one file or directory to the host's store with `nix-store --add`; returns its path. */
export async function addPath(host: NixHost, name: string, tree: TreeNode): Promise<string> {
  const work = await fsp.mkdtemp(path.join(host.dir, 'add-'));
  try {
    const p = path.join(work, name);
    await writeTree(p, tree);
    return (await host.nixStore(['--add', p], { check: true })).stdout.trim();
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** Generate a binary-cache signing key pair in `dir`. */
