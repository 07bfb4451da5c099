// The API on the loopback listener, for the CLI and the dashboard, under /peernix/. The handler
// claims only /peernix and /peernix/...; anything else returns false so the cache routes run.
//
//   GET  /peernix/              the dashboard page (token in a <meta>)
//   GET  /peernix/assets/NAME   built renderer files from a fixed list
//   GET  /peernix/api/snapshot  Snapshot as JSON
//   GET  /peernix/api/changes   ApiChange as Server-Sent Events
//   POST /peernix/api/sharing   {"enabled": boolean}, Bearer token + application/json required
//   POST /peernix/api/peer-clear-bad  {"id": string}: forget that a peer served wrong bytes (same rules)
//   GET  /peernix/api/doctor    DoctorReport as JSON (`peernix doctor`'s checks)
//   POST /peernix/api/network   {"trust"|"forget": id or "current"} or {"dismiss": id} (same rules)
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeernixApi } from '../base/api.ts';
import { parseNetworkAction } from '../base/network-action.ts';
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

export type ControlHandler = ((req: IncomingMessage, res: ServerResponse) => boolean) & {
  /** Ends every change stream and refuses new ones; call it when the API stops. */
  close(): void;
};

export function createControlRoutes(opts: ControlRoutesOptions): ControlHandler {
  if (!/^[0-9a-f]{32,128}$/i.test(opts.token)) throw new Error('control routes: the token must be hex');
  const hosts = normaliseHosts(opts.allowedHosts);
  const sse = createSseHub(opts.api, { heartbeatMs: opts.heartbeatMs ?? 15_000, maxStreams: opts.maxStreams ?? 32 });

  const handler = (req: IncomingMessage, res: ServerResponse): boolean => {
    // The raw path, undecoded and unnormalised: "/peernix/assets/../x" stays ours and matches nothing.
    const rawPath = (req.url ?? '').split('?')[0];
    if (rawPath !== '/peernix' && !rawPath.startsWith(CONTROL_PREFIX)) return false;

    baseHeaders(res);
    const host = allowedHost(req, hosts);
    if (!host) {
      sendJson(res, 403, { error: 'this Host is not allowed (the dashboard answers only on its own loopback address)' });
      return true;
    }
    if (!originAllowed(req, host)) {
      sendJson(res, 403, { error: 'cross-origin requests are not allowed' });
      return true;
    }
    route(req, res, rawPath).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: errorMessage(err) });
      else res.destroy();
    });
    return true;
  };

  async function route(req: IncomingMessage, res: ServerResponse, p: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (p === '/peernix') {
      res.writeHead(308, { Location: CONTROL_PREFIX });
      res.end();
      return;
    }
    if (p === CONTROL_PREFIX) {
      if (!allow(req, res, ['GET', 'HEAD'])) return;
      const html = await renderDashboardHtml(opts.rendererDir, opts.token);
      if (html === null) {
        sendText(res, 503, 'The Peernix dashboard is not built. Run `npm run build`.\n', method);
        return;
      }
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Content-Length': Buffer.byteLength(html),
      });
      res.end(method === 'HEAD' ? undefined : html);
      return;
    }
    if (p.startsWith(ASSET_PREFIX)) {
      if (!allow(req, res, ['GET', 'HEAD'])) return;
      const asset = await readAsset(opts.rendererDir, p.slice(ASSET_PREFIX.length));
      if (!asset) {
        sendJson(res, 404, { error: 'no such dashboard file' });
        return;
      }
      res.writeHead(200, { 'Content-Type': asset.type, 'Cache-Control': 'no-cache', 'Content-Length': asset.body.length });
      res.end(method === 'HEAD' ? undefined : asset.body);
      return;
    }
    switch (p) {
      case CONTROL_API.snapshot:
        if (!allow(req, res, ['GET'])) return;
        sendJson(res, 200, opts.api.snapshot());
        return;
      case CONTROL_API.changes:
        if (!allow(req, res, ['GET'])) return;
        sse.open(req, res);
        return;
      case CONTROL_API.doctor:
        if (!allow(req, res, ['GET'])) return;
        if (!opts.api.doctor) return sendJson(res, 404, { error: 'this Peernix has no doctor' });
        sendJson(res, 200, await opts.api.doctor());
        return;
      case CONTROL_API.sharing:
        if (!allow(req, res, ['POST'])) return;
        await postSharing(req, res);
        return;
      case CONTROL_API.peerClearBad:
        if (!allow(req, res, ['POST'])) return;
        await postClearBad(req, res);
        return;
      case CONTROL_API.network:
        if (!allow(req, res, ['POST'])) return;
        await postNetwork(req, res);
        return;
      default:
        sendJson(res, 404, { error: 'not found' });
    }
  }

  /** The JSON body of an authorised change, or undefined once an error has been answered. */
  async function authorisedJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    if (!bearerMatches(req, opts.token)) {
      sendJson(res, 403, { error: 'missing or wrong control token' });
      return undefined;
    }
    if (!isJsonContentType(req)) {
      sendJson(res, 403, { error: 'Content-Type must be application/json' });
      return undefined;
    }
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === null) {
      sendJson(res, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
      return undefined;
    }
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      sendJson(res, 400, { error: 'body is not JSON' });
      return undefined;
    }
  }

  async function postClearBad(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = await authorisedJson(req, res);
    if (parsed === undefined) return;
    const id = (parsed as { id?: unknown } | null)?.id;
    if (typeof parsed !== 'object' || parsed === null || Object.keys(parsed).length !== 1 || typeof id !== 'string' || id.length === 0 || id.length > 512) {
      sendJson(res, 400, { error: 'body must be {"id": "<peer id>"}' });
      return;
    }
    if (!opts.api.snapshot().peers.some((p) => p.id === id)) {
      sendJson(res, 404, { error: 'no such peer' });
      return;
    }
    sendJson(res, 200, { id, cleared: await opts.api.clearPeerBad(id) });
  }

  async function postNetwork(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = await authorisedJson(req, res);
    if (parsed === undefined) return;
    const action = parseNetworkAction(parsed);
    if (!action) {
      sendJson(res, 400, { error: 'body must be {"trust": "<network id>"|"current"}, {"forget": …} or {"dismiss": "<network id>"}' });
      return;
    }
    if (!opts.api.network) return sendJson(res, 404, { error: 'this Peernix has no trusted networks' });
    try {
      sendJson(res, 200, await opts.api.network(action));
    } catch (err) {
      sendJson(res, 409, { error: errorMessage(err) });
    }
  }

  async function postSharing(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = await authorisedJson(req, res);
    if (parsed === undefined) return;
    if (
      typeof parsed !== 'object' ||
      parsed === null ||
      Object.keys(parsed).length !== 1 ||
      typeof (parsed as { enabled?: unknown }).enabled !== 'boolean'
    ) {
      sendJson(res, 400, { error: 'body must be {"enabled": true} or {"enabled": false}' });
      return;
    }
    const enabled = (parsed as { enabled: boolean }).enabled;
    try {
      await opts.api.setSharing(enabled);
    } catch (err) {
      sendJson(res, 500, { error: errorMessage(err) });
      return;
    }
    sendJson(res, 200, { sharing: opts.api.snapshot().status.sharing });
  }

  return Object.assign(handler, { close: () => sse.close() });
}

function allow(req: IncomingMessage, res: ServerResponse, methods: string[]): boolean {
  if (methods.includes(req.method ?? 'GET')) return true;
  res.setHeader('Allow', methods.join(', '));
  sendJson(res, 405, { error: `use ${methods.join(' or ')}` });
  req.resume();
  return false;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function sendText(res: ServerResponse, status: number, text: string, method: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(method === 'HEAD' ? undefined : text);
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
