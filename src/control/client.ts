// What the CLI (`peernix status`, `peernix sharing on|off`) uses to talk to a running Peernix over
// its loopback listener. Errors are turned into sentences a user can act on.
import type { NetworkAction, NetworkStatusView, NoticeId, ShareWhyView, Snapshot, TeamAction, TeamView } from '../base/api.ts';
import { CONTROL_API } from './contract.ts';
import { formatHostPort, parseHostPort } from '../base/listen-address.ts';

const TIMEOUT_MS = 5000;

export class ControlError extends Error {
  readonly status: number | null;
  constructor(message: string, status: number | null = null) {
    super(message);
    this.name = 'ControlError';
    this.status = status;
  }
}

/** "127.0.0.1:9998" or "[::1]:9998" (the `listen` setting) → "http://127.0.0.1:9998". */
export function baseUrlFromListen(listen: string): string {
  const hp = parseHostPort(listen);
  if (!hp) throw new ControlError(`not a HOST:PORT: ${JSON.stringify(listen)}`);
  return `http://${formatHostPort(hp.host, hp.port)}`;
}

function endpoint(baseUrl: string, p: keyof typeof CONTROL_API): string {
  return new URL(CONTROL_API[p], baseUrl).href;
}

export async function fetchSnapshot(baseUrl: string): Promise<Snapshot> {
  const url = endpoint(baseUrl, 'snapshot');
  const res = await send(baseUrl, url, { method: 'GET' }, TIMEOUT_MS);
  const body = parseJson(res.body, url);
  if (res.status !== 200) throw new ControlError(explain(res.status, body, url), res.status);
  if (!isSnapshot(body)) throw new ControlError(`${url} did not return a Peernix snapshot`);
  return body;
}

/** Turns sharing on or off; resolves to the sharing state the server reports afterwards. */
export async function setSharing(baseUrl: string, token: string, on: boolean): Promise<boolean> {
  // A switch may wait for the listener to bind or close (and running transfers to be cut).
  return postForBoolean(baseUrl, token, 'sharing', { enabled: on }, 'sharing', 30_000);
}

/** Forgets that a peer served wrong bytes; resolves whether it was marked. */
export async function clearPeerBad(baseUrl: string, token: string, id: string): Promise<boolean> {
  return postForBoolean(baseUrl, token, 'peerClearBad', { id }, 'cleared', TIMEOUT_MS);
}

/** Trusts, forgets or dismisses a network; resolves to the network status afterwards. */
export async function networkAction(baseUrl: string, token: string, action: NetworkAction): Promise<NetworkStatusView> {
  const url = endpoint(baseUrl, 'network');
  // Trusting may wait for the share listener to bind.
  const res = await send(
    baseUrl,
    url,
    { method: 'POST', body: JSON.stringify(action), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
    30_000,
  );
  const reply = parseJson(res.body, url);
  if (res.status !== 200) throw new ControlError(explain(res.status, reply, url), res.status);
  const view = reply as NetworkStatusView | null;
  if (typeof view !== 'object' || view === null || !Array.isArray(view.trustedNetworks)) throw new ControlError(`${url} gave an unexpected answer`);
  return view;
}

/** Adds or removes a team member; resolves to the team afterwards. */
export async function teamAction(baseUrl: string, token: string, action: TeamAction): Promise<TeamView> {
  const reply = await postJson(baseUrl, token, 'team', action, TIMEOUT_MS);
  const view = reply as TeamView | null;
  if (typeof view !== 'object' || view === null || !Array.isArray(view.members))
    throw new ControlError(`${endpoint(baseUrl, 'team')} gave an unexpected answer`);
  return view;
}

/** A path's scope and who would get it; null when the store does not hold it. */
export async function shareWhy(baseUrl: string, pathOrHash: string): Promise<ShareWhyView | null> {
  const url = `${endpoint(baseUrl, 'shareWhy')}?path=${encodeURIComponent(pathOrHash)}`;
  const res = await send(baseUrl, url, { method: 'GET' }, TIMEOUT_MS);
  const body = parseJson(res.body, url);
  if (res.status === 404 && typeof (body as { error?: unknown } | null)?.error === 'string' && /does not hold/.test((body as { error: string }).error))
    return null;
  if (res.status !== 200) throw new ControlError(explain(res.status, body, url), res.status);
  const v = body as ShareWhyView | null;
  if (typeof v !== 'object' || v === null || typeof v.scope !== 'string' || typeof v.why !== 'string')
    throw new ControlError(`${url} gave an unexpected answer`);
  return v;
}

/** Says the user read a one-time notice. */
export async function noticeSeen(baseUrl: string, token: string, id: NoticeId): Promise<void> {
  await postJson(baseUrl, token, 'notice', { seen: id }, TIMEOUT_MS);
}

/** POSTs a change with the control token; resolves to the reply, or throws the server's reason. */
async function postJson(baseUrl: string, token: string, route: keyof typeof CONTROL_API, body: object, timeoutMs: number): Promise<unknown> {
  const url = endpoint(baseUrl, route);
  const res = await send(
    baseUrl,
    url,
    { method: 'POST', body: JSON.stringify(body), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
    timeoutMs,
  );
  const reply = parseJson(res.body, url);
  if (res.status !== 200) throw new ControlError(explain(res.status, reply, url), res.status);
  return reply;
}

/** POSTs a change with the control token; resolves to the boolean field `answer` of the reply. */
async function postForBoolean(
  baseUrl: string,
  token: string,
  route: keyof typeof CONTROL_API,
  body: object,
  answer: string,
  timeoutMs: number,
): Promise<boolean> {
  const url = endpoint(baseUrl, route);
  const res = await send(
    baseUrl,
    url,
    { method: 'POST', body: JSON.stringify(body), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
    timeoutMs,
  );
  const reply = parseJson(res.body, url);
  if (res.status !== 200) throw new ControlError(explain(res.status, reply, url), res.status);
  const value = (reply as Record<string, unknown> | null)?.[answer];
  if (typeof value !== 'boolean') throw new ControlError(`${url} gave an unexpected answer`);
  return value;
}

/** One request to the loopback listener, its whole body read within `timeoutMs`; no redirects, no retries. */
async function send(baseUrl: string, url: string, init: RequestInit, timeoutMs: number): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    if (e.name === 'TimeoutError') throw new ControlError(`Peernix at ${baseUrl} did not answer in time`);
    if (e.cause?.code === 'ECONNREFUSED') {
      throw new ControlError(`Peernix is not running at ${baseUrl} (connection refused). Start it with \`peernix serve\` or the app.`);
    }
    throw new ControlError(`cannot reach Peernix at ${baseUrl}: ${e.cause?.code ?? e.message}`);
  }
}

function parseJson(text: string, url: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ControlError(`${url} did not answer with JSON; is something else listening there?`);
  }
}

function explain(status: number, body: unknown, url: string): string {
  const detail = typeof (body as { error?: unknown } | null)?.error === 'string' ? (body as { error: string }).error : '';
  if (status === 403) return `Peernix refused the request: ${detail || 'forbidden'} (is this the right state directory's control token?)`;
  return `${url} answered ${status}${detail ? `: ${detail}` : ''}`;
}

function isSnapshot(v: unknown): v is Snapshot {
  const s = v as Snapshot | null;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s.status === 'object' &&
    s.status !== null &&
    Array.isArray(s.peers) &&
    Array.isArray(s.entries) &&
    Array.isArray(s.events)
  );
}
