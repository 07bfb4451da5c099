// Temporary directories for tests: marked as ours, so cleanup() never removes anything it didn't make,
// and made writable again before removal (Nix leaves store files read-only).

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const TEMP_MARK = '.peernix-test-tmp';

/** A fresh directory under the OS temp dir. Keep prefixes short: the daemon socket lives inside it. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  await fsp.writeFile(path.join(dir, TEMP_MARK), '');
  return dir;
}

/**
 * Remove a directory made by makeTempDir, first stopping any host living in it. Store paths are
 * read-only, so permissions are fixed up before deleting. Refuses directories it did not make.
 */
const beforeCleanup: ((dir: string) => Promise<void>)[] = [];

/** Runs before cleanup() removes a directory: e.g. stopping the daemons that live in it. */
export function onCleanup(hook: (dir: string) => Promise<void>): void {
  beforeCleanup.push(hook);
}

export async function cleanup(dir: string): Promise<void> {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs)) return;
  if (!fs.existsSync(path.join(abs, TEMP_MARK))) throw new Error(`cleanup: ${abs} was not made by makeTempDir`);
  for (const hook of beforeCleanup) await hook(abs);
  try {
    await fsp.rm(abs, { recursive: true, force: true });
  } catch {
    await makeWritable(abs);
    await fsp.rm(abs, { recursive: true, force: true });
  }
}

async function makeWritable(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fsp.lstat(p);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  await fsp.chmod(p, st.mode | 0o700).catch(() => {});
  for (const e of await fsp.readdir(p).catch(() => [] as string[])) await makeWritable(path.join(p, e));
}
