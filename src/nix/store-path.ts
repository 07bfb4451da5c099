// Store path syntax. Everything here is checked before a path reaches the daemon or a URL, so it
// is deliberately exact: no normalisation, no trailing slashes, no subpaths.

export const STORE_DIR = '/nix/store';

export const HASH_PART_LENGTH = 32;
export const MAX_NAME_LENGTH = 211;

const HASH_PART_RE = /^[0-9a-df-np-sv-z]{32}$/;
const NAME_RE = /^[A-Za-z0-9+._?=-]{1,211}$/;

export function isHashPart(s: string): boolean {
  return typeof s === 'string' && HASH_PART_RE.test(s);
}

export function isStorePathName(s: string): boolean {
  if (typeof s !== 'string' || !NAME_RE.test(s)) return false;
  // Names that path resolution would treat specially, as modern Nix rejects them too.
  if (s === '.' || s === '..') return false;
  if (s.startsWith('.-') || s.startsWith('..-')) return false;
  return true;
}

export function parseBaseName(base: string): { hashPart: string; name: string } {
  if (typeof base !== 'string') throw new Error('store path: not a string');
  const hashPart = base.slice(0, HASH_PART_LENGTH);
  const name = base.slice(HASH_PART_LENGTH + 1);
  if (base.length < HASH_PART_LENGTH + 2 || base[HASH_PART_LENGTH] !== '-') {
    throw new Error(`store path: ${JSON.stringify(base.slice(0, 300))} is not <hash>-<name>`);
  }
  if (!isHashPart(hashPart)) throw new Error(`store path: invalid hash part in ${JSON.stringify(base.slice(0, 300))}`);
  if (!isStorePathName(name)) throw new Error(`store path: invalid name in ${JSON.stringify(base.slice(0, 300))}`);
  return { hashPart, name };
}

export function parseStorePath(full: string): { hashPart: string; name: string; baseName: string } {
  if (typeof full !== 'string' || !full.startsWith(STORE_DIR + '/')) {
    throw new Error(`store path: ${JSON.stringify(String(full).slice(0, 300))} is not in ${STORE_DIR}`);
  }
  const baseName = full.slice(STORE_DIR.length + 1);
  // '/' cannot occur in a valid name, so parseBaseName also rules out subpaths and trailing slashes.
  const { hashPart, name } = parseBaseName(baseName);
  return { hashPart, name, baseName };
}
