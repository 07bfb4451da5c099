import type { PeerInfo } from './registry.ts';

// A peer given by URL (--peer, settings): for VPNs and networks without multicast. Any plain Nix
// binary cache serving uncompressed NARs works, not only another Peernix.

export function staticPeerInfo(text: string): PeerInfo {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`invalid peer URL "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`peer URL must be http(s): "${text}"`);
  if (url.username || url.password || url.search || url.hash) throw new Error(`peer URL must be a plain base URL: "${text}"`);
  const base = url.href.replace(/\/+$/, '');
  const address = url.hostname.replace(/^\[|\]$/g, '');
  return {
    id: base,
    name: url.host,
    url: base,
    address,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    platform: null,
    publicKey: null,
    source: 'static',
  };
}
