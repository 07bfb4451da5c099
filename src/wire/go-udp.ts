// The UDP questions of the original Go peernix (github zw3rk/peernix, main.go), as its source says:
//   - udpServer reads datagrams into a 1024-byte buffer and treats each as text;
//   - "has_path?<hash part>" asks whether the store holds that path; the only answer it ever sends is
//     the three bytes "yes" (nothing at all when it lacks the path), and queryPeersParallel treats
//     exactly "yes" as found, anything else or silence as not found;
//   - "ping" is answered "pong" (its 1.x discovery; 2.x only falls back to it);
//   - JSON starting with "{" is its 2.x discovery announcement; we do not take part in that one.
// The asker sends from a connected socket to <peer address>:<its own udp-port setting> (default 9999,
// set apart from the HTTP port), so an answer must come back from that same address and port.

/** Go reads questions into a buffer this size; anything longer was cut on its side and is not a question. */
export const GO_UDP_MAX_PACKET = 1024;
export const GO_UDP_DEFAULT_PORT = 9999;

const HAS_PATH = 'has_path?';
const HASH_PART = /^[0123456789abcdfghijklmnpqrsvwxyz]{32}$/;

export type GoQuestion = { kind: 'has-path'; hashPart: string } | { kind: 'ping' };

/** The question in a datagram, or null for anything else (malformed, oversized, not ours). */
export function parseGoQuestion(packet: Buffer): GoQuestion | null {
  if (packet.length === 0 || packet.length > GO_UDP_MAX_PACKET) return null;
  const text = packet.toString('latin1');
  if (text === 'ping') return { kind: 'ping' };
  if (!text.startsWith(HAS_PATH)) return null;
  const hashPart = text.slice(HAS_PATH.length);
  return HASH_PART.test(hashPart) ? { kind: 'has-path', hashPart } : null;
}

export function encodeHasPath(hashPart: string): Buffer {
  if (!HASH_PART.test(hashPart)) throw new RangeError(`not a store path hash part: ${JSON.stringify(hashPart).slice(0, 80)}`);
  return Buffer.from(HAS_PATH + hashPart, 'latin1');
}

export const GO_YES = Buffer.from('yes');
export const GO_PONG = Buffer.from('pong');

/** Whether a reply means "I have it": Go's own test is the exact string "yes". */
export function isGoYes(reply: Buffer): boolean {
  return reply.equals(GO_YES);
}
