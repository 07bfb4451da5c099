import net from 'node:net';
import os from 'node:os';
import { isLocalAddress, type Interfaces } from './local-address.ts';

// The networks discovery accepts peers on (those of every interface, or of the one it is bound to),
// kept current as interfaces come and go, and the signature that tells when our addresses changed.

// The addresses bonjour-service would put in our A/AAAA records, as one comparable string.
export function addressSignature(ifaces: Interfaces): string {
  const out: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const i of list ?? []) if (!i.internal && i.mac !== '00:00:00:00:00:00') out.push(i.address);
  }
  return out.sort().join(' ');
}

export class LocalNetworks {
  private readonly interfaceName: string | undefined; // peers only on this interface's networks
  private readonly customIsLocal: ((addr: string) => boolean) | undefined;
  private interfaces: Interfaces = {};
  private interfacesReadAt = -Infinity;

  /** `iface`: an interface name, or its IPv4 address (which does not narrow the networks). */
  constructor(iface: string | undefined, customIsLocal: ((addr: string) => boolean) | undefined) {
    this.interfaceName = iface !== undefined && !net.isIP(iface) ? iface : undefined;
    this.customIsLocal = customIsLocal;
  }

  // Returns the signature of all our addresses; keeps the interfaces that decide what is local.
  read(): string {
    const all = os.networkInterfaces();
    this.interfaces = this.interfaceName === undefined ? all : { [this.interfaceName]: all[this.interfaceName] ?? [] };
    this.interfacesReadAt = performance.now();
    return addressSignature(all);
  }

  isLocal(addr: string): boolean {
    if (this.customIsLocal) return this.customIsLocal(addr) === true;
    // Re-read at most every couple of seconds: a flood of records must not mean a flood of syscalls.
    if (performance.now() - this.interfacesReadAt > 2000) this.read();
    return isLocalAddress(addr, this.interfaces);
  }
}
