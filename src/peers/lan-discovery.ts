import { arch, platform } from 'node:os';
import type { Logger } from '../base/log.ts';
import { MdnsDiscovery } from './discovery.ts';
import type { PeerRegistry } from './registry.ts';

// Peers found by mDNS go into the registry as they come and leave it with their goodbye; this host is
// announced with its instance id, key and share port (published while sharing, by the sharing switch).

export interface LanDiscoveryOptions {
  instanceId: string;
  name: string;
  publicKey: string;
  sharePort: number;
  /** A unique mDNS host name when the user named this instance. */
  hostName?: string;
  interface?: string;
  registry: PeerRegistry;
  log: Logger;
}

export function startLanDiscovery(opts: LanDiscoveryOptions): MdnsDiscovery {
  const { registry } = opts;
  const discovery = new MdnsDiscovery({
    self: { instanceId: opts.instanceId, name: opts.name, port: opts.sharePort, publicKey: opts.publicKey, platform: `${platform()}-${arch()}`, protocol: 1 },
    hostName: opts.hostName,
    interface: opts.interface,
    isProven: (p) => registry.isProvenService(p.key),
    isLive: (key) => registry.isLiveService(key),
  });
  discovery.on('up', (p) => registry.upsert({ ...p, source: 'mdns' }));
  discovery.on('down', (id, key) => registry.remove(id, 'goodbye', key));
  discovery.on('error', (e) => opts.log.warn(`mDNS: ${e.message}`));
  discovery.start();
  return discovery;
}
