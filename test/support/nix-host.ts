// Test support: a throwaway Nix "host" — a chroot store plus its own nix-daemon — for end-to-end
// tests. Nothing here touches the machine's real /nix.
//
// How the host is laid out (all under the directory the caller passes, see makeTempDir):
//
//   <dir>/root/            chroot store: <root>/nix/store, <root>/nix/var/nix/{db,temproots,...}
//   <dir>/socket           the daemon's Unix socket (NIX_DAEMON_SOCKET_PATH)
//   <dir>/etc/nix.conf     NIX_CONF_DIR for every Nix process we start (machine config ignored)
//   <dir>/daemon.log       the daemon's stdout/stderr
//   <dir>/xdg/...          XDG_{CACHE,CONFIG,DATA,STATE}_HOME so nothing lands in $HOME
//
// How the daemon is started (checked on Nix 2.8): `nix-daemon --store <root>` with
// NIX_DAEMON_SOCKET_PATH=<dir>/socket. `--store <absolute path>` makes a local store whose
// logical store dir is still /nix/store but whose files live under <root>, so the paths it
// reports are ordinary /nix/store/... paths. The socket only appears after the daemon binds it;
// start() waits until it accepts. Other processes can open the same store directly with
// `--store <root>` (SQLite locking and the temproots/ directory are shared), which is what
// host.nix()/host.nixStore() do by default; pass { via: 'daemon' } to go through the socket
// (unix://<dir>/socket) instead.
//
// Daemon processes: nix-daemon forks one child per connection and each child calls setsid(), so
// killing the main process (or its process group) leaves connections alive. stop() and kill()
// therefore freeze the main process, collect its children from /proc and kill those by pid too,
// which is what "the daemon went away" must mean for clients.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { NIX_ENV, nixEnv } from './nix-env.ts';
import { run, type RunOptions, type RunResult } from './run.ts';
import { onCleanup } from './temp-dir.ts';
import './e2e-hogs.ts'; // PEERNIX_E2E_HOGS: this file's tests beside CPU hogs

// ---------------------------------------------------------------------------------------------
// Hosts

export interface StartOptions {
  /** Extra nix.conf lines for the daemon only. */
  daemonConfig?: string;
  /** Start the daemon right away (default true). */
  start?: boolean;
}

export interface NixHost {
  /** The host directory (owned by the caller; remove with cleanup()). */
  readonly dir: string;
  /** Chroot store root: store paths live at root + '/nix/store/...'. */
  readonly root: string;
  /** Daemon socket path. */
  readonly socket: string;
  /** `unix://<socket>?root=<root>`: the daemon plus where its files are, for Peernix config. */
  readonly storeUri: string;
  /** `unix://<socket>`: for the Nix CLI (`--store`), which does not need the root. */
  readonly daemonUri: string;
  /**
   * Environment for Nix processes acting on this host: NIX_ENV, NIX_REMOTE=<root> (so the
   * default store is this chroot store), NIX_CONF_DIR and XDG dirs inside <dir>.
   */
  readonly env: NodeJS.ProcessEnv;
  /** Start the daemon (again); resolves once the socket accepts connections. */
  start(): Promise<void>;
  /** Stop the daemon and every per-connection child, gracefully then by force. */
  stop(): Promise<void>;
  /** Kill the daemon and its per-connection children right now (default SIGKILL). */
  kill(signal?: NodeJS.Signals): void;
  /**
   * Kill only the per-connection daemon processes (every open client connection drops) while
   * the daemon keeps accepting new ones. Returns how many were killed.
   */
  killConnections(signal?: NodeJS.Signals): number;
  /** Main daemon pid while it runs. */
  pid(): number | undefined;
  /** `nix --store <root> ...args`. */
  nix(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** `nix-store --store <root> ...args`. */
  nixStore(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Any command with this host's environment (e.g. nix-instantiate); add --store yourself. */
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * SHA-256 and size of the path's NAR from `nix store dump-path`, streamed (fine for huge
   * paths). Note `nix-store --dump` takes a *filesystem* path and ignores --store: for a chroot
   * store use `nixStore(['--dump', host.root + storePath])` or this.
   */
  dumpHash(storePath: string): Promise<{ sha256: Buffer; size: number }>;
  /** `nix path-info --json` for the given paths (Nix 2.8's array form). */
  pathInfoJson(paths: string[]): Promise<PathInfoJson[]>;
  /** The daemon's log so far. */
  daemonLog(): string;
}

/** One element of `nix path-info --json` on Nix 2.8–2.18. */
export interface PathInfoJson {
  path: string;
  narHash: string; // SRI: sha256-<base64>
  narSize: number;
  references: string[];
  deriver?: string;
  registrationTime?: number;
  ultimate?: boolean;
  signatures?: string[];
  ca?: string;
}

const liveHosts = new Set<HostImpl>();
onCleanup(async (abs) => {
  for (const h of [...liveHosts]) {
    if (h.dir === abs || h.dir.startsWith(abs + path.sep)) await h.stop();
  }
});

/** Stop every host started by this process (e.g. in a top-level after()). */
export async function stopAllNixHosts(): Promise<void> {
  await Promise.all([...liveHosts].map((h) => h.stop()));
}

// Last resort if a test process dies without running its after() hooks.
process.on('exit', () => {
  for (const h of liveHosts) h.kill('SIGKILL');
});

/** Live child processes of `ppid`, from /proc (a daemon's per-connection workers). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      // Fields after the parenthesised command name: state ppid ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === ppid && rest[0] !== 'Z') out.push(Number(e));
    } catch {
      // Process vanished while we looked.
    }
  }
  return out;
}

function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class HostImpl implements NixHost {
  readonly dir: string;
  readonly root: string;
  readonly socket: string;
  readonly storeUri: string;
  readonly daemonUri: string;
  readonly env: NodeJS.ProcessEnv;
  private readonly daemonEnv: NodeJS.ProcessEnv;
  private readonly logFile: string;
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** Per-connection children seen so far, killed with the daemon. */
  private children = new Set<number>();

