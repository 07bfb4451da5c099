// Streams the NAR serialisation of a filesystem tree, byte-identical to `nix-store --dump`.
//
// Where the time goes: a store path is usually thousands of small files, and each asynchronous fs
// call costs several microseconds of event-loop work, so a purely async walk runs at a third of
// nix-store's speed. Metadata, small files and the chunks of big files are therefore read with
// synchronous calls in short slices (yielding to the event loop every few milliseconds and whenever
// the consumer is behind). If those calls turn out slow (cold cache, network filesystem) the walk
// switches for good to asynchronous calls with a bounded read-ahead window, so it never stalls the
// event loop for long.
//
// Tokens and small files are packed into large output chunks. Output chunks come from the shared
// chunk pool (see chunk-pool.ts): a consumer that releases them once written makes the whole
// transfer run in a handful of reused buffers.
//
// A dump can start at any byte offset (an HTTP range): it walks the tree as usual but drops what lies
// before the offset, and a file's contents that lie wholly before it are never read — lstat gives
// their size — while a big file straddling it is read from the right place on.
//
// A dump can also stop at a byte offset (a bounded range: one piece of a NAR fetched from several
// holders at once). It ends there, rather than walking on to the NAR's end for bytes nobody asked for.
// Given a NarCursors memo, it notes where entries start as it goes, and a later dump of the same tree
// from an offset picks up at the nearest such place before it instead of walking from the root.
//
// Any inconsistency (a vanished entry, a file whose size differs from its lstat) destroys the
// stream with an error: a NAR with wrong bytes is worse than no NAR.

import fs from 'node:fs';
import type { Stats } from 'node:fs';
import { Readable } from 'node:stream';
import { CHUNK_SIZE, releaseChunk, takeChunk } from '../base/chunk-pool.ts';
import type { NarCursor, NarCursors } from './nar-cursors.ts';

const ACC_SIZE = CHUNK_SIZE; // output chunk for packed tokens and small files; also the big-file read size
const SMALL_FILE = 128 * 1024; // files up to this size are read whole, in one call (< ACC_SIZE)
const PREFETCH_WINDOW = 32; // async mode: entries per directory looked at ahead of the writer
const PREFETCH_BUDGET = 8 * 1024 * 1024; // async mode: read-ahead file content held at once
const HIGH_WATER_MARK = 256 * 1024;
const SLICE_MS = 4; // longest run of synchronous work between event-loop turns
const SLOW_SYNC_MS = 2; // a synchronous entry slower than this counts as slow...
const SLOW_SYNC_LIMIT = 8; // ...and this many (and over 2% of all) switch the walk to async I/O
const CURSOR_EVERY = 1024 * 1024; // a cursor at the first entry start past each MiB of the NAR

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

export interface DumpNarOptions {
  // 'auto' (default): synchronous metadata/small-file I/O in slices, falling back to async when
  // the filesystem is slow. 'async': never block the event loop on the filesystem.
  io?: 'auto' | 'async';
  /** First byte of the NAR to produce; the stream is the NAR's bytes from here to its end. */
  start?: number;
  /** Where to stop (exclusive): the stream ends after the byte before it, or at the NAR's end if sooner. */
  end?: number;
  /** Places to pick up from, and to note, for this tree (`key` names the tree and its content). */
  cursors?: { memo: NarCursors; key: string };
}

function pad(n: number): number {
  return (8 - (n % 8)) % 8;
}

function str(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(8);
  len.writeUInt32LE(body.length, 0);
  return Buffer.concat([len, body, Buffer.alloc(pad(body.length))]);
}

