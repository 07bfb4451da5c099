import type { Interfaces } from './local-address.ts';

// Which network this machine is on, as an id a different network won't present by accident: the
// default gateway's hardware address together with the subnet of the interface that routes to it.
// Pure: it reads the text of /proc/net/route and /proc/net/arp and the interface list, so it can be
// tested on captured inputs. The kernel's tables are trusted input (only root writes them), but the
// ARP entry itself was learnt from the LAN: a host there can claim the router's MAC on purpose, so
// this id tells networks apart, it does not authenticate one (README, "Trusted networks").
//
//   gateway <mac> <subnet>   a default route via a router on an Ethernet/Wi-Fi interface
//   subnet <subnet>[+…]      no such route (a direct cable, a test LAN): the subnets alone
//
// A default route through an interface with no hardware address (tun, wg, ppp: a VPN) is passed
// over: the LAN peers see is the physical one, so a VPN coming up does not change the network.

export interface RecognisedNetwork {
  /** Stable across restarts; what `trustedNetworks` holds. */
  id: string;
  /** For people: "10.0.0.0/24 (router 52:54:00:12:34:56)". */
  name: string;
}

export type Recognition =
  | { network: RecognisedNetwork; gatewayUnresolved?: undefined }
  /** Not on any network with an IPv4 address (offline, or loopback only). */
  | { network: null; gatewayUnresolved?: undefined }
  /** A default route whose gateway's MAC the kernel has not learnt yet: traffic to it would teach it. */
  | { network: null; gatewayUnresolved: { address: string; iface: string } };

interface DefaultRoute {
  iface: string;
  gateway: string;
  metric: number;
}

const NO_MAC = '00:00:00:00:00:00';
// ATF_COM: the entry is complete (the MAC is known, not being asked for).
const ATF_COM = 0x2;

/** Default routes (destination and mask 0) with a gateway, best (lowest metric) first. */
export function defaultRoutes(routeText: string): DefaultRoute[] {
  const out: DefaultRoute[] = [];
  for (const line of routeText.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, gw, flagsHex, , , metric, mask] = f;
    const flags = parseInt(flagsHex, 16);
    if (dest !== '00000000' || mask !== '00000000' || !(flags & 0x1) || !(flags & 0x2)) continue;
    const gateway = hexToIpv4(gw);
    if (gateway === null || !/^[\w.@:-]{1,15}$/.test(iface)) continue;
    out.push({ iface, gateway, metric: Number(metric) || 0 });
  }
  return out.sort((a, b) => a.metric - b.metric);
}

/** The complete ARP entry for `address` on `iface`, as lower-case "aa:bb:…", or null. */
export function arpMac(arpText: string, address: string, iface: string): string | null {
  for (const line of arpText.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[0] !== address || f[5] !== iface) continue;
    const mac = f[3].toLowerCase();
    if (!(parseInt(f[2], 16) & ATF_COM) || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) || mac === NO_MAC) return null;
    return mac;
  }
  return null;
}

export function recogniseNetwork(input: { route: string; arp: string; interfaces: Interfaces }): Recognition {
  const hardware = (iface: string) => (input.interfaces[iface] ?? []).some((a) => !a.internal && a.mac !== NO_MAC);
  for (const r of defaultRoutes(input.route)) {
    if (!hardware(r.iface)) continue; // a VPN or other tunnel: not the LAN
    const subnet = subnetHolding(input.interfaces, r.iface, r.gateway);
    if (!subnet) continue;
    const mac = arpMac(input.arp, r.gateway, r.iface);
    if (!mac) return { network: null, gatewayUnresolved: { address: r.gateway, iface: r.iface } };
    return { network: { id: `gateway ${mac} ${subnet}`, name: `${subnet} (router ${mac})` } };
  }
  const subnets = new Set<string>();
  for (const [name, addrs] of Object.entries(input.interfaces)) {
    if (!hardware(name)) continue;
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.')) subnets.add(cidrNetwork(a.address, a.netmask));
  }
  if (subnets.size === 0) return { network: null };
  const list = [...subnets].sort();
  return { network: { id: `subnet ${list.join('+')}`, name: `${list.join(' + ')} (no router)` } };
}

/** The subnet (a.b.c.d/n) of the address on `iface` that holds `gateway`, or null. */
function subnetHolding(interfaces: Interfaces, iface: string, gateway: string): string | null {
  const g = ipv4ToInt(gateway);
  for (const a of interfaces[iface] ?? []) {
    if (a.family !== 'IPv4') continue;
    const mask = ipv4ToInt(a.netmask);
    if (((ipv4ToInt(a.address) ^ g) & mask) >>> 0 === 0) return cidrNetwork(a.address, a.netmask);
  }
  return null;
}

function cidrNetwork(address: string, netmask: string): string {
  const mask = ipv4ToInt(netmask);
  const bits = mask.toString(2).replace(/0+$/, '').length;
  return `${intToIpv4((ipv4ToInt(address) & mask) >>> 0)}/${bits}`;
}

/** /proc/net/route writes addresses as host-order (little-endian here) hex. */
function hexToIpv4(hex: string): string | null {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return null;
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
}

function ipv4ToInt(addr: string): number {
  const p = addr.split('.');
  return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0;
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** A name for people from an id alone (for networks in `trustedNetworks` not seen this run). */
export function networkName(id: string): string {
  const gw = /^gateway (\S+) (\S+)$/.exec(id);
  if (gw) return `${gw[2]} (router ${gw[1]})`;
  const sub = /^subnet (\S+)$/.exec(id);
  if (sub) return `${sub[1].split('+').join(' + ')} (no router)`;
  return id;
}

/** Plausible as a network id in settings or from the control API: printable ASCII, bounded. */
export function isNetworkId(v: unknown): v is string {
  return typeof v === 'string' && /^[\x21-\x7e][\x20-\x7e]{0,199}$/.test(v);
}
