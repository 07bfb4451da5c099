// The UDP questions of the Go peernix (github zw3rk/peernix, main.go udpServer), as its source at
// e74df7c (2026-05-20) says (docs go-peernix.md):
//   - udpServer reads datagrams into a 1024-byte buffer and treats each as text;
//   - "has_path?<hash part>" asks whether the store holds that path: "yes" or "not_found" (93fc511
//     sent nothing for a miss); queryPeersParallel treats exactly "yes" as found and "not_found" as a
//     definitive miss, caching a negative only when every peer said so;
//   - "has_path_with_narhash?<hash part>:<nix32 NarHash>" asks for those exact bytes, the question
//     behind its stateless NAR URLs: "yes", "narhash_mismatch" (held, other bytes) or "not_found";
//   - "ping" is answered "pong" (its 1.x discovery; 2.x only falls back to it);
//   - JSON starting with "{" is its 2.x discovery announcement; we do not take part in that one.
// The asker sends from a connected socket to <peer address>:<its own udp-port setting> (default 9999,
// set apart from the HTTP port), so an answer must come back from that same address and port.

import { decodeNix32, encodeNix32 } from '../nix/nix32.ts';

/** Go reads questions into a buffer this size; anything longer was cut on its side and is not a question. */
export const GO_UDP_MAX_PACKET = 1024;
export const GO_UDP_DEFAULT_PORT = 9999;

const HAS_PATH = 'has_path?';
const HAS_PATH_WITH_NARHASH = 'has_path_with_narhash?';
const HASH_PART = /^[0123456789abcdfghijklmnpqrsvwxyz]{32}$/;
const WITH_NARHASH = /^([0123456789abcdfghijklmnpqrsvwxyz]{32}):([0123456789abcdfghijklmnpqrsvwxyz]{52})$/;

export type GoQuestion = { kind: 'has-path'; hashPart: string } | { kind: 'has-path-with-narhash'; hashPart: string; narHash: Buffer } | { kind: 'ping' };

/** The question in a datagram, or null for anything else (malformed, oversized, not ours). */
export function parseGoQuestion(packet: Buffer): GoQuestion | null {
  if (packet.length === 0 || packet.length > GO_UDP_MAX_PACKET) return null;
  const text = packet.toString('latin1');
  if (text === 'ping') return { kind: 'ping' };
  if (text.startsWith(HAS_PATH_WITH_NARHASH)) {
    const m = WITH_NARHASH.exec(text.slice(HAS_PATH_WITH_NARHASH.length));
    if (!m) return null;
    try {
      return { kind: 'has-path-with-narhash', hashPart: m[1], narHash: decodeNix32(m[2], 32) };
    } catch {
      return null; // 52 nix32 digits that overflow 256 bits
    }
  }
  if (!text.startsWith(HAS_PATH)) return null;
  const hashPart = text.slice(HAS_PATH.length);
  return HASH_PART.test(hashPart) ? { kind: 'has-path', hashPart } : null;
}

export function encodeHasPath(hashPart: string): Buffer {
  if (!HASH_PART.test(hashPart)) throw new RangeError(`not a store path hash part: ${JSON.stringify(hashPart).slice(0, 80)}`);
  return Buffer.from(HAS_PATH + hashPart, 'latin1');
}

export function encodeHasPathWithNarHash(hashPart: string, narHash: Buffer): Buffer {
  if (!HASH_PART.test(hashPart) || narHash.length !== 32) throw new RangeError('has_path_with_narhash: a hash part and a 32-byte NarHash');
  return Buffer.from(`${HAS_PATH_WITH_NARHASH}${hashPart}:${encodeNix32(narHash)}`, 'latin1');
}

export const GO_YES = Buffer.from('yes');
export const GO_NOT_FOUND = Buffer.from('not_found');
export const GO_NARHASH_MISMATCH = Buffer.from('narhash_mismatch');
export const GO_PONG = Buffer.from('pong');

/** Whether a reply means "I have it": Go's own test is the exact string "yes". */
export function isGoYes(reply: Buffer): boolean {
  return reply.equals(GO_YES);
}

/** Whether a reply is today's definitive "I don't have it" (never sent by 93fc511, which stays silent). */
export function isGoNotFound(reply: Buffer): boolean {
  return reply.equals(GO_NOT_FOUND);
}
