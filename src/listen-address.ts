// "HOST:PORT" as the CLI and settings spell a listener; IPv6 hosts come in brackets.

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`invalid listen address "${text}" (expected HOST:PORT, e.g. 127.0.0.1:9998)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in "${text}"`);
  return { host: m[1] ?? m[2], port };
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
