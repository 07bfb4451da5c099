// SIGTERM/SIGINT for the daemon and the app: the first one asks for a graceful stop, a second one
// cuts it short.
//
// Why the listeners are taken over rather than added to: `when-exit` (which conf and electron-store
// brought in; any dependency may do the same) hooks SIGTERM, SIGINT and a dozen more with `process.once` when it is imported, runs
// its temp-file cleanup and then re-raises the same signal at this process. A listener of ours would
// therefore see every outside signal twice and take the first SIGTERM for "second SIGTERM: exit now".
// when-exit also runs the same cleanup on 'exit', which every shutdown path here reaches, so its
// SIGTERM/SIGINT hooks are removed and nothing is lost. Other signals keep their default behaviour.
const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
export type ShutdownSignal = (typeof SHUTDOWN_SIGNALS)[number];

/**
 * Calls `handler` once per outside SIGTERM/SIGINT with how many have arrived so far (1, 2, …).
 * Returns how many foreign listeners were removed and a function that removes ours.
 */
export function onShutdownSignals(handler: (signal: ShutdownSignal, count: number) => void): { removedForeign: number; dispose: () => void } {
  let count = 0;
  let removedForeign = 0;
  const ours = (signal: NodeJS.Signals) => handler(signal as ShutdownSignal, ++count);
  for (const sig of SHUTDOWN_SIGNALS) {
    for (const l of process.listeners(sig)) {
      process.removeListener(sig, l as (...a: unknown[]) => void);
      removedForeign++;
    }
    process.on(sig, ours);
  }
  return {
    removedForeign,
    dispose: () => {
      for (const sig of SHUTDOWN_SIGNALS) process.removeListener(sig, ours);
    },
  };
}

/** How long running transfers may take to finish after the first signal (or the app's Quit). */
export const SHUTDOWN_GRACE_MS = 10_000;
