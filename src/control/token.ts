// The control token guards state-changing requests on the loopback listener (the CLI and the
// dashboard page present it). It lives in its own 0600 file and survives restarts, so an open
// dashboard and a scripted `peernix sharing off` keep working across daemon restarts.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export const TOKEN_FILE_NAME = 'control-token';
const TOKEN_RE = /^[0-9a-f]{64}$/;

export function isWellFormedToken(s: string): boolean {
  return TOKEN_RE.test(s);
}

/** Reads `<stateDir>/control-token`; null when it is missing or not a token. */
export async function readToken(stateDir: string): Promise<string | null> {
  try {
    const text = (await fs.readFile(path.join(stateDir, TOKEN_FILE_NAME), 'utf8')).trim();
    return isWellFormedToken(text) ? text : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Returns the existing token or creates one (32 random bytes, hex). Safe against a concurrent start. */
export async function loadOrCreateToken(stateDir: string): Promise<string> {
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, TOKEN_FILE_NAME);
  const existing = await readToken(stateDir);
  if (existing) {
    await tightenMode(file);
    return existing;
  }
  const token = crypto.randomBytes(32).toString('hex');
  // Write the whole token to a private temp file, then link it into place: the link fails if
  // another process got there first, and nobody ever sees a half-written token.
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  await fs.writeFile(tmp, token + '\n', { mode: 0o600, flag: 'wx' });
  try {
    try {
      await fs.link(tmp, file);
      return token;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const raced = await readToken(stateDir);
    if (raced) return raced;
    // The file exists but holds no token (truncated, hand-edited): replace our own file.
    await fs.rename(tmp, file);
    return token;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

async function tightenMode(file: string): Promise<void> {
  if (process.platform === 'win32') return;
  try {
    const st = await fs.stat(file);
    if ((st.mode & 0o077) !== 0) await fs.chmod(file, 0o600);
  } catch {
    // Not ours to fix (another owner): the token still works.
  }
}
