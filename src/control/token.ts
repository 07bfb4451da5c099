// The control token guards state-changing requests on the loopback listener (the CLI and the
// dashboard page present it). It lives in its own 0600 file and survives restarts, so an open
// dashboard and a scripted `peernix sharing off` keep working across daemon restarts.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createFileExclusive, readStateFile, writeStateFile } from '../base/state-file.ts';

export const TOKEN_FILE_NAME = 'control-token';
const TOKEN_RE = /^[0-9a-f]{64}$/;

export function isWellFormedToken(s: string): boolean {
  return TOKEN_RE.test(s);
}

/**
 * Reads `<stateDir>/control-token`; null when it is missing or not a token. A link or another user's
 * file there is refused (StateFileError): the token must be one this user wrote.
 */
export async function readToken(stateDir: string): Promise<string | null> {
  const text = readStateFile(path.join(stateDir, TOKEN_FILE_NAME), { maxBytes: 4096 })?.trim();
  return text !== undefined && isWellFormedToken(text) ? text : null;
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
  // Created whole and exclusively: if another process got there first, its token wins.
  if (createFileExclusive(file, token + '\n', 0o600)) return token;
  const raced = await readToken(stateDir);
  if (raced) return raced;
  // The file exists but holds no token (truncated, hand-edited): replace it.
  writeStateFile(file, token + '\n', 0o600);
  return token;
}

async function tightenMode(file: string): Promise<void> {
  if (process.platform === 'win32') return;
  try {
    const st = await fs.lstat(file);
    if (st.isFile() && (st.mode & 0o077) !== 0) await fs.chmod(file, 0o600);
  } catch {
    // Not ours to fix: the token still works.
  }
}
