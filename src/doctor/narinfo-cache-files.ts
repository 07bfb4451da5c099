import { readdirSync } from 'node:fs';
import path from 'node:path';

// Which narinfo disk caches Nix has written in one cache directory (~/.cache/nix, or root's for the
// nix-daemon). Nix names the file after its schema version and starts a new file when the schema
// changes: binary-cache-v6.sqlite (Nix 2.8 and 2.26, as Debian ships them), binary-cache-v7.sqlite (2.34),
// and whatever comes next. A machine that upgraded Nix keeps the old file, unused, beside the new
// one, so every version found is read and each is named by its own path.

const CACHE_FILE = /^binary-cache-v(\d{1,3})\.sqlite$/;

/** The cache files in `dir`, newest schema first; empty when the directory is missing or unreadable. */
export function narinfoCacheFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => ({ n, v: CACHE_FILE.exec(n)?.[1] }))
    .filter((x): x is { n: string; v: string } => x.v !== undefined)
    .sort((a, b) => Number(b.v) - Number(a.v))
    .map((x) => path.join(dir, x.n));
}

/** What to call a cache directory's files when there are none yet (for "nothing remembered"). */
export const cacheFilesPattern = (dir: string): string => path.join(dir, 'binary-cache-v*.sqlite');
