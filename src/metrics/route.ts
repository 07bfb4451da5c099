import { HttpError, sendBody } from '../cache/http-error.ts';
import type { RouteHandler } from '../cache/route-table.ts';
import type { PeernixMetrics } from './metrics.ts';

// GET /metrics: the Prometheus text format. Whoever may reach the listener it is mounted on may read
// it (the loopback listener always; the share listener only with the metricsOnShare setting).

export function createMetricsHandler(metrics: PeernixMetrics): RouteHandler {
  return async (_req, res, m) => {
    let text: string;
    try {
      text = await metrics.text();
    } catch (e) {
      throw new HttpError('internal', 'metrics unavailable', { logMessage: `metrics: ${(e as Error).message}` });
    }
    sendBody(res, text, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' }, { head: m.head });
  };
}
