import { spawn, type ChildProcess } from 'node:child_process';

// A busy machine for a test: `count` shell busy-loops, each bounded by timeout(1) and killed by its
// own pid when the test is done (never by name: other people's processes share this machine).

export interface CpuHogs {
  stop(): Promise<void>;
}

export function startCpuHogs(count = 2, maxSeconds = 120): CpuHogs {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < count; i++) hogs.push(spawn('timeout', [String(maxSeconds), 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
  return {
    async stop() {
      await Promise.all(
        hogs.map(
          (h) =>
            new Promise<void>((resolve) => {
              if (h.exitCode !== null || h.signalCode !== null) return resolve();
              h.once('exit', () => resolve());
              h.kill('SIGKILL');
            }),
        ),
      );
    },
  };
}
