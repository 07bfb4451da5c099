// The tray app: a thin shell around the same core `peernix serve` runs. It owns only what needs a
// desktop — the single-instance lock, the tray, the window and start-at-login; the core does the rest.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, clipboard, dialog, ipcMain } from 'electron';
import type { PeernixApi } from '../src/api.ts';
import { createControlRoutes, type ControlHandler } from '../src/control/routes.ts';
import { loadOrCreateToken } from '../src/control/token.ts';
import { createLogger } from '../src/log.ts';
import { startPeernix } from '../src/peernix.ts';
import { defaultStateDir, ensureStateDir } from '../src/state-dir.ts';
import { IPC } from './ipc-schema.ts';
import { registerIpc } from './ipc.ts';
import { getStartAtLogin, setStartAtLogin } from './login-item.ts';
import { openAppSettings } from './settings-electron.ts';
import { createTray, type PeernixTray } from './tray.ts';
import { trayModel } from './tray-model.ts';
import { createMainWindow, pageUrl, type WindowPaths } from './window.ts';

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/electron
const root = path.join(here, '..', '..');
const rendererDir = path.join(root, 'dist', 'renderer');
const assetsDir = path.join(root, 'assets');
const windowPaths: WindowPaths = {
  preload: path.join(here, 'preload.cjs'),
  page: path.join(rendererDir, 'index.html'),
  icon: path.join(assetsDir, 'icon.png'),
};
const log = createLogger('info', 'peernix-app');

/** Peernix's version (package.json beside dist/), not Electron's when started as `electron main.js`. */
function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return app.getVersion();
  }
}

let win: BrowserWindow | null = null;
let tray: PeernixTray | null = null;
let api: PeernixApi | null = null;
let control: ControlHandler | null = null;
let startError: string | null = null;
let stopped = false;
let quitting = false;

function openWindow(): void {
  if (!api) return;
  if (!win || win.isDestroyed()) {
    win = createMainWindow(windowPaths);
    win.on('closed', () => {
      win = null;
    });
  } else {
    if (win.isMinimized()) win.restore();
    win.show();
  }
  win.focus();
  if (process.platform === 'darwin') app.focus({ steal: true });
}

async function start(): Promise<void> {
  // The same state directory as `peernix serve`, so `peernix status` and `peernix sharing` find the app.
  const stateDir = ensureStateDir(defaultStateDir());
  const settings = openAppSettings(stateDir);
  for (const p of settings.problems) log.warn(p);

  // The OS is the truth for start-at-login (the user may have changed it in system settings).
  let startAtLogin = getStartAtLogin(app);
  if (settings.get().startAtLogin !== startAtLogin) settings.set({ startAtLogin });

  const refreshTray = () => tray?.update(trayModel(api?.snapshot() ?? null, { startAtLogin, startError }));
  tray = createTray(
    assetsDir,
    {
      action(id) {
        if (id === 'open') openWindow();
        else if (id === 'copyNixConf') {
          const text = api?.snapshot().status.nixConf;
          if (text) clipboard.writeText(text.endsWith('\n') ? text : text + '\n');
        } else if (id === 'quit') app.quit();
      },
      toggle(id, checked) {
        if (id === 'sharing') {
          api?.setSharing(checked).catch((e: unknown) => log.error(`could not turn sharing ${checked ? 'on' : 'off'}: ${(e as Error).message}`)).finally(refreshTray);
        } else {
          try {
            setStartAtLogin(app, checked);
            startAtLogin = getStartAtLogin(app);
            settings.set({ startAtLogin });
          } catch (e) {
            log.error(`could not change start at login: ${(e as Error).message}`);
          }
          refreshTray();
        }
      },
    },
    trayModel(null, { startAtLogin }),
  );

  try {
    const s = settings.get();
    const token = await loadOrCreateToken(stateDir);
    const peernix = await startPeernix({
      stateDir,
      storeUri: 'daemon',
      shareListen: s.shareListen,
      listen: s.listen,
      sharing: s.sharing,
      peers: s.peers,
      mdns: s.mdns,
      version: version(),
      log,
      persistSharing: (on) => settings.set({ sharing: on }),
      // The same dashboard as the headless daemon, for a browser or `peernix status`.
      loopbackRoutes: (coreApi, url) => {
        const port = new URL(url).port;
        control = createControlRoutes({
          api: coreApi,
          token,
          rendererDir,
          allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`],
        });
        return control;
      },
    });
    api = peernix.api;
  } catch (e) {
    startError = (e as Error).message;
    log.error(`could not start: ${startError}`);
    refreshTray();
    dialog.showErrorBox('Peernix could not start', startError);
    return;
  }

  const own = pageUrl(windowPaths);
  registerIpc(ipcMain, api, {
    clipboard,
    isTrustedSender: (url) => url.split('#')[0] === own,
    broadcast: (change) => {
      for (const w of BrowserWindow.getAllWindows()) {
        if (!w.isDestroyed() && !w.webContents.isDestroyed()) w.webContents.send(IPC.change, change);
      }
    },
  });
  api.subscribe((change) => {
    if (change.topic !== 'entries') refreshTray();
  });
  refreshTray();
}

async function stop(): Promise<void> {
  control?.close();
  tray?.destroy();
  tray = null;
  if (!api) return;
  // A wedged stop must not keep the app from quitting.
  await Promise.race([api.stop(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => openWindow());
  // A tray app: closing the window must not quit.
  app.on('window-all-closed', () => {});
  app.on('before-quit', (event) => {
    if (stopped) return;
    event.preventDefault();
    if (quitting) return;
    quitting = true;
    stop()
      .catch((e: unknown) => log.error(`stop failed: ${(e as Error).message}`))
      .finally(() => {
        stopped = true;
        app.quit();
      });
  });
  app.dock?.hide();
  app
    .whenReady()
    .then(start)
    .catch((e: unknown) => {
      log.error(`start failed: ${(e as Error).stack ?? String(e)}`);
      app.exit(1);
    });
}
