import { spawn, type ChildProcess } from 'node:child_process';

// A busy machine for a test: `count` busy-loops, each bounded by timeout(1) and stopped by its own pid
// when the test is done (never by name: other people's processes share this machine). Each loop runs
// in its own process group, and the whole group is signalled: SIGKILL to timeout(1) alone would leave
// its shell spinning, orphaned, for good.

export interface CpuHogs {
  stop(): Promise<void>;
  /** At once, for a process about to exit (no waiting possible): SIGKILL to each hog's group. */
  killNow(): void;
}

export function startCpuHogs(count = 2, maxSeconds = 120): CpuHogs {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < count; i++) hogs.push(spawn('timeout', [String(maxSeconds), 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore', detached: true }));
  return {
    killNow() {
      for (const h of hogs)
        if (h.exitCode === null && h.signalCode === null && h.pid !== undefined)
          try {
            process.kill(-h.pid, 'SIGKILL');
          } catch {
            // already gone
          }
    },
    async stop() {
      await Promise.all(
        hogs.map(
          (h) =>
            new Promise<void>((resolve) => {
              if (h.exitCode !== null || h.signalCode !== null || h.pid === undefined) return resolve();
              h.once('exit', () => resolve());
              try {
                process.kill(-h.pid, 'SIGKILL'); // timeout(1) and its shell: the group led by this pid
              } catch {
                h.kill('SIGKILL');
              }
            }),
        ),
      );
    },
  };
}
