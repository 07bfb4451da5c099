// Test support: a throwaway Nix host running a modern Nix — Debian sid's Nix 2.34 or trixie's 2.26 —
// from a root made once per machine by scripts/nix-root.sh (debootstrap, kept in
// /var/cache/peernix-test). Each host is its own small chroot: the cached root's /usr bound read-only,
// its own copy of /etc (for nix.conf), its own /nix (the store and the daemon's socket), and /proc and
// /dev mounted for Nix. Its nix-daemon and every client command run inside the chroot, so the store
// is an ordinary /nix/store there, and Peernix (outside) reaches it as `unix://<socket>?root=<root>`.
// Nothing here touches the machine's own /nix. Mounts are undone with `umount -l` on stop.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { PROJECT_ROOT } from './peernix-process.ts';
import { run, type RunOptions, type RunResult } from './run.ts';
import { onCleanup } from './temp-dir.ts';

export type ModernSuite = 'sid' | 'trixie';

/** The cached root for a Debian suite, made by scripts/nix-root.sh when the machine has none yet. */
export async function modernNixRoot(suite: ModernSuite): Promise<string> {
  const r = await run('sh', [`${PROJECT_ROOT}scripts/nix-root.sh`, suite], { timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`scripts/nix-root.sh ${suite} failed:\n${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!;
}

export interface ModernNixHost {
  readonly suite: ModernSuite;
  /** The chroot: the store is at root + '/nix/store'. */
  readonly root: string;
  readonly socket: string;
  /** For Peernix: the daemon plus where its files are. */
  readonly storeUri: string;
  /** `nix --version` inside the chroot. */
  readonly version: string;
  /** Any command inside the chroot (paths are the chroot's), with the tests' Nix settings. */
  exec(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** A file inside the chroot, as seen from outside. */
  outside(p: string): string;
  daemonLog(): string;
  stop(): Promise<void>;
}

const live = new Set<ModernNixHost>();
onCleanup(async (abs) => {
  for (const h of [...live]) if (h.root.startsWith(abs + path.sep)) await h.stop();
  // cleanup() removes the directory next: never while the machine's /dev or the cached /usr is
  // mounted inside it.
  const left = mountsUnder(abs);
  if (left.length > 0) throw new Error(`still mounted under ${abs}, not removing it: ${left.join(', ')}`);
});

function mountsUnder(dir: string): string[] {
  const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  return lines.map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(dir + path.sep));
}

const BASE_CONF = [
  'build-users-group =',
  'sandbox = false',
  'experimental-features = nix-command ca-derivations',
  'substituters =',
  'fsync-metadata = false',
  'trusted-users = root',
  'warn-dirty = false',
];

/**
 * A chroot host under `dir` from the suite's cached root, with its nix-daemon running.
 * `conf`: extra nix.conf lines (the daemon and the clients in the chroot read the same file).
 */
export async function startModernNixHost(dir: string, suite: ModernSuite, conf: string[] = []): Promise<ModernNixHost> {
  const cached = await modernNixRoot(suite);
  const root = path.join(path.resolve(dir), 'root');
  const mounted: string[] = [];
  for (const d of ['usr', 'proc', 'dev', 'tmp', 'root', 'nix', 'var/tmp', 'run']) await fsp.mkdir(path.join(root, d), { recursive: true });
  await fsp.chmod(path.join(root, 'tmp'), 0o1777);
  await fsp.cp(path.join(cached, 'etc'), path.join(root, 'etc'), { recursive: true, verbatimSymlinks: true });
  for (const l of ['bin', 'lib', 'lib64', 'sbin']) await fsp.symlink(`usr/${l}`, path.join(root, l));
  await fsp.mkdir(path.join(root, 'etc/nix'), { recursive: true });
  await fsp.writeFile(path.join(root, 'etc/nix/nix.conf'), [...BASE_CONF, ...conf].join('\n') + '\n');
  const mount = async (args: string[], target: string) => {
    const r = await run('mount', [...args, target]);
    if (r.code !== 0) throw new Error(`mount ${args.join(' ')} ${target}: ${r.stderr}`);
    mounted.unshift(target);
  };
  const umountAll = async () => {
    for (const t of mounted.splice(0)) await run('umount', ['-l', t]);
  };
  const env = { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', HOME: '/root', TERM: 'dumb', NIX_PAGER: 'cat', PAGER: 'cat', LANG: 'C.UTF-8' };
  const daemonLogFile = path.join(path.resolve(dir), 'daemon.log');
  let daemon: ChildProcess | null = null;
  let version = '';
  const host: ModernNixHost = {
    suite,
    root,
    socket: path.join(root, 'nix/var/nix/daemon-socket/socket'),
    storeUri: `unix://${path.join(root, 'nix/var/nix/daemon-socket/socket')}?root=${root}`,
    get version() {
      return version;
    },
    exec: (cmd, args, opts = {}) => run('chroot', [root, cmd, ...args], { ...opts, baseEnv: env as NodeJS.ProcessEnv }),
    outside: (p) => path.join(root, p),
    daemonLog: () => {
      try {
        return fs.readFileSync(daemonLogFile, 'utf8');
      } catch {
        return '';
      }
    },
    async stop() {
      live.delete(host);
      if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
        const d = daemon;
        // Per-connection workers setsid() away from the daemon: kill every process rooted here.
        for (const pid of pidsIn(root)) tryKill(pid);
        d.kill('SIGKILL');
        await new Promise((r) => (d.exitCode !== null || d.signalCode !== null ? r(null) : d.once('exit', r)));
      }
      for (const pid of pidsIn(root)) tryKill(pid);
      await umountAll();
    },
  };
  try {
    await mount(['--bind', '-o', 'ro', path.join(cached, 'usr')], path.join(root, 'usr'));
    await mount(['-t', 'proc', 'proc'], path.join(root, 'proc'));
    await mount(['--rbind', '/dev'], path.join(root, 'dev'));
    // A slave, so that undoing it later can never propagate back to the machine's own /dev/pts.
    const slave = await run('mount', ['--make-rslave', path.join(root, 'dev')]);
    if (slave.code !== 0) throw new Error(`mount --make-rslave: ${slave.stderr}`);
    live.add(host);
    const log = fs.openSync(daemonLogFile, 'a');
    try {
      daemon = spawn('chroot', [root, 'nix-daemon'], { env, stdio: ['ignore', log, log] });
    } finally {
      fs.closeSync(log);
    }
    const deadline = Date.now() + 20_000;
    while (!(await canConnect(host.socket))) {
      if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`nix-daemon (${suite}) did not start:\n${host.daemonLog()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    version = (await host.exec('nix', ['--version'], { check: true })).stdout.trim();
  } catch (e) {
    await host.stop();
    throw e;
  }
  return host;
}

function pidsIn(root: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readlinkSync(`/proc/${e}/root`) === root) out.push(Number(e));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function canConnect(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path: p });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
