// Ed25519 binary-cache keys and narinfo signatures in Nix's formats:
//   secret key  "name:" + base64(seed(32) || publicKey(32))   (libsodium's layout)
//   public key  "name:" + base64(publicKey(32))
//   signature   "name:" + base64(ed25519(fingerprint))         (64 bytes)

import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { formatSha256Nix32, parseSha256 } from './hash.ts';
import type { NarInfo } from './narinfo.ts';
import { parseBaseName, parseStorePath, STORE_DIR } from './store-path.ts';

export interface PublicKey {
  name: string;
  key: Buffer; // 32 bytes
  text: string; // 'name:base64'
}

export interface SecretKey {
  name: string;
  publicKey: PublicKey;
  sign(data: string): string; // 'name:base64(64-byte signature)'
  /** The same key for TLS and certificates (the team channel), which take a key object. */
  privateKey: KeyObject;
}

type FingerprintInput = Pick<NarInfo, 'storePath' | 'narHash' | 'narSize' | 'references'>;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function b64url(buf: Buffer): string {
  return buf.toString('base64url');
}

// Standard base64 that must decode to exactly `size` bytes and re-encode to the same text.
function decodeBase64Exact(text: string, size: number): Buffer | null {
  if (text.length % 4 !== 0 || !BASE64.test(text)) return null;
  const buf = Buffer.from(text, 'base64');
  if (buf.length !== size || buf.toString('base64') !== text) return null;
  return buf;
}

function splitNamed(text: string, what: string): { name: string; data: string } {
  if (typeof text !== 'string') throw new Error(`${what}: not a string`);
  const trimmed = text.replace(/\s+$/, '');
  const colon = trimmed.indexOf(':');
  if (colon <= 0) throw new Error(`${what}: expected "name:base64"`);
  const name = trimmed.slice(0, colon);
  if (/\s/.test(name)) throw new Error(`${what}: key name contains whitespace`);
  return { name, data: trimmed.slice(colon + 1) };
}

function ed25519PublicKeyObject(pub: Buffer): KeyObject {
  return createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pub) } });
}

function makePublicKey(name: string, key: Buffer): PublicKey {
  return { name, key, text: `${name}:${key.toString('base64')}` };
}

export function parsePublicKey(text: string): PublicKey {
  const { name, data } = splitNamed(text, 'public key');
  const key = decodeBase64Exact(data, 32);
  if (!key) throw new Error(`public key "${name}": expected base64 of 32 bytes`);
  try {
    ed25519PublicKeyObject(key);
  } catch {
    throw new Error(`public key "${name}": not a valid Ed25519 public key`);
  }
  return makePublicKey(name, key);
}

export function parseSecretKey(text: string): SecretKey {
  const { name, data } = splitNamed(text, 'secret key');
  const raw = decodeBase64Exact(data, 64);
  if (!raw) throw new Error(`secret key "${name}": expected base64 of 64 bytes (seed and public key)`);
  const seed = raw.subarray(0, 32);
  const pub = Buffer.from(raw.subarray(32, 64));
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({
      format: 'jwk',
      key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(pub) },
    });
  } catch {
    throw new Error(`secret key "${name}": not a valid Ed25519 key`);
  }
  // The stored public half must be the one the seed produces, or we would sign with one key and
  // advertise another.
  const derived = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x as string, 'base64url');
  if (!derived.equals(pub)) throw new Error(`secret key "${name}": public half does not match the seed`);
  const publicKey = makePublicKey(name, pub);
  return {
    name,
    publicKey,
    privateKey,
    sign(data: string): string {
      return `${name}:${sign(null, Buffer.from(data, 'utf8'), privateKey).toString('base64')}`;
    },
  };
}

export function generateKeyPair(name: string): { secretKeyText: string; publicKeyText: string } {
  if (typeof name !== 'string' || name === '' || /[\s:]/.test(name)) {
    throw new Error('key name must be non-empty and contain no whitespace or ":"');
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d as string, 'base64url');
  const pub = Buffer.from(jwk.x as string, 'base64url');
  return {
    secretKeyText: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`,
    publicKeyText: `${name}:${pub.toString('base64')}`,
  };
}

export function narInfoFingerprint(info: FingerprintInput): string {
  parseStorePath(info.storePath);
  if (!Number.isSafeInteger(info.narSize) || info.narSize <= 0) {
    throw new Error(`cannot fingerprint ${info.storePath}: NarSize unknown`);
  }
  const narHash = formatSha256Nix32(parseSha256(info.narHash));
  // Basename validation also guarantees no ',' or ';' can forge extra fields.
  const refs = info.references.map((r) => {
    parseBaseName(r);
    return `${STORE_DIR}/${r}`;
  });
  // All refs are ASCII with a common prefix, so code-unit order equals Nix's byte order.
  refs.sort();
  return `1;${info.storePath};${narHash};${info.narSize};${refs.join(',')}`;
}

export function signNarInfo(info: FingerprintInput, key: SecretKey): string {
  return key.sign(narInfoFingerprint(info));
}

const keyObjects = new WeakMap<PublicKey, KeyObject>();

function keyObjectFor(pk: PublicKey): KeyObject {
  let ko = keyObjects.get(pk);
  if (!ko) {
    ko = ed25519PublicKeyObject(pk.key);
    keyObjects.set(pk, ko);
  }
  return ko;
}

export function verifyNarInfoSignature(info: FingerprintInput, sig: string, keys: PublicKey[]): boolean {
  try {
    return verifySignature(narInfoFingerprint(info), sig, keys);
  } catch {
    return false;
  }
}

/** Whether `sig` ("name:base64") is a valid signature of `fingerprint` by one of `keys` of that name. */
export function verifySignature(fingerprint: string, sig: string, keys: PublicKey[]): boolean {
  try {
    if (typeof sig !== 'string') return false;
    const colon = sig.indexOf(':');
    if (colon <= 0) return false;
    const name = sig.slice(0, colon);
    const sigBytes = decodeBase64Exact(sig.slice(colon + 1), 64);
    if (!sigBytes) return false;
    const candidates = keys.filter((k) => k.name === name);
    if (candidates.length === 0) return false;
    const data = Buffer.from(fingerprint, 'utf8');
    return candidates.some((k) => {
      try {
        return verify(null, data, keyObjectFor(k), sigBytes);
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}
