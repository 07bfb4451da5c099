// The tray app: a thin shell around the same service `peernix serve` runs (src/service.ts). It owns
// only what needs a desktop — the single-instance lock, the tray, the window, start-at-login, the
// log file and the dialogs that say why something did not work; the core does the rest.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, clipboard, dialog, ipcMain, Menu, shell } from 'electron';
import type { PeernixApi } from '../src/base/api.ts';
import { connectRemoteApi, tokenMatches, type RemoteApi } from '../src/control/remote-api.ts';
import { readToken } from '../src/control/token.ts';
import { createLogger, type Logger } from '../src/base/log.ts';
import { openLogFile, type LogFile } from '../src/base/log-file.ts';
import { openServiceState, resolveStateDir, startService, type PeernixService, type ServiceState } from '../src/app/service.ts';
import { onShutdownSignals, SHUTDOWN_GRACE_MS } from '../src/base/shutdown-signals.ts';
import { ensureStateDir } from '../src/base/state-dir.ts';
import type { Settings } from '../src/app/settings.ts';
import { VERSION } from '../src/base/version.ts';
import { registerIpc } from './ipc.ts';
import { getStartAtLogin, HIDDEN_FLAG, setStartAtLogin } from './login-item.ts';
import { openAppSettings } from './settings-electron.ts';
import { explainStartError, type StartFailure } from './start-error.ts';
import { createTray, type PeernixTray } from './tray.ts';
import { trayModel } from './tray-model.ts';
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
const launchedHidden =
  process.argv.includes(HIDDEN_FLAG) || (process.platform === 'darwin' && Boolean(app.getLoginItemSettings().wasOpenedAtLogin));

let log: Logger = createLogger('info', 'peernix-app');
let logFile: LogFile | null = null;
let state: ServiceState | null = null;
let service: PeernixService | null = null;
// Another Peernix on this machine (`peernix serve`) whose tray and window this app has become.
let remote: RemoteApi | null = null;
/** What the tray and window show: our own core's API, or the other Peernix's. */
let api: PeernixApi | null = null;
let unregisterIpc: (() => void) | null = null;
let unsubscribeApi: (() => void) | null = null;
let starting: Promise<boolean> | null = null;
let failure: StartFailure | null = null;
let notice: string | null = null;
let startAtLogin = false;
let win: BrowserWindow | null = null;
let tray: PeernixTray | null = null;
let stopped = false;
let quitting = false;

function refreshTray(): void {
  tray?.update(trayModel(api?.snapshot() ?? null, { startAtLogin, startError: failure?.message ?? null, notice }));
}

function openWindow(): void {
  if (!api) return;
  if (!win || win.isDestroyed()) {
    win = createMainWindow(windowPaths, log, windowMenu());
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
        { label: 'Open log', click: openLog },
        { label: 'Show log in folder', click: () => logFile && shell.showItemInFolder(logFile.path) },
      ],
    },
  ]);
}

function openLog(): void {
  if (!logFile) return;
  shell.openPath(logFile.path).then(
    (err) => err && log.warn(`could not open the log ${logFile?.path}: ${err}`),
    (e: unknown) => log.warn(`could not open the log: ${(e as Error).message}`),
  );
}

/** Saves a setting; a file that can't be written is shown in the tray, never thrown. */
function saveSetting(patch: Partial<Settings>): void {
  try {
    state?.settings.set(patch);
  } catch (e) {
    notice = `Settings not saved: ${(e as Error).message}`;
    log.error(notice);
  }
}

function toggleStartAtLogin(on: boolean): void {
  try {
    const refused = setStartAtLogin(app, mainScript, on);
    startAtLogin = getStartAtLogin(app, mainScript);
    notice = refused;
    if (refused) log.warn(refused);
  } catch (e) {
    notice = `Could not change start at login: ${(e as Error).message}`;
    log.error(notice);
  }
  saveSetting({ startAtLogin });
}

/** Points the tray, the window's IPC and change notices at `a`. */
function useApi(a: PeernixApi): void {
  api = a;
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
    if (change.topic !== 'entries' && change.topic !== 'transfers') refreshTray();
  });
  refreshTray();
}

/**
 * Our port is held by a Peernix on this machine. If its control token is ours (same user, same state
 * directory), become its tray and window; when it goes away, try to start our own core again.
 */
async function attachToRunningPeernix(f: StartFailure): Promise<boolean> {
  if (!f.dashboardUrl || !state) return false;
  const base = new URL(f.dashboardUrl).origin;
  try {
    const token = await readToken(state.stateDir);
    if (!token || !(await tokenMatches(base, token))) {
      log.info(`the Peernix at ${base} is not ours to control (another user's or state directory's token)`);
      return false;
    }
    const r = await connectRemoteApi(base, token, log);
    remote = r;
    notice = `Showing the Peernix already running here (${base})`;
    log.info(`${notice}: becoming its tray and window`);
    r.onLost(() => {
      if (remote !== r) return;
      remote = null;
      api = null;
      notice = null;
      refreshTray();
      // It stopped: its port is probably free now, so run our own core, from the settings as it left them.
      state = null;
      setTimeout(() => void startCore(), 500).unref();
    });
    useApi(r);
    return true;
  } catch (e) {
    log.warn(`could not attach to the Peernix at ${base}: ${(e as Error).message}`);
    return false;
  }
}

