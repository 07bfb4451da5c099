// Where this cache stands among the machine's substituters, said in both listeners' nix-cache-info.

/** Nix ranks substituters by ascending priority; cache.nixos.org says 40, so a LAN cache goes first. */
export const CACHE_PRIORITY = 30;
