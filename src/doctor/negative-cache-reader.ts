import { accessSync, constants, existsSync } from 'node:fs';
import type { NegativeCacheFile } from './facts.ts';
import { cacheFilesPattern, narinfoCacheFiles } from './narinfo-cache-files.ts';

// Reads the misses Nix remembers for our substituter from its narinfo disk caches. Every schema Nix
// has written (binary-cache-v6.sqlite in Nix 2.8 and 2.26, -v7 in 2.34) keeps the two tables read here
// alike: BinaryCaches(id, url, …) and NARs(cache, hashPart, present, timestamp in epoch seconds, …),
// a miss being a row with present = 0. Read-only, never locking Nix out.

const MAX_ROWS = 1000;

/** Every narinfo cache in a cache directory (one "absent" entry when Nix has written none there). */
export function readNegativeCaches(dir: string, owner: string, urlForms: string[]): NegativeCacheFile[] {
  const files = narinfoCacheFiles(dir);
  if (files.length === 0) return [readNegativeCache(cacheFilesPattern(dir), owner, urlForms)];
  return files.map((f) => readNegativeCache(f, owner, urlForms));
}

export function readNegativeCache(file: string, owner: string, urlForms: string[]): NegativeCacheFile {
  const base = { file, owner, cacheId: null, url: null, misses: [] };
  if (!existsSync(file)) return { ...base, state: 'absent', error: null };
  const sqlite = process.getBuiltinModule?.('node:sqlite') as typeof import('node:sqlite') | undefined;
  if (!sqlite) return { ...base, state: 'unreadable', error: 'this runtime has no node:sqlite' };
  let db: import('node:sqlite').DatabaseSync | null = null;
  try {
    accessSync(file, constants.R_OK);
    db = new sqlite.DatabaseSync(file, { readOnly: true, timeout: 2000 });
    const marks = urlForms.map(() => '?').join(', ');
    const cache = db.prepare(`SELECT id, url FROM BinaryCaches WHERE url IN (${marks}) ORDER BY timestamp DESC LIMIT 1`).get(...urlForms) as
      | { id: number; url: string }
      | undefined;
    if (!cache) return { ...base, state: 'read', error: null };
    const rows = db.prepare(`SELECT hashPart, timestamp FROM NARs WHERE cache = ? AND present = 0 ORDER BY timestamp DESC LIMIT ${MAX_ROWS}`).all(cache.id) as {
      hashPart: string;
      timestamp: number;
    }[];
    return {
      ...base,
      state: 'read',
      error: null,
      cacheId: Number(cache.id),
      url: cache.url,
      misses: rows.map((r) => ({ hashPart: String(r.hashPart), timestamp: Number(r.timestamp) })),
    };
  } catch (e) {
    return { ...base, state: 'unreadable', error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  } finally {
    db?.close();
  }
}