/** Starts the core; on failure says why (dialog + tray) and leaves Retry. Resolves whether it runs. */
function startCore(): Promise<boolean> {
  if (api) return Promise.resolve(true);
  starting ??= (async () => {
    failure = null;
    refreshTray();
    try {
      state ??= openServiceState({ stateDir: resolveStateDir(), openSettings: openAppSettings, log });
      service = await startService({
        state,
        // PEERNIX_STORE: another nix-daemon than the system's (tests, unusual setups).
        core: { storeUri: process.env.PEERNIX_STORE || 'daemon' },
        rendererDir,
        version: VERSION,
        log,
      });
    } catch (e) {
      const f = await explainStartError(e, state?.settings.path ?? null);
      if (await attachToRunningPeernix(f)) return true;
      failure = f;
      log.error(`could not start: ${failure.message}`);
      refreshTray();
      showStartFailure(failure);
      return false;
    } finally {
      starting = null;
    }
    useApi(service.api);
    return true;
  })();
  return starting;
}

function showStartFailure(f: StartFailure): void {
  const buttons = [...(f.dashboardUrl ? ['Open its dashboard'] : []), 'Retry', 'Close'];
  dialog
    .showMessageBox({ type: 'error', title: 'Peernix', message: 'Peernix could not start', detail: f.message, buttons, cancelId: buttons.length - 1, defaultId: 0 })
    .then(({ response }) => {
      const choice = buttons[response];
      if (choice === 'Open its dashboard' && f.dashboardUrl) return shell.openExternal(f.dashboardUrl);
      if (choice === 'Retry') return startCore().then((ok) => void (ok && openWindow()));
    })
    .catch((e: unknown) => log.error(`start-failure dialog: ${(e as Error).message}`));
}

async function whenReady(): Promise<void> {
  // Settings and the log first, so that whatever happens next is written down and shown.
  try {
    const stateDir = ensureStateDir(resolveStateDir());
    logFile = openLogFile(path.join(stateDir, 'logs', 'peernix-app.log'));
    const file = logFile;
    log = createLogger('info', 'peernix-app', (line) => {
      process.stderr.write(line + '\n');
      file.write(line);
    });
    log.info(`Peernix ${VERSION} starting${launchedHidden ? ' hidden (at login)' : ''}`);
    state = openServiceState({ stateDir, openSettings: openAppSettings, log });
    if (state.settings.problems.length) notice = state.settings.problems[0];
  } catch (e) {
    log.error(`state directory: ${(e as Error).message}`);
  }

  // The OS is the truth for start-at-login (the user may have changed it in system settings).
  try {
    startAtLogin = getStartAtLogin(app, mainScript);
  } catch (e) {
    log.warn(`cannot read start at login: ${(e as Error).message}`);
  }
  if (state && state.settings.get().startAtLogin !== startAtLogin) saveSetting({ startAtLogin });

  tray = createTray(
    assetsDir,
    {
      action(id) {
        if (id === 'open') openWindow();
        else if (id === 'copyNixConf') {
          const text = api?.snapshot().status.nixConf;
          if (text) clipboard.writeText(text.endsWith('\n') ? text : text + '\n');
        } else if (id === 'retry') void startCore().then((ok) => ok && openWindow());
        else if (id === 'openLog') openLog();
        else if (id === 'quit') app.quit();
      },
      toggle(id, checked) {
        // Electron has already flipped the checkbox; whatever happens, show the truth again.
        tray?.invalidate();
        if (id === 'sharing') {
          if (!api) return refreshTray();
          api
            .setSharing(checked)
            .catch((e: unknown) => log.error(`could not turn sharing ${checked ? 'on' : 'off'}: ${(e as Error).message}`))
            .finally(refreshTray);
        } else {
          toggleStartAtLogin(checked);
          refreshTray();
        }
      },
    },
    trayModel(null, { startAtLogin, notice }),
  );
  if (notice && state?.settings.problems.some((p) => /cannot read|could not keep a copy/.test(p))) {
    dialog.showErrorBox('Peernix: settings file problem', state.settings.problems.join('\n'));
  }

  if ((await startCore()) && !launchedHidden) openWindow();
}

async function stop(): Promise<void> {
  tray?.destroy();
  tray = null;
  // The other Peernix keeps running; only our connection to it ends.
  await remote?.stop();
  if (!service) return;
  log.info(`stopping; running transfers get up to ${SHUTDOWN_GRACE_MS / 1000} s to finish`);
  // A wedged stop must not keep the app from quitting.
  await Promise.race([service.stop({ graceMs: SHUTDOWN_GRACE_MS }), new Promise((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS + 5000).unref())]);
  log.info('stopped');
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  // A second launch (by hand, from the dock): retry a failed start, then show the window.
  app.on('second-instance', () => {
    void startCore().then((ok) => ok && openWindow());
  });
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
        logFile?.close();
        app.quit();
      });
  });
  // SIGTERM/SIGINT (logout, `kill`, Ctrl-C in a terminal) quit like the menu's Quit; a second cuts short.
  onShutdownSignals((sig, count) => {
    if (count > 1) {
      log.warn(`second ${sig}: exiting now`);
      app.exit(1);
    } else {
      log.info(`${sig}: quitting`);
      app.quit();
    }
  });
  app.dock?.hide();
  app
    .whenReady()
    .then(whenReady)
    .catch((e: unknown) => {
      log.error(`start failed: ${(e as Error).stack ?? String(e)}`);
      dialog.showErrorBox('Peernix could not start', (e as Error).message);
      app.exit(1);
    });
}
