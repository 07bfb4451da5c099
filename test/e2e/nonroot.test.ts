// Peernix as a desktop user runs it: a logged-in user, not root, against a root-owned store and
// nix-daemon, launched with a PATH that has no `nix` on it (as from a dock or at login).
//
// - The store database fast path comes up although SQLite cannot open the database read-only as
//   this user until its -shm index exists (it does not at start: no client is connected).
// - narinfos answer, NARs are byte-identical to `nix-store --dump`, and a real `nix copy` with
//   require-sigs substitutes the closure.
// - The trust settings come from NIX_CONF_DIR/nix.conf and its include without `nix`; an include the
//   user cannot read shows up as an error in `peernix status --json`.
//
// Permissions: the test's temporary directory is opened to other users (0755) — mkdtemp makes it
// 0700 — and nothing outside it is changed. The project (/work/…, 0755) and the node binary
// (/work/main/node_modules/node/bin/node, 0755) are already readable and executable by others.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Snapshot } from '../../src/base/api.ts';
import { get } from '../support/http.ts';
import { addTestClosure, cleanup, makeTempDir, run, startNixHost, type NixHost, type TestClosure } from '../support/nix-host.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { asUser, ensureUser, releaseUser, type OsUser } from '../support/os-user.ts';
import { waitFor } from '../support/wait.ts';

const H = (p: string) => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);
const K = (n: string) => `${n}-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=`;

