// The URL shapes of a Nix binary cache, as patterns for the listeners' route tables (app/*-routes.ts).
// A URL never reaches the store or the filesystem unless its path matched one of these exact shapes:
// hash parts and NAR hashes are nix32 of their exact length, nothing else is captured.

const N32 = '[0123456789abcdfghijklmnpqrsvwxyz]';
const PREFIX = '(?:/nix-cache)?';
export const CACHE_INFO = new RegExp(`^${PREFIX}/nix-cache-info$`);
export const NARINFO = new RegExp(`^/(${N32}{32})\\.narinfo$`);
/** Under /nix-cache/ our narinfos name the NAR the Go way (GO_NAR), and we serve that form too. */
export const GO_NARINFO = new RegExp(`^/nix-cache/(${N32}{32})\\.narinfo$`);
export const NAR = new RegExp(`^${PREFIX}/nar/(${N32}{32})-(${N32}{52})\\.nar$`);
// The Go peernix (zw3rk/peernix main.go, handleNixCache) proxies by asking its peer for exactly the
// path its Nix asked it for, and parses only "/nix-cache/<hash>-<narhash>.nar" (stateless: any holder
// of that NarHash serves it) or the older "/nix-cache/<hash>.nar" (followed only while its in-memory
// map remembers the hash, so a 404 for good after it restarts; docs go-peernix.md). Under /nix-cache/
// our narinfos therefore name the NAR the stateless Go way, and we serve both Go forms.
export const GO_STATELESS_NAR = new RegExp(`^/nix-cache/(${N32}{32})-(${N32}{52})\\.nar$`);
export const GO_NAR = new RegExp(`^/nix-cache/(${N32}{32})\\.nar$`);
/** A content-addressed derivation's realisation (cache/realisation-route.ts); the id is checked there. */
export const REALISATION = /^\/realisations\/([^/]{1,220})\.doi$/;
/** Prometheus figures (metrics/route.ts): always on loopback, on the share listener only when asked. */
export const METRICS_PATH = '/metrics';
/** A peer asking to be connected back to (doctor/reach-back.ts). */
export const REACH_BACK_PATH = '/peernix/reach-back';
/** Every other path: the catch-all a cache listener ends with (404, or 405 for a method no cache takes). */
export const ANY_PATH = /^\//;

/** The NAR URL we put in narinfos: relative, so it resolves under /nix-cache/ too, and self-describing. */
export function narUrl(hashPart: string, narHash32: string): string {
  return `nar/${hashPart}-${narHash32}.nar`;
}

/** The NAR URL a Go peernix can follow, even after it restarts (relative to /nix-cache/). */
export function goNarUrl(hashPart: string, narHash32: string): string {
  return `${hashPart}-${narHash32}.nar`;
}
