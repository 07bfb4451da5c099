import { connect } from 'node:net';

// Tells a cut link from a busy peer, fast. A peer's kernel completes a TCP handshake however busy
// its Peernix is (a wedged daemon, a loaded laptop), but nothing answers once its link is gone or
// its lid is closed. So a lookup left unanswered for a few round trips is settled by a connect.

/** Whether a TCP connection to host:port opens within timeoutMs. Never throws. */
export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    timer.unref();
    socket.once('connect', () => done(true));
    // A refusal is an answer from the host (the process is gone, not the link), but it is no
    // lookup answer either: only a completed handshake counts as reachable.
    socket.once('error', () => done(false));
  });
}
