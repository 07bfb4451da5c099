// Running a command to completion with a time limit, collecting its output.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { nixEnv } from './nix-env.ts';

export interface RunOptions {
  /** Bytes for stdin (closed after writing). */
  input?: string | Buffer;
  /** Kill the command after this long. Default 120 s. */
  timeoutMs?: number;
  /** Extra environment (undefined deletes a variable). */
  env?: Record<string, string | undefined>;
  /** Throw (with stderr in the message) when the exit code is not 0. Default false. */
  check?: boolean;
  /** For host.nix/nixStore: talk to the store directly (default) or through the daemon socket. */
  via?: 'root' | 'daemon';
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Run a command to completion, collecting its output. Killed by pid on timeout. */
export async function run(cmd: string, args: string[], opts: RunOptions & { baseEnv?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const env = { ...(opts.baseEnv ?? nixEnv()) };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const child = spawn(cmd, args, { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => {}); // the command may exit without reading its input
  child.stdin.end(opts.input ?? '');
  const timeoutMs = opts.timeoutMs ?? 120_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid) process.kill(child.pid, 'SIGKILL');
  }, timeoutMs);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  const res: RunResult = { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code, signal };
  if (timedOut) throw new Error(`${cmd} ${args.join(' ')}: timed out after ${timeoutMs} ms\n${res.stderr}`);
  if (opts.check && code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')}: exit ${code ?? signal}\n${res.stderr}`);
  }
  return res;
}
