import os from 'node:os';
import { formatHostPort } from '../base/listen-address.ts';

// The URLs a colleague can give Nix (or `--peer`) for this machine's share listener: its bound
// address when that is a specific one, otherwise every LAN address of this machine — never
// "0.0.0.0", which means nothing on another machine.

export type Interfaces = ReturnType<typeof os.networkInterfaces>;

const isLinkLocalV6 = (a: string) => /^fe[89ab][0-9a-f]:/i.test(a);

export function shareAddresses(host: string, port: number, ifaces: Interfaces = os.networkInterfaces()): string[] {
  const anyV4 = host === '0.0.0.0';
  const anyV6 = host === '::' || host === '[::]';
  if (!anyV4 && !anyV6) return [`http://${formatHostPort(host, port)}`];
  const v4: string[] = [];
  const v6: string[] = [];
  const linkLocal: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const i of list ?? []) {
      if (i.internal) continue;
      if (i.family === 'IPv4') v4.push(i.address);
      // A socket bound to :: takes IPv4 too (dual stack); one bound to 0.0.0.0 takes no IPv6.
      else if (anyV6 && isLinkLocalV6(i.address)) linkLocal.push(i.address);
      else if (anyV6) v6.push(i.address);
    }
  }
  // Link-local IPv6 needs a zone a URL cannot carry well: shown only when it is all there is.
  const addrs = [...new Set([...v4, ...v6, ...(v4.length + v6.length === 0 ? linkLocal : [])])];
  return addrs.map((a) => `http://${formatHostPort(a, port)}`);
}
