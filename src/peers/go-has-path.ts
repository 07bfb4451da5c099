import dgram from 'node:dgram';
import net from 'node:net';
import { encodeHasPath, isGoNotFound, isGoYes } from '../wire/go-udp.ts';

// Asks a Go peernix over UDP whether it holds a path, as Go hosts ask each other (go-udp.ts). Its
// narinfo takes five nix-store runs, its UDP answer one. So a "yes" is the early sign that a slow
// narinfo is a hit on its way, worth waiting for; today's Go (e74df7c) answers a miss "not_found",
// a definitive miss from its own store (its narinfo would only proxy its peers, which we ask
// ourselves); the older 93fc511 stays silent, and its silence is taken as a miss.

/** Sends again once, in case the first datagram was lost (Wi-Fi). */
const RESEND_MS = 250;

/**
 * Resolves with ms until the peer said "yes", 'not-found' when it said "not_found", or null once
 * `signal` aborts first (or the socket fails).
 */
export function askGoHasPath(address: string, port: number, hashPart: string, signal: AbortSignal): Promise<number | 'not-found' | null> {
  if (signal.aborted) return Promise.resolve(null);
  const question = encodeHasPath(hashPart);
  const t0 = performance.now();
  return new Promise((resolve) => {
    // A connected socket: only datagrams from that address and port reach it.
    const sock = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (ms: number | 'not-found' | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      sock.close();
      resolve(ms);
    };
    const onAbort = () => finish(null);
    signal.addEventListener('abort', onAbort, { once: true });
    const send = () => sock.send(question, (err) => err && finish(null));
    sock.on('error', () => finish(null)); // ICMP port unreachable and the like: no answer coming
    sock.on('message', (msg) => {
      if (isGoYes(msg)) finish(performance.now() - t0);
      else if (isGoNotFound(msg)) finish('not-found');
    });
    sock.connect(port, address, () => {
      if (done) return;
      send();
      timer = setTimeout(send, RESEND_MS);
    });
  });
}
