// The loopback listener's own routes: Prometheus metrics and, under /peernix/, the API for the CLI and
// the dashboard. This file's table (loopbackRoutes) is everything they serve; the substituter's cache
// routes (cache/substituter-routes.ts) answer every other path on the same socket.
//
//   GET  /metrics               Prometheus text (metrics/route.ts)
//   GET  /peernix               308 to /peernix/
//   GET  /peernix/              the dashboard page (token in a <meta>)
//   GET  /peernix/assets/NAME   built renderer files from a fixed list
//   GET  /peernix/api/snapshot  Snapshot as JSON
//   GET  /peernix/api/changes   ApiChange as Server-Sent Events
//   POST /peernix/api/sharing   {"enabled": boolean}, Bearer token + application/json required
//   POST /peernix/api/peer-clear-bad  {"id": string}: forget that a peer served wrong bytes (same rules)
//   GET  /peernix/api/doctor    DoctorReport as JSON (`peernix doctor`'s checks)
//   POST /peernix/api/network   {"trust"|"forget": id or "current"} or {"dismiss": id} (same rules)
//   POST /peernix/api/team      {"add": "name:base64"} or {"remove": key, key name or fingerprint} (same rules)
//   POST /peernix/api/notice    {"seen": "scopes"}: the user read a one-time notice (same rules)
//   GET  /peernix/api/share-why?path=P  ShareWhyView of a store path, base name or hash part (404: not in this store)
// Every /peernix request passes the Host and Origin checks (security.ts) before anything else.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeernixApi } from '../base/api.ts';
import { parseNetworkAction } from '../base/network-action.ts';
import { parseNoticeId, parseTeamAction } from '../base/team-action.ts';
import { BadRequest, Conflict, Forbidden, HttpError, NotFound, TooLarge, Unavailable, sendBody } from '../cache/http-error.ts';
import { ANY_METHOD, GET_HEAD, serveRoutes, type Route, type RouteHandler } from '../cache/route-table.ts';
import { METRICS_PATH } from '../cache/routes.ts';
import { ASSET_PREFIX, readAsset, renderDashboardHtml } from './dashboard.ts';
import { allowedHost, normaliseHosts } from '../base/host-header.ts';
import { baseHeaders, bearerMatches, isJsonContentType, originAllowed } from './security.ts';
import { createSseHub } from './sse.ts';
import { CONTROL_API } from './contract.ts';

export const CONTROL_PREFIX = '/peernix/';
const MAX_BODY_BYTES = 4096;

export interface ControlRoutesOptions {
  api: PeernixApi;
  token: string;
  /** Host header values this listener answers to, e.g. ['127.0.0.1:9998', 'localhost:9998']. */
  allowedHosts: string[];
  /** Where the built renderer lives (dist/renderer). */
  rendererDir: string;
  /** SSE comment interval; default 15 s. */
  heartbeatMs?: number;
  /** Concurrent SSE streams; default 32. */
  maxStreams?: number;
}

/** The control API's handlers, for the loopback table; close() ends every change stream and refuses new ones. */
export interface ControlHandlers {
  /** Host pinning and the Origin check, and the security headers every /peernix answer carries. */
  guard(req: IncomingMessage, res: ServerResponse): void;
  toDashboard: RouteHandler;
  dashboard: RouteHandler;
  asset: RouteHandler;
  snapshot: RouteHandler;
  changes: RouteHandler;
  doctor: RouteHandler;
  sharing: RouteHandler;
  clearBad: RouteHandler;
  network: RouteHandler;
  team: RouteHandler;
  notice: RouteHandler;
  shareWhy: RouteHandler;
  notFound: RouteHandler;
  close(): void;
}

