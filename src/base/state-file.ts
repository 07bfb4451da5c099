// The one way Peernix reads and writes the small files it keeps (settings, LAN totals, control token,
// signing key, instance id), and the one way it keeps a copy of a file it could not understand.
//
// Threat: the state directory may be writable by someone less privileged than the process
// (`sudo -E peernix serve`, a `--state-dir` in another user's home). Such a person can plant a symbolic
// link to any file (so that we read it, print it or write over it) or a file of their own (so that we
// trust what they wrote). So a state file is opened without following links, what was opened must be a
// regular file owned by the process's user, and nothing here ever puts a file's content in a message.
// Writes go to a fresh private file that is then renamed over the old one: a rename replaces a link
// instead of writing through it, and a reader never sees half a file.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
// Absent on Windows, where links in a private profile directory are not this threat.
const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
// A FIFO planted under a state file's name must not hang the open.
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;

export const DEFAULT_MAX_STATE_FILE_BYTES = 4 * 1024 * 1024;

export type StateFileProblem = 'symlink' | 'not-regular' | 'foreign-owner' | 'too-large';

/** A state file Peernix refuses to use. The message names the file and the fix, never its content. */
export class StateFileError extends Error {
  readonly file: string;
  readonly problem: StateFileProblem;
  /** The message without the file name: "is a symbolic link; …". */
  readonly detail: string;
  constructor(file: string, problem: StateFileProblem, detail: string) {
    super(`${file} ${detail}`);
    this.name = 'StateFileError';
    this.file = file;
    this.problem = problem;
    this.detail = detail;
  }
}

const euid = (): number | undefined => process.geteuid?.();

function refuseLink(file: string): StateFileError {
  return new StateFileError(file, 'symlink', 'is a symbolic link; Peernix does not follow links for its state files (replace it with a regular file)');
}

/** Throws unless `st` (of what was opened, or of what stands at the path) is a regular file of ours. */
function checkKind(file: string, st: fs.Stats, maxBytes: number): void {
  if (st.isSymbolicLink()) throw refuseLink(file);
  if (!st.isFile()) throw new StateFileError(file, 'not-regular', 'is not a regular file; refusing to use it');
  const uid = euid();
  if (uid !== undefined && st.uid !== uid) {
    throw new StateFileError(
      file,
      'foreign-owner',
      `is owned by uid ${st.uid}, not by this process's user (uid ${uid}); refusing to use it (remove it, or chown it to uid ${uid})`,
    );
  }
  if (st.size > maxBytes) throw new StateFileError(file, 'too-large', `is larger than ${maxBytes} bytes; refusing to read it`);
}

export interface ReadOptions {
  maxBytes?: number;
}

/**
 * The file's text, or null when there is no file. Throws StateFileError for a link, a non-regular
 * file, another user's file or an oversized one; other I/O errors are thrown as they come.
 */
export function readStateFile(file: string, opts: ReadOptions = {}): string | null {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_STATE_FILE_BYTES;
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw refuseLink(file);
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    checkKind(file, st, maxBytes);
    // Stop one byte past the limit, so a file that grows after the check is still bounded.
    const chunks: Buffer[] = [];
    let len = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, maxBytes + 1 - len));
      const n = chunk.length ? fs.readSync(fd, chunk, 0, chunk.length, null) : 0;
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      len += n;
    }
    if (len > maxBytes) throw new StateFileError(file, 'too-large', `is larger than ${maxBytes} bytes; refusing to read it`);
    return Buffer.concat(chunks, len).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** Throws StateFileError when what stands at `file` is something a state file must not be. */
export function checkStateFileTarget(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  checkKind(file, st, Number.POSITIVE_INFINITY);
}

function tempName(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Creates `file` with `text` only if nothing is there (not even a link); false when something was. */
export function createFileExclusive(file: string, text: string, mode: number): boolean {
  let fd: number;
  try {
    // O_EXCL with O_CREAT fails on any existing name, a dangling link included.
    fd = fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  return true;
}

/**
 * Replaces `file` by `text` at once: a fresh private file beside it is written, synced and renamed over
 * it. No policy about what was there (service units use it too); state files use writeStateFile.
 */
export function writeFileAtomic(file: string, text: string, mode: number): void {
  const tmp = tempName(file);
  // Someone else's file under our random temp name is left alone, not removed.
  if (!createFileExclusive(tmp, text, mode)) throw new Error(`${tmp} appeared while writing ${file}`);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** writeFileAtomic for a state file: refuses (StateFileError) when a link or a foreign file stands there. */
export function writeStateFile(file: string, text: string, mode = 0o600): void {
  checkStateFileTarget(file);
  writeFileAtomic(file, text, mode);
}

/**
 * Sets an unreadable state file aside as `<file>.corrupt-<time>` (never over an earlier one) so the
 * caller can start afresh without losing what the user had. Returns the new name, or null when the file
 * is gone. Only a regular file of ours is moved; its bytes are never read or copied here.
 */
export function keepCorruptFile(file: string, now: number = Date.now()): string | null {
  checkStateFileTarget(file);
  if (!fs.existsSync(file)) return null;
  const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
  for (let i = 0; i < 100; i++) {
    const aside = `${file}.corrupt-${stamp}${i ? `-${i}` : ''}`;
    try {
      // A hard link never replaces an existing name, so an earlier copy can't be lost to a race.
      fs.linkSync(file, aside);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code === 'ENOENT') return null;
      // A filesystem without hard links: a rename onto a name just seen free.
      if (fs.existsSync(aside)) continue;
      fs.renameSync(file, aside);
      return aside;
    }
    fs.rmSync(file, { force: true });
    return aside;
  }
  throw new Error(`${file}: 100 corrupt copies already kept for this moment; not keeping another`);
}
