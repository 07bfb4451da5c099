import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { DoctorReport, Snapshot } from '../../src/base/api.ts';
import { diagnose } from '../../src/doctor/doctor.ts';
import { gatherFacts, type GatherOptions } from '../../src/doctor/gather.ts';
import { silentLogger } from '../../src/base/log.ts';
import { startService, openServiceState, type PeernixService } from '../../src/app/service.ts';
import { nodeBin } from '../support/netns.ts';
import { cleanup, makeTempDir, run } from '../support/nix-host.ts';
import { MAIN, PROJECT_ROOT } from '../support/peernix-process.ts';
import { launchChromium } from '../support/chromium.ts';
import { asUser, ensureUser, releaseUser } from '../support/os-user.ts';
import { waitFor } from '../support/wait.ts';
import { sample } from '../support/promtool.ts';
import { DatabaseSync } from 'node:sqlite';

// `peernix doctor` against real machine states: a real nix-daemon reading exactly the nix.conf the
// doctor reads (its own NIX_CONF_DIR, no NIX_CONFIG), a real running Peernix, Nix's own narinfo
// cache written by a real `nix-store -r`, and real files. One state that is right, then the wrong
// ones: no daemon, no substituter line, an untrusted user (the daemon itself says it ignores the
// substituter), a closed share port, a key file readable by all, remembered misses.

const NIX_BASE = ['experimental-features = nix-command', 'sandbox = false', 'build-users-group =', 'fsync-metadata = false'];

