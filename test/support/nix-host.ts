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
// Why test closures are imported rather than built: Nix refuses to build into a store whose files
// are not at /nix/store without its chroot sandbox (even with sandbox = false), and that sandbox
// needs mount/user namespaces that CI runners often forbid. So addTestClosure instantiates real
// derivations (real .drv files, real output paths) and then imports hand-made contents for
// those outputs with `nix-store --import`, which needs no sandbox or privileges and lets us set
// references and derivers exactly.
//
// Daemon processes: nix-daemon forks one child per connection and each child calls setsid(), so
// killing the main process (or its process group) leaves connections alive. stop() and kill()
// therefore freeze the main process, collect its children from /proc and kill those by pid too,
// which is what "the daemon went away" must mean for clients.

import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { encodeU64 } from '../../src/store/wire.ts';

/**
 * Settings every Nix process in the tests runs with. Spread into an environment with
 * nixEnv() rather than directly, because some inherited variables must be removed too.
 */
export const NIX_ENV: Readonly<Record<string, string>> = Object.freeze({
  NIX_CONFIG: [
    'experimental-features = nix-command',
    'sandbox = false',
    // No network in tests, and cache.nixos.org lookups would cost seconds of DNS retries.
    'substituters =',
    'fsync-metadata = false',
    'warn-dirty = false',
  ].join('\n'),
  NIX_PAGER: 'cat',
  PAGER: 'cat',
  TERM: 'dumb',
});

/** Variables that would redirect Nix to some other store or daemon; removed by nixEnv(). */
const NIX_ENV_UNSET = ['NIX_REMOTE', 'NIX_DAEMON_SOCKET_PATH', 'NIX_STORE_DIR', 'NIX_STATE_DIR', 'NIX_LOG_DIR', 'NIX_PATH', 'NIX_USER_CONF_FILES'];

/** process.env + NIX_ENV + extra, minus variables that would point Nix elsewhere. */
export function nixEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of NIX_ENV_UNSET) delete env[k];
  Object.assign(env, NIX_ENV);
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

const TEMP_MARK = '.peernix-test-tmp';

/** A fresh directory under the OS temp dir. Keep prefixes short: the daemon socket lives inside it. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  await fsp.writeFile(path.join(dir, TEMP_MARK), '');
  return dir;
}

/**
 * Remove a directory made by makeTempDir, first stopping any host living in it. Store paths are
 * read-only, so permissions are fixed up before deleting. Refuses directories it did not make.
 */
export async function cleanup(dir: string): Promise<void> {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs)) return;
  if (!fs.existsSync(path.join(abs, TEMP_MARK))) throw new Error(`cleanup: ${abs} was not made by makeTempDir`);
  for (const h of [...liveHosts]) {
    if (h.dir === abs || h.dir.startsWith(abs + path.sep)) await h.stop();
  }
  try {
    await fsp.rm(abs, { recursive: true, force: true });
  } catch {
    await makeWritable(abs);
    await fsp.rm(abs, { recursive: true, force: true });
  }
}

async function makeWritable(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fsp.lstat(p);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  await fsp.chmod(p, st.mode | 0o700).catch(() => {});
  for (const e of await fsp.readdir(p).catch(() => [] as string[])) await makeWritable(path.join(p, e));
}

// ---------------------------------------------------------------------------------------------
// Running Nix commands

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

/** Stop every host started by this process (e.g. in a top-level after()). */
export async function stopAllNixHosts(): Promise<void> {
  await Promise.all([...liveHosts].map((h) => h.stop()));
}

// Last resort if a test process dies without running its after() hooks.
process.on('exit', () => {
  for (const h of liveHosts) h.kill('SIGKILL');
});

function childPids(ppid: number): number[] {
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

// ---------------------------------------------------------------------------------------------
// Test content

/** A file tree to put in the store. */
export type TreeNode =
  | { type: 'file'; contents: string | Buffer; executable?: boolean }
  | { type: 'file'; size: number; seed: string; executable?: boolean } // pseudo-random bytes
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, TreeNode> };

