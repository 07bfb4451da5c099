import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

// Runs `peernix` as a real child process (the same entry point users run) and finds its listeners
// from its log lines, so tests can use port 0 and never collide.

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = `${PROJECT_ROOT}src/cli/main.ts`;
/** The bundle users run (npm run build); benchmarks measure this one. */
export const BUILT_MAIN = `${PROJECT_ROOT}dist/cli/peernix.js`;

export interface PeernixProcess {
  proc: ChildProcess;
  substituterUrl: string;
  shareUrl: string | null;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startPeernixProcess(
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    wrap?: (cmd: string, args: string[]) => [string, string[]];
    main?: string;
    /** Share only on trusted networks, as a fresh install does; by default test hosts trust every network. */
    trustedNetworksOnly?: boolean;
  } = {},
): Promise<PeernixProcess> {
  const cmdArgs = [opts.main ?? MAIN, 'serve', ...(opts.trustedNetworksOnly ? [] : ['--trust-all-networks']), ...args];
  const [cmd, finalArgs] = opts.wrap ? opts.wrap(process.execPath, cmdArgs) : [process.execPath, cmdArgs];
  const proc = spawn(cmd, finalArgs, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  const exited = once(proc, 'exit');
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let substituterUrl: string | null = null;
  let shareUrl: string | null = null;
  while (Date.now() < deadline) {
    substituterUrl = /substituter for this machine's Nix on (http:\/\/\S+)/.exec(log)?.[1] ?? null;
    shareUrl = /sharing this store on (http:\/\/\S+)/.exec(log)?.[1] ?? null;
    if (/ready; public key/.test(log) && substituterUrl) break;
    if (proc.exitCode !== null) throw new Error(`peernix exited with ${proc.exitCode}:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!substituterUrl) {
    proc.kill('SIGKILL');
    throw new Error(`peernix did not become ready:\n${log}`);
  }
  return {
    proc,
    substituterUrl,
    shareUrl: shareUrl?.replace('://0.0.0.0:', '://127.0.0.1:') ?? null,
    logs: () => log,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const [code] = (await exited) as [number | null];
      clearTimeout(timer);
      return code;
    },
  };
}
