import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../base/log.ts';
import { formatHostPort, isLoopbackHost } from '../base/listen-address.ts';
import { allowedHost, normaliseHosts } from '../base/host-header.ts';
import { DEFAULT_LIMITS } from './limits.ts';
import { Forbidden, writeError } from './http-error.ts';
import { isLongPoll } from './long-poll.ts';
import { WireStallWatch } from './wire-stall.ts';
import type { Clock } from '../base/clock.ts';
import { acceptTlsToo, type TlsIdentity } from './tls-sniff.ts';

// One HTTP listener with the limits a LAN-facing server needs: small headers, bounded idle and header
// time, a response that stalls is cut, and a stop that lets transfers finish for a moment and then
// cuts them.

export interface HttpListener {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  readonly url: string;
  close(graceMs?: number): Promise<void>;
  /** Cuts every open connection at once (sharing turned off). */
  cutAll(): void;
  /** The watch that cuts responses whose client stopped taking bytes. */
  readonly stalls: Pick<WireStallWatch, 'checks' | 'size'>;
  /** Connections accepted so far, per event loop serving the port (one, unless spread over threads). */
  accepted(): Promise<number[]>;
}

export interface ListenOptions {
  host: string;
  port: number;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  log: Logger;
  /** Answer only peers on loopback, whatever address the socket was bound to. */
  loopbackOnly?: boolean;
  /**
   * Answer only requests whose Host names this listener on loopback (127.0.0.1, localhost, [::1] with
   * its port), on every route: a web page that rebinds its own name to 127.0.0.1 gets nothing.
   */
  pinLoopbackHost?: boolean;
  /** Cut a connection whose socket neither takes nor gives a byte for this long (default 60 s). */
  stallMs?: number;
  /** Drives the stall watch (tests). */
  clock?: Clock;
  /** Also accept TLS on the same port (the team channel), with this certificate. */
  tls?: TlsIdentity;
  /** Share the port with other listeners of this process (SO_REUSEPORT; Linux): the kernel spreads connections over them. */
  reusePort?: boolean;
}

/** The Host values a loopback listener on this port answers to (Nix sends "127.0.0.1:PORT"). */
export function loopbackHostNames(port: number): string[] {
  const names = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  // Clients leave the default port out of Host.
  return port === 80 ? [...names, '127.0.0.1', 'localhost', '[::1]'] : names;
}

export const MAX_HEADER_BYTES = 16 * 1024;

export async function listen(opts: ListenOptions): Promise<HttpListener> {
  const sockets = new Set<Socket>();
  let hosts: Set<string> | null = null; // set once the port is known
  const stalls = new WireStallWatch({
    stallMs: opts.stallMs ?? DEFAULT_LIMITS.stallMs,
    clock: opts.clock,
    onCut: ({ res, idleMs, acked, waiting }) =>
      opts.log.debug(`${res.req.method} ${res.req.url}: cut, its client took no bytes for ${idleMs} ms (${acked} taken, ${waiting} waiting)`),
  });
  const server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: 15_000,
      requestTimeout: 60_000,
      keepAliveTimeout: 30_000,
      noDelay: true,
    },
    (req, res) => {
      if (opts.loopbackOnly && !isLoopbackAddress(req.socket.remoteAddress)) {
        req.socket.destroy();
        return;
      }
      if (opts.pinLoopbackHost && !(hosts && allowedHost(req, hosts))) {
        writeError(res, new Forbidden('this Host is not allowed: the substituter answers only on its own loopback address', { Connection: 'close' }));
        return;
      }
      stalls.watch(res);
      try {
        opts.handler(req, res);
      } catch (e) {
        opts.log.error(`handler crashed: ${(e as Error).stack ?? e}`);
        writeError(res, e);
      }
    },
  );
  if (opts.tls) acceptTlsToo(server, opts.tls);
  // A request may hold a NAR for many minutes (requestTimeout covers only receiving the request), but
  // not without progress. The stall watch (wire-stall.ts) judges a response by what its client takes;
  // this timeout still ends a socket idle in both directions (Node pushes it back whenever the kernel
  // takes a few bytes, so it is no judge of a reader that stopped).
  server.timeout = opts.stallMs ?? DEFAULT_LIMITS.stallMs;
  server.maxHeadersCount = 64;
  let accepted = 0;
  // Node's idle timer cuts a connection where nothing moved either way (what Node does on its own,
  // said in the log), except a response with bytes waiting for its client: the kernel may be taking
  // them where Node cannot see it, and the wire-stall watch judges that by what the client acknowledged.
  server.on('timeout', (s: Socket) => {
    if (stalls.judges(s)) return;
    opts.log.debug(`connection from ${s.remoteAddress}: cut, nothing moved either way for ${server.timeout} ms`);
    s.destroy();
  });
  server.on('connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'HPE_HEADER_OVERFLOW' && socket.writable) {
      socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    } else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port, ...(opts.reusePort ? { reusePort: true } : {}) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => opts.log.error(`listener ${opts.host}:${opts.port}: ${e.message}`));
  const port = (server.address() as AddressInfo).port;
  const urlHost = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
  // Any loopback address may be bound (127.0.0.2 …): its own URL must be answered too.
  if (opts.pinLoopbackHost) hosts = normaliseHosts([...loopbackHostNames(port), formatHostPort(urlHost, port)]);
  let closing: Promise<void> | null = null;

  return {
    server,
    host: opts.host,
    port,
    url: `http://${formatHostPort(urlHost, port)}`,
    stalls,
    accepted: async () => [accepted],
    cutAll() {
      for (const s of sockets) s.destroy();
    },
    close(graceMs = 3000) {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => {
          stalls.close();
          resolve();
        });
        server.closeIdleConnections();
        // A held long poll is not a transfer: it would keep an idle stop waiting for the whole grace.
        for (const s of sockets) if (isLongPoll(s)) s.destroy();
        const timer = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, graceMs);
        timer.unref();
        server.once('close', () => clearTimeout(timer));
      });
      return closing;
    },
  };
}

export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return isLoopbackHost(a);
}
