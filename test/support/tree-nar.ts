// File trees described in code, and their NAR serialisation for `nix-store --import`. Kept apart
// from src/nix/nar-writer.ts on purpose: test fixtures must not depend on the writer under test.

import { createCipheriv, createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { encodeU64 } from '../../src/store/wire.ts';

/** A file tree to put in the store. */
export type TreeNode =
  | { type: 'file'; contents: string | Buffer; executable?: boolean }
  | { type: 'file'; size: number; seed: string; executable?: boolean } // pseudo-random bytes
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, TreeNode> };

export const file = (contents: string | Buffer, executable = false): TreeNode => ({ type: 'file', contents, executable });
export const dir = (entries: Record<string, TreeNode>): TreeNode => ({ type: 'directory', entries });
export const symlink = (target: string): TreeNode => ({ type: 'symlink', target });

/** Deterministic pseudo-random bytes: AES-128-CTR keystream keyed by the seed. */
export function* pseudoRandom(seed: string, size: number): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const block = Buffer.alloc(1024 * 1024);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, block.length);
    yield cipher.update(block.subarray(0, n));
    left -= n;
  }
}

export function str(s: string | Buffer): Buffer[] {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const pad = (8 - (b.length % 8)) % 8;
  return pad ? [encodeU64(b.length), b, Buffer.alloc(pad)] : [encodeU64(b.length), b];
}

/** NAR serialisation of a tree (nix-protocols.md §2.2), as a stream of buffers. */
export function* narOf(node: TreeNode): Generator<Buffer> {
  yield* str('nix-archive-1');
  yield* narNode(node);
}

function* narNode(node: TreeNode): Generator<Buffer> {
  yield* str('(');
  yield* str('type');
  if (node.type === 'file') {
    yield* str('regular');
    if (node.executable) {
      yield* str('executable');
      yield* str('');
    }
    yield* str('contents');
    if ('contents' in node) {
      yield* str(node.contents);
    } else {
      yield encodeU64(node.size);
      yield* pseudoRandom(node.seed, node.size);
      const pad = (8 - (node.size % 8)) % 8;
      if (pad) yield Buffer.alloc(pad);
    }
  } else if (node.type === 'symlink') {
    yield* str('symlink');
    yield* str('target');
    yield* str(node.target);
  } else {
    yield* str('directory');
    const names = Object.keys(node.entries).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      yield* str('entry');
      yield* str('(');
      yield* str('name');
      yield* str(name);
      yield* str('node');
      yield* narNode(node.entries[name]);
      yield* str(')');
    }
  }
  yield* str(')');
}

function drainOrClose(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/** Write buffers to a stream, coalescing small ones and honouring backpressure. */
export async function writeAll(out: Writable, parts: Iterable<Buffer>): Promise<void> {
  let batch: Buffer[] = [];
  let batchLen = 0;
  const flush = async (): Promise<void> => {
    if (!batch.length) return;
    const ok = out.write(batch.length === 1 ? batch[0] : Buffer.concat(batch));
    batch = [];
    batchLen = 0;
    if (!ok) await drainOrClose(out);
  };
  for (const p of parts) {
    batch.push(p);
    batchLen += p.length;
    if (batchLen >= 256 * 1024) await flush();
  }
  await flush();
}

export { file as treeFile, dir as treeDir, symlink as treeSymlink };
