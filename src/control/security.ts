// Checks every /peernix request passes before it reaches a route. The listener is loopback-only,
// but a browser on this machine can still be pointed at it by any web page: Host pinning stops DNS
// rebinding, the Origin check and the bearer token stop cross-site POSTs, and no response ever
// carries CORS headers, so other origins cannot read anything.
import crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { CONTENT_SECURITY_POLICY } from './contract.ts';

/** An Origin header is optional (the CLI sends none), but if present it must be the page's own. */
export function originAllowed(req: IncomingMessage, host: string): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  return origin.toLowerCase() === `http://${host}`;
}

export function bearerMatches(req: IncomingMessage, token: string): boolean {
  const m = /^Bearer ([0-9A-Fa-f]{1,128})$/.exec(req.headers.authorization ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1].toLowerCase());
  const want = Buffer.from(token.toLowerCase());
  return given.length === want.length && crypto.timingSafeEqual(given, want);
}

export function isJsonContentType(req: IncomingMessage): boolean {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  return type === 'application/json';
}

/** Headers on every /peernix response. Deliberately no Access-Control-* of any kind. */
export function baseHeaders(res: ServerResponse): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
}
