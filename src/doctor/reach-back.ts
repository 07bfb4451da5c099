import http from 'node:http';
import { Forbidden, sendBody, TooOften } from '../cache/http-error.ts';
import type { RouteHandler } from '../cache/route-table.ts';
import { REACH_BACK_PATH } from '../cache/routes.ts';

// "Is my share listener reachable from the LAN?" can't be answered from the host itself (its own
// connection goes over loopback). So a Peernix may ask a peer to connect back: the peer tries
// GET /nix-cache-info on the asker's share listener and says whether it got there.
//
// LAN-facing, so it is made harmless: the peer connects only to the address the request came from
// (never one the request names), only to the port that address announced as its share listener
// (a known peer), once per address per minute, a few at a time, with a short deadline; the answer
// says nothing but reachable or not and why.

export { REACH_BACK_PATH };

export interface ReachBackAnswer {
  reachable: boolean;
  detail: string;
}

export interface ReachBackRouteOptions {
  /** The share port the peer at this address announced, or null when no such peer is known. */
  portOf: (address: string) => number | null;
  perAddressMs?: number;
  maxConcurrent?: number;
  timeoutMs?: number;
  now?: () => number;
}

const MAX_REMEMBERED = 1024;

/** The handler for GET /peernix/reach-back on the share listener. */
export function createReachBackHandler(opts: ReachBackRouteOptions): RouteHandler {
  const perAddressMs = opts.perAddressMs ?? 60_000;
  const maxConcurrent = opts.maxConcurrent ?? 4;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const now = opts.now ?? Date.now;
  const lastAsked = new Map<string, number>();
  let running = 0;

  return (req, res) => {
    const raw = req.socket.remoteAddress ?? '';
    const address = raw.startsWith('::ffff:') ? raw.slice(7) : raw;
    const port = opts.portOf(address);
    if (port === null) throw new Forbidden('only a known peer may ask, and only about itself');
    const t = now();
    const last = lastAsked.get(address);
    if ((last !== undefined && t - last < perAddressMs) || running >= maxConcurrent) {
      throw new TooOften('asked too often; try again later', Math.ceil(perAddressMs / 1000));
    }
    lastAsked.delete(address);
    lastAsked.set(address, t);
    if (lastAsked.size > MAX_REMEMBERED) lastAsked.delete(lastAsked.keys().next().value!);
    running++;
    void tryConnect(address, port, timeoutMs)
      .then((answer) => sendBody(res, JSON.stringify(answer), { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }))
      .finally(() => running--);
  };
}

async function tryConnect(address: string, port: number, timeoutMs: number): Promise<ReachBackAnswer> {
  const host = address.includes(':') ? `[${address}]` : address;
  const where = `http://${host}:${port}/nix-cache-info`;
  try {
    const res = await fetch(where, { headers: { 'User-Agent': 'peernix-reach-back' }, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    // Only the status matters: the body is not read.
    await res.body?.cancel();
    const ok = res.status === 200;
    return { reachable: ok, detail: ok ? `connected to ${where}` : `${where} answered ${res.status}` };
  } catch (e) {
    if ((e as Error).name === 'TimeoutError') return { reachable: false, detail: `no answer from ${where} within ${timeoutMs} ms (a firewall dropping it?)` };
    const err = e as Error & { cause?: { code?: string; message?: string } };
    return { reachable: false, detail: `could not connect to ${where}: ${err.cause?.code ?? err.cause?.message ?? err.message}` };
  }
}

/** Asks a peer to connect back to this host's share listener; null when it can't or won't say. */
export async function askReachBack(peerUrl: string, timeoutMs = 4000): Promise<ReachBackAnswer | null> {
  try {
    const res = await fetch(new URL(REACH_BACK_PATH, peerUrl), { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
    if (res.status !== 200) return null;
    const text = await res.text();
    if (text.length > 4096) return null;
    const body = JSON.parse(text) as Partial<ReachBackAnswer>;
    if (typeof body.reachable !== 'boolean' || typeof body.detail !== 'string') return null;
    return { reachable: body.reachable, detail: body.detail.slice(0, 300) };
  } catch {
    return null;
  }
}
