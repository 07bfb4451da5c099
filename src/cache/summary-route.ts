import type { ServerResponse } from 'node:http';
import { DELTA_TYPE, encodeDelta, SUMMARY_TYPE, type SummaryDelta } from '../wire/summary-wire.ts';
import type { StoreSummary } from '../store/store-summary.ts';
import { Busy, NotFound, sendBody, Unavailable } from './http-error.ts';
import type { RouteHandler } from './route-table.ts';
import { markLongPoll } from './long-poll.ts';
import type { AskerClass } from './asker-class.ts';

// GET /peernix/summary (and /nix-cache/peernix/summary) on the share listener: this store's summary for peers.
//   no query                     the whole summary
//   ?epoch=E&since=G[&wait=S]    what was added after generation G of epoch E; if nothing yet, the
//                                answer waits up to S seconds (at most 55) for it, else 204.
//                                A summary rebuilt since (another epoch) or too far ahead comes whole.
// A waiting request holds a socket, so there are only a few per client address and a bound overall.

export interface SummaryRouteOptions {
  /** The summary this asker may see (scoped-summaries.ts: a stranger's admits public paths only). */
  summary: StoreSummary | ((asker: AskerClass) => StoreSummary);
  maxWaitMs?: number;
  maxWaitingPerAddress?: number;
  maxWaiting?: number;
}

/**
 * The longest a summary request may wait for news: room for the 45 s followers ask (peer-summaries.ts,
 * #26 idle cost), under the listener's 60 s cut of a connection where nothing moves (limits.ts).
 */
export const MAX_SUMMARY_WAIT_MS = 55_000;

const QUERY = /^epoch=([0-9a-f]{16})&since=(\d{1,10})(?:&wait=(\d{1,3}))?$/;

export function createSummaryHandler(opts: SummaryRouteOptions): RouteHandler {
  const maxWaitMs = opts.maxWaitMs ?? MAX_SUMMARY_WAIT_MS;
  const perAddress = opts.maxWaitingPerAddress ?? 4;
  const maxWaiting = opts.maxWaiting ?? 256;
  const waiting = new Map<string, number>();
  let waitingTotal = 0;

  return (req, res, m) => {
    const head = m.head;
    const summary = typeof opts.summary === 'function' ? opts.summary(m.asker) : opts.summary;
    if (!summary.ready) throw new Unavailable('summary not ready', { retryAfterS: 5 });
    if (m.query === '') return sendFull(summary, res, head);
    const q = QUERY.exec(m.query);
    if (!q) throw new NotFound();
    const [epoch, since] = [q[1], Number(q[2])];
    const waitMs = Math.min(maxWaitMs, Number(q[3] ?? 0) * 1000);
    const delta = summary.deltaSince(epoch, since);
    if (!delta) return sendFull(summary, res, head);
    if (delta.hashParts.length > 0 || waitMs === 0) return sendDelta(summary, res, delta, head);

    const address = req.socket.remoteAddress ?? '';
    const mine = waiting.get(address) ?? 0;
    if (mine >= perAddress || waitingTotal >= maxWaiting) throw new Busy('too many waiting summary requests', { retryAfterS: 5 });
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
      if (!after) sendFull(summary, res, head);
      else if (after.hashParts.length > 0) sendDelta(summary, res, after, head);
      else sendBody(res, '', current(summary), { head, status: 204 });
    });
  };

  function sendDelta(summary: StoreSummary, res: ServerResponse, delta: SummaryDelta, head: boolean): void {
    sendBody(res, encodeDelta(delta), { 'Content-Type': DELTA_TYPE, ...current(summary) }, { head });
  }

  function current(summary: StoreSummary): Record<string, string> {
    const c = summary.current();
    return { 'X-Peernix-Summary': `${c.epoch}.${c.generation}`, 'Cache-Control': 'no-store' };
  }

  function sendFull(summary: StoreSummary, res: ServerResponse, head: boolean): void {
    sendBody(res, summary.full()!, { 'Content-Type': SUMMARY_TYPE, ...current(summary) }, { head });
  }
}
