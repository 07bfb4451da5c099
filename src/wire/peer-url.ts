// What makes a URL acceptable as a static peer (settings, --peer): the one rule both use.

export const MAX_PEER_URL_LENGTH = 2048;

/** Why `url` is not an acceptable static peer URL, or null when it is. */
export function peerUrlProblem(url: unknown): string | null {
  if (typeof url !== 'string') return `must be a string (got ${url === null ? 'null' : Array.isArray(url) ? 'a list' : typeof url})`;
  if (url.length > MAX_PEER_URL_LENGTH) return `is longer than ${MAX_PEER_URL_LENGTH} characters`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must start with http:// or https:// (got ${u.protocol})`;
  if (!u.hostname) return 'has no host';
  if (u.username || u.password) return 'must not contain a user name or password';
  if (u.search || u.hash) return 'must not contain a query or fragment';
  return null;
}
