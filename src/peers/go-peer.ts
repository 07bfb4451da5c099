import net from 'node:net';

// How a Go peernix (github zw3rk/peernix, main.go) is addressed once found. Its HTTP handlers live
// under /nix-cache/ (nix-cache-info, <hash>.narinfo, <hash>.nar), and nothing at the root answers a
// cache request, so its base URL carries that prefix. It cannot prove an identity (no instance id, a
// key named peernix-1 on every host), so it is known by the address it announces from and its port.

export const GO_CACHE_PREFIX = '/nix-cache';
/**
 * The port a Go peer fetches from on every peer: its own http-port setting (default 9999), not a port
 * it learns (main.go handleNixCache builds "http://" + peer + ":" + config.HTTPPort + path).
 */
export const GO_HTTP_PORT = 9999;

export function goPeerId(address: string, port: number): string {
  return `go:${address}:${port}`;
}

export function goPeerUrl(address: string, port: number): string {
  return `${net.isIPv6(address) ? `http://[${address}]` : `http://${address}`}:${port}${GO_CACHE_PREFIX}`;
}

export function goPeerName(address: string): string {
  return `Go peernix at ${address}`;
}
