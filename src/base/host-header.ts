// Host-header pinning, shared by every loopback-facing HTTP surface: a browser on this machine can be
// pointed at a loopback port by any web page through DNS rebinding, and only the Host header tells.
import type { IncomingMessage } from 'node:http';

export function normaliseHosts(hosts: readonly string[]): Set<string> {
  return new Set(hosts.map((h) => h.trim().toLowerCase()).filter(Boolean));
}

/** The request's Host header when it is one we answer to, else null. */
export function allowedHost(req: IncomingMessage, allowed: Set<string>): string | null {
  const host = req.headers.host?.trim().toLowerCase();
  return host && allowed.has(host) ? host : null;
}
