import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { homedir, userInfo } from 'node:os';
import path from 'node:path';
import type { Snapshot } from '../base/api.ts';
import { parseHostPort } from '../base/listen-address.ts';
import { nixConfDir, readNixConfLayer, userNixConfFiles } from '../nix/nix-config.ts';
import { parseSecretKey } from '../nix/signing.ts';
import { DaemonConnection } from '../store/daemon-connection.ts';
import { isDaemonStall } from '../store/daemon-pool.ts';
import { parseStoreUri } from '../store/store-uri.ts';
import type { DoctorFacts, Layer } from './facts.ts';
import { daemonStartedAt } from './daemon-start.ts';
import { readNegativeCaches } from './negative-cache-reader.ts';
import { askReachBack } from './reach-back.ts';
import { urlForms } from './substituter-checks.ts';

// Everything the checks judge, read from this machine: the daemon's handshake, Nix's configuration
// files, the running Peernix (its snapshot), a TCP connect to the share port, Nix's narinfo caches
// and Peernix's own files. Nothing here decides what is wrong (the check modules do).

export interface GatherOptions {
  env?: NodeJS.ProcessEnv;
  stateDir: string;
  storeUri: string;
  /** The loopback listener as configured (HOST:PORT), used when Peernix isn't running. */
  listen: string;
  shareListen: string;
  secretKeyFile?: string;
  /** The running Peernix's snapshot, or how to ask for it. */
  snapshot: () => Promise<Snapshot>;
  /** Nix's cache directories to look for narinfo caches in (default: the nix-daemon's, as root, and this user's). */
  narinfoCaches?: { dir: string; owner: string }[];
  now?: number;
}

export async function gatherFacts(o: GatherOptions): Promise<DoctorFacts> {
  const env = o.env ?? process.env;
  const me = userInfo();
  const usesDaemon = nixUsesDaemon(env, o.storeUri);
  const home = env.HOME || homedir();

  let snapshot: Snapshot | null = null;
  let snapshotError: string | null = null;
  try {
    snapshot = await o.snapshot();
  } catch (e) {
    snapshotError = (e as Error).message;
  }
  const substituterUrl = snapshot?.status.substituterUrl ?? `http://${o.listen}`;
  const keyPath = o.secretKeyFile ?? path.join(o.stateDir, 'secret-key');
  const forms = urlForms(substituterUrl);
  const ownCache = path.join(env.XDG_CACHE_HOME || path.join(home, '.cache'), 'nix');
  const caches =
    o.narinfoCaches ??
    (usesDaemon
      ? [
          { dir: '/root/.cache/nix', owner: 'nix-daemon' },
          { dir: ownCache, owner: me.username },
        ]
      : [{ dir: ownCache, owner: me.username }]);

  const system = layer([path.join(nixConfDir(env), 'nix.conf')]);
  const [daemon, shareProbe, reachBack] = await Promise.all([probeDaemon(o.storeUri, env), probeShare(snapshot, o.shareListen), askPeersToReachBack(snapshot)]);
  return {
    now: o.now ?? Date.now(),
    user: { name: me.username, uid: me.uid, groups: groupNames(me.username) },
    usesDaemon,
    daemon,
    system,
    systemConfChangedAt: newestChange(system.layer?.sources ?? []),
    userConf: layer(userNixConfFiles(env, home), env.NIX_CONFIG),
    substituterUrl,
    publicKey: snapshot?.status.publicKey ?? publicKeyOf(keyPath),
    peernix: { snapshot, error: snapshotError },
    shareProbe,
    reachBack,
    negativeCaches: caches.flatMap((c) => readNegativeCaches(c.dir, c.owner, forms)),
    keyFile: keyFileFacts(keyPath),
    stateDir: stateDirFacts(o.stateDir),
  };
}

// Nix 2.8's "auto" store: the local store when its state directory is writable (root, a single-user
// install), else the daemon when its socket exists. Only through the daemon are settings judged by
// trusted-users.
function nixUsesDaemon(env: NodeJS.ProcessEnv, storeUri: string): boolean {
  if (env.NIX_REMOTE) return env.NIX_REMOTE === 'daemon' || env.NIX_REMOTE.startsWith('unix://');
  try {
    accessSync(env.NIX_STATE_DIR || '/nix/var/nix', constants.W_OK);
    return false;
  } catch {
    try {
      return existsSync(parseStoreUri(storeUri, env).socketPath);
    } catch {
      return false;
    }
  }
}

