// The Peernix window: sandboxed, context-isolated, no Node, only our preload and our page. It is
// created on demand and destroyed on close (the app keeps running in the tray).
import { BrowserWindow, shell, type Menu } from 'electron';
import type { Logger } from '../src/base/log.ts';
import { pathToFileURL } from 'node:url';
import { PAGE_CONTENT_SECURITY_POLICY } from '../src/control/contract.ts';

export interface WindowPaths {
  preload: string; // dist/electron/preload.cjs
  page: string; // dist/renderer/index.html
  icon?: string;
}

export function pageUrl(paths: WindowPaths): string {
  return pathToFileURL(paths.page).href;
}

export function createMainWindow(paths: WindowPaths, log: Logger, menu?: Menu): BrowserWindow {
  const win = new BrowserWindow({
    width: 1180,
    height: 780,
    minWidth: 400, // the page has a compact layout for a tray-sized window
    minHeight: 480,
    show: false,
    title: 'Peernix',
    icon: paths.icon,
    autoHideMenuBar: true,
    webPreferences: {
      preload: paths.preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
      navigateOnDragDrop: false,
    },
  });

  const own = pageUrl(paths);
  // The page never navigates; links (if any) open in the user's browser, nothing opens in-app.
  win.webContents.on('will-navigate', (event, url) => {
    if (url !== own) event.preventDefault();
  });
  win.webContents.on('will-redirect', (event) => event.preventDefault());
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (/^https?:\/\//.test(url)) shell.openExternal(url).catch((e: unknown) => log.warn(`could not open ${url}: ${(e as Error).message}`));
    return { action: 'deny' };
  });
  // The page already carries a CSP <meta>; repeat it as a header for anything served over http(s).
  win.webContents.session.webRequest.onHeadersReceived((details, callback) => {
    callback({
      responseHeaders: {
        ...details.responseHeaders,
        'Content-Security-Policy': [PAGE_CONTENT_SECURITY_POLICY],
      },
    });
  });
  win.webContents.session.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));

  if (menu) win.setMenu(menu);
  win.once('ready-to-show', () => win.show());
  win.loadFile(paths.page).catch((e: unknown) => {
    // A broken install (no dist/renderer): say so in the log and the window rather than crash.
    log.error(`could not load the window's page ${paths.page}: ${(e as Error).message}`);
    if (!win.isDestroyed()) {
      const html = `<meta charset="utf-8"><title>Peernix</title><p>Peernix could not load its window (${escapeHtml((e as Error).message)}). Its log has the details.</p>`;
      win.loadURL(`data:text/html;charset=utf-8,${encodeURIComponent(html)}`).then(
        () => win.show(),
        () => win.show(),
      );
    }
  });
  return win;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
