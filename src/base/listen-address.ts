import net from 'node:net';

// "HOST:PORT" as the CLI and settings spell a listener; IPv6 hosts come in brackets.

export interface HostPort {
  host: string; // without IPv6 brackets
  port: number;
}

/** Parses "HOST:PORT" or "[IPv6]:PORT". Port 0 (any free port) is allowed. */
export function parseHostPort(s: string): HostPort | null {
  if (typeof s !== 'string' || s.length > 300) return null;
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  if (m[1] !== undefined) {
    return net.isIPv6(m[1]) ? { host: m[1], port } : null;
  }
  const host = m[2];
  if (net.isIPv4(host)) return { host, port };
  // A host name: RFC 1123 labels.
  if (host.length > 253) return null;
  const labels = host.split('.');
  if (!labels.every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l))) return null;
  return { host, port };
}

export function parseListenAddress(text: string): HostPort {
  const hp = parseHostPort(text.trim());
  if (!hp) throw new Error(`invalid listen address "${text}" (expected HOST:PORT, e.g. 127.0.0.1:9998)`);
  return hp;
}

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  if (net.isIPv4(host)) return loopback.check(host, 'ipv4');
  if (net.isIPv6(host)) return loopback.check(host, 'ipv6');
  return false;
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
