import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, parseSecretKey } from '../../src/nix/signing.ts';

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
    /**
     * Share by scope as a fresh install does (public paths to anonymous askers). By default a test
     * host lists its own identity key in publicKeys, so everything it serves is public, as before
     * scopes: most tests share unsigned `nix-store --add` paths with a Nix or curl pointed straight at
     * the share port, which no team membership could reach. Scope tests set this.
     */
    scoped?: boolean;
  } = {},
): Promise<PeernixProcess> {
  const own = opts.scoped || args.includes('--public-key') ? null : ownPublicKey(args, opts.env);
  // PEERNIX_E2E_SHARE_THREADS=N: every host serves its share port on N worker threads too (app/share-loops.ts).
  const threads = process.env.PEERNIX_E2E_SHARE_THREADS && !args.includes('--share-threads') ? ['--share-threads', process.env.PEERNIX_E2E_SHARE_THREADS] : [];
  const cmdArgs = [
    opts.main ?? MAIN,
    'serve',
    ...(opts.trustedNetworksOnly ? [] : ['--trust-all-networks']),
    ...(own ? ['--public-key', own] : []),
    ...threads,
    ...args,
  ];
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

function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i === -1 ? undefined : args[i + 1];
}

/**
 * The identity key the host will run with, public half: its --secret-key-file, else the key in its
 * state directory, made there now (as `peernix serve` would make it, owned like the directory's
 * parent, so a host run as another user can read it) when there is none yet.
 */
function ownPublicKey(args: string[], env: NodeJS.ProcessEnv | undefined): string | null {
  const keyFile = argValue(args, '--secret-key-file');
  if (keyFile) return parseSecretKey(readFileSync(keyFile, 'utf8')).publicKey.text;
  const stateDir = argValue(args, '--state-dir') ?? env?.PEERNIX_STATE_DIR;
  if (!stateDir) return null;
  const file = join(stateDir, 'secret-key');
  if (existsSync(file)) return parseSecretKey(readFileSync(file, 'utf8')).publicKey.text;
  const owner = statSync(existsSync(stateDir) ? stateDir : dirname(stateDir));
  if (!existsSync(stateDir)) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    chownSync(stateDir, owner.uid, owner.gid);
  }
  const pair = generateKeyPair(
    `${
      hostname()
        .split('.')[0]
        .replace(/[^A-Za-z0-9-]/g, '-')
        .slice(0, 40) || 'peernix'
    }-peernix-1`,
  );
  writeFileSync(file, pair.secretKeyText, { mode: 0o600 });
  writeFileSync(join(stateDir, 'public-key'), pair.publicKeyText, { mode: 0o644 });
  for (const f of [file, join(stateDir, 'public-key')]) chownSync(f, owner.uid, owner.gid);
  return pair.publicKeyText;
}