/** A few live peers (proven ones first) try to reach our share listener from where they are. */
async function askPeersToReachBack(snapshot: Snapshot | null): Promise<DoctorFacts['reachBack']> {
  if (!snapshot?.status.sharing) return [];
  const peers = snapshot.peers
    .filter((p) => p.state === 'up')
    .sort((a, b) => Number(b.verified) - Number(a.verified))
    .slice(0, 3);
  return Promise.all(peers.map(async (p) => ({ peer: p.name, answer: await askReachBack(p.url) })));
}

function newestChange(files: string[]): number | null {
  let newest: number | null = null;
  for (const f of files) {
    try {
      const t = statSync(f).mtimeMs;
      if (newest === null || t > newest) newest = t;
    } catch {
      // NIX_CONFIG, or a file gone since it was read
    }
  }
  return newest;
}

function layer(files: string[], nixConfig?: string): Layer {
  try {
    return { layer: readNixConfLayer(files, nixConfig), error: null, files };
  } catch (e) {
    return { layer: null, error: (e as Error).message, files };
  }
}

async function probeDaemon(storeUri: string, env: NodeJS.ProcessEnv): Promise<DoctorFacts['daemon']> {
  let socketPath = '(unknown)';
  try {
    socketPath = parseStoreUri(storeUri, env).socketPath;
    const conn = await DaemonConnection.connect(socketPath, { timeoutMs: 3000 });
    const p = conn.protocolVersion;
    conn.close();
    return { socketPath, ok: true, version: conn.daemonVersion, protocol: `${p >> 8}.${p & 0xff}`, error: null, startedAt: daemonStartedAt(socketPath) };
  } catch (e) {
    const stalled = isDaemonStall(e);
    return { socketPath, ok: false, version: null, protocol: null, error: (e as Error).message, startedAt: null, ...(stalled ? { stalled } : {}) };
  }
}

async function probeShare(snapshot: Snapshot | null, shareListen: string): Promise<DoctorFacts['shareProbe']> {
  const fromUrl = snapshot?.status.shareUrl ? new URL(snapshot.status.shareUrl) : null;
  const configured = parseHostPort(shareListen);
  const port = fromUrl ? Number(fromUrl.port) : configured?.port;
  if (!port) return null;
  const host = !configured || configured.host === '0.0.0.0' || configured.host === '::' ? '127.0.0.1' : configured.host.replace(/^\[|\]$/g, '');
  const error = await new Promise<string | null>((resolve) => {
    const s = net.connect({ host, port, timeout: 1500 });
    s.once('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('timed out');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  return { port, listening: error === null, error };
}

function publicKeyOf(keyPath: string): string | null {
  try {
    return parseSecretKey(readFileSync(keyPath, 'utf8')).publicKey.text;
  } catch {
    return null;
  }
}

function keyFileFacts(p: string): DoctorFacts['keyFile'] {
  try {
    const st = statSync(p);
    return { path: p, exists: true, mode: st.mode & 0o7777, ownerUid: st.uid, error: null };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { path: p, exists: false, mode: null, ownerUid: null, error: null };
    return { path: p, exists: false, mode: null, ownerUid: null, error: code ?? (e as Error).message };
  }
}

// Writing is the only true test (root passes access() checks on a read-only mount).
function stateDirFacts(dir: string): DoctorFacts['stateDir'] {
  const probe = path.join(dir, `.doctor-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx', 0o600));
    unlinkSync(probe);
    return { path: dir, exists: true, writable: true, error: null };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { path: dir, exists: code !== 'ENOENT', writable: false, error: code ?? (e as Error).message };
  }
}

/** The groups a user is in, by name (from /etc/group and the user's primary group). */
function groupNames(user: string): string[] {
  const names = new Set<string>();
  try {
    const passwd = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(user + ':'));
    const gid = passwd?.split(':')[3];
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , id, members] = line.split(':');
      if (!name) continue;
      if (id === gid || (members ?? '').split(',').includes(user)) names.add(name);
    }
  } catch {
    // no /etc/group (macOS keeps groups elsewhere): only trusted-users entries by user name count
  }
  return [...names];
}
