import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeernixMetrics } from './metrics.ts';

// GET /metrics: the Prometheus text format. Whoever may reach the listener it is mounted on may read
// it (the loopback listener always; the share listener only with the metricsOnShare setting).

export const METRICS_PATH = '/metrics';

export function createMetricsRoute(metrics: PeernixMetrics, log: { warn(m: string): void }): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url ?? '';
    if (url !== METRICS_PATH && !url.startsWith(METRICS_PATH + '?')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return true;
    }
    metrics.text().then(
      (text) => {
        if (res.destroyed) return;
        const body = Buffer.from(text);
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': String(body.length), 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: unknown) => {
        log.warn(`metrics: ${(e as Error).message}`);
        if (res.headersSent || res.destroyed) return;
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('metrics unavailable\n');
      },
    );
    return true;
  };
}