const file = (contents: string | Buffer, executable = false): TreeNode => ({ type: 'file', contents, executable });
const dir = (entries: Record<string, TreeNode>): TreeNode => ({ type: 'directory', entries });
const symlink = (target: string): TreeNode => ({ type: 'symlink', target });

/** Deterministic pseudo-random bytes: AES-128-CTR keystream keyed by the seed. */
function* pseudoRandom(seed: string, size: number): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const block = Buffer.alloc(1024 * 1024);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, block.length);
    yield cipher.update(block.subarray(0, n));
    left -= n;
  }
}


function str(s: string | Buffer): Buffer[] {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const pad = (8 - (b.length % 8)) % 8;
  return pad ? [encodeU64(b.length), b, Buffer.alloc(pad)] : [encodeU64(b.length), b];
}

/** NAR serialisation of a tree (nix-protocols.md §2.2), as a stream of buffers. */
function* narOf(node: TreeNode): Generator<Buffer> {
  yield* str('nix-archive-1');
  yield* narNode(node);
}

function* narNode(node: TreeNode): Generator<Buffer> {
  yield* str('(');
  yield* str('type');
  if (node.type === 'file') {
    yield* str('regular');
    if (node.executable) {
      yield* str('executable');
      yield* str('');
    }
    yield* str('contents');
    if ('contents' in node) {
      yield* str(node.contents);
    } else {
      yield encodeU64(node.size);
      yield* pseudoRandom(node.seed, node.size);
      const pad = (8 - (node.size % 8)) % 8;
      if (pad) yield Buffer.alloc(pad);
    }
  } else if (node.type === 'symlink') {
    yield* str('symlink');
    yield* str('target');
    yield* str(node.target);
  } else {
    yield* str('directory');
    const names = Object.keys(node.entries).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      yield* str('entry');
      yield* str('(');
      yield* str('name');
      yield* str(name);
      yield* str('node');
      yield* narNode(node.entries[name]);
      yield* str(')');
    }
  }
  yield* str(')');
}