const ZEROS = Buffer.alloc(8);
const NO_ACC = Buffer.alloc(0); // no output chunk taken yet: a big file's chunks need none
const SLASH = Buffer.from('/');
const T_MAGIC = str('nix-archive-1');
const T_OPEN = str('(');
const T_CLOSE = str(')');
const T_REGULAR = Buffer.concat([T_OPEN, str('type'), str('regular')]);
const T_EXECUTABLE = Buffer.concat([str('executable'), str('')]);
const T_CONTENTS = str('contents');
const T_SYMLINK = Buffer.concat([T_OPEN, str('type'), str('symlink'), str('target')]);
const T_DIRECTORY = Buffer.concat([T_OPEN, str('type'), str('directory')]);
const T_ENTRY_NAME = Buffer.concat([str('entry'), T_OPEN, str('name')]);
const T_NODE = str('node');
const T_ENTRY_END = T_CLOSE; // closes the entry (each node closes itself)

// Minimal promise wrappers over the callback API: cheaper per call than fs.promises/FileHandle.
function lstat(p: Buffer): Promise<Stats> {
  return new Promise((resolve, reject) => fs.lstat(p, (err, st) => (err ? reject(err) : resolve(st))));
}
function readdir(p: Buffer): Promise<Buffer[]> {
  return new Promise((resolve, reject) => fs.readdir(p, { encoding: 'buffer' }, (err, names) => (err ? reject(err) : resolve(names))));
}
function readlink(p: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => fs.readlink(p, { encoding: 'buffer' }, (err, target) => (err ? reject(err) : resolve(target))));
}
function open(p: Buffer): Promise<number> {
  return new Promise((resolve, reject) => fs.open(p, OPEN_FLAGS, (err, fd) => (err ? reject(err) : resolve(fd))));
}
function close(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}
function pread(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

function displayPath(p: Buffer): string {
  return p.toString('utf8');
}

function changedError(p: Buffer, what: string): Error {
  const err: NodeJS.ErrnoException = new Error(`NAR dump: '${displayPath(p)}' ${what} while being read`);
  err.code = 'ENARCHANGED';
  return err;
}

function abortedError(): Error {
  return new Error('NAR dump aborted');
}

/** Thrown once every byte up to the dump's end has been produced: the walk stops there. */
class EndReached extends Error {}

// Whole small files are read with a buffer one byte larger than the lstat size, so that growth
// shows up without an extra call; a short count means it shrank.
async function readSmallFile(p: Buffer, size: number): Promise<Buffer> {
  const fd = await open(p);
  try {
    const buf = Buffer.allocUnsafeSlow(size + 1);
    let got = 0;
    for (;;) {
      const n = await pread(fd, buf, got, size + 1 - got, got);
      if (n === 0) break;
      got += n;
      if (got > size) throw changedError(p, 'grew');
    }
    if (got < size) throw changedError(p, 'shrank');
    return buf.subarray(0, size);
  } finally {
    await close(fd);
  }
}

function sortedNames(names: Buffer[]): Buffer[] {
  // NAR order is memcmp order of the raw names, which JS string comparison does not give.
  return names.sort(Buffer.compare);
}

interface Node {
  st: Stats;
  content?: Buffer; // small regular files
  budgeted?: boolean; // content counts against the async read-ahead budget
  target?: Buffer; // symlinks
  names?: Buffer[]; // directories, sorted
}

// Small files are not read here: in sync mode dumpFile reads them straight into the output chunk.
function fetchSync(p: Buffer): Node {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) return { st, target: fs.readlinkSync(p, { encoding: 'buffer' }) };
  if (st.isDirectory()) return { st, names: sortedNames(fs.readdirSync(p, { encoding: 'buffer' })) };
  return { st };
}

class NarDumper {
  private readonly stream: Readable;
  private acc: Buffer = NO_ACC;
  private off = 0;
  private needDrain = false;
  private wantMore = false;
  private waiter: (() => void) | null = null;
  private aborted = false;
  private sync: boolean;
  private sliceStart = 0;
  private slowCalls = 0;
  private syncCalls = 0;
  private prefetchedBytes = 0; // async mode only; meaningless once the walk has failed
  private readonly start: number;
  private readonly end: number;
  private pos = 0; // NAR offset of acc[0]: every byte before it has been pushed or dropped
  private readonly cursors: DumpNarOptions['cursors'];
  /** The directories being walked, outermost first, each with the entry in progress. */
  private readonly frames: { names: Buffer[]; index: number }[] = [];
  private nextCursorAt = 0;

