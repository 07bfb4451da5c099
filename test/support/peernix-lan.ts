import assert from 'node:assert/strict';
import type { Snapshot } from '../../src/base/api.ts';
import { createLan, nodeBin, type Lan, type LanHost } from './netns.ts';
import { cleanup, makeSigningKey, makeTempDir, nixEnv, startNixHost, type NixHost } from './nix-host.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from './peernix-process.ts';
import { asUser, type OsUser } from './os-user.ts';
import { chown, mkdir } from 'node:fs/promises';

export { waitFor } from './wait.ts';

// Peernix hosts on a private LAN of network namespaces: each with its own chroot store, nix-daemon,
// signing key and `peernix serve`, whose Nix trusts every host's key. Shared by the peers and
// dashboard end-to-end tests.

export const SUBST = 'http://127.0.0.1:9998';
export const hashPart = (p: string) => p.slice(11, 43);

export interface PnHost {
  name: string;
  lan: LanHost;
  nix: NixHost;
  key: { secretKeyFile: string; publicKey: string };
  stateDir: string;
  pn: PeernixProcess | null;
}

export interface PnLan {
  dir: string;
  lan: Lan;
  hosts: PnHost[];
  trustedKeys: string;
  /** `as`: run this host's Peernix as that (non-root) user; its state directory is made theirs. */
  start(h: PnHost, extra?: string[], opts?: { as?: OsUser }): Promise<void>;
  curl(h: PnHost, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  cli(h: PnHost, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  status(h: PnHost): Promise<Snapshot>;
  teardown(): Promise<void>;
}

/**
 * `scoped`: hosts share by scope as a fresh install does, and form no team unless a test passes
 * --team (scope tests). By default every host is in a team with every other (so Peernix-to-Peernix
 * traffic rides the team channel) and lists its own key in publicKeys (so a Nix or curl pointed
 * straight at its share port still gets the unsigned paths tests add).
 */
export async function createPnLan(prefix: string, names: string[], opts: { extraKeys?: string[]; scoped?: boolean } = {}): Promise<PnLan> {
  const dir = await makeTempDir(prefix);
  const lan = await createLan(names.length);
  const hosts: PnHost[] = [];
  const self: PnLan = {
    dir,
    lan,
    hosts,
    trustedKeys: '',
    async start(h, extra = [], startOpts = {}) {
      const as = startOpts.as;
      if (as) {
        await mkdir(h.stateDir, { recursive: true });
        await chown(h.stateDir, as.uid, as.gid);
      }
      const team = opts.scoped ? [] : hosts.filter((o) => o !== h).flatMap((o) => ['--team', o.key.publicKey]);
      h.pn = await startPeernixProcess(
        [
          '--store',
          h.nix.storeUri,
          '--share-listen',
          '0.0.0.0:9999',
          '--listen',
          '127.0.0.1:9998',
          '--secret-key-file',
          h.key.secretKeyFile,
          '--state-dir',
          h.stateDir,
          '--name',
          h.name,
          '--log-level',
          'debug',
          ...team,
          ...extra,
        ],
        {
          scoped: opts.scoped,
          env: nixEnv({
            NIX_CONFIG: `experimental-features = nix-command\ntrusted-public-keys = ${self.trustedKeys}`,
            XDG_CACHE_HOME: `${h.stateDir}/xdg`,
            ...(as ? { HOME: h.stateDir } : {}),
          }),
          wrap: (cmd, args) => {
            const [c, a] = as ? asUser(as)(cmd, args) : [cmd, args];
            return ['ip', ['netns', 'exec', h.lan.ns, c, ...a]];
          },
        },
      );
    },
    curl: (h, args) => h.lan.run('curl', ['-s', '--max-time', '60', ...args], { timeoutMs: 90_000 }),
    cli: (h, args) => h.lan.run(nodeBin(), [MAIN, ...args, '--listen', '127.0.0.1:9998', '--state-dir', h.stateDir], { timeoutMs: 30_000 }),
    async status(h) {
      const r = await self.cli(h, ['status', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Snapshot;
    },
    async teardown() {
      for (const h of hosts) await h.pn?.stop().catch(() => {});
      for (const h of hosts) await h.nix.stop().catch(() => {});
      await lan.teardown();
      await cleanup(dir);
    },
  };
  try {
    for (const [i, name] of names.entries()) {
      const nix = await startNixHost(`${dir}/${name}`);
      hosts.push({ name, lan: lan.hosts[i], nix, key: await makeSigningKey(nix, `${dir}/${name}`, `${name}-1`), stateDir: `${dir}/${name}/state`, pn: null });
    }
    self.trustedKeys = [...hosts.map((h) => h.key.publicKey), ...(opts.extraKeys ?? [])].join(' ');
  } catch (e) {
    await self.teardown();
    throw e;
  }
  return self;
}

export const upPeers = (s: Snapshot) =>
  s.peers
    .filter((p) => p.state === 'up')
    .map((p) => p.name)
    .sort();
