// The tray app: a thin shell around the same service `peernix serve` runs (src/app/service.ts). It owns
// only what needs a desktop — the single-instance lock, the tray (tray-controller.ts), the window, the
// log file (app-log.ts) and the dialogs that say why something did not work; the core controller
// (core-controller.ts) starts, retries, attaches to a running Peernix and stops; the core does the rest.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, clipboard, dialog, ipcMain, Menu, shell } from 'electron';
import type { PeernixApi } from '../src/base/api.ts';
import { resolveStateDir } from '../src/app/service.ts';
import { onShutdownSignals, SHUTDOWN_GRACE_MS } from '../src/base/shutdown-signals.ts';
import { ensureStateDir } from '../src/base/state-dir.ts';
import { VERSION } from '../src/base/version.ts';
import { AppLog } from './app-log.ts';
import { CoreController } from './core-controller.ts';
import { registerIpc } from './ipc.ts';
import { HIDDEN_FLAG } from './login-item.ts';
import type { StartFailure } from './start-error.ts';
import { TrayController } from './tray-controller.ts';
import { createMainWindow, pageUrl, type WindowPaths } from './window.ts';

// Our own name, before anything reads userData: unpackaged, Electron would call the app "Electron"
// and share ~/.config/Electron (and its single-instance lock) with every other unpackaged app.
app.setName('Peernix');
app.setPath('userData', path.join(app.getPath('appData'), 'Peernix'));

const mainScript = fileURLToPath(import.meta.url); // dist/electron/main.js
const here = path.dirname(mainScript);
const root = path.join(here, '..', '..');
const rendererDir = path.join(root, 'dist', 'renderer');
const assetsDir = path.join(root, 'assets');
const windowPaths: WindowPaths = {
  preload: path.join(here, 'preload.cjs'),
  page: path.join(rendererDir, 'index.html'),
  icon: path.join(assetsDir, 'icon.png'),
};
// Only a launch at login starts hidden; a user who starts the app by hand gets its window.
const launchedHidden = process.argv.includes(HIDDEN_FLAG) || (process.platform === 'darwin' && Boolean(app.getLoginItemSettings().wasOpenedAtLogin));

const appLog = new AppLog();
const log = () => appLog.log;
let win: BrowserWindow | null = null;
let unregisterIpc: (() => void) | null = null;
let unsubscribeApi: (() => void) | null = null;
let stopped = false;
let quitting = false;

const core = new CoreController({
  log,
  rendererDir,
  onApi: (a) => (a ? useApi(a) : tray.refresh()),
  onChange: () => tray.refresh(),
  onFailure: showStartFailure,
});
const tray = new TrayController({
  core,
  log,
  assetsDir,
  mainScript,
  openWindow,
  openLog: () => appLog.open(),
  retry: () => void core.start().then((ok) => ok && openWindow()),
});

function openWindow(): void {
  if (!core.api) return;
  if (!win || win.isDestroyed()) {
    win = createMainWindow(windowPaths, log(), windowMenu());
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

function windowMenu(): Menu {
  return Menu.buildFromTemplate([
    {
      label: 'Help',
      submenu: [
        { label: 'Open log', click: () => appLog.open() },
        { label: 'Show log in folder', click: () => appLog.showInFolder() },
      ],
    },
  ]);
}

/** Points the tray, the window's IPC and change notices at `a`. */
function useApi(a: PeernixApi): void {
  unregisterIpc?.();
  const own = pageUrl(windowPaths);
  unregisterIpc = registerIpc(ipcMain, a, {
    clipboard,
    isTrustedSender: (url) => url.split('#')[0] === own,
    broadcast: (channel, payload) => {
      for (const w of BrowserWindow.getAllWindows()) {
        if (!w.isDestroyed() && !w.webContents.isDestroyed()) w.webContents.send(channel, payload);
      }
    },
  });
  unsubscribeApi?.();
  unsubscribeApi = a.subscribe((change) => {
    // Transfer progress comes several times a second and says nothing the tray shows.
    if (change.topic !== 'entries' && change.topic !== 'transfers') tray.refresh();
  });
  tray.refresh();
}

function showStartFailure(f: StartFailure): void {
  const buttons = [...(f.dashboardUrl ? ['Open its dashboard'] : []), 'Retry', 'Close'];
  dialog
    .showMessageBox({
      type: 'error',
      title: 'Peernix',
      message: 'Peernix could not start',
      detail: f.message,
      buttons,
      cancelId: buttons.length - 1,
      defaultId: 0,
    })
    .then(({ response }) => {
      const choice = buttons[response];
      if (choice === 'Open its dashboard' && f.dashboardUrl) return shell.openExternal(f.dashboardUrl);
      if (choice === 'Retry') return core.start().then((ok) => void (ok && openWindow()));
    })
    .catch((e: unknown) => log().error(`start-failure dialog: ${(e as Error).message}`));
}

async function whenReady(): Promise<void> {
  // Settings and the log first, so that whatever happens next is written down and shown.
  try {
    const stateDir = ensureStateDir(resolveStateDir());
    appLog.openFile(stateDir);
    log().info(`Peernix ${VERSION} starting${launchedHidden ? ' hidden (at login)' : ''}`);
    core.openState(stateDir);
  } catch (e) {
    log().error(`state directory: ${(e as Error).message}`);
  }
  tray.readStartAtLogin();
  tray.show();
  if (core.notice && core.state?.settings.problems.some((p) => /cannot read|could not keep a copy/.test(p))) {
    dialog.showErrorBox('Peernix: settings file problem', core.state.settings.problems.join('\n'));
  }

  if ((await core.start()) && !launchedHidden) openWindow();
}

async function stop(): Promise<void> {
  tray.destroy();
  await core.stop(SHUTDOWN_GRACE_MS);
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  // A second launch (by hand, from the dock): retry a failed start, then show the window.
  app.on('second-instance', () => {
    void core.start().then((ok) => ok && openWindow());
  });
  // A tray app: closing the window must not quit.
  app.on('window-all-closed', () => {});
  app.on('before-quit', (event) => {
    if (stopped) return;
    event.preventDefault();
    if (quitting) return;
    quitting = true;
    stop()
      .catch((e: unknown) => log().error(`stop failed: ${(e as Error).message}`))
      .finally(() => {
        stopped = true;
        appLog.close();
        app.quit();
      });
  });
  // SIGTERM/SIGINT (logout, `kill`, Ctrl-C in a terminal) quit like the menu's Quit; a second cuts short.
  onShutdownSignals((sig, count) => {
    if (count > 1) {
      log().warn(`second ${sig}: exiting now`);
      app.exit(1);
    } else {
      log().info(`${sig}: quitting`);
      app.quit();
    }
  });
  app.dock?.hide();
  app
    .whenReady()
    .then(whenReady)
    .catch((e: unknown) => {
      log().error(`start failed: ${(e as Error).stack ?? String(e)}`);
      dialog.showErrorBox('Peernix could not start', (e as Error).message);
      app.exit(1);
    });
}
