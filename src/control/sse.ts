// Server-Sent Events for ApiChange. One subscription per client; a client that stops reading is
// dropped (its EventSource reconnects and refetches the snapshot) rather than buffered forever.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiChange, PeernixApi } from '../base/api.ts';
import { Busy, Unavailable } from '../cache/http-error.ts';

const MAX_BUFFERED_BYTES = 1 << 20;

export interface SseHub {
  open(req: IncomingMessage, res: ServerResponse): void;
  readonly clients: number;
  close(): void;
}

export function createSseHub(api: PeernixApi, opts: { heartbeatMs: number; maxStreams: number }): SseHub {
  const clients = new Set<() => void>();
  let closed = false;

  return {
    get clients() {
      return clients.size;
    },
    open(req, res) {
      if (closed) throw new Unavailable('Peernix is stopping', { retryAfterS: 5 });
      if (clients.size >= opts.maxStreams) throw new Busy('too many dashboard connections', { retryAfterS: 5 });
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      res.write('retry: 2000\n: connected\n\n');
      req.socket.setNoDelay(true);

      let done = false;
      const send = (chunk: string) => {
        if (done) return;
        res.write(chunk);
        if (res.writableLength > MAX_BUFFERED_BYTES) finish();
      };
      const unsubscribe = api.subscribe((change: ApiChange) => send(`data: ${JSON.stringify(change)}\n\n`));
      const heartbeat = setInterval(() => send(': ping\n\n'), opts.heartbeatMs);
      heartbeat.unref();
      const finish = () => {
        if (done) return;
        done = true;
        clearInterval(heartbeat);
        unsubscribe();
        clients.delete(finish);
        if (!res.writableEnded) res.end();
      };
      clients.add(finish);
      res.on('close', finish);
      res.on('error', finish);
    },
    close() {
      closed = true;
      for (const finish of [...clients]) finish();
    },
  };
}
