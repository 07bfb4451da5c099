import fs from 'node:fs';
import { readStateFile } from '../base/state-file.ts';
import { TSIG_ALGORITHMS, type TsigAlgorithm, type TsigKey } from './tsig.ts';

// A TSIG key file as BIND's `tsig-keygen` (and `ddns-confgen`) writes it:
//
//   key "peernix-office" {
//           algorithm hmac-sha256;
//           secret "base64…";
//   };
//
// The secret signs this machine's DNS records, so the file must be this user's, a regular file (no
// link) and readable by nobody else, as ssh asks of a private key. Errors name the file, never the secret.

const KEY_BLOCK = /^\s*key\s+"?([A-Za-z0-9._-]{1,253})"?\s*\{([^}]*)\}\s*;?\s*$/;
const ALGORITHM = /^\s*algorithm\s+"?([A-Za-z0-9-]+)"?\s*;\s*$/;
const SECRET = /^\s*secret\s+"([A-Za-z0-9+/=\s]+)"\s*;\s*$/;

/** The key in `text`, or a thrown Error saying what is wrong with it (never quoting the secret). */
export function parseTsigKey(text: string): TsigKey {
  const noComments = text.replace(/(^|\s)(#|\/\/)[^\n]*/g, '$1').trim();
  const block = KEY_BLOCK.exec(noComments);
  if (!block) throw new Error('is not a key file as tsig-keygen writes it (key "name" { algorithm …; secret "…"; };)');
  let algorithm: string | null = null;
  let secret: string | null = null;
  for (const stmt of block[2].split(';')) {
    if (!stmt.trim()) continue;
    const a = ALGORITHM.exec(`${stmt};`);
    const s = SECRET.exec(`${stmt};`);
    if (a) algorithm = a[1].toLowerCase();
    else if (s) secret = s[1].replace(/\s+/g, '');
    else throw new Error(`has a statement Peernix does not know in its key block ("${stmt.trim().split(/\s/)[0].slice(0, 20)}")`);
  }
  if (algorithm === null) throw new Error('names no algorithm');
  if (!Object.hasOwn(TSIG_ALGORITHMS, algorithm))
    throw new Error(`uses ${algorithm.slice(0, 20)}; Peernix signs with ${Object.keys(TSIG_ALGORITHMS).join(', ')}`);
  if (secret === null) throw new Error('holds no secret');
  const bytes = Buffer.from(secret, 'base64');
  if (bytes.length < 16 || bytes.toString('base64').replace(/=+$/, '') !== secret.replace(/=+$/, ''))
    throw new Error('has a secret that is not base64 of at least 16 bytes');
  return { name: block[1].toLowerCase().replace(/\.$/, ''), algorithm: algorithm as TsigAlgorithm, secret: bytes };
}

/** Reads and checks the key file: this user's regular file, not readable by group or others. */
export function readTsigKeyFile(file: string): TsigKey {
  const text = readStateFile(file, { maxBytes: 16 * 1024 });
  if (text === null) throw new Error(`${file} does not exist`);
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new Error(`${file} is readable by others (mode ${mode.toString(8)}); it holds a secret: chmod 600 ${file}`);
  try {
    return parseTsigKey(text);
  } catch (e) {
    throw new Error(`${file} ${(e as Error).message}`);
  }
}
