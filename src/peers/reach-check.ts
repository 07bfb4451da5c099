import { connect } from 'node:net';
import { settleOnce } from '../base/settle-once.ts';

// Tells a cut link from a busy peer, fast. A peer's kernel completes a TCP handshake however busy
// its Peernix is (a wedged daemon, a loaded laptop), but nothing answers once its link is gone or
// its lid is closed. So a lookup left unanswered for a few round trips is settled by a connect.

/** Whether a TCP connection to host:port opens within timeoutMs. Never throws. */
export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return settleOnce({ ms: timeoutMs, onTimeout: () => false, unref: true }, (settle) => {
    const socket = connect({ host, port });
    socket.once('connect', () => settle(true));
    // A refusal is an answer from the host (the process is gone, not the link), but it is no
    // lookup answer either: only a completed handshake counts as reachable.
    socket.on('error', () => settle(false));
    return () => socket.destroy();
  });
}
