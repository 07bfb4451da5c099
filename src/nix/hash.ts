// SHA-256 digests as they appear in narinfos, the daemon protocol and `nix path-info --json`.

import { decodeNix32, encodeNix32 } from './nix32.ts';

const SHA256_BYTES = 32;
const HEX64 = /^[0-9a-fA-F]{64}$/;
const NIX32_52 = /^[0-9a-df-np-sv-z]{52}$/;
// Standard base64 (Nix's decoder uses the standard alphabet) with mandatory padding: 32 bytes → 44 chars.
const BASE64_32 = /^[A-Za-z0-9+/]{43}=$/;

function fromBase64(b64: string): Buffer {
  if (!BASE64_32.test(b64)) throw new Error('sha256: invalid base64 digest');
  const buf = Buffer.from(b64, 'base64');
  // Reject non-canonical trailing bits so that one digest has exactly one textual form.
  if (buf.length !== SHA256_BYTES || buf.toString('base64') !== b64) throw new Error('sha256: invalid base64 digest');
  return buf;
}

function fromTyped(rest: string): Buffer {
  if (rest.length === 52 && NIX32_52.test(rest)) return decodeNix32(rest, SHA256_BYTES);
  if (rest.length === 64 && HEX64.test(rest)) return Buffer.from(rest, 'hex');
  if (rest.length === 44) return fromBase64(rest);
  throw new Error('sha256: digest has the wrong length or encoding');
}

export function parseSha256(text: string): Buffer {
  if (typeof text !== 'string') throw new Error('sha256: not a string');
  if (text.startsWith('sha256:')) return fromTyped(text.slice(7));
  if (text.startsWith('sha256-')) return fromBase64(text.slice(7));
  if (HEX64.test(text)) return Buffer.from(text, 'hex');
  throw new Error(`sha256: unrecognised hash ${JSON.stringify(text.slice(0, 80))}`);
}

export function formatSha256Nix32(digest: Uint8Array): string {
  if (digest.length !== SHA256_BYTES) throw new Error(`sha256: digest must be ${SHA256_BYTES} bytes`);
  return 'sha256:' + encodeNix32(digest);
}