describe('peernix serve as a non-root desktop user', { timeout: 600_000 }, () => {
  let dir: string;
  let host: NixHost;
  let closure: TestClosure;
  let user: OsUser;
  let pn: PeernixProcess | null = null;
  let pn2: PeernixProcess | null = null;
  let userEnv: NodeJS.ProcessEnv;
  let confDir: string;
  const dbFile = () => `${host.root}/nix/var/nix/db/db.sqlite`;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test creates a user and must run as root');
    user = await ensureUser('pnnonroot');
    dir = await makeTempDir('pn-nonroot');
    await fsp.chmod(dir, 0o755);
    host = await startNixHost(`${dir}/host`);
    closure = await addTestClosure(host, { largeSize: 4 * 1024 * 1024, smallFiles: 50 });
    // The daemon's own config stays as startNixHost made it; this is the user-visible system
    // config Peernix reads: a top file with an include, both root-owned.
    confDir = `${dir}/etc-nix`;
    await fsp.mkdir(`${confDir}/nix.conf.d`, { recursive: true, mode: 0o755 });
    await fsp.writeFile(`${confDir}/nix.conf`, `# system config\nrequire-sigs = true\ninclude nix.conf.d/keys.conf\n`, { mode: 0o644 });
    await fsp.writeFile(`${confDir}/nix.conf.d/keys.conf`, `trusted-public-keys = ${K('upstream')}\nextra-trusted-public-keys = ${K('colleague')}\n`, {
      mode: 0o644,
    });
    const bin = `${dir}/bin-without-nix`;
    await fsp.mkdir(bin, { mode: 0o755 });
    for (const d of ['state', 'state2', 'home']) {
      await fsp.mkdir(`${dir}/${d}`);
      await fsp.chown(`${dir}/${d}`, user.uid, user.gid);
    }
    userEnv = {
      PATH: bin,
      HOME: `${dir}/home`,
      USER: user.name,
      LOGNAME: user.name,
      NIX_CONF_DIR: confDir,
      NIX_CONFIG: undefined,
      NIX_REMOTE: undefined,
      NIX_DAEMON_SOCKET_PATH: undefined,
      XDG_STATE_HOME: `${dir}/home/.local/state`,
      XDG_CONFIG_HOME: `${dir}/home/.config`,
    };
  });

  after(async () => {
    await pn?.stop().catch(() => {});
    await pn2?.stop().catch(() => {});
    await host?.stop().catch(() => {});
    if (dir) await cleanup(dir);
    await releaseUser(user);
  });

  async function status(p: PeernixProcess, stateDir: string): Promise<Snapshot> {
    const listen = p.substituterUrl.replace('http://', '');
    const [cmd, args] = asUser(user)(process.execPath, [MAIN, 'status', '--json', '--listen', listen, '--state-dir', stateDir]);
    const r = await run(cmd, args, { baseEnv: { ...process.env, ...userEnv }, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Snapshot;
  }

  it('comes up on the database fast path, with the trust settings read without nix on PATH', async (t) => {
    // The precondition of the bug: no client connected, so SQLite's index file is gone.
    await waitFor('the database index file to go away', async () => !fs.existsSync(`${dbFile()}-shm`), 10_000);
    t.diagnostic(
      `${dbFile()}-shm exists at start: ${fs.existsSync(`${dbFile()}-shm`)}; db dir mode ${(fs.statSync(path.dirname(dbFile())).mode & 0o777).toString(8)}, owner uid ${fs.statSync(dbFile()).uid}`,
    );
    pn = await startPeernixProcess(
      [
        '--store',
        host.storeUri,
        '--share-listen',
        '127.0.0.1:0',
        '--listen',
        '127.0.0.1:0',
        '--state-dir',
        `${dir}/state`,
        '--no-mdns',
        '--log-level',
        'debug',
      ],
      {
        env: userEnv,
        wrap: asUser(user),
      },
    );
    const uidOf = Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pn.proc.pid}/status`, 'utf8'))?.[1]);
    assert.equal(uidOf, user.uid, 'the Node process runs as the user');
    let snap = await status(pn, `${dir}/state`);
    const until = Date.now() + 20_000;
    while (snap.status.metadata?.source !== 'database' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      snap = await status(pn, `${dir}/state`);
    }
    const metaLines = pn
      .logs()
      .split('\n')
      .filter((l) => /narinfo metadata from/.test(l));
    t.diagnostic(`as uid ${uidOf}: metadata ${JSON.stringify(snap.status.metadata)}; log:\n  ${metaLines.join('\n  ')}`);
    assert.equal(snap.status.metadata?.source, 'database');
    assert.equal(snap.status.metadata?.why, null);
    t.diagnostic(`trust: ${JSON.stringify(snap.status.trust)}`);
    assert.deepEqual(snap.status.trust, {
      source: `${confDir}/nix.conf, ${confDir}/nix.conf.d/keys.conf`,
      keys: 2,
      requireSigs: true,
      error: null,
      clashes: [],
    });
  });

  it('serves narinfos and byte-identical NARs, and a real nix copy with require-sigs succeeds', async (t) => {
    assert.ok(pn);
    let narinfos = 0;
    let identical = 0;
    let bytes = 0;
    for (const p of closure.paths) {
      const r = await get(`${pn.substituterUrl}/${H(p)}.narinfo`);
      assert.equal(r.status, 200, `${p}.narinfo`);
      narinfos++;
      const text = r.body.toString();
      const url = /^URL: (.+)$/m.exec(text)![1];
      const nar = await get(`${pn.substituterUrl}/${url}`);
      assert.equal(nar.status, 200);
      const dump = await new Promise<Buffer>((resolve, reject) => {
        const parts: Buffer[] = [];
        const c = spawn('nix-store', ['--dump', host.root + p]);
        c.stdout!.on('data', (b: Buffer) => parts.push(b));
        c.on('error', reject);
        c.on('close', () => resolve(Buffer.concat(parts)));
      });
      if (nar.body.equals(dump)) identical++;
      bytes += nar.body.length;
    }
    const miss = await get(`${pn.substituterUrl}/${'0'.repeat(32)}.narinfo`);
    assert.equal(miss.status, 404);
    t.diagnostic(`${narinfos}/${closure.paths.length} narinfos served; ${identical} NARs (${bytes} bytes) identical to nix-store --dump`);
    assert.equal(identical, closure.paths.length);

    const snap = await status(pn, `${dir}/state`);
    assert.equal(snap.status.metadata?.source, 'database', 'still on the fast path after serving');
    const client = `${dir}/client`;
    const t0 = performance.now();
    const copy = await run(
      'nix',
      [
        'copy',
        '--from',
        pn.substituterUrl,
        '--to',
        client,
        closure.top,
        '--option',
        'trusted-public-keys',
        snap.status.publicKey,
        '--option',
        'require-sigs',
        'true',
      ],
      {
        env: { XDG_CACHE_HOME: `${dir}/client-xdg` },
        timeoutMs: 120_000,
      },
    );
    assert.equal(copy.code, 0, copy.stderr);
    const valid = await run('nix-store', ['--store', client, '--verify-path', closure.top], { timeoutMs: 60_000 });
    assert.equal(valid.code, 0, valid.stderr);
    const listed = await run('nix-store', ['--store', client, '-qR', closure.top], { check: true });
    t.diagnostic(
      `nix copy --from ${pn.substituterUrl} (require-sigs, this peernix's key): ${listed.stdout.trim().split('\n').length} paths in ${Math.round(performance.now() - t0)} ms`,
    );
    assert.deepEqual(listed.stdout.trim().split('\n').sort(), [...closure.paths].sort());
  });

  it('falls back while the daemon is down (no narinfo without it) and returns to the fast path after', async (t) => {
    assert.ok(pn);
    const p = closure.top;
    // The share listener answers from this store only (the substituter would go on to peers: a 404).
    const narinfo = async () => (await get(`${pn!.shareUrl}/${H(p)}.narinfo`)).status;
    assert.equal(await narinfo(), 200);
    host.kill();
    const t0 = Date.now();
    const down = await waitFor('narinfo refused without the daemon', async () => ((await narinfo()) === 503 ? true : null), 20_000);
    let snap = await status(pn, `${dir}/state`);
    await waitFor('status to say the daemon is down', async () => ((snap = await status(pn!, `${dir}/state`)).status.daemon.ok ? null : true), 20_000);
    t.diagnostic(`daemon killed: narinfo 503 after ${Date.now() - t0} ms (${down}); metadata ${JSON.stringify(snap.status.metadata)}`);
    assert.equal(snap.status.metadata?.source, 'daemon');
    await host.start();
    const t1 = Date.now();
    await waitFor('narinfo again', async () => ((await narinfo()) === 200 ? true : null), 30_000);
    await waitFor('the fast path again', async () => ((snap = await status(pn!, `${dir}/state`)).status.metadata?.source === 'database' ? true : null), 30_000);
    t.diagnostic(`daemon restarted: narinfo 200 and metadata ${JSON.stringify(snap.status.metadata)} after ${Date.now() - t1} ms`);
  });

  it('says so in `peernix status --json` when the trust settings cannot be read', async (t) => {
    await fsp.chmod(`${confDir}/nix.conf.d/keys.conf`, 0o600); // root-only, as a hardened system might have it
    try {
      pn2 = await startPeernixProcess(
        ['--store', host.storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/state2`, '--no-mdns'],
        {
          env: userEnv,
          wrap: asUser(user),
        },
      );
      const snap = await status(pn2, `${dir}/state2`);
      t.diagnostic(`unreadable include: trust ${JSON.stringify(snap.status.trust)}`);
      assert.match(
        snap.status.trust?.error ?? '',
        new RegExp(`cannot read '${confDir}/nix.conf.d/keys.conf' \\(included from '${confDir}/nix.conf'\\): EACCES`),
      );
      assert.equal(snap.status.trust?.keys, 0);
      assert.match(pn2.logs(), /cannot read this machine's Nix trust settings/);
      const listen = pn2.substituterUrl.replace('http://', '');
      const [cmd, args] = asUser(user)(process.execPath, [MAIN, 'status', '--listen', listen, '--state-dir', `${dir}/state2`]);
      const text = await run(cmd, args, { baseEnv: { ...process.env, ...userEnv }, timeoutMs: 30_000 });
      const line = text.stdout.split('\n').find((l) => l.includes('nix trust:'));
      t.diagnostic(`peernix status: ${line?.trim()}`);
      assert.match(line ?? '', /UNREADABLE: cannot read/);
    } finally {
      await fsp.chmod(`${confDir}/nix.conf.d/keys.conf`, 0o644);
    }
  });
});
