import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

// Which connections are held by a long poll: a request that waits for news (a peer's summary wait)
// rather than moves bytes. A stop lets running transfers finish for a grace period; a held poll is not
// a transfer, and waiting for it kept an idle instance followed by its peers alive for the whole grace.
// The listener cuts these at once when it closes.

const held = new WeakSet<Socket>();

/** The response is a long poll until it ends. */
export function markLongPoll(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  held.add(socket);
  res.once('close', () => held.delete(socket));
  res.once('finish', () => held.delete(socket));
}

export function isLongPoll(socket: Socket): boolean {
  return held.has(socket);
}