  constructor(stream: Readable, options: DumpNarOptions) {
    this.stream = stream;
    this.sync = (options.io ?? 'auto') === 'auto';
    this.start = options.start ?? 0;
    this.end = options.end ?? Number.POSITIVE_INFINITY;
    this.cursors = options.cursors;
    if (!Number.isSafeInteger(this.start) || this.start < 0) throw new RangeError(`NAR dump: bad start ${options.start}`);
    if (options.end !== undefined && (!Number.isSafeInteger(this.end) || this.end < this.start)) throw new RangeError(`NAR dump: bad end ${options.end}`);
  }

  onRead(): void {
    this.wantMore = true;
    this.wake();
  }

  abort(): void {
    this.aborted = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  async run(root: Buffer): Promise<void> {
    this.sliceStart = performance.now();
    try {
      if (this.end <= this.start) throw new EndReached();
      const from = this.start > 0 ? this.cursors?.memo.find(this.cursors.key, this.start) : undefined;
      if (from) {
        // Everything before the cursor lies before start: the walk begins inside the tree.
        this.pos = from.at;
        this.nextCursorAt = from.at + CURSOR_EVERY;
        await this.dumpDirectory(root, from.frames[0].names, { cursor: from, level: 0 });
      } else {
        this.put(T_MAGIC);
        const node = this.sync ? this.timedFetchSync(root) : await this.fetchAsync(root);
        await this.dumpNode(root, node);
      }
      this.flushAcc();
    } catch (e) {
      if (!(e instanceof EndReached)) throw e;
    }
    if (!this.aborted) this.stream.push(null);
  }

  // --- output -------------------------------------------------------------------------------

  /** Pushes what of `b` lies in [start, end); false if none of it did (the caller keeps `b`). */
  private pushChunk(b: Buffer): boolean {
    if (this.aborted) throw abortedError();
    const from = this.pos;
    this.pos += b.length;
    if (this.pos <= this.start || from >= this.end) return false;
    const out = from < this.start || this.pos > this.end ? b.subarray(Math.max(0, this.start - from), Math.min(b.length, this.end - from)) : b;
    if (!this.stream.push(out)) {
      this.needDrain = true;
      this.wantMore = false;
    }
    return true;
  }

  private flushAcc(): void {
    if (this.off === 0) return;
    if (this.pushChunk(this.acc.subarray(0, this.off))) this.acc = NO_ACC;
    this.off = 0;
  }

  // Taken only when something is written into it, so a transfer streaming a big file holds no idle one.
  private ensureAcc(): void {
    if (this.acc === NO_ACC) this.acc = takeChunk();
  }

  /** Accounts for `size` bytes wholly before `start` without producing them. */
  private skipBytes(size: number): void {
    this.flushAcc(); // everything in it lies before these bytes, so before start: dropped
    this.pos += size;
  }

  // Appends without waiting; callers reach `barrier` after every entry, which bounds how much
  // can pile up between waits to one small file plus headers.
  private put(b: Buffer): void {
    if (b.length >= ACC_SIZE / 2) {
      this.flushAcc();
      this.pushChunk(b);
      return;
    }
    if (this.off + b.length > ACC_SIZE) this.flushAcc();
    this.ensureAcc();
    b.copy(this.acc, this.off);
    this.off += b.length;
  }

  private putU64(n: number): void {
    if (this.off + 8 > ACC_SIZE) this.flushAcc();
    this.ensureAcc();
    this.acc.writeUInt32LE(n >>> 0, this.off);
    this.acc.writeUInt32LE(Math.floor(n / 0x100000000), this.off + 4);
    this.off += 8;
  }

  private putPad(len: number): void {
    const n = pad(len);
    if (n) this.put(ZEROS.subarray(0, n));
  }

  private putStr(b: Buffer): void {
    this.putU64(b.length);
    this.put(b);
    this.putPad(b.length);
  }

  // Waits while the consumer is behind, and ends a synchronous slice that has run long enough.
  // Past the dump's end, stops the walk (what is gathered up to there is sent first).
  private async barrier(): Promise<void> {
    if (this.aborted) throw abortedError();
    if (this.pos + this.off >= this.end) {
      this.flushAcc();
      throw new EndReached();
    }
    if (this.needDrain) {
      if (!this.wantMore) {
        await new Promise<void>((resolve) => {
          this.waiter = resolve;
        });
        if (this.aborted) throw abortedError();
      }
      this.needDrain = false;
      this.sliceStart = performance.now();
    } else if (this.sync && performance.now() - this.sliceStart > SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.aborted) throw abortedError();
      this.sliceStart = performance.now();
    }
  }

