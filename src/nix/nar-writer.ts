// Streams the NAR serialisation of a filesystem tree, byte-identical to `nix-store --dump`.
//
// Speed comes from three things: tokens and small files are packed into large output chunks,
// a directory's entries are lstat'ed and (when small) read ahead of the writer with bounded
// concurrency, and big files are read with one 1 MiB chunk in flight while the previous is emitted.
// Any inconsistency (a vanished entry, a file whose size differs from its lstat) destroys the
// stream, because a NAR with wrong bytes is worse than no NAR.

import fs from 'node:fs';
import type { Stats } from 'node:fs';
import { Readable } from 'node:stream';

const CHUNK = 1024 * 1024; // read size for big files
const ACC_SIZE = 256 * 1024; // output chunk for packed tokens and small files
const SMALL_FILE = 64 * 1024; // files up to this size are read ahead whole
const PREFETCH_WINDOW = 32; // entries per directory looked at ahead of the writer
const PREFETCH_BUDGET = 8 * 1024 * 1024; // bytes of read-ahead file content held at once
const HIGH_WATER_MARK = 1024 * 1024;

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

function str(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  return Buffer.concat([u64(body.length), body, Buffer.alloc(pad(body.length))]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function pad(n: number): number {
  return (8 - (n % 8)) % 8;
}

const ZEROS = Buffer.alloc(8);
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
  return new Promise((resolve, reject) =>
    fs.readdir(p, { encoding: 'buffer' }, (err, names) => (err ? reject(err) : resolve(names))),
  );
}
function readlink(p: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    fs.readlink(p, { encoding: 'buffer' }, (err, target) => (err ? reject(err) : resolve(target))),
  );
}
function open(p: Buffer): Promise<number> {
  return new Promise((resolve, reject) => fs.open(p, OPEN_FLAGS, (err, fd) => (err ? reject(err) : resolve(fd))));
}
function close(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}
function pread(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function displayPath(p: Buffer): string {
  return p.toString('utf8');
}

function changedError(p: Buffer, what: string): Error {
  const err = new Error(`NAR dump: '${displayPath(p)}' ${what} while being read`);
  (err as NodeJS.ErrnoException).code = 'ENARCHANGED';
  return err;
}

// Reads a whole small file, checking it is exactly `size` bytes long (asks for one byte more so
// that growth shows up without an extra call).
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

interface Prefetched {
  st: Stats;
  content?: Buffer; // small regular files
  target?: Buffer; // symlinks
  names?: Buffer[]; // directories, already sorted
}

function sortedNames(names: Buffer[]): Buffer[] {
  // NAR order is memcmp order of the raw names, which JS string comparison does not give.
  return names.sort(Buffer.compare);
}

class NarDumper {
  private readonly stream: Readable;
  private acc: Buffer = Buffer.allocUnsafeSlow(ACC_SIZE);
  private off = 0;
  private needDrain = false;
  private wantMore = false;
  private waiter: (() => void) | null = null;
  private aborted = false;
  private prefetchedBytes = 0;

  constructor(stream: Readable) {
    this.stream = stream;
  }

  onRead(): void {
    this.wantMore = true;
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  abort(): void {
    this.aborted = true;
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  async run(root: Buffer): Promise<void> {
    this.put(T_MAGIC);
    const node = await this.fetch(root);
    await this.dumpNode(root, node);
    this.flushAcc();
    if (!this.aborted) this.stream.push(null);
  }

  private pushChunk(b: Buffer): void {
    if (this.aborted) throw new Error('NAR dump aborted');
    if (!this.stream.push(b)) {
      this.needDrain = true;
      this.wantMore = false;
    }
  }

  private flushAcc(): void {
    if (this.off === 0) return;
    this.pushChunk(this.acc.subarray(0, this.off));
    this.acc = Buffer.allocUnsafeSlow(ACC_SIZE);
    this.off = 0;
  }

  // Appends to the current output chunk; never waits, so callers reach `barrier` between entries.
  private put(b: Buffer): void {
    if (b.length >= ACC_SIZE / 2) {
      this.flushAcc();
      this.pushChunk(b);
      return;
    }
    if (this.off + b.length > ACC_SIZE) this.flushAcc();
    b.copy(this.acc, this.off);
    this.off += b.length;
  }

  private putU64(n: number): void {
    if (this.off + 8 > ACC_SIZE) this.flushAcc();
    this.acc.writeUInt32LE(n >>> 0, this.off);
    this.acc.writeUInt32LE(Math.floor(n / 0x100000000), this.off + 4);
    this.off += 8;
  }

  private putStr(b: Buffer): void {
    this.putU64(b.length);
    this.put(b);
    this.putPad(b.length);
  }

  private putPad(len: number): void {
    const n = pad(len);
    if (n) this.put(ZEROS.subarray(0, n));
  }

  // Waits while the consumer is behind. Called at points where at most one small entry has been
  // added since the last wait, which keeps memory bounded.
  private async barrier(): Promise<void> {
    if (this.aborted) throw new Error('NAR dump aborted');
    if (!this.needDrain) return;
    if (!this.wantMore) {
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
      if (this.aborted) throw new Error('NAR dump aborted');
    }
    this.needDrain = false;
  }

  // lstat plus whatever is cheap to fetch ahead: small file contents (within the global budget),
  // symlink targets, directory listings.
  // Budget accounting only matters while the walk is healthy; after an error the dumper is dead.
  private async fetch(p: Buffer): Promise<Prefetched> {
    const st = await lstat(p);
    if (st.isSymbolicLink()) return { st, target: await readlink(p) };
    if (st.isDirectory()) return { st, names: sortedNames(await readdir(p)) };
    if (st.isFile() && st.size <= SMALL_FILE && this.prefetchedBytes + st.size <= PREFETCH_BUDGET) {
      this.prefetchedBytes += st.size;
      return { st, content: await readSmallFile(p, st.size) };
    }
    return { st };
  }

  private async dumpNode(p: Buffer, node: Prefetched): Promise<void> {
    const { st } = node;
    if (st.isFile()) {
      await this.dumpFile(p, st, node.content);
    } else if (st.isSymbolicLink()) {
      this.put(T_SYMLINK);
      this.putStr(node.target ?? (await readlink(p)));
      this.put(T_CLOSE);
    } else if (st.isDirectory()) {
      await this.dumpDirectory(p, node.names ?? sortedNames(await readdir(p)));
    } else {
      throw new Error(`NAR dump: '${displayPath(p)}' has an unsupported file type`);
    }
  }

  private async dumpFile(p: Buffer, st: Stats, content: Buffer | undefined): Promise<void> {
    this.put(T_REGULAR);
    if (st.mode & 0o100) this.put(T_EXECUTABLE);
    this.put(T_CONTENTS);
    this.putU64(st.size);
    if (content) {
      this.prefetchedBytes -= content.length;
      this.put(content);
    } else if (st.size <= SMALL_FILE) {
      this.put(await readSmallFile(p, st.size));
    } else {
      await this.streamFile(p, st.size);
    }
    this.putPad(st.size);
    this.put(T_CLOSE);
  }

  private async streamFile(p: Buffer, size: number): Promise<void> {
    this.flushAcc();
    const fd = await open(p);
    let pending: Promise<number> | null = null;
    try {
      let pos = 0;
      let buf = Buffer.allocUnsafeSlow(Math.min(CHUNK, size));
      pending = pread(fd, buf, 0, buf.length, 0);
      while (pending) {
        const n: number = await pending;
        pending = null;
        if (n === 0) throw changedError(p, 'shrank');
        pos += n;
        const chunk = buf.subarray(0, n);
        // Keep the disk busy while the chunk travels downstream; every chunk gets a fresh buffer
        // because earlier ones may still sit in the stream's queue.
        if (pos < size) {
          buf = Buffer.allocUnsafeSlow(Math.min(CHUNK, size - pos));
          pending = pread(fd, buf, 0, buf.length, pos);
        }
        this.pushChunk(chunk);
        await this.barrier();
      }
      const probe = Buffer.allocUnsafe(1);
      if ((await pread(fd, probe, 0, 1, size)) !== 0) throw changedError(p, 'grew');
    } finally {
      // Never close an fd with a read still in flight: the number could be reused meanwhile.
      if (pending) await pending.catch(() => 0);
      await close(fd);
    }
  }

  private async dumpDirectory(dir: Buffer, names: Buffer[]): Promise<void> {
    this.put(T_DIRECTORY);
    const paths = names.map((name) => Buffer.concat([dir, SLASH, name]));
    const fetched: Promise<Prefetched>[] = new Array(names.length);
    let started = 0;
    const startUpTo = (limit: number) => {
      for (; started < limit && started < names.length; started++) {
        const pr = this.fetch(paths[started]);
        // Failures surface when the entry's turn comes; until then they must not be "unhandled".
        pr.catch(() => {});
        fetched[started] = pr;
      }
    };
    for (let i = 0; i < names.length; i++) {
      startUpTo(i + PREFETCH_WINDOW);
      const node = await fetched[i];
      this.put(T_ENTRY_NAME);
      this.putStr(names[i]);
      this.put(T_NODE);
      await this.dumpNode(paths[i], node);
      this.put(T_ENTRY_END);
      await this.barrier();
    }
    this.put(T_CLOSE);
  }
}

const SLASH = Buffer.from('/');

export function dumpNar(fsPath: string): Readable {
  let dumper: NarDumper;
  const stream = new Readable({
    highWaterMark: HIGH_WATER_MARK,
    read() {
      dumper.onRead();
    },
    destroy(err, cb) {
      dumper.abort();
      cb(err);
    },
  });
  dumper = new NarDumper(stream);
  // Start on the next tick so a caller can attach handlers before any error is emitted.
  process.nextTick(() => {
    dumper.run(Buffer.from(fsPath)).catch((err: unknown) => {
      if (!stream.destroyed) stream.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  return stream;
}

// The NAR size without producing it: the same walk, counting bytes instead of reading files.
export async function narSizeOf(fsPath: string): Promise<number> {
  const tokenLen = (n: number) => 8 + n + pad(n);
  const walk = async (p: Buffer): Promise<number> => {
    const st = await lstat(p);
    if (st.isFile()) {
      return T_REGULAR.length + (st.mode & 0o100 ? T_EXECUTABLE.length : 0) + T_CONTENTS.length + tokenLen(st.size) + T_CLOSE.length;
    }
    if (st.isSymbolicLink()) return T_SYMLINK.length + tokenLen((await readlink(p)).length) + T_CLOSE.length;
    if (st.isDirectory()) {
      let total = T_DIRECTORY.length + T_CLOSE.length;
      for (const name of await readdir(p)) {
        total += T_ENTRY_NAME.length + tokenLen(name.length) + T_NODE.length + T_ENTRY_END.length;
        total += await walk(Buffer.concat([p, SLASH, name]));
      }
      return total;
    }
    throw new Error(`NAR size: '${displayPath(p)}' has an unsupported file type`);
  };
  return T_MAGIC.length + (await walk(Buffer.from(fsPath)));
}
