import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { releaseChunk } from '../../src/base/chunk-pool.ts';
import { NarCursors } from '../../src/nix/nar-cursors.ts';
import { dumpNar, narSizeOf } from '../../src/nix/nar-writer.ts';
import type { DumpNarOptions } from '../../src/nix/nar-writer.ts';
import { waitFor } from '../support/wait.ts';

const MODES: DumpNarOptions[] = [{}, { io: 'async' }];

function nixDump(p: string | Buffer): Buffer {
  return execFileSync('nix-store', ['--dump', p as string], { maxBuffer: 64 * 1024 * 1024 });
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

async function ourDump(p: string, opts: DumpNarOptions): Promise<Buffer> {
  return collect(dumpNar(p, opts));
}

function sha256OfNixDump(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('nix-store', ['--dump', p], { stdio: ['ignore', 'pipe', 'inherit'] });
    const h = createHash('sha256');
    child.stdout.on('data', (c: Buffer) => h.update(c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(h.digest('hex')) : reject(new Error(`nix-store exited ${code}`))));
  });
}

/** nix-store --dump of a path from byte `start` on (streamed, so fine for a 200 MB NAR). */
function nixDumpFrom(p: string, start: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('nix-store', ['--dump', p], { stdio: ['ignore', 'pipe', 'inherit'] });
    const kept: Buffer[] = [];
    let at = 0;
    child.stdout.on('data', (c: Buffer) => {
      if (at + c.length > start) kept.push(c.subarray(Math.max(0, start - at)));
      at += c.length;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(kept)) : reject(new Error(`nix-store exited ${code}`))));
  });
}

async function expectStreamError(stream: Readable, pattern: RegExp): Promise<void> {
  await assert.rejects(collect(stream), (err: Error) => {
    assert.match(`${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`, pattern);
    return true;
  });
}

