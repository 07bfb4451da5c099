// What the control API's server (routes.ts), its clients (the CLI's client.ts, the dashboard's
// bridge-web.ts) and the pages' shells (dashboard.ts, the Electron window, the build) must agree on.
// Imports nothing, so the renderer's browser bundle can import it too.

export const CONTROL_API = {
  snapshot: '/peernix/api/snapshot',
  changes: '/peernix/api/changes',
  sharing: '/peernix/api/sharing',
  peerClearBad: '/peernix/api/peer-clear-bad',
  doctor: '/peernix/api/doctor',
  network: '/peernix/api/network',
  team: '/peernix/api/team',
  notice: '/peernix/api/notice',
  shareWhy: '/peernix/api/share-why',
} as const;

/** The <meta> the dashboard's page carries the control token in (the CSP allows no inline script). */
export const TOKEN_META_NAME = 'peernix-token';

const PAGE_DIRECTIVES = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'none'",
];

/** The page's own CSP, as its <meta> carries it (put there by the build). */
export const PAGE_CONTENT_SECURITY_POLICY = PAGE_DIRECTIVES.join('; ');

/** As a response header, which may also forbid framing (a <meta> CSP can't). */
export const CONTENT_SECURITY_POLICY = [...PAGE_DIRECTIVES, "frame-ancestors 'none'"].join('; ');
