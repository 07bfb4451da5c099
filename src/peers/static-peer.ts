import { peerUrlProblem } from '../wire/peer-url.ts';
import type { PeerInfo } from './registry.ts';

// A peer given by URL (--peer, settings): for VPNs and networks without multicast. Any plain Nix
// binary cache serving uncompressed NARs works, not only another Peernix.

export function staticPeerInfo(text: string): PeerInfo {
  const problem = peerUrlProblem(text);
  if (problem) throw new Error(`peer URL "${text.slice(0, 200)}" ${problem}`);
  const url = new URL(text);
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