function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('dumpNar', { timeout: 900_000 }, () => {
  let tmp: string;
  let tree: string;
  let big: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-nar-'));
    tree = path.join(tmp, 'tree');
    fs.mkdirSync(path.join(tree, 'nested/deeper/deepest'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'emptydir'));
    fs.mkdirSync(path.join(tree, 'sort'));
    fs.writeFileSync(path.join(tree, 'regular.txt'), 'hello world\n');
    fs.writeFileSync(path.join(tree, 'script'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    fs.writeFileSync(path.join(tree, 'owner-x-only'), 'x', { mode: 0o700 });
    fs.writeFileSync(path.join(tree, 'group-x-only'), 'x', { mode: 0o654 });
    fs.writeFileSync(path.join(tree, 'empty'), '');
    fs.writeFileSync(path.join(tree, 'binary'), randomBytes(10_007));
    fs.writeFileSync(path.join(tree, 'pad7'), 'abcdefg'); // every padding length
    fs.writeFileSync(path.join(tree, 'pad8'), 'abcdefgh');
    fs.writeFileSync(path.join(tree, 'pad9'), 'abcdefghi');
    fs.symlinkSync('regular.txt', path.join(tree, 'rel-link'));
    fs.symlinkSync('../outside/thing', path.join(tree, 'up-link'));
    fs.symlinkSync('/nonexistent/dangling', path.join(tree, 'dangling'));
    fs.symlinkSync('nested', path.join(tree, 'dir-link'));
    fs.writeFileSync(path.join(tree, 'nested/a'), 'a');
    fs.writeFileSync(path.join(tree, 'nested/deeper/b'), 'b');
    fs.writeFileSync(path.join(tree, 'nested/deeper/deepest/c'), 'c', { mode: 0o555 });
    // Byte order, not JS string order: 'Ａ' (EF BC A1) sorts before '😀' (F0 9F 98 80) in UTF-8,
    // after it in UTF-16. Plus a name that is not UTF-8 at all.
    for (const n of ['B', '_z', 'a.txt', 'aa', 'é', 'z', '\uff21', '\u{1f600}', 'a', 'A', '0', '~']) {
      fs.writeFileSync(path.join(tree, 'sort', n), n);
    }
    fs.writeFileSync(Buffer.concat([Buffer.from(path.join(tree, 'sort') + '/'), Buffer.from([0xff, 0x41])]), 'latin1');
    // Sizes around the small-file and output-chunk limits.
    fs.mkdirSync(path.join(tree, 'sizes'));
    for (const size of [131071, 131072, 131073, 262143, 262144, 262145, 1048576, 1048579, 3 * 1048576 + 5]) {
      fs.writeFileSync(path.join(tree, 'sizes', `f${size}`), randomBytes(size));
    }
    // Enough entries to exceed the read-ahead window and several output chunks.
    fs.mkdirSync(path.join(tree, 'many'));
    for (let i = 0; i < 1500; i++) fs.writeFileSync(path.join(tree, 'many', `f${i}`), randomBytes(i % 700));

    big = path.join(tmp, 'big.bin');
    const fd = fs.openSync(big, 'w');
    for (let i = 0; i < 200; i++) fs.writeSync(fd, randomBytes(1_000_000));
    fs.writeSync(fd, randomBytes(13));
    fs.closeSync(fd);
  });

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const opts of MODES) {
    const mode = opts.io ?? 'auto';

    it(`[${mode}] whole tree is byte-identical to nix-store --dump`, async () => {
      const ours = await ourDump(tree, opts);
      const theirs = nixDump(tree);
      assert.equal(ours.length, theirs.length);
      assert.ok(ours.equals(theirs));
    });

    it(`[${mode}] each kind of node on its own is byte-identical`, async () => {
      for (const rel of [
        'regular.txt',
        'script',
        'owner-x-only',
        'group-x-only',
        'empty',
        'binary',
        'pad7',
        'pad8',
        'pad9',
        'rel-link',
        'up-link',
        'dangling',
        'dir-link',
        'emptydir',
        'nested',
        'nested/deeper/deepest/c',
        'sort',
        'sizes/f131072',
        'sizes/f262145',
        'sizes/f3145733',
        'many',
      ]) {
        const p = path.join(tree, rel);
        const ours = await ourDump(p, opts);
        assert.ok(ours.equals(nixDump(p)), rel);
      }
    });

    it(`[${mode}] consumers that release their chunks at once still get exactly nix-store's bytes`, async () => {
      // Two dumps at the same time, each handing chunks back as soon as they are hashed, so every
      // chunk is reused many times over, across both streams.
      const hashOf = async (p: string) => {
        const h = createHash('sha256');
        for await (const c of dumpNar(p, opts)) {
          h.update(c as Buffer);
          releaseChunk(c as Buffer);
        }
        return h.digest('hex');
      };
      const [treeHash, bigHash] = await Promise.all([hashOf(tree), hashOf(big)]);
      assert.equal(treeHash, createHash('sha256').update(nixDump(tree)).digest('hex'));
      assert.equal(bigHash, await sha256OfNixDump(big));
    });

    it(`[${mode}] a 200 MB file matches nix-store --dump with bounded memory and backpressure`, async () => {
      const stream = dumpNar(big, opts);
      const h = createHash('sha256');
      let total = 0;
      let maxBuffers = 0;
      let paused = false;
      let bufferedWhilePaused = -1;
      const done = new Promise<void>((resolve, reject) => {
        stream.on('error', reject);
        stream.on('end', resolve);
      });
      stream.on('data', (c: Buffer) => {
        h.update(c);
        total += c.length;
        // As the HTTP sink does once the socket has the bytes: memory is bounded by reuse, not by
        // when the garbage collector happens to run.
        releaseChunk(c);
        maxBuffers = Math.max(maxBuffers, process.memoryUsage().arrayBuffers);
        if (!paused && total > 50_000_000) {
          // A stalled consumer: the producer must stop at the high-water mark.
          paused = true;
          stream.pause();
          setTimeout(() => {
            bufferedWhilePaused = stream.readableLength;
            stream.resume();
          }, 300);
        }
      });
      await done;
      assert.ok(bufferedWhilePaused >= 0 && bufferedWhilePaused <= 4 * 1024 * 1024, `buffered ${bufferedWhilePaused}`);
      assert.ok(maxBuffers < 96 * 1024 * 1024, `arrayBuffers peaked at ${maxBuffers}`);
      assert.equal(total, 200_000_016 + 112); // contents padded to 8, plus the framing tokens
      assert.equal(h.digest('hex'), await sha256OfNixDump(big));
    });

    it(`[${mode}] a vanished entry, a shrinking and a growing file fail the stream`, async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'race-'));
      const mk = () => {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, 'a-big'), randomBytes(4 * 1048576));
        for (let i = 0; i < 100; i++) fs.writeFileSync(path.join(dir, `f${String(i).padStart(3, '0')}`), `${i}`);
      };
      // The change happens when the first output chunk arrives, after the root was listed and
      // while the 4 MiB file is being read; f099 lies beyond the read-ahead window.
      const raceWith = (change: () => void) => {
        mk();
        const stream = dumpNar(dir, opts);
        stream.once('data', change);
        return stream;
      };
      await expectStreamError(
        raceWith(() => fs.rmSync(path.join(dir, 'f099'))),
        /ENOENT/,
      );
      await expectStreamError(
        raceWith(() => fs.truncateSync(path.join(dir, 'a-big'), 10)),
        /shrank/,
      );
      await expectStreamError(
        raceWith(() => fs.appendFileSync(path.join(dir, 'a-big'), 'more')),
        /grew/,
      );
      // Sanity: without interference the same tree dumps fine.
      mk();
      assert.ok((await ourDump(dir, opts)).equals(nixDump(dir)));
    });

    it(`[${mode}] small files whose size lies are rejected`, async () => {
      // procfs reports size 0 but has content; sysfs reports 4096 but has less.
      await expectStreamError(dumpNar('/proc/self/status', opts), /grew/);
      if (fs.existsSync('/sys/devices/system/cpu/online')) {
        await expectStreamError(dumpNar('/sys/devices/system/cpu/online', opts), /shrank/);
      }
    });

    it(`[${mode}] unsupported file types and missing paths fail the stream`, async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'types-'));
      fs.writeFileSync(path.join(dir, 'ok'), 'ok');
      execFileSync('mkfifo', [path.join(dir, 'zfifo')]);
      await expectStreamError(dumpNar(dir, opts), /not a regular file/);
      await expectStreamError(dumpNar(path.join(dir, 'zfifo'), opts), /not a regular file/);
      await expectStreamError(dumpNar(path.join(tmp, 'does-not-exist'), opts), /ENOENT/);
      await expectStreamError(dumpNar('/dev/null', opts), /not a regular file/);
    });

    it(`[${mode}] destroying the stream early releases everything`, async () => {
      const before = openFdCount();
      for (const p of [big, tree]) {
        const stream = dumpNar(p, opts);
        await new Promise<void>((resolve) => {
          stream.once('data', () => {
            stream.destroy();
            resolve();
          });
        });
        assert.ok(stream.destroyed);
      }
      // Closing is asynchronous: waited for, not slept on (a loaded machine closes later, not never).
      await waitFor('every descriptor closed', async () => openFdCount() === before, 60_000);
    });
  }

  for (const opts of MODES) {
    const mode = opts.io ?? 'auto';

    it(`[${mode}] a dump from any start offset is exactly that slice of nix-store --dump`, async (t) => {
      // Every offset of small nodes of each kind, so every token, padding and file boundary is a start.
      let starts = 0;
      for (const rel of ['nested', 'sort', 'regular.txt', 'rel-link', 'emptydir', 'pad7']) {
        const p = path.join(tree, rel);
        const whole = nixDump(p);
        for (let start = 0; start < whole.length; start++) {
          const ours = await ourDump(p, { ...opts, start });
          assert.ok(ours.equals(whole.subarray(start)), `${rel} from ${start}`);
          starts++;
        }
        assert.equal((await ourDump(p, { ...opts, start: whole.length })).length, 0);
      }
      // Files around the chunk and small-file sizes: offsets at and around the start and end of each
      // one's contents and inside a chunk past the first.
      const sizes = path.join(tree, 'sizes');
      const sizesNar = nixDump(sizes);
      const picks = new Set<number>();
      const marker = Buffer.from('contents');
      for (let at = sizesNar.indexOf(marker); at >= 0; at = sizesNar.indexOf(marker, at + 1)) {
        const contentAt = at + 8 + 8; // "contents" padded to 8, then the u64 size
        const size = Number(sizesNar.readBigUInt64LE(at + 8));
        for (const base of [contentAt, contentAt + size]) for (const d of [-9, -1, 0, 1, 8]) picks.add(base + d);
        if (size > 300_000) picks.add(contentAt + 262_144 + 3);
      }
      for (const start of [...picks].filter((s) => s >= 0 && s < sizesNar.length)) {
        assert.ok((await ourDump(sizes, { ...opts, start })).equals(sizesNar.subarray(start)), `sizes/ from ${start}`);
        starts++;
      }
      // The whole tree (1500 entries and all of the above) from a few random offsets.
      const whole = nixDump(tree);
      for (let i = 0; i < 8; i++) {
        const start = Math.floor(Math.random() * whole.length);
        assert.ok((await ourDump(tree, { ...opts, start })).equals(whole.subarray(start)), `tree from ${start}`);
        starts++;
      }
      t.diagnostic(`[${mode}] ${starts} start offsets checked against nix-store --dump`);
    });

    it(`[${mode}] pieces [start, end), with cursors shared between dumps, are exactly those slices of nix-store --dump`, async (t) => {
      const whole = nixDump(tree);
      const memo = new NarCursors();
      const cursors = { memo, key: 'tree' };
      let pieces = 0;
      // Every piece of a few sizes, in order (each starts where cursors the last one noted lie) and
      // then in reverse order and at random (cursors from earlier dumps, behind and ahead).
      for (const size of [1, 65_536 + 5, 1_000_003]) {
        const cuts: number[] = [];
        for (let at = 0; at < whole.length; at += size === 1 ? Math.max(1, Math.floor(whole.length / 151)) : size) cuts.push(at);
        const order = size === 1 ? cuts : [...cuts, ...[...cuts].reverse()];
        for (const start of order) {
          const end = Math.min(whole.length, start + size);
          const ours = await ourDump(tree, { ...opts, start, end, cursors });
          assert.ok(ours.equals(whole.subarray(start, end)), `tree [${start}, ${end})`);
          pieces++;
        }
      }
      for (let i = 0; i < 40; i++) {
        const start = Math.floor(Math.random() * whole.length);
        const end = Math.min(whole.length, start + 1 + Math.floor(Math.random() * 2_000_000));
        assert.ok((await ourDump(tree, { ...opts, start, end, cursors })).equals(whole.subarray(start, end)), `tree [${start}, ${end})`);
        pieces++;
      }
      // Without cursors, and past the end.
      assert.ok((await ourDump(tree, { ...opts, start: 100, end: 20_000 })).equals(whole.subarray(100, 20_000)));
      assert.ok((await ourDump(tree, { ...opts, start: 100, end: whole.length + 50 })).equals(whole.subarray(100)));
      assert.equal((await ourDump(tree, { ...opts, start: 100, end: 100 })).length, 0);
      assert.ok(memo.find('tree', whole.length)!.at > 0, 'cursors were noted');
      t.diagnostic(`[${mode}] ${pieces} pieces checked against nix-store --dump`);
    });

    it(`[${mode}] a piece from a cursor walks only from there`, async () => {
      // About 3 MB in 3000 files: cursors every MiB, a few hundred entries apart.
      const many = path.join(tmp, `cursor-walk-${mode}`);
      fs.mkdirSync(many, { recursive: true });
      for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(many, `f${i}`), randomBytes(900 + (i % 200)));
      const whole = nixDump(many);
      const memo = new NarCursors();
      const cursors = { memo, key: 'many' };
      const lstats = (start: number, end: number) => {
        let n = 0;
        const real = fs.lstatSync;
        const realAsync = fs.lstat;
        (fs as { lstatSync: unknown }).lstatSync = (...a: Parameters<typeof fs.lstatSync>) => (n++, real(...a));
        (fs as { lstat: unknown }).lstat = (...a: Parameters<typeof fs.lstat>) => (n++, (realAsync as (...x: unknown[]) => void)(...a));
        return ourDump(many, { ...opts, start, end, cursors })
          .finally(() => {
            (fs as { lstatSync: unknown }).lstatSync = real;
            (fs as { lstat: unknown }).lstat = realAsync;
          })
          .then((b) => ({ b, n }));
      };
      const tail = whole.length - 2000;
      const cold = await lstats(tail, whole.length);
      assert.ok(cold.b.equals(whole.subarray(tail)));
      assert.ok(cold.n >= 3000, `a dump from the end without cursors looks at every entry (${cold.n})`);
      // One whole dump notes cursors along the way; then the same piece walks from the nearest.
      await ourDump(many, { ...opts, cursors });
      const warm = await lstats(tail, whole.length);
      assert.ok(warm.b.equals(whole.subarray(tail)));
      assert.ok(warm.n < 1000, `from a cursor: ${warm.n} entries looked at`);
    });

    it(`[${mode}] a start near the end of a big file does not read the file`, async (t) => {
      const size = fs.statSync(big).size;
      const narSize = await narSizeOf(big);
      const rchar = () => Number(/^rchar: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);
      const before = rchar();
      const tail = await ourDump(big, { ...opts, start: narSize - 1 });
      const read = rchar() - before;
      assert.equal(tail.toString('hex'), (await nixDumpFrom(big, narSize - 1)).toString('hex'), 'the last byte');
      const mid = Math.floor(size / 2) + 77;
      const fromMid = createHash('sha256');
      for await (const c of dumpNar(big, { ...opts, start: mid })) fromMid.update(c as Buffer);
      assert.equal(
        fromMid.digest('hex'),
        createHash('sha256')
          .update(await nixDumpFrom(big, mid))
          .digest('hex'),
        'from the middle of the file',
      );
      t.diagnostic(`[${mode}] last byte of a ${narSize}-byte NAR: ${read} bytes read (file ${size})`);
      assert.ok(read < 1024 * 1024, `read ${read} bytes to produce one`);
    });
  }

  it('narSizeOf agrees with the dump length', async () => {
    for (const p of [tree, path.join(tree, 'regular.txt'), path.join(tree, 'rel-link'), path.join(tree, 'emptydir')]) {
      assert.equal(await narSizeOf(p), nixDump(p).length, p);
    }
  });
});
