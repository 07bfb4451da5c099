import os from 'node:os';
import net from 'node:net';

// Which addresses count as "on a local network": the only ones a peer's record may point us at.

export type Interfaces = ReturnType<typeof os.networkInterfaces>;

function ipv4ToInt(addr: string): number {
  const p = addr.split('.');
  return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0;
}

// Only called on text net.isIPv6 accepted.
function ipv6ToBytes(addr: string): number[] {
  const groupsToBytes = (s: string): number[] => {
    if (s === '') return [];
    const groups = s.split(':');
    const out: number[] = [];
    const last = groups[groups.length - 1];
    const v4 = last.includes('.') ? ipv4ToInt(groups.pop() as string) : null;
    for (const g of groups) out.push(parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff);
    if (v4 !== null) out.push(v4 >>> 24, (v4 >>> 16) & 0xff, (v4 >>> 8) & 0xff, v4 & 0xff);
    return out;
  };
  const bare = addr.split('%')[0];
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, ''];
  const h = groupsToBytes(head);
  const t = groupsToBytes(tail);
  return [...h, ...new Array<number>(16 - h.length - t.length).fill(0), ...t];
}

function samePrefix(a: number[], b: number[], bits: number): boolean {
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}

const isIPv6LinkLocal = (b: number[]): boolean => b[0] === 0xfe && (b[1] & 0xc0) === 0x80;

function isLocalIPv4(addr: string, ifaces: Interfaces): boolean {
  const a = ipv4ToInt(addr);
  const top = a >>> 24;
  // Loopback would aim peer requests at ourselves; 0/8, multicast and reserved are never a host.
  if (top === 0 || top === 127 || top >= 224) return false;
  if (a >>> 16 === 0xa9fe) return true; // 169.254/16 link-local cannot leave the link
  for (const list of Object.values(ifaces)) {
    for (const i of list ?? []) {
      if (i.internal || i.family !== 'IPv4') continue;
      const mask = ipv4ToInt(i.netmask);
      const network = (ipv4ToInt(i.address) & mask) >>> 0;
      if ((a & mask) >>> 0 !== network) continue;
      const broadcast = (network | ~mask) >>> 0;
      if (mask < 0xfffffffe && (a === network || a === broadcast)) return false;
      return true;
    }
  }
  return false;
}

function isLocalIPv6(addr: string, ifaces: Interfaces): boolean {
  if (addr.includes('%')) return false;
  const a = ipv6ToBytes(addr);
  if (a.slice(0, 15).every((b) => b === 0) && (a[15] === 0 || a[15] === 1)) return false; // :: and ::1
  if (a[0] === 0xff) return false; // multicast
  // fe80::/10 is on-link, but needs a zone id that a URL cannot carry.
  if (isIPv6LinkLocal(a)) return false;
  if (a.slice(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff) return false; // v4-mapped
  for (const list of Object.values(ifaces)) {
    for (const i of list ?? []) {
      if (i.internal || i.family !== 'IPv6') continue;
      const b = ipv6ToBytes(i.address);
      if (isIPv6LinkLocal(b)) continue;
      const bits = i.cidr ? Number(i.cidr.split('/')[1]) : 128;
      if (samePrefix(a, b, bits)) return true;
    }
  }
  return false;
}

export function isLocalAddress(addr: string, ifaces: Interfaces = os.networkInterfaces()): boolean {
  const family = net.isIP(addr);
  if (family === 4) return isLocalIPv4(addr, ifaces);
  if (family === 6) return isLocalIPv6(addr, ifaces);
  return false;
}