  // --- input --------------------------------------------------------------------------------

  private timedFetchSync(p: Buffer): Node {
    const t0 = performance.now();
    const node = fetchSync(p);
    this.noteSyncTime(p, t0);
    return node;
  }

  private noteSyncTime(p: Buffer, t0: number): void {
    // A rare slow call is a GC pause or a huge directory; a steady 2% of them means the data is
    // not in the page cache.
    this.syncCalls++;
    if (performance.now() - t0 > SLOW_SYNC_MS && ++this.slowCalls >= SLOW_SYNC_LIMIT && this.slowCalls * 50 > this.syncCalls) {
      this.sync = false;
    }
  }

  // Reads a small file directly into the output chunk, avoiding a buffer per file. Asks for one
  // byte more than the lstat size so that growth shows without an extra call.
  private readIntoAccSync(p: Buffer, size: number): void {
    const t0 = performance.now();
    if (this.off + size + 1 > ACC_SIZE) this.flushAcc();
    this.ensureAcc();
    const fd = fs.openSync(p, OPEN_FLAGS);
    try {
      let got = 0;
      for (;;) {
        const n = fs.readSync(fd, this.acc, this.off + got, size + 1 - got, got);
        if (n === 0) break;
        got += n;
        if (got > size) throw changedError(p, 'grew');
      }
      if (got < size) throw changedError(p, 'shrank');
    } finally {
      fs.closeSync(fd);
    }
    this.off += size;
    this.noteSyncTime(p, t0);
  }

  // lstat plus whatever is cheap to fetch ahead: small file contents (within a global budget so
  // read-ahead across nested directories stays bounded), symlink targets, directory listings.
  private async fetchAsync(p: Buffer): Promise<Node> {
    const st = await lstat(p);
    if (st.isSymbolicLink()) return { st, target: await readlink(p) };
    if (st.isDirectory()) return { st, names: sortedNames(await readdir(p)) };
    if (st.isFile() && st.size <= SMALL_FILE && this.prefetchedBytes + st.size <= PREFETCH_BUDGET) {
      this.prefetchedBytes += st.size;
      return { st, content: await readSmallFile(p, st.size), budgeted: true };
    }
    return { st };
  }

  // --- NAR structure ------------------------------------------------------------------------

  private async dumpNode(p: Buffer, node: Node): Promise<void> {
    const { st } = node;
    if (st.isFile()) {
      if (node.budgeted && node.content) this.prefetchedBytes -= node.content.length;
      await this.dumpFile(p, st, node.content);
    } else if (st.isSymbolicLink()) {
      this.put(T_SYMLINK);
      this.putStr(node.target ?? (await readlink(p)));
      this.put(T_CLOSE);
    } else if (st.isDirectory()) {
      await this.dumpDirectory(p, node.names ?? sortedNames(await readdir(p)));
    } else {
      throw new Error(`NAR dump: '${displayPath(p)}' is not a regular file, directory or symlink`);
    }
  }