describe('peernix doctor on real machine states', { timeout: 240_000 }, () => {
  let dir: string;
  let daemon: ChildProcess;
  let svc: PeernixService;
  let url: string;
  let publicKey: string;
  const env = () => ({
    ...process.env,
    NIX_CONFIG: undefined,
    NIX_USER_CONF_FILES: undefined,
    NIX_CONF_DIR: `${dir}/etc`,
    HOME: `${dir}/home`,
    XDG_CONFIG_HOME: `${dir}/home/.config`,
    XDG_CACHE_HOME: `${dir}/home/.cache`,
    NIX_REMOTE: 'daemon',
  });
  // The daemon reads only the system nix.conf: no NIX_CONFIG, and user config dirs of its own (empty).
  const daemonEnv = () => ({
    ...process.env,
    NIX_CONFIG: '',
    NIX_REMOTE: '',
    NIX_CONF_DIR: `${dir}/etc`,
    NIX_DAEMON_SOCKET_PATH: `${dir}/socket`,
    HOME: `${dir}/daemon-home`,
    XDG_CONFIG_HOME: `${dir}/daemon-home/.config`,
    XDG_CACHE_HOME: `${dir}/daemon-xdg`,
  });
  const writeSystemConf = (lines: string[]) => writeFileSync(`${dir}/etc/nix.conf`, [...NIX_BASE, ...lines].join('\n') + '\n');
  const writeUserConf = (lines: string[]) => writeFileSync(`${dir}/home/.config/nix/nix.conf`, lines.join('\n') + '\n');
  const opts = (over: Partial<GatherOptions> = {}): GatherOptions => ({
    env: env(),
    stateDir: `${dir}/state`,
    storeUri: `unix://${dir}/socket?root=${dir}/root`,
    listen: new URL(url).host,
    shareListen: '127.0.0.1:0',
    snapshot: async () => svc.api.snapshot(),
    narinfoCaches: [{ dir: `${dir}/daemon-xdg/nix`, owner: 'nix-daemon' }],
    ...over,
  });
  const doctor = async (over: Partial<GatherOptions> = {}) => diagnose(await gatherFacts(opts(over)));
  const check = (r: DoctorReport, id: string) => r.checks.find((c) => c.id === id || c.id.startsWith(id + ':'))!;
  const show = (t: { diagnostic(message: string): void }, label: string, r: DoctorReport, ids: string[]) =>
    t.diagnostic(`${label}: ${r.failed} failed; ${ids.map((id) => `${id}=${check(r, id).status}`).join(' ')}`);
  // What Nix itself does with the substituter: the daemon's own warning is the witness.
  const nixStoreR = (path: string, extra: string[] = []) =>
    run('nix-store', ['--store', `unix://${dir}/socket`, '-r', path, ...extra], {
      baseEnv: env() as NodeJS.ProcessEnv,
      env: { XDG_CACHE_HOME: `${dir}/client-xdg` },
      timeoutMs: 60_000,
    });

  before(async () => {
    dir = await makeTempDir('pn-doctor');
    for (const d of ['etc', 'root', 'home/.config/nix', 'state', 'daemon-xdg', 'daemon-home']) mkdirSync(`${dir}/${d}`, { recursive: true });
    writeSystemConf(['trusted-users = root', 'substituters =']);
    const log = openSync(`${dir}/daemon.log`, 'a');
    daemon = spawn('nix-daemon', ['--store', `${dir}/root`], {
      env: daemonEnv(),
      stdio: ['ignore', log, log],
    });
    await waitForSocket();
    // The in-process Peernix (its trust reading, the window's doctor) sees this machine state too.
    for (const [k, v] of Object.entries(env())) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    const state = openServiceState({ stateDir: `${dir}/state`, log: silentLogger });
    svc = await startService({
      state,
      core: { storeUri: `unix://${dir}/socket?root=${dir}/root` },
      overrides: { listen: '127.0.0.1:0', shareListen: '127.0.0.1:0', mdns: false, sharing: true, peers: [], trustAllNetworks: true },
      rendererDir: `${PROJECT_ROOT}dist/renderer`,
      version: 'test',
      log: silentLogger,
    });
    url = svc.substituterUrl;
    publicKey = svc.api.snapshot().status.publicKey;
  });

  after(async () => {
    await svc?.stop({ graceMs: 100 });
    if (daemon?.pid && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
    if (dir) await cleanup(dir);
  });

  it('a machine that is right: nothing fails, and the CLI exits 0', async (t) => {
    writeSystemConf(['trusted-users = root', 'substituters =', `extra-substituters = ${url}`, `extra-trusted-public-keys = ${publicKey}`]);
    writeUserConf([]);
    // Not restarted yet: the daemon still runs with the nix.conf it read at start.
    await new Promise((r) => setTimeout(r, 2000));
    writeFileSync(`${dir}/etc/nix.conf`, readFileSync(`${dir}/etc/nix.conf`)); // touched 2 s after the daemon started
    const stale = check(await doctor(), 'daemon.config-age');
    t.diagnostic(`nix.conf changed after the daemon started: ${stale.status}: ${stale.detail} fix: ${stale.fix}`);
    assert.equal(stale.status, 'fail');
    assert.match(stale.fix!, /systemctl restart nix-daemon/);
    await restartDaemon();
    const r = await doctor();
    show(t, 'right state', r, [
      'daemon.reachable',
      'daemon.config-age',
      'nixconf.substituter',
      'nixconf.key',
      'peernix.running',
      'share.listening',
      'share.lan',
      'share.scopes',
      'nix-cache.negative',
      'files.key',
      'files.state-dir',
    ]);
    t.diagnostic(`  daemon: ${check(r, 'daemon.reachable').detail}`);
    assert.equal(
      r.failed,
      0,
      JSON.stringify(
        r.checks.filter((c) => c.status === 'fail'),
        null,
        1,
      ),
    );
    for (const id of [
      'daemon.reachable',
      'daemon.config-age',
      'nixconf.substituter',
      'nixconf.key',
      'peernix.running',
      'share.listening',
      'files.key',
      'files.state-dir',
    ])
      assert.equal(check(r, id).status, 'ok', id);
    assert.match(check(r, 'daemon.reachable').detail, /worker protocol 1\.\d+/);
    // Honest: from here the LAN side can't be seen.
    assert.equal(check(r, 'share.lan').status, 'unknown');
    assert.match(check(r, 'share.lan').detail, /Can't tell from this host/);
    // What is shared with whom, from the running Peernix's scope counters.
    assert.equal(check(r, 'share.scopes').status, 'ok');
    assert.match(check(r, 'share.scopes').detail, /paths judged: \d+ public, \d+ team, \d+ never .*cache\.nixos\.org-1.*\d+ requests refused by scope/);

    const cli = await run(
      nodeBin(),
      [MAIN, 'doctor', '--json', '--listen', new URL(url).host, '--state-dir', `${dir}/state`, '--store', `unix://${dir}/socket?root=${dir}/root`],
      { baseEnv: env() as NodeJS.ProcessEnv, timeoutMs: 60_000 },
    );
    const fromCli = JSON.parse(cli.stdout) as DoctorReport;
    t.diagnostic(`peernix doctor --json: exit ${cli.code}, ${fromCli.checks.length} checks, ${fromCli.failed} failed`);
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
  });

  it('the window shows the same checks, each problem with its fix', async (t) => {
    writeSystemConf(['trusted-users = root', 'substituters =']); // no substituter line
    writeUserConf([]);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
      await page.goto(`${url}/peernix/`);
      await page.getByTestId('doctor-check').first().waitFor({ timeout: 20_000 });
      const shown = await page.$$eval('[data-testid="doctor-check"]', (els) =>
        els.map((e) => `${(e as HTMLElement).dataset.check}=${(e as HTMLElement).dataset.status}`),
      );
      const report = await svc.api.doctor!();
      const expected = report.checks.map((c) => `${c.id}=${c.status}`);
      const fix = await page.locator('[data-check="nixconf.substituter"] [data-testid="doctor-fix"]').textContent();
      const summary = await page.getByTestId('doctor-summary').textContent();
      mkdirSync(`${PROJECT_ROOT}test-artifacts`, { recursive: true });
      await page.locator('#doctor').screenshot({ path: `${PROJECT_ROOT}test-artifacts/doctor-window.png` });
      t.diagnostic(`window: ${shown.length} checks (${shown.join(' ')}); summary "${summary}"`);
      assert.deepEqual(shown, expected);
      assert.ok(fix!.includes(`extra-substituters = ${url}`), fix!);
      assert.match(summary!, /problem\(s\) found/);
    } finally {
      await browser.close();
    }
  });

  it('no daemon: says so, with the command that starts it', async (t) => {
    const r = await doctor({ storeUri: `unix://${dir}/no-such-socket` });
    const c = check(r, 'daemon.reachable');
    show(t, 'no daemon', r, ['daemon.reachable']);
    assert.equal(c.status, 'fail');
    assert.match(c.detail, /does not exist/);
    assert.match(c.fix!, /systemctl start nix-daemon/);
    assert.ok(r.failed >= 1);
  });

  it('no substituter line: fails with the lines for nix.conf, and the CLI exits 1', async (t) => {
    writeSystemConf(['trusted-users = root', 'substituters =']);
    writeUserConf([]);
    const r = await doctor();
    const c = check(r, 'nixconf.substituter');
    show(t, 'no substituter line', r, ['nixconf.substituter', 'nixconf.key']);
    assert.equal(c.status, 'fail');
    assert.ok(c.fix!.includes(`extra-substituters = ${url}\nextra-trusted-public-keys = ${publicKey}\n`), c.fix!);
    assert.ok(c.fix!.includes(`${dir}/etc/nix.conf`));
    assert.equal(check(r, 'nixconf.key').status, 'warn');
    const cli = await run(
      nodeBin(),
      [MAIN, 'doctor', '--listen', new URL(url).host, '--state-dir', `${dir}/state`, '--store', `unix://${dir}/socket?root=${dir}/root`],
      { baseEnv: env() as NodeJS.ProcessEnv, timeoutMs: 60_000 },
    );
    t.diagnostic(
      `peernix doctor (text): exit ${cli.code}\n${cli.stdout
        .split('\n')
        .filter((l) => /FAIL|fix:|extra-/.test(l))
        .join('\n')}`,
    );
    assert.equal(cli.code, 1);
    assert.match(cli.stdout, /\[FAIL\] Nix uses Peernix as a substituter/);
  });

  it('an untrusted user: the daemon ignores the substituter, and doctor says why and what to add', async (t) => {
    writeSystemConf(['trusted-users = somebody-else', 'substituters =']);
    writeUserConf([`extra-substituters = ${url}`, `extra-trusted-public-keys = ${publicKey}`]);
    await restartDaemon(); // the daemon reads nix.conf when it starts
    const nix = await nixStoreR('/nix/store/22222222222222222222222222222222-untrusted');
    const ignored = nix.stderr.includes(`ignoring untrusted substituter '${url}'`);
    t.diagnostic(`nix-store -r as a user not in trusted-users: daemon says "ignoring untrusted substituter": ${ignored}`);
    assert.ok(ignored, nix.stderr);
    const r = await doctor();
    const c = check(r, 'nixconf.substituter');
    show(t, 'untrusted user', r, ['nixconf.substituter', 'nixconf.key']);
    assert.equal(c.status, 'fail');
    assert.match(c.detail, /not in trusted-users \(somebody-else\)/);
    assert.match(c.detail, /not in trusted-substituters/);
    assert.ok(c.fix!.includes(`extra-substituters = ${url}`));
    assert.match(check(r, 'nixconf.key').detail, /ignores that setting/);

    // The other way out the doctor names: the URL in trusted-substituters. Nix agrees, and so does doctor.
    writeSystemConf(['trusted-users = somebody-else', 'substituters =', `trusted-substituters = ${url}`]);
    await restartDaemon();
    const nix2 = await nixStoreR('/nix/store/33333333333333333333333333333333-untrusted');
    assert.ok(!nix2.stderr.includes('ignoring untrusted substituter'), nix2.stderr);
    const r2 = await doctor();
    t.diagnostic(`with trusted-substituters = ${url}: Nix warns no more; doctor says ${check(r2, 'nixconf.substituter').status}`);
    assert.equal(check(r2, 'nixconf.substituter').status, 'ok');
  });

  it('misses Nix remembers: counted from its own cache, with when and how to forget them', async (t) => {
    writeSystemConf(['trusted-users = root', 'substituters =', `extra-substituters = ${url}`, `extra-trusted-public-keys = ${publicKey}`]);
    writeUserConf([]);
    await restartDaemon();
    const path = '/nix/store/44444444444444444444444444444444-missing';
    const nix = await nixStoreR(path);
    assert.notEqual(nix.code, 0);
    const r = await doctor();
    const c = check(r, 'nix-cache.negative');
    t.diagnostic(`after one real miss: ${c.status}: ${c.detail}\n  fix: ${c.fix}`);
    assert.equal(c.status, 'warn');
    assert.match(c.detail, /^\d+ path\(s\) missed/);
    assert.ok(c.detail.includes('44444444444444444444444444444444'));
    assert.match(c.detail, /narinfo-cache-negative-ttl \(3600 s\)/);
    assert.match(c.fix!, /--option narinfo-cache-negative-ttl 0/);
    assert.match(c.fix!, /DELETE FROM NARs WHERE cache = \d+ AND present = 0/);
    // An hour on, Nix asks again: so does the doctor say.
    const later = await doctor({ now: Date.now() + 3601_000 });
    assert.equal(check(later, 'nix-cache.negative').status, 'ok');

    // The fix is exact: while the row is there Nix doesn't ask Peernix (its miss counter stays);
    // once the doctor's DELETE has run, it asks again.
    const misses = async () =>
      sample(await (await fetch(`${url}/metrics`)).text(), 'peernix_answers_total', { listener: 'substituter', route: 'narinfo', source: 'miss' });
    const m0 = await misses();
    await nixStoreR(path);
    const m1 = await misses();
    const sql = /sqlite3 (\S+) "([^"]+)"/.exec(c.fix!)!;
    const db = new DatabaseSync(sql[1]);
    db.exec(sql[2]);
    db.close();
    await nixStoreR(path);
    const m2 = await misses();
    t.diagnostic(`Peernix's narinfo misses: ${m0} → ${m1} (asked again with the row there) → ${m2} (after the doctor's DELETE)`);
    assert.equal(m1, m0);
    assert.equal(m2, m1 + 1);
    // Peernix still has no such path, so Nix remembers this fresh miss: just that one now.
    assert.match(check(await doctor(), 'nix-cache.negative').detail, /^1 path\(s\) missed/);
  });

  it('a closed share port and a key file readable by all', async (t) => {
    const sharingOn: Snapshot = svc.api.snapshot();
    await svc.api.setSharing(false);
    try {
      // What Peernix last said (sharing on) against the port as it is now: closed.
      const r = await doctor({ snapshot: async () => sharingOn });
      const c = check(r, 'share.listening');
      show(t, 'closed port', r, ['share.listening']);
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /Nothing accepts connections on port \d+/);
      assert.match(c.fix!, /peernix sharing/);
      const off = await doctor();
      assert.equal(check(off, 'share.listening').status, 'warn');
      assert.match(check(off, 'share.listening').fix!, /peernix sharing on/);
    } finally {
      await svc.api.setSharing(true);
    }
    const keyFile = `${dir}/state/secret-key`;
    chmodSync(keyFile, 0o644);
    try {
      const r = await doctor();
      const c = check(r, 'files.key');
      show(t, 'key 0644', r, ['files.key']);
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /mode 644/);
      assert.equal(c.fix, `chmod 600 ${keyFile}`);
    } finally {
      chmodSync(keyFile, 0o600);
    }
  });

  it('a state directory this user cannot write: says so, with the chown that fixes it', async (t) => {
    const user = await ensureUser('pn-doctor');
    try {
      chmodSync(dir, 0o755);
      mkdirSync(`${dir}/root-owned-state`, { mode: 0o755 });
      const [cmd, args] = asUser(user)(nodeBin(), [
        MAIN,
        'doctor',
        '--json',
        '--state-dir',
        `${dir}/root-owned-state`,
        '--listen',
        '127.0.0.1:1',
        '--store',
        `unix://${dir}/no-socket`,
      ]);
      const r = await run(cmd, args, { baseEnv: { PATH: '/usr/bin:/bin', HOME: `/home/${user.name}` }, timeoutMs: 60_000 });
      const report = JSON.parse(r.stdout) as DoctorReport;
      const c = check(report, 'files.state-dir');
      t.diagnostic(`as ${user.name} (uid ${user.uid}): exit ${r.code}; files.state-dir ${c.status}: ${c.detail} fix: ${c.fix}`);
      assert.equal(r.code, 1);
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /EACCES/);
      assert.equal(c.fix, `sudo chown -R ${user.name} ${dir}/root-owned-state && chmod 700 ${dir}/root-owned-state`);
    } finally {
      chmodSync(dir, 0o700);
      await releaseUser(user);
    }
  });

  async function restartDaemon(): Promise<void> {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    const log = openSync(`${dir}/daemon.log`, 'a');
    daemon = spawn('nix-daemon', ['--store', `${dir}/root`], {
      env: daemonEnv(),
      stdio: ['ignore', log, log],
    });
    await waitForSocket();
  }

  function waitForSocket(): Promise<boolean> {
    const tryOnce = () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(`${dir}/socket`);
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
    return waitFor('the nix-daemon socket', tryOnce, 10_000);
  }
});