  constructor(dir: string, daemonConfig: string) {
    this.dir = dir;
    this.root = path.join(dir, 'root');
    this.socket = path.join(dir, 'socket');
    this.storeUri = `unix://${this.socket}?root=${this.root}`;
    this.daemonUri = `unix://${this.socket}`;
    this.logFile = path.join(dir, 'daemon.log');
    const xdg = path.join(dir, 'xdg');
    this.env = nixEnv({
      // Default store for any Nix command run with this environment, so a command that forgets
      // --store (or opens a store it does not need, like --generate-binary-cache-key) lands
      // here instead of the machine's /nix.
      NIX_REMOTE: this.root,
      NIX_CONF_DIR: path.join(dir, 'etc'),
      XDG_CACHE_HOME: path.join(xdg, 'cache'),
      XDG_CONFIG_HOME: path.join(xdg, 'config'),
      XDG_DATA_HOME: path.join(xdg, 'data'),
      XDG_STATE_HOME: path.join(xdg, 'state'),
    });
    this.daemonEnv = {
      ...this.env,
      NIX_DAEMON_SOCKET_PATH: this.socket,
      NIX_CONFIG: `${NIX_ENV.NIX_CONFIG}\n${daemonConfig}`,
    };
  }

  pid(): number | undefined {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  async start(): Promise<void> {
    if (this.pid() !== undefined) throw new Error(`nix-daemon for ${this.dir} is already running`);
    await this.exited;
    await fsp.rm(this.socket, { force: true });
    const log = fs.openSync(this.logFile, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn('nix-daemon', ['--store', this.root], { env: this.daemonEnv, stdio: ['ignore', log, log] });
    } finally {
      fs.closeSync(log);
    }
    this.proc = proc;
    this.children.clear();
    liveHosts.add(this);
    let exitInfo: string | null = null;
    this.exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, sig) => {
        exitInfo = `exit ${code ?? sig}`;
        resolve();
      });
      proc.once('error', (err) => {
        exitInfo = err.message;
        resolve();
      });
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exitInfo) throw new Error(`nix-daemon for ${this.dir} failed to start (${exitInfo}):\n${this.daemonLog()}`);
      if (await canConnect(this.socket)) return;
      if (Date.now() > deadline) {
        this.kill('SIGKILL');
        throw new Error(`nix-daemon for ${this.dir} did not open ${this.socket} within 15 s:\n${this.daemonLog()}`);
      }
      await sleep(25);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    const pid = this.pid();
    if (pid !== undefined) {
      // Freeze the main process so it cannot fork while we collect its children.
      tryKill(pid, 'SIGSTOP');
      for (const c of childPids(pid)) this.children.add(c);
      for (const c of this.children) tryKill(c, signal);
      tryKill(pid, signal);
      tryKill(pid, 'SIGCONT');
    } else {
      for (const c of this.children) tryKill(c, signal);
    }
    liveHosts.delete(this);
  }

  killConnections(signal: NodeJS.Signals = 'SIGKILL'): number {
    const pid = this.pid();
    if (pid === undefined) return 0;
    const kids = childPids(pid);
    for (const c of kids) tryKill(c, signal);
    return kids.length;
  }

  async stop(): Promise<void> {
    const pid = this.pid();
    if (pid === undefined && this.children.size === 0) {
      liveHosts.delete(this);
      return;
    }
    // Connection children are just serving sockets; SIGKILL them so clients see the hang-up
    // immediately. The main process gets a chance to exit normally.
    if (pid !== undefined) {
      tryKill(pid, 'SIGSTOP');
      for (const c of childPids(pid)) this.children.add(c);
      for (const c of this.children) tryKill(c, 'SIGKILL');
      tryKill(pid, 'SIGTERM');
      tryKill(pid, 'SIGCONT');
      const exited = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!exited) {
        tryKill(pid, 'SIGKILL');
        await this.exited;
      }
    }
    for (const c of this.children) tryKill(c, 'SIGKILL');
    const deadline = Date.now() + 5000;
    while ([...this.children].some(isAlive) && Date.now() < deadline) await sleep(10);
    this.children.clear();
    liveHosts.delete(this);
  }

  run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(cmd, args, { ...opts, baseEnv: this.env });
  }

  private storeArg(opts: RunOptions): string {
    return opts.via === 'daemon' ? this.daemonUri : this.root;
  }

  nix(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.run('nix', ['--store', this.storeArg(opts), ...args], opts);
  }

  nixStore(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.run('nix-store', ['--store', this.storeArg(opts), ...args], opts);
  }

  async dumpHash(storePath: string): Promise<{ sha256: Buffer; size: number }> {
    // Not `nix-store --dump`: that one takes a filesystem path and ignores --store.
    const child = spawn('nix', ['--store', this.root, 'store', 'dump-path', storePath], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const hash = createHash('sha256');
    let size = 0;
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => {
      size += b.length;
      hash.update(b);
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(`nix store dump-path ${storePath}: exit ${code}\n${Buffer.concat(err).toString()}`);
    return { sha256: hash.digest(), size };
  }

  async pathInfoJson(paths: string[]): Promise<PathInfoJson[]> {
    const r = await this.nix(['path-info', '--json', ...paths], { check: true });
    return JSON.parse(r.stdout) as PathInfoJson[];
  }

  daemonLog(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Create a chroot store in <dir> and start a nix-daemon serving it (see the file comment).
 * The daemon trusts root and the current user. Stop it with host.stop() (or cleanup(dir)).
 */
export async function startNixHost(dir: string, opts: StartOptions = {}): Promise<NixHost> {
  const abs = path.resolve(dir);
  const socket = path.join(abs, 'socket');
  // sockaddr_un.sun_path is 108 bytes including the terminating NUL.
  if (Buffer.byteLength(socket) > 107) throw new Error(`socket path too long for a Unix socket: ${socket}`);
  await fsp.mkdir(path.join(abs, 'etc'), { recursive: true });
  await fsp.mkdir(path.join(abs, 'root'), { recursive: true });
  // The machine's /etc/nix/nix.conf is ignored (NIX_CONF_DIR points here), so tests behave the
  // same everywhere; NIX_CONFIG in NIX_ENV repeats these so commands given a custom NIX_CONFIG
  // still get them.
  await fsp.writeFile(path.join(abs, 'etc', 'nix.conf'), NIX_ENV.NIX_CONFIG + '\n');
  const user = os.userInfo().username;
  const daemonConfig = [`trusted-users = root ${user}`, 'build-users-group =', opts.daemonConfig ?? ''].join('\n');
  const host = new HostImpl(abs, daemonConfig);
  if (opts.start !== false) await host.start();
  return host;
}

export async function makeSigningKey(
  host: NixHost,
  dirPath: string,
  name: string,
): Promise<{ secretKeyFile: string; publicKeyFile: string; publicKey: string }> {
  const secretKeyFile = path.join(dirPath, `${name}.sec`);
  const publicKeyFile = path.join(dirPath, `${name}.pub`);
  await host.nixStore(['--generate-binary-cache-key', name, secretKeyFile, publicKeyFile], { check: true });
  return { secretKeyFile, publicKeyFile, publicKey: (await fsp.readFile(publicKeyFile, 'utf8')).trim() };
}

/** Sign store paths in the host's store (`nix store sign`). */
export async function signPaths(host: NixHost, secretKeyFile: string, paths: string[]): Promise<void> {
  await host.nix(['store', 'sign', '--key-file', secretKeyFile, ...paths], { check: true });
}

// End-to-end tests take the whole kit from here.
export * from './nix-env.ts';
export * from './temp-dir.ts';
export * from './run.ts';
export * from './tree-nar.ts';
export * from './store-content.ts';
