import { createHash } from 'node:crypto';
import { decodeNix32, encodeNix32, nix32Length } from './nix32.ts';
import { parseBaseName, STORE_DIR } from './store-path.ts';

// Content addresses (a narinfo's `CA:` line) and the store path each one determines, computed the
// way Nix 2.8 does (makeStorePath, makeFixedOutputPath, makeTextPath in libstore/store-api.cc). A CA
// is only a claim: it means something once the path it names is the path it is attached to, which
// is what Nix checks (ValidPathInfo::isContentAddressed) before it lets a CA path in unsigned.

export type HashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';

const HASH_BYTES: Record<HashAlgo, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export type ContentAddress =
  | { kind: 'text'; hash: Buffer } // always sha256
  | { kind: 'fixed'; recursive: boolean; algo: HashAlgo; hash: Buffer };

// Nix's parseNonSRIUnprefixed: the encoding is told apart by length alone.
function parseDigest(algo: HashAlgo, text: string): Buffer | null {
  const size = HASH_BYTES[algo];
  if (text.length === size * 2) return /^[0-9a-fA-F]+$/.test(text) ? Buffer.from(text, 'hex') : null;
  if (text.length === nix32Length(size)) {
    try {
      return decodeNix32(text, size);
    } catch {
      return null;
    }
  }
  if (text.length === Math.ceil(size / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    const b = Buffer.from(text, 'base64');
    return b.length === size ? b : null;
  }
  return null;
}

/**
 * `text:sha256:<h>`, `fixed:sha256:<h>` (flat), `fixed:r:<algo>:<h>` (NAR serialisation); null for
 * anything Nix 2.8 would not parse (including newer Nix's `fixed:git:`).
 */
export function parseContentAddress(text: string): ContentAddress | null {
  if (typeof text !== 'string') return null;
  let m = /^text:sha256:([^:]+)$/.exec(text);
  if (m) {
    const hash = parseDigest('sha256', m[1]);
    return hash ? { kind: 'text', hash } : null;
  }
  m = /^fixed:(r:)?(md5|sha1|sha256|sha512):([^:]+)$/.exec(text);
  if (m) {
    const algo = m[2] as HashAlgo;
    const hash = parseDigest(algo, m[3]);
    return hash ? { kind: 'fixed', recursive: m[1] !== undefined, algo, hash } : null;
  }
  return null;
}

// compressHash(sha256(s), 20): the 32 bytes folded onto 20 by XOR.
function pathHash(s: string): string {
  const full = createHash('sha256').update(s).digest();
  const out = Buffer.alloc(20);
  for (let i = 0; i < full.length; i++) out[i % 20] ^= full[i];
  return encodeNix32(out);
}

function makeStorePath(type: string, hashBase16: string, name: string): string {
  return `${STORE_DIR}/${pathHash(`${type}:${hashBase16}:${STORE_DIR}:${name}`)}-${name}`;
}

// References as full paths in StorePathSet order (by base name, which is the order of full paths too).
function makeType(type: string, referenceBaseNames: string[], hasSelfReference: boolean): string {
  let t = type;
  for (const r of [...referenceBaseNames].sort()) t += `:${STORE_DIR}/${r}`;
  if (hasSelfReference) t += ':self';
  return t;
}

function typed(algo: HashAlgo, hash: Buffer): string {
  return `${algo}:${hash.toString('hex')}`;
}

/**
 * The store path Nix gives content with this address, name and references (base names, the path's
 * own included for a self-reference); null when Nix 2.8 has no such path (a flat or non-sha256
 * fixed-output path with references, which Nix asserts never happens).
 */
export function contentAddressedPath(ca: ContentAddress, name: string, referenceBaseNames: string[], selfBaseName?: string): string | null {
  if (ca.kind === 'text') {
    // makeTextPath takes every reference as given; a text path cannot refer to itself.
    return makeStorePath(makeType('text', referenceBaseNames, false), typed('sha256', ca.hash), name);
  }
  const refs = selfBaseName === undefined ? referenceBaseNames : referenceBaseNames.filter((r) => r !== selfBaseName);
  const hasSelf = selfBaseName !== undefined && refs.length !== referenceBaseNames.length;
  if (ca.algo === 'sha256' && ca.recursive) {
    return makeStorePath(makeType('source', refs, hasSelf), typed('sha256', ca.hash), name);
  }
  if (refs.length > 0 || hasSelf) return null;
  const inner = createHash('sha256')
    .update(`fixed:out:${ca.recursive ? 'r:' : ''}${typed(ca.algo, ca.hash)}:`)
    .digest();
  return makeStorePath('output:out', typed('sha256', inner), name);
}

/** Whether `storePath` is exactly the path its CA, name and references determine (Nix's isContentAddressed). */
export function isContentAddressedPath(storePath: string, caText: string, referenceBaseNames: string[]): boolean {
  if (typeof storePath !== 'string' || !storePath.startsWith(STORE_DIR + '/')) return false;
  const ca = parseContentAddress(caText);
  if (!ca) return false;
  const baseName = storePath.slice(STORE_DIR.length + 1);
  let name: string;
  try {
    name = parseBaseName(baseName).name;
  } catch {
    return false;
  }
  return contentAddressedPath(ca, name, referenceBaseNames, baseName) === storePath;
}

/**
 * Whether a NarHash can belong to content with this address. For `fixed:r:sha256` without a
 * self-reference the CA hash is the NAR's own SHA-256, so the two must be equal (else Nix fails the
 * import with "ca hash mismatch"). With a self-reference it is the hash of the NAR with the path's
 * own hash blanked out, and other addresses hash the file inside the NAR: those cannot be checked
 * before the bytes arrive (Nix checks them on import).
 */
export function narHashFitsContentAddress(caText: string, narHash: Buffer, hasSelfReference: boolean): boolean {
  const ca = parseContentAddress(caText);
  if (!ca) return false;
  if (ca.kind === 'fixed' && ca.recursive && ca.algo === 'sha256' && !hasSelfReference) return ca.hash.equals(narHash);
  return true;
}