  private async dumpFile(p: Buffer, st: Stats, content: Buffer | undefined): Promise<void> {
    this.put(T_REGULAR);
    if (st.mode & 0o100) this.put(T_EXECUTABLE);
    this.put(T_CONTENTS);
    this.putU64(st.size);
    const contentAt = this.pos + this.off;
    if (contentAt + st.size <= this.start) {
      this.skipBytes(st.size);
    } else if (content) {
      this.put(content);
    } else if (st.size <= SMALL_FILE && this.sync) {
      this.readIntoAccSync(p, st.size);
    } else if (st.size <= SMALL_FILE) {
      this.put(await readSmallFile(p, st.size));
    } else {
      await this.streamFile(p, st.size, Math.max(0, this.start - contentAt));
    }
    this.putPad(st.size);
    this.put(T_CLOSE);
  }

  // Synchronous reads while the walk is in sync mode; asynchronous ones, with the next chunk already
  // being read while this one travels downstream, once it is not (or stops being) fast.
  // `from`: where in the file to begin; the bytes before it lie before the dump's start.
  private async streamFile(p: Buffer, size: number, from: number): Promise<void> {
    if (from > 0) this.skipBytes(from);
    else this.flushAcc();
    const fd = this.sync ? fs.openSync(p, OPEN_FLAGS) : await open(p);
    let ahead: { buf: Buffer; read: Promise<number> } | null = null;
    const readAsync = (at: number) => {
      const buf = takeChunk();
      const read = pread(fd, buf, 0, Math.min(ACC_SIZE, size - at), at);
      // A failure surfaces when the chunk's turn comes; until then it must not count as unhandled.
      read.catch(() => {});
      return { buf, read };
    };
    try {
      let pos = from;
      while (pos < size) {
        let buf: Buffer;
        let n: number;
        if (ahead) {
          buf = ahead.buf;
          n = await ahead.read;
          ahead = null;
        } else if (this.sync) {
          buf = takeChunk();
          const t0 = performance.now();
          n = fs.readSync(fd, buf, 0, Math.min(ACC_SIZE, size - pos), pos);
          this.noteSyncTime(p, t0);
        } else {
          const r = readAsync(pos);
          buf = r.buf;
          n = await r.read;
        }
        if (n === 0) throw changedError(p, 'shrank');
        pos += n;
        if (!this.sync && pos < size) ahead = readAsync(pos);
        if (!this.pushChunk(buf.subarray(0, n))) releaseChunk(buf);
        await this.barrier();
      }
      const probe = Buffer.allocUnsafe(1);
      const more = this.sync ? fs.readSync(fd, probe, 0, 1, size) : await pread(fd, probe, 0, 1, size);
      if (more !== 0) throw changedError(p, 'grew');
    } finally {
      // Never close an fd with a read still in flight: the number could be reused meanwhile.
      if (ahead) await ahead.read.catch(() => 0);
      await close(fd);
    }
  }

