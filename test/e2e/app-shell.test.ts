import { generateKeyPair } from '../../src/nix/signing.ts';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IPC } from '../../electron/ipc-schema.ts';
import type { Snapshot } from '../../src/base/api.ts';
import { APP_MAIN, childPids, menuItem, startApp, statusLine, type AppProcess } from '../support/electron-app.ts';
import { get } from '../support/http.ts';
import { addPath, cleanup, makeTempDir, nixEnv, startNixHost, type NixHost } from '../support/nix-host.ts';
import { PROJECT_ROOT, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';

// The built tray app (dist/electron/main.js) under Node with a stand-in `electron`, on the real core:
// a real nix-daemon on a chroot store, real HTTP listeners on loopback, mDNS off.

const OWN_PAGE = `file://${path.join(PROJECT_ROOT, 'dist/renderer/index.html')}`;

describe('the tray app, driven end to end', { timeout: 600_000 }, () => {
  let dir: string;
  let host: NixHost;
  const apps: AppProcess[] = [];
  const blockers: net.Server[] = [];
  let other: PeernixProcess | null = null;
  let n = 0;

  before(async () => {
    dir = await makeTempDir('pn-app');
    host = await startNixHost(`${dir}/host`);
  });
  after(async () => {
    for (const a of apps) a.kill();
    await other?.stop('SIGKILL');
    for (const b of blockers) b.close();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  /** A fresh user: state dir, config dir and settings.json of their own. */
  function user(settings: Record<string, unknown> | null = {}) {
    const u = `${dir}/u${++n}`;
    fs.mkdirSync(`${u}/state`, { recursive: true });
    fs.mkdirSync(`${u}/config`, { recursive: true });
    if (settings) {
      fs.writeFileSync(
        `${u}/state/settings.json`,
        JSON.stringify({ sharing: false, shareListen: '127.0.0.1:0', listen: '127.0.0.1:0', mdns: false, peers: [], trustAllNetworks: true, ...settings }),
      );
    }
    const env = nixEnv({ PEERNIX_STATE_DIR: `${u}/state`, PEERNIX_STORE: host.storeUri, XDG_CONFIG_HOME: `${u}/config`, HOME: u });
    return { dir: u, env };
  }
  function launch(env: NodeJS.ProcessEnv, args: string[] = [], main?: string): AppProcess {
    const a = startApp(env, args, main);
    apps.push(a);
    return a;
  }
  async function busyPort(): Promise<number> {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    blockers.push(s);
    return (s.address() as net.AddressInfo).port;
  }
  const snapshot = (a: AppProcess) => a.invoke(IPC.snapshot, OWN_PAGE) as Promise<Snapshot>;

  it('start → status in the tray → share from the menu → settings and core agree → window on demand → Quit: exit 0, nothing left', async (t) => {
    const u = user();
    const a = launch(u.env, ['--hidden']);
    await a.waitFor('core started', (s) => statusLine(s) === 'Not sharing' && s.tray);
    const s = await a.state();
    assert.equal(s.windows.length, 0, 'started hidden (as at login): no window');
    assert.match(s.tray!.tooltip!, /Peernix — Not sharing/);

    await a.click('Share my Nix store');
    await a.waitFor('sharing', (st) => /^Sharing/.test(statusLine(st)));
    const snap = await snapshot(a);
    const saved = JSON.parse(fs.readFileSync(`${u.dir}/state/settings.json`, 'utf8'));
    t.diagnostic(`tray: "${statusLine(await a.state())}"; settings.sharing=${saved.sharing}; core sharing=${snap.status.sharing} on ${snap.status.shareUrl}`);
    assert.equal(saved.sharing, true);
    assert.equal(snap.status.sharing, true);
    assert.equal(menuItem(await a.state(), 'Share my Nix store')!.checked, true);
    assert.equal((await get(`${snap.status.shareUrl}/nix-cache-info`)).status, 200);
    assert.equal((await get(`${snap.status.substituterUrl}/nix-cache-info`)).status, 200);

    await a.click('Open Peernix');
    const w = await a.waitFor('window', (st) => st.windows.find((x) => x.visible && x.loaded));
    assert.equal(w.loaded, path.join(PROJECT_ROOT, 'dist/renderer/index.html'));
    // The page has a compact layout: the window may be as narrow as a tray-sized one.
    assert.ok((w.options.minWidth as number) <= 420, `minWidth ${w.options.minWidth}`);
    const prefs = w.options.webPreferences as Record<string, unknown>;
    assert.equal(prefs.contextIsolation, true);
    assert.equal(prefs.sandbox, true);
    assert.equal(prefs.nodeIntegration, false);
    assert.equal(prefs.preload, path.join(PROJECT_ROOT, 'dist/electron/preload.cjs'));
    assert.ok(fs.existsSync(prefs.preload as string));

    const kids = childPids(a.proc.pid!);
    await a.click('Quit Peernix');
    const code = await a.exited;
    t.diagnostic(`quit: exit ${code}; children before quit ${kids.length}`);
    assert.equal(code, 0, a.logs());
    for (const url of [snap.status.shareUrl!, snap.status.substituterUrl]) {
      await assert.rejects(get(`${url}/nix-cache-info`), /ECONNREFUSED/, `${url} closed`);
    }
    assert.ok(!fs.existsSync(`/proc/${a.proc.pid}`), 'the app process is gone');
    for (const k of kids) assert.ok(!fs.existsSync(`/proc/${k}`), `child ${k} gone`);
  });

  it('IPC from any page but our own is refused; bad arguments are refused', async () => {
    const a = launch(user().env, ['--hidden']);
    await a.waitFor('core started', (s) => statusLine(s) === 'Not sharing');
    for (const url of ['https://evil.example/', 'file:///tmp/index.html', `${OWN_PAGE}.evil`, 'about:blank', '']) {
      for (const [channel, args] of [
        [IPC.snapshot, []],
        [IPC.setSharing, [true]],
        [IPC.copyText, ['x']],
      ] as const) {
        await assert.rejects(a.invoke(channel, url, ...args), /refused a request/, `${channel} from ${url}`);
      }
    }
    const snap = await snapshot(a);
    assert.equal(snap.status.sharing, false, 'nothing from a foreign page went through');
    assert.equal((await snapshot(a)).status.version.length > 0, true);
    await assert.rejects(a.invoke(IPC.setSharing, OWN_PAGE, 'yes'), /expected true or false/);
    await a.invoke(IPC.copyText, `${OWN_PAGE}#peers`, 'hello');
    assert.deepEqual((await a.state()).clipboard, ['hello']);
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('every icon file the app asks for exists', async (t) => {
    const a = launch(user().env);
    const s = await a.waitFor('window', (st) => st.windows.length > 0 && st);
    const wanted = [...s.imagesRequested, s.windows[0].options.icon as string];
    const ok = wanted.filter((f) => fs.existsSync(f));
    t.diagnostic(`icons asked for: ${wanted.map((f) => path.basename(f)).join(', ')}; present ${ok.length}/${wanted.length}`);
    assert.ok(wanted.length >= 2);
    assert.deepEqual(ok, wanted);
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('an unreadable settings file still gives a tray, a dialog and a running core', async (t) => {
    const u = user(null);
    fs.mkdirSync(`${u.dir}/state/settings.json`); // reading it fails with EISDIR, even as root
    fs.mkdirSync(`${u.dir}/config/autostart`, { recursive: true });
    fs.writeFileSync(`${u.dir}/config/autostart/peernix.desktop`, '[Desktop Entry]\n'); // start-at-login differs from the default
    const a = launch({ ...u.env }, ['--hidden']);
    const s = await a.waitFor('tray with a notice', (st) => st.tray && st.tray.menu.length > 2 && st.tray.menu[1].type !== 'separator' && st);
    t.diagnostic(`dialogs: ${JSON.stringify(s.dialogs.map((d) => d.title))}; notice: "${s.tray!.menu[1].label}"`);
    assert.ok(s.dialogs.some((d) => /settings/.test(d.title) && /EISDIR|cannot read/.test(d.content)));
    assert.match(s.tray!.menu[1].label, /settings/i);
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0, a.logs());
  });

  it('a busy share port shows the error in the tray and the window; the next click retries and works', async (t) => {
    const port = await busyPort();
    const a = launch(user({ shareListen: `127.0.0.1:${port}` }).env, ['--hidden']);
    await a.waitFor('core started', (s) => statusLine(s) === 'Not sharing');
    await a.click('Share my Nix store');
    const s = await a.waitFor('error shown', (st) => /Sharing failed/.test(statusLine(st)) && st);
    t.diagnostic(`after a failed click: "${statusLine(s)}", icon ${path.basename(s.tray!.image!)}, checked=${menuItem(s, 'Share my Nix store')!.checked}`);
    assert.match(statusLine(s), /EADDRINUSE/);
    assert.match(s.tray!.image!, /tray-error/);
    assert.equal(menuItem(s, 'Share my Nix store')!.checked, false);
    // The window's way (IPC) gets the error too.
    await assert.rejects(a.invoke(IPC.setSharing, OWN_PAGE, true), /EADDRINUSE/);
    assert.match((await snapshot(a)).status.shareError ?? '', /EADDRINUSE/);
    blockers.pop()!.close();
    await new Promise((r) => setTimeout(r, 100));
    await a.click('Share my Nix store');
    const ok = await a.waitFor('sharing', (st) => /^Sharing/.test(statusLine(st)) && st);
    t.diagnostic(`after freeing the port and clicking again: "${statusLine(ok)}"`);
    assert.equal((await snapshot(a)).status.sharing, true);
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('start at login registers this app (its main script, hidden), not a folder Electron cannot open', async (t) => {
    const u = user();
    const a = launch(u.env, ['--hidden']);
    await a.waitFor('core started', (s) => statusLine(s) === 'Not sharing');
    await a.click('Start at login');
    await a.waitFor('checked', (s) => menuItem(s, 'Start at login')?.checked);
    const desktop = fs.readFileSync(`${u.dir}/config/autostart/peernix.desktop`, 'utf8');
    const exec = /^Exec=(.*)$/m.exec(desktop)![1].split(' ');
    t.diagnostic(`autostart Exec: ${exec.join(' ')}`);
    assert.equal(exec[0], process.execPath);
    assert.equal(exec[1], APP_MAIN);
    assert.ok(fs.statSync(exec[1]).isFile(), 'the main script, a file');
    assert.equal(exec[2], '--hidden');
    assert.equal(JSON.parse(fs.readFileSync(`${u.dir}/state/settings.json`, 'utf8')).startAtLogin, true);
    await a.click('Start at login');
    await a.waitFor('unchecked', (s) => menuItem(s, 'Start at login')?.checked === false);
    assert.ok(!fs.existsSync(`${u.dir}/config/autostart/peernix.desktop`));
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('start at login on macOS (platform stand-in): a development build refuses with a reason; an installed one shows "requires approval"; template icons; no Dock', async (t) => {
    const dev = launch({ ...user().env, STUB_PLATFORM: 'darwin' }, ['--hidden']);
    await dev.waitFor('core started', (s) => statusLine(s) === 'Not sharing');
    await dev.click('Start at login');
    const d = await dev.waitFor('refusal shown', (s) => s.tray!.menu[1].type !== 'separator' && s);
    t.diagnostic(
      `macOS dev build: "${d.tray!.menu[1].label}"; login items registered: ${d.loginItem.length}; icons ${d.imagesRequested.map((f) => path.basename(f)).join(', ')}; dock hidden ${d.dockHidden}`,
    );
    assert.match(d.tray!.menu[1].label, /installed Peernix\.app/);
    assert.equal(d.loginItem.length, 0, 'bare Electron.app is never registered');
    assert.equal(menuItem(d, 'Start at login')!.checked, false);
    assert.equal(d.dockHidden, true);
    assert.ok(d.imagesRequested.every((f) => /Template\.png$/.test(f) && fs.existsSync(f)));
    await dev.send({ cmd: 'quit' });
    assert.equal(await dev.exited, 0);

    const inst = launch({ ...user().env, STUB_PLATFORM: 'darwin', STUB_PACKAGED: '1', STUB_LOGIN_STATUS: 'requires-approval' }, ['--hidden']);
    await inst.waitFor('core started', (s) => statusLine(s) === 'Not sharing');
    await inst.click('Start at login');
    const p = await inst.waitFor('approval shown', (s) => s.tray!.menu[1].type !== 'separator' && s);
    t.diagnostic(`macOS installed: "${p.tray!.menu[1].label}"; registered ${JSON.stringify(p.loginItem)}`);
    assert.match(p.tray!.menu[1].label, /needs your approval/);
    assert.equal(p.loginItem[0].openAtLogin, true);
    await inst.send({ cmd: 'quit' });
    assert.equal(await inst.exited, 0);
  });

  it('named Peernix (its own userData and lock); a second launch exits and opens the first one’s window', async (t) => {
    const u = user();
    const a = launch(u.env, ['--hidden']);
    const s = await a.waitFor('core started', (st) => statusLine(st) === 'Not sharing' && st);
    t.diagnostic(`name ${s.name}; userData ${s.paths.userData}`);
    assert.equal(s.name, 'Peernix');
    assert.equal(s.paths.userData, `${u.dir}/config/Peernix`);
    assert.ok(fs.existsSync(`${u.dir}/config/Peernix/SingletonLock`));
    assert.ok(!fs.existsSync(`${u.dir}/config/Electron`));
    assert.equal(s.windows.length, 0);
    const b = launch(u.env);
    assert.equal(await b.exited, 0);
    await a.waitFor('window opened by the second launch', (st) => st.windows.some((w) => w.visible));
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('the tray menu is not rebuilt while nothing it shows changes (one idle peer, 10 s)', async (t) => {
    other = await startPeernixProcess([
      '--store',
      host.storeUri,
      '--share-listen',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      `${dir}/other`,
      '--no-mdns',
    ]);
    const a = launch(user({ peers: [other.shareUrl] }).env, ['--hidden']);
    await a.waitFor('peer up', (s) => /^Not sharing/.test(statusLine(s)) && (s.tray?.setContextMenuCalls ?? 0) > 0);
    await waitFor('peer seen', async () => (await snapshot(a)).peers.some((p) => p.state === 'up'), 20_000);
    await new Promise((r) => setTimeout(r, 1000));
    const before = (await a.state()).tray!.setContextMenuCalls;
    await new Promise((r) => setTimeout(r, 10_000));
    const s = await a.state();
    const rebuilds = s.tray!.setContextMenuCalls - before;
    t.diagnostic(`menu rebuilds in 10 s with one idle peer: ${rebuilds} (total ${s.tray!.setContextMenuCalls})`);
    assert.ok(rebuilds <= 1, `${rebuilds} rebuilds`);
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('a busy port names its holder, offers Retry; a later launch retries and opens the window', async (t) => {
    const port = await busyPort();
    const u = user({ listen: `127.0.0.1:${port}` });
    const a = launch(u.env);
    const s = await a.waitFor('start failure shown', (st) => st.dialogs.length > 0 && menuItem(st, 'Retry') && st);
    t.diagnostic(`dialog: ${s.dialogs[0].content}`);
    assert.match(s.dialogs[0].content, new RegExp(`127\\.0\\.0\\.1:${port} is already in use by process ${process.pid}`));
    assert.deepEqual(s.dialogs[0].buttons, ['Retry', 'Close']);
    assert.match(statusLine(s), /could not start/);
    assert.equal(s.windows.length, 0);
    // Retry while the port is still held: the same clear failure again, nothing worse.
    await a.click('Retry');
    const again = await a.waitFor('second failure shown', (st) => st.dialogs.length === 2 && menuItem(st, 'Retry') && st);
    assert.equal(again.dialogs[1].content, s.dialogs[0].content);
    blockers.pop()!.close();
    await new Promise((r) => setTimeout(r, 100));
    const b = launch(u.env);
    assert.equal(await b.exited, 0);
    await a.waitFor('started and window open', (st) => statusLine(st) === 'Not sharing' && st.windows.some((w) => w.visible));
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('when a Peernix daemon holds the port, the app says so and offers its dashboard', async (t) => {
    other ??= await startPeernixProcess([
      '--store',
      host.storeUri,
      '--share-listen',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      `${dir}/other`,
      '--no-mdns',
    ]);
    const port = new URL(other.substituterUrl).port;
    const a = launch(user({ listen: `127.0.0.1:${port}` }).env);
    await a.send({ cmd: 'dialogResponse', response: 0 });
    const s = await a.waitFor('dialog', (st) => st.dialogs.length > 0 && st.shell.length > 0 && st);
    t.diagnostic(`dialog: ${s.dialogs[0].content}; opened ${s.shell[0].target}`);
    assert.match(s.dialogs[0].content, new RegExp(`Peernix is already running on this machine as process ${other.proc.pid}`));
    assert.deepEqual(s.dialogs[0].buttons, ['Open its dashboard', 'Retry', 'Close']);
    assert.deepEqual(s.shell[0], { kind: 'openExternal', target: `http://127.0.0.1:${port}/peernix/` });
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
  });

  it('when this user’s own `peernix serve` runs, the app becomes its tray and window, and takes over when it stops', async (t) => {
    const u = user();
    const daemon = await startPeernixProcess([
      '--store',
      host.storeUri,
      '--share-listen',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      `${u.dir}/state`,
      '--no-mdns',
      '--no-share',
    ]);
    const port = new URL(daemon.substituterUrl).port;
    const settingsFile = `${u.dir}/state/settings.json`;
    fs.writeFileSync(settingsFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(settingsFile, 'utf8')), listen: `127.0.0.1:${port}` }));
    try {
      const a = launch(u.env);
      const s = await a.waitFor(
        'attached, window open',
        (st) => st.tray?.menu[1]?.label.startsWith('Showing the Peernix already running here') && st.windows.some((w) => w.visible) && st,
      );
      assert.equal(s.dialogs.length, 0, 'no error dialog');
      const theirs = JSON.parse((await get(`${daemon.substituterUrl}/peernix/api/snapshot`)).body.toString()) as Snapshot;
      assert.equal((await snapshot(a)).status.substituterUrl, theirs.status.substituterUrl);
      await a.click('Share my Nix store');
      await a.waitFor('sharing shown', (st) => /^Sharing/.test(statusLine(st)));
      const after = JSON.parse((await get(`${daemon.substituterUrl}/peernix/api/snapshot`)).body.toString()) as Snapshot;
      t.diagnostic(`attached to pid ${daemon.proc.pid} on :${port}; tray "${statusLine(await a.state())}"; daemon sharing=${after.status.sharing}`);
      assert.equal(after.status.sharing, true, 'the click switched the daemon');
      // The daemon stops: the app runs its own core on the freed port, with the saved choice.
      assert.equal(await daemon.stop(), 0);
      // Its own core: no "showing the Peernix running here" line under the status (an upgrade's notice may be there).
      const own = await a.waitFor(
        'own core',
        (st) => /^Sharing/.test(statusLine(st)) && st.tray!.menu.filter((i) => !/^Team paths now/.test(i.label))[1].type === 'separator' && st,
      );
      const mine = await snapshot(a);
      t.diagnostic(`after the daemon stopped: tray "${statusLine(own)}", own core on ${mine.status.substituterUrl}`);
      assert.equal(mine.status.substituterUrl, `http://127.0.0.1:${port}`);
      await a.send({ cmd: 'quit' });
      assert.equal(await a.exited, 0);
    } finally {
      await daemon.stop('SIGKILL');
    }
  });

  it('a window whose page cannot load is logged and shown, not an unhandled rejection', async (t) => {
    // A broken install: the app without dist/renderer.
    const copy = `${dir}/broken`;
    fs.mkdirSync(`${copy}/dist/electron`, { recursive: true });
    for (const f of ['main.js', 'preload.cjs']) fs.copyFileSync(path.join(PROJECT_ROOT, 'dist/electron', f), `${copy}/dist/electron/${f}`);
    fs.symlinkSync(path.join(PROJECT_ROOT, 'node_modules'), `${copy}/node_modules`);
    fs.symlinkSync(path.join(PROJECT_ROOT, 'assets'), `${copy}/assets`);
    fs.copyFileSync(path.join(PROJECT_ROOT, 'package.json'), `${copy}/package.json`);
    const a = launch(user().env, [], `${copy}/dist/electron/main.js`);
    const s = await a.waitFor('fallback page', (st) => st.windows.some((w) => w.loadError && w.loaded?.startsWith('data:')) && st);
    t.diagnostic(`load error: ${s.windows[0].loadError}`);
    assert.match(a.logs(), /could not load the window's page/);
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0, a.logs());
  });

  it('a log file in the state directory, "Open log" from the tray and the window', async (t) => {
    const u = user();
    const a = launch(u.env);
    const s = await a.waitFor('window', (st) => statusLine(st) === 'Not sharing' && st.windows.length > 0 && st);
    const file = `${u.dir}/state/logs/peernix-app.log`;
    const text = fs.readFileSync(file, 'utf8');
    t.diagnostic(`log file ${file}: ${text.split('\n').length - 1} lines`);
    assert.match(text, /substituter for this machine's Nix on http:\/\/127\.0\.0\.1:\d+/);
    assert.ok(JSON.stringify(s.windows[0].menu).includes('Open log'));
    await a.click('Open log');
    assert.deepEqual((await a.state()).shell.at(-1), { kind: 'openPath', target: file });
    await a.send({ cmd: 'quit' });
    assert.equal(await a.exited, 0);
    assert.match(fs.readFileSync(file, 'utf8'), /stopped/);
  });

  it('Quit while a peer downloads a NAR: the transfer finishes byte-exact, then exit 0', async (t) => {
    const big = await addPath(host, 'app-quit', { type: 'file', size: 64 * 1024 * 1024, seed: 'app-quit' });
    const want = await host.dumpHash(big);
    // The path is unsigned (team only): the app's own key, which signs what it serves, is made public so curl may have it.
    const key = generateKeyPair('app-quit-1');
    const u = user({ sharing: true, publicKeys: [key.publicKeyText] });
    fs.writeFileSync(`${u.dir}/state/secret-key`, key.secretKeyText, { mode: 0o600 });
    const a = launch(u.env, ['--hidden']);
    await a.waitFor('sharing', (s) => /^Sharing/.test(statusLine(s)));
    const shareUrl = (await snapshot(a)).status.shareUrl!;
    const ni = await get(`${shareUrl}/${big.slice(11, 43)}.narinfo`);
    const narUrl = new URL(/^URL: (.*)$/m.exec(ni.body.toString())![1], shareUrl + '/').href;
    const curl = spawn('curl', ['-sS', '--fail', '--limit-rate', String(12 * 1024 * 1024), '-o', '-', narUrl], { stdio: ['ignore', 'pipe', 'ignore'] });
    const hash = createHash('sha256');
    let bytes = 0;
    curl.stdout.on('data', (b: Buffer) => {
      bytes += b.length;
      hash.update(b);
    });
    const curlDone = once(curl, 'close');
    await waitFor('download under way', async () => bytes > 4 * 1024 * 1024, 20_000);
    const at = bytes;
    await a.click('Quit Peernix');
    const [curlCode] = (await curlDone) as [number];
    const code = await a.exited;
    t.diagnostic(`Quit at ${at} bytes; download ${bytes}/${want.size} bytes, curl exit ${curlCode}; app exit ${code}`);
    assert.equal(curlCode, 0);
    assert.equal(bytes, want.size);
    assert.equal(hash.digest('hex'), want.sha256.toString('hex'));
    assert.equal(code, 0);
  });

  it('one SIGTERM quits the app like Quit: exit 0', async (t) => {
    const a = launch(user().env, ['--hidden']);
    await a.waitFor('core started', (s) => statusLine(s) === 'Not sharing');
    a.proc.kill('SIGTERM');
    const code = await a.exited;
    t.diagnostic(`exit after one SIGTERM: ${code}`);
    assert.equal(code, 0, a.logs());
    assert.match(a.logs(), /SIGTERM: quitting/);
  });
});