/** The loopback listener's table: metrics (always, when given) and the control API (in a service). */
export function loopbackRoutes(parts: { metrics: RouteHandler | null; control: ControlHandlers | null }): Route[] {
  const routes: Route[] = [];
  if (parts.metrics) routes.push({ name: 'metrics', methods: GET_HEAD, path: METRICS_PATH, listener: 'loopback', reveals: 'figures', handler: parts.metrics });
  const c = parts.control;
  if (!c) return routes;
  const api = (name: string, methods: Route['methods'], path: string | RegExp, handler: RouteHandler): Route => ({
    name,
    methods,
    path,
    listener: 'loopback',
    reveals: 'control',
    guard: c.guard,
    errorBody: 'json',
    handler,
  });
  routes.push(
    api('dashboard-redirect', ANY_METHOD, '/peernix', c.toDashboard),
    api('dashboard', GET_HEAD, CONTROL_PREFIX, c.dashboard),
    // The raw path, undecoded: "/peernix/assets/../x" is a name readAsset finds on no list.
    api('dashboard-asset', GET_HEAD, new RegExp(`^${ASSET_PREFIX}(.*)$`), c.asset),
    api('snapshot', ['GET'], CONTROL_API.snapshot, c.snapshot),
    api('changes', ['GET'], CONTROL_API.changes, c.changes),
    api('doctor', ['GET'], CONTROL_API.doctor, c.doctor),
    api('sharing', ['POST'], CONTROL_API.sharing, c.sharing),
    api('peer-clear-bad', ['POST'], CONTROL_API.peerClearBad, c.clearBad),
    api('network', ['POST'], CONTROL_API.network, c.network),
    api('team', ['POST'], CONTROL_API.team, c.team),
    api('notice', ['POST'], CONTROL_API.notice, c.notice),
    api('share-why', ['GET'], CONTROL_API.shareWhy, c.shareWhy),
    // Everything else under /peernix/ is ours too (and checked as ours), never a cache path.
    api('control-unknown', ANY_METHOD, /^\/peernix\//, c.notFound),
  );
  return routes;
}

export type ControlHandler = ((req: IncomingMessage, res: ServerResponse) => boolean) & { close(): void };

/** The control API alone as one handler that returns false for other paths (tests, the dashboard demo). */
export function createControlRoutes(opts: ControlRoutesOptions): ControlHandler {
  const control = createControlHandlers(opts);
  return Object.assign(serveRoutes(loopbackRoutes({ metrics: null, control })), { close: () => control.close() });
}

export function createControlHandlers(opts: ControlRoutesOptions): ControlHandlers {
  if (!/^[0-9a-f]{32,128}$/i.test(opts.token)) throw new Error('control routes: the token must be hex');
  const hosts = normaliseHosts(opts.allowedHosts);
  const sse = createSseHub(opts.api, { heartbeatMs: opts.heartbeatMs ?? 15_000, maxStreams: opts.maxStreams ?? 32 });

  return {
    guard(req, res) {
      baseHeaders(res);
      const host = allowedHost(req, hosts);
      if (!host) throw new Forbidden('this Host is not allowed (the dashboard answers only on its own loopback address)');
      if (!originAllowed(req, host)) throw new Forbidden('cross-origin requests are not allowed');
    },
    toDashboard(_req, res) {
      res.writeHead(308, { Location: CONTROL_PREFIX });
      res.end();
    },
    async dashboard(_req, res, m) {
      const html = await renderDashboardHtml(opts.rendererDir, opts.token);
      if (html === null) throw new Unavailable('The Peernix dashboard is not built. Run `npm run build`.');
      sendBody(res, html, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }, { head: m.head });
    },
    async asset(_req, res, m) {
      const asset = await readAsset(opts.rendererDir, m.params[0]);
      if (!asset) throw new NotFound('no such dashboard file');
      sendBody(res, asset.body, { 'Content-Type': asset.type, 'Cache-Control': 'no-cache' }, { head: m.head });
    },
    snapshot: (_req, res) => sendJson(res, opts.api.snapshot()),
    changes: (req, res) => sse.open(req, res),
    doctor: saying(async (_req, res) => {
      if (!opts.api.doctor) throw new NotFound('this Peernix has no doctor');
      sendJson(res, await opts.api.doctor());
    }),
    sharing: saying(postSharing),
    clearBad: saying(postClearBad),
    network: saying(postNetwork),
    team: saying(postTeam),
    notice: saying(postNotice),
    shareWhy: saying(async (_req, res, m) => {
      const path = new URLSearchParams(m.query).get('path');
      if (!path || path.length > 400) throw new BadRequest('give ?path=<store path, base name or hash part>');
      if (!opts.api.shareWhy) throw new NotFound('this Peernix has no path scopes');
      let why: Awaited<ReturnType<NonNullable<PeernixApi['shareWhy']>>>;
      try {
        why = await opts.api.shareWhy(path);
      } catch (err) {
        throw new BadRequest(errorMessage(err));
      }
      if (!why) throw new NotFound('this store does not hold that path');
      sendJson(res, why);
    }),
    notFound() {
      throw new NotFound();
    },
    close: () => sse.close(),
  };

  /** The JSON body of an authorised change. */
  async function authorisedJson(req: IncomingMessage): Promise<unknown> {
    if (!bearerMatches(req, opts.token)) throw new Forbidden('missing or wrong control token');
    if (!isJsonContentType(req)) throw new Forbidden('Content-Type must be application/json');
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === null) throw new TooLarge(`body larger than ${MAX_BODY_BYTES} bytes`);
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw new BadRequest('body is not JSON');
    }
  }

  async function postClearBad(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = await authorisedJson(req);
    const id = (parsed as { id?: unknown } | null)?.id;
    if (typeof parsed !== 'object' || parsed === null || Object.keys(parsed).length !== 1 || typeof id !== 'string' || id.length === 0 || id.length > 512) {
      throw new BadRequest('body must be {"id": "<peer id>"}');
    }
    if (!opts.api.snapshot().peers.some((p) => p.id === id)) throw new NotFound('no such peer');
    sendJson(res, { id, cleared: await opts.api.clearPeerBad(id) });
  }

  async function postNetwork(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const action = parseNetworkAction(await authorisedJson(req));
    if (!action) throw new BadRequest('body must be {"trust": "<network id>"|"current"}, {"forget": …} or {"dismiss": "<network id>"}');
    if (!opts.api.network) throw new NotFound('this Peernix has no trusted networks');
    let result: unknown;
    try {
      result = await opts.api.network(action);
    } catch (err) {
      throw new Conflict(errorMessage(err));
    }
    sendJson(res, result);
  }

  async function postTeam(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const action = parseTeamAction(await authorisedJson(req));
    if (!action) throw new BadRequest('body must be {"add": "<name:base64 public key>"} or {"remove": "<key, key name or fingerprint>"}');
    if (!opts.api.team) throw new NotFound('this Peernix has no team');
    let result: unknown;
    try {
      result = await opts.api.team(action);
    } catch (err) {
      throw new Conflict(errorMessage(err));
    }
    sendJson(res, result);
  }

  async function postNotice(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await authorisedJson(req)) as { seen?: unknown } | null;
    const id = typeof body === 'object' && body !== null && Object.keys(body).length === 1 ? parseNoticeId(body.seen) : null;
    if (!id) throw new BadRequest('body must be {"seen": "scopes"}');
    if (!opts.api.noticeSeen) throw new NotFound('this Peernix has no notices');
    await opts.api.noticeSeen(id);
    sendJson(res, { seen: id });
  }

  async function postSharing(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = await authorisedJson(req);
    if (typeof parsed !== 'object' || parsed === null || Object.keys(parsed).length !== 1 || typeof (parsed as { enabled?: unknown }).enabled !== 'boolean') {
      throw new BadRequest('body must be {"enabled": true} or {"enabled": false}');
    }
    await opts.api.setSharing((parsed as { enabled: boolean }).enabled);
    sendJson(res, { sharing: opts.api.snapshot().status.sharing });
  }
}

/**
 * The control API tells its own user why something failed (sharing could not start: the port is
 * taken): an unexpected error's message is its answer, where the LAN-facing routes say only
 * "internal error".
 */
function saying(handler: RouteHandler): RouteHandler {
  return async (req, res, m) => {
    try {
      await handler(req, res, m);
    } catch (e) {
      throw e instanceof HttpError ? e : new HttpError('internal', errorMessage(e), { logMessage: (e as Error)?.stack ?? String(e) });
    }
  };
}

function sendJson(res: ServerResponse, value: unknown): void {
  sendBody(res, JSON.stringify(value), { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
}

/** The body, or null when it exceeds `limit` (the rest is discarded). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? null : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