  /**
   * `resume`: the walk picks up at a cursor. This directory's header and its entries before the one
   * in progress lie before the cursor; at the cursor's innermost level that entry starts there,
   * above it, the entry in progress is the directory the walk resumes inside.
   */
  private async dumpDirectory(dir: Buffer, names: Buffer[], resume?: { cursor: NarCursor; level: number }): Promise<void> {
    const frame = resume ? resume.cursor.frames[resume.level] : { names, index: 0 };
    if (!resume) this.put(T_DIRECTORY);
    this.frames.push({ names, index: frame.index });
    const here = this.frames[this.frames.length - 1];
    const fetched: Promise<Node>[] = new Array(names.length);
    let started = frame.index;
    for (let i = frame.index; i < names.length; i++) {
      here.index = i;
      const path = Buffer.concat([dir, SLASH, names[i]]);
      if (resume && i === frame.index && resume.level < resume.cursor.frames.length - 1) {
        // Inside this entry (a directory) lies the cursor: its tokens up to there are already counted.
        const inner = resume.cursor.frames[resume.level + 1];
        await this.dumpDirectory(path, inner.names, { cursor: resume.cursor, level: resume.level + 1 });
        this.put(T_ENTRY_END);
        await this.barrier();
        continue;
      }
      this.noteCursor();
      let node: Node;
      if (this.sync) {
        node = this.timedFetchSync(path);
      } else {
        // Async mode (possibly switched to mid-directory): keep a window of lookups in flight.
        started = Math.max(started, i);
        for (; started < names.length && started < i + PREFETCH_WINDOW; started++) {
          const pr = this.fetchAsync(Buffer.concat([dir, SLASH, names[started]]));
          // A failure surfaces when the entry's turn comes; until then it must not count as unhandled.
          pr.catch(() => {});
          fetched[started] = pr;
        }
        node = await fetched[i];
      }
      this.put(T_ENTRY_NAME);
      this.putStr(names[i]);
      this.put(T_NODE);
      await this.dumpNode(path, node);
      this.put(T_ENTRY_END);
      await this.barrier();
    }
    this.frames.pop();
    this.put(T_CLOSE);
  }

  /** At an entry's start: a cursor there, if the last one lies a step back. */
  private noteCursor(): void {
    if (!this.cursors) return;
    const at = this.pos + this.off;
    if (at < this.nextCursorAt) return;
    this.nextCursorAt = at + CURSOR_EVERY;
    this.cursors.memo.note(this.cursors.key, { at, frames: this.frames.map((f) => ({ names: f.names, index: f.index })) });
  }
}

export function dumpNar(fsPath: string, options: DumpNarOptions = {}): Readable {
  let dumper: NarDumper | undefined;
  const stream = new Readable({
    highWaterMark: HIGH_WATER_MARK,
    read() {
      dumper?.onRead();
    },
    destroy(err, cb) {
      dumper?.abort();
      cb(err);
    },
  });
  dumper = new NarDumper(stream, options);
  const d = dumper;
  // Start on a later tick so the caller can attach handlers before any error is emitted.
  setImmediate(() => {
    if (stream.destroyed) return;
    d.run(Buffer.from(fsPath)).catch((err: unknown) => {
      if (!stream.destroyed) stream.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  return stream;
}

// The NAR size without producing it: the same walk, adding up lengths instead of reading files.
// Synchronous metadata calls in short slices, for the same reason as the dump.
export async function narSizeOf(fsPath: string): Promise<number> {
  const strLen = (n: number) => 8 + n + pad(n);
  let total = T_MAGIC.length;
  const stack: Buffer[] = [Buffer.from(fsPath)];
  let sliceStart = performance.now();
  while (stack.length > 0) {
    const p = stack.pop() as Buffer;
    const st = fs.lstatSync(p);
    if (st.isFile()) {
      total += T_REGULAR.length + (st.mode & 0o100 ? T_EXECUTABLE.length : 0) + T_CONTENTS.length;
      total += strLen(st.size) + T_CLOSE.length;
    } else if (st.isSymbolicLink()) {
      total += T_SYMLINK.length + strLen(fs.readlinkSync(p, { encoding: 'buffer' }).length) + T_CLOSE.length;
    } else if (st.isDirectory()) {
      total += T_DIRECTORY.length + T_CLOSE.length;
      for (const name of fs.readdirSync(p, { encoding: 'buffer' })) {
        total += T_ENTRY_NAME.length + strLen(name.length) + T_NODE.length + T_ENTRY_END.length;
        stack.push(Buffer.concat([p, SLASH, name]));
      }
    } else {
      throw new Error(`NAR size: '${displayPath(p)}' is not a regular file, directory or symlink`);
    }
    if (performance.now() - sliceStart > SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
  return total;
}