function drainOrClose(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/** Write buffers to a stream, coalescing small ones and honouring backpressure. */
async function writeAll(out: Writable, parts: Iterable<Buffer>): Promise<void> {
  let batch: Buffer[] = [];
  let batchLen = 0;
  const flush = async (): Promise<void> => {
    if (!batch.length) return;
    const ok = out.write(batch.length === 1 ? batch[0] : Buffer.concat(batch));
    batch = [];
    batchLen = 0;
    if (!ok) await drainOrClose(out);
  };
  for (const p of parts) {
    batch.push(p);
    batchLen += p.length;
    if (batchLen >= 256 * 1024) await flush();
  }
  await flush();
}

export interface ImportItem {
  path: string;
  tree: TreeNode;
  references: string[];
  deriver?: string | null;
}

/**
 * Import paths with exactly the given contents, references and derivers (`nix-store --import`
 * of a hand-made export stream; no sandbox, no signatures needed). Items must be in dependency
 * order (references first). Paths that are already valid are skipped by Nix.
 */
export async function importPaths(host: NixHost, items: ImportItem[]): Promise<void> {
  const child = spawn('nix-store', ['--store', host.root, '--import'], {
    env: { ...host.env, NIX_CONFIG: `${NIX_ENV.NIX_CONFIG}\nrequire-sigs = false` },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => {}); // reported through the exit code
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  function* stream(): Generator<Buffer> {
    for (const it of items) {
      yield encodeU64(1);
      yield* narOf(it.tree);
      yield encodeU64(0x4558494e); // export magic "NIXE"
      yield* str(it.path);
      yield encodeU64(it.references.length);
      for (const r of it.references) yield* str(r);
      yield* str(it.deriver ?? '');
      yield encodeU64(0); // no legacy signature
    }
    yield encodeU64(0);
  }
  await writeAll(child.stdin, stream());
  child.stdin.end();
  const [code, sig] = await closed;
  if (code !== 0) throw new Error(`nix-store --import failed (${code ?? sig}):\n${Buffer.concat(err).toString()}`);
}

export interface TestClosureOptions {
  /** Size in bytes of the large file. Default 20 MiB. */
  largeSize?: number;
  /** Number of small files in the data path. Default 300. */
  smallFiles?: number;
  /** Makes the store paths unique; default random. Same tag + same store = same paths. */
  tag?: string;
}

export interface TestClosure {
  /** The top of the closure (references every other path, directly or not, and itself). */
  top: string;
  /** The whole closure, top included, sorted. */
  paths: string[];
  /** Single-file path holding the large file (a NAR whose root is a regular file). */
  large: string;
  /** Path with the ~300 small files, symlinks, executable and empty dir; added with `nix-store --add`
   * so it is content-addressed (has `ca`) and has no deriver. */
  data: string;
  /** Path between top and data. */
  lib: string;
  /** Deriver of each path that has one (top, lib, large). */
  derivers: Record<string, string>;
}

const FIXTURE_EXPR = `
{ tag, data, largeSize }:
let
  mk = name: attrs: builtins.derivation ({
    name = "\${name}-\${tag}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo 'peernix test fixture: imported by the test suite, never built' >&2; exit 1" ];
  } // attrs);
  lib = mk "peernix-test-lib" { data = builtins.storePath data; };
  large = mk "peernix-test-large" { size = largeSize; };
  top = mk "peernix-test-top" { inherit lib large; };
  show = d: { drv = d.drvPath; out = d.outPath; };
in { lib = show lib; large = show large; top = show top; }
`;

/**
 * Put a small but realistic closure into the host's store, without building anything:
 *
 *   top  -> lib, large, top (self-reference)      deriver: real .drv
 *   lib  -> data                                  deriver: real .drv
 *   large                                         deriver: real .drv; one regular file
 *   data (nix-store --add, content-addressed)     no deriver; ~300 small files, symlinks
 *
 * Contents mention the referenced paths (as a build's output would), include relative and
 * absolute symlinks, executables, empty files and an empty directory.
 */
export async function addTestClosure(host: NixHost, opts: TestClosureOptions = {}): Promise<TestClosure> {
  const tag = opts.tag ?? randomBytes(4).toString('hex');
  const largeSize = opts.largeSize ?? 20 * 1024 * 1024;
  const smallFiles = opts.smallFiles ?? 300;
  const work = path.join(host.dir, `fixture-${tag}`);
  await fsp.mkdir(work, { recursive: true });

  // data: a real directory added by Nix itself.
  const dataDir = path.join(work, `peernix-test-data-${tag}`);
  await writeTree(dataDir, dataTree(tag, smallFiles));
  const data = (await host.nixStore(['--add', dataDir], { check: true })).stdout.trim();

  // Instantiate the derivations for the other paths: real .drv files with real output paths.
  const exprFile = path.join(work, 'fixture.nix');
  await fsp.writeFile(exprFile, FIXTURE_EXPR);
  const ev = await host.run(
    'nix-instantiate',
    ['--store', host.root, '--eval', '--strict', '--json', '--read-write-mode', exprFile,
      '--argstr', 'tag', tag, '--argstr', 'data', data, '--argstr', 'largeSize', String(largeSize)],
    { check: true },
  );
  const drvs = JSON.parse(ev.stdout) as Record<'lib' | 'large' | 'top', { drv: string; out: string }>;
  const lib = drvs.lib.out;
  const large = drvs.large.out;
  const top = drvs.top.out;

  const libTree = dir({
    lib: dir({
      'libpeernix.so': file(`\x7fELF not really; data at ${data}/share\n`),
      'libpeernix.so.1': symlink('libpeernix.so'),
    }),
    share: dir({
      'data-location': file(`${data}\n`),
      data: symlink(`${data}/share`), // absolute, into another store path
    }),
  });
  const topTree = dir({
    bin: dir({
      hello: file(`#!/bin/sh\n# lib: ${lib}\nexec cat ${top}/share/greeting\n`, true),
      hi: symlink('hello'),
    }),
    lib: symlink(`${lib}/lib`),
    share: dir({
      greeting: file(`hello from ${top}\n`),
      large: symlink(large),
      'up-and-over': symlink('../bin/hello'),
    }),
    'nix-support': dir({ 'propagated-inputs': file(`${lib} ${large}\n`) }),
  });
  await importPaths(host, [
    { path: large, tree: { type: 'file', size: largeSize, seed: `peernix-large-${tag}` }, references: [], deriver: drvs.large.drv },
    { path: lib, tree: libTree, references: [data], deriver: drvs.lib.drv },
    { path: top, tree: topTree, references: [large, lib, top], deriver: drvs.top.drv },
  ]);
  await fsp.rm(work, { recursive: true, force: true });
  return {
    top,
    paths: [top, lib, large, data].sort(),
    large,
    data,
    lib,
    derivers: { [top]: drvs.top.drv, [lib]: drvs.lib.drv, [large]: drvs.large.drv },
  };
}

function dataTree(tag: string, smallFiles: number): TreeNode {
  const groups: Record<string, TreeNode> = {};
  for (let i = 0; i < smallFiles; i++) {
    const g = `group-${String(i % 10).padStart(2, '0')}`;
    const entries = ((groups[g] as { entries: Record<string, TreeNode> } | undefined)?.entries) ?? {};
    // Sizes vary from 0 to a few KiB so the NAR has every padding length.
    entries[`file-${String(i).padStart(4, '0')}.txt`] = file(`${tag} small file ${i}\n`.repeat(i % 97));
    groups[g] = dir(entries);
  }
  return dir({
    share: dir({
      files: dir(groups),
      empty: file(''),
      'empty-dir': dir({}),
      'B-sorts-first': file('byte order: B < _z < a.txt < aa\n'),
      _z: file('z\n'),
      'a.txt': file('a\n'),
      aa: file('aa\n'),
    }),
    bin: dir({
      'run-me': file('#!/bin/sh\necho run\n', true),
      'also-me': symlink('run-me'),
    }),
    'sh-link': symlink('/bin/sh'), // absolute, outside the store
  });
}

async function writeTree(p: string, node: TreeNode): Promise<void> {
  if (node.type === 'directory') {
    await fsp.mkdir(p, { recursive: true });
    for (const [name, child] of Object.entries(node.entries)) await writeTree(path.join(p, name), child);
  } else if (node.type === 'symlink') {
    await fsp.symlink(node.target, p);
  } else if ('contents' in node) {
    await fsp.writeFile(p, node.contents, { mode: node.executable ? 0o755 : 0o644 });
  } else {
    const fh = await fsp.open(p, 'w', node.executable ? 0o755 : 0o644);
    try {
      for (const b of pseudoRandom(node.seed, node.size)) await fh.write(b);
    } finally {
      await fh.close();
    }
  }
}

/** Add one file or directory to the host's store with `nix-store --add`; returns its path. */
export async function addPath(host: NixHost, name: string, tree: TreeNode): Promise<string> {
  const work = await fsp.mkdtemp(path.join(host.dir, 'add-'));
  try {
    const p = path.join(work, name);
    await writeTree(p, tree);
    return (await host.nixStore(['--add', p], { check: true })).stdout.trim();
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** Generate a binary-cache signing key pair in `dir`. */
export async function makeSigningKey(host: NixHost, dirPath: string, name: string): Promise<{ secretKeyFile: string; publicKeyFile: string; publicKey: string }> {
  const secretKeyFile = path.join(dirPath, `${name}.sec`);
  const publicKeyFile = path.join(dirPath, `${name}.pub`);
  await host.nixStore(['--generate-binary-cache-key', name, secretKeyFile, publicKeyFile], { check: true });
  return { secretKeyFile, publicKeyFile, publicKey: (await fsp.readFile(publicKeyFile, 'utf8')).trim() };
}

/** Sign store paths in the host's store (`nix store sign`). */
export async function signPaths(host: NixHost, secretKeyFile: string, paths: string[]): Promise<void> {
  await host.nix(['store', 'sign', '--key-file', secretKeyFile, ...paths], { check: true });
}

export { file as treeFile, dir as treeDir, symlink as treeSymlink };
