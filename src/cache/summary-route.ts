import type { IncomingMessage, ServerResponse } from 'node:http';
import { DELTA_TYPE, encodeDelta, SUMMARY_PATH, SUMMARY_TYPE, type SummaryDelta } from '../wire/summary-wire.ts';
import type { StoreSummary } from '../store/store-summary.ts';
import { send } from './cache-handler.ts';
import { markLongPoll } from './long-poll.ts';

// GET /peernix/summary on the share listener: this store's summary for peers.
//   no query                     the whole summary
//   ?epoch=E&since=G[&wait=S]    what was added after generation G of epoch E; if nothing yet, the
//                                answer waits up to S seconds (at most 25) for it, else 204.
//                                A summary rebuilt since (another epoch) or too far ahead comes whole.
// A waiting request holds a socket, so there are only a few per client address and a bound overall.

export interface SummaryRouteOptions {
  summary: StoreSummary;
  maxWaitMs?: number;
  maxWaitingPerAddress?: number;
  maxWaiting?: number;
}

const QUERY = /^epoch=([0-9a-f]{16})&since=(\d{1,10})(?:&wait=(\d{1,3}))?$/;

export function createSummaryRoute(opts: SummaryRouteOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const maxWaitMs = opts.maxWaitMs ?? 25_000;
  const perAddress = opts.maxWaitingPerAddress ?? 4;
  const maxWaiting = opts.maxWaiting ?? 256;
  const waiting = new Map<string, number>();
  let waitingTotal = 0;

  return (req, res) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== SUMMARY_PATH && path !== `/nix-cache${SUMMARY_PATH}`) return false;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return true;
    }
    const summary = opts.summary;
    if (!summary.ready) {
      send(res, 503, 'summary not ready\n', { 'Retry-After': '5' }, head);
      return true;
    }
    const query = q < 0 ? '' : url.slice(q + 1);
    if (query === '') {
      sendFull(res, head);
      return true;
    }
    const m = QUERY.exec(query);
    if (!m) {
      send(res, 404, 'not found\n', {}, head);
      return true;
    }
    const [epoch, since] = [m[1], Number(m[2])];
    const waitMs = Math.min(maxWaitMs, Number(m[3] ?? 0) * 1000);
    const delta = summary.deltaSince(epoch, since);
    if (!delta) {
      sendFull(res, head);
      return true;
    }
    if (delta.hashParts.length > 0 || waitMs === 0) {
      sendDelta(res, delta, head);
      return true;
    }

    const address = req.socket.remoteAddress ?? '';
    const mine = waiting.get(address) ?? 0;
    if (mine >= perAddress || waitingTotal >= maxWaiting) {
      send(res, 503, 'too many waiting summary requests\n', { 'Retry-After': '5' }, head);
      return true;
    }
    waiting.set(address, mine + 1);
    waitingTotal++;
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    markLongPoll(res);
    void summary.waitForChange(epoch, since, waitMs, gone.signal).then(() => {
      waitingTotal--;
      const left = (waiting.get(address) ?? 1) - 1;
      if (left > 0) waiting.set(address, left);
      else waiting.delete(address);
      if (gone.signal.aborted) return;
      const after = summary.deltaSince(epoch, since);
      if (!after) sendFull(res, head);
      else if (after.hashParts.length > 0) sendDelta(res, after, head);
      else send(res, 204, '', current(), head);
    });
    return true;
  };

  function sendDelta(res: ServerResponse, delta: SummaryDelta, head: boolean): void {
    send(res, 200, encodeDelta(delta), { 'Content-Type': DELTA_TYPE, ...current() }, head);
  }

  function current(): Record<string, string> {
    const c = opts.summary.current();
    return { 'X-Peernix-Summary': `${c.epoch}.${c.generation}`, 'Cache-Control': 'no-store' };
  }

  function sendFull(res: ServerResponse, head: boolean): void {
    const body = opts.summary.full()!;
    if (res.headersSent || res.destroyed) return;
    res.writeHead(200, { 'Content-Type': SUMMARY_TYPE, 'Content-Length': String(body.length), ...current() });
    res.end(head ? undefined : body);
  }
}
