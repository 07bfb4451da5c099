// Turns a request line into one of the few things a binary cache serves. Everything else is 'none'
// (→ 404): a URL never reaches the store or the filesystem unless it matched one of these exact shapes.

const N32 = '[0123456789abcdfghijklmnpqrsvwxyz]';
const PREFIX = '(?:/nix-cache)?';
const CACHE_INFO = new RegExp(`^${PREFIX}/nix-cache-info$`);
const NARINFO = new RegExp(`^${PREFIX}/(${N32}{32})\\.narinfo$`);
const NAR = new RegExp(`^${PREFIX}/nar/(${N32}{32})-(${N32}{52})\\.nar$`);
// The Go peernix (zw3rk/peernix main.go, handleNixCache) proxies by asking its peer for exactly the
// path its Nix asked it for, and parses only "/nix-cache/<hash>-<narhash>.nar" (stateless: any holder
// of that NarHash serves it) or the older "/nix-cache/<hash>.nar" (followed only while its in-memory
// map remembers the hash, so a 404 for good after it restarts; docs go-peernix.md). Under /nix-cache/
// our narinfos therefore name the NAR the stateless Go way, and we serve both Go forms.
const GO_NAR = new RegExp(`^/nix-cache/(${N32}{32})\\.nar$`);
const GO_STATELESS_NAR = new RegExp(`^/nix-cache/(${N32}{32})-(${N32}{52})\\.nar$`);

export type CacheRoute =
  | { kind: 'cache-info' }
  | { kind: 'narinfo'; hashPart: string; goForm?: true }
  | { kind: 'nar'; hashPart: string; narHash32: string }
  | { kind: 'nar-by-hash'; hashPart: string }
  | { kind: 'none' };

export const MAX_URL_LENGTH = 512;

export function matchCacheRoute(rawUrl: string | undefined): CacheRoute {
  if (!rawUrl || rawUrl.length > MAX_URL_LENGTH) return { kind: 'none' };
  // Nix may keep query strings from the narinfo URL; ours carry none, so the query is ignored.
  const q = rawUrl.indexOf('?');
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  if (CACHE_INFO.test(path)) return { kind: 'cache-info' };
  let m = NARINFO.exec(path);
  if (m) return path.startsWith('/nix-cache/') ? { kind: 'narinfo', hashPart: m[1], goForm: true } : { kind: 'narinfo', hashPart: m[1] };
  m = NAR.exec(path);
  if (m) return { kind: 'nar', hashPart: m[1], narHash32: m[2] };
  m = GO_STATELESS_NAR.exec(path);
  if (m) return { kind: 'nar', hashPart: m[1], narHash32: m[2] };
  m = GO_NAR.exec(path);
  if (m) return { kind: 'nar-by-hash', hashPart: m[1] };
  return { kind: 'none' };
}

/** The NAR URL we put in narinfos: relative, so it resolves under /nix-cache/ too, and self-describing. */
export function narUrl(hashPart: string, narHash32: string): string {
  return `nar/${hashPart}-${narHash32}.nar`;
}

/** The NAR URL a Go peernix can follow, even after it restarts (relative to /nix-cache/). */
export function goNarUrl(hashPart: string, narHash32: string): string {
  return `${hashPart}-${narHash32}.nar`;
}
