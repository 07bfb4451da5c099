// A stand-in for the `electron` module, so the built main process runs under plain Node in tests.
// It does what the app asks as far as it can be observed (records the tray, menus, windows, dialogs,
// clipboard, IPC handlers, login items; loads files; keeps a single-instance lock in userData like
// Electron's SingletonLock), and takes commands from the test over the child's IPC channel: click a
// menu item by label, invoke an IPC channel as a given frame URL, quit. Only what the app uses.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MenuItemState, StubCommand, StubMessage, StubState, WindowState } from './protocol.ts';

// STUB_PLATFORM=darwin runs the app's macOS paths (template icons, Dock, login items) on Linux;
// STUB_PACKAGED=1 makes it an installed app; STUB_LOGIN_STATUS is what macOS says after registering.
if (process.env.STUB_PLATFORM) Object.defineProperty(process, 'platform', { value: process.env.STUB_PLATFORM });
const loginItem = { openAtLogin: false, status: 'not-registered' };

const state: StubState = {
  name: 'Electron', // what an unpackaged app without its own name is called
  paths: {},
  ready: false,
  tray: null,
  imagesRequested: [],
  windows: [],
  dialogs: [],
  clipboard: [],
  shell: [],
  ipcHandlers: [],
  loginItem: [],
  quitRequested: 0,
  singleInstanceLock: null,
  secondInstances: [],
  dockHidden: false,
};

function send(msg: StubMessage): void {
  if (process.connected) process.send?.(msg);
}
function event(what: string, detail?: unknown): void {
  send({ type: 'event', what, detail });
}

// ---- nativeImage -------------------------------------------------------------------------------
class NativeImage {
  readonly file: string;
  template = false;
  constructor(file: string) {
    this.file = file;
  }
  isEmpty(): boolean {
    return !fs.existsSync(this.file);
  }
  setTemplateImage(on: boolean): void {
    this.template = on;
  }
}
export const nativeImage = {
  createFromPath(file: string): NativeImage {
    state.imagesRequested.push(file);
    return new NativeImage(file);
  },
};

// ---- Menu --------------------------------------------------------------------------------------
type Click = (item: MenuItem, win: unknown, ev: unknown) => void;
class MenuItem {
  label: string;
  type: string;
  checked: boolean;
  enabled: boolean;
  click?: Click;
  role?: string;
  submenu?: Menu;
  constructor(t: Record<string, unknown>) {
    this.label = (t.label as string) ?? (t.role as string) ?? '';
    this.type = (t.type as string) ?? (t.submenu ? 'submenu' : 'normal');
    this.checked = Boolean(t.checked);
    this.enabled = t.enabled !== false;
    this.click = t.click as Click | undefined;
    this.role = t.role as string | undefined;
    if (t.submenu) this.submenu = t.submenu instanceof Menu ? t.submenu : Menu.buildFromTemplate(t.submenu as Record<string, unknown>[]);
  }
}
export class Menu {
  items: MenuItem[] = [];
  static buildFromTemplate(template: Record<string, unknown>[]): Menu {
    const m = new Menu();
    m.items = template.map((t) => new MenuItem(t));
    return m;
  }
  static setApplicationMenu(menu: Menu | null): void {
    appMenu = menu;
  }
}
let appMenu: Menu | null = null;
function menuState(m: Menu | null): MenuItemState[] {
  return (m?.items ?? []).map((i) => ({
    label: i.label,
    type: i.type,
    checked: i.checked,
    enabled: i.enabled,
    ...(i.submenu ? { submenu: menuState(i.submenu) } : {}),
  }));
}
function findItem(m: Menu | null, label: string): MenuItem | null {
  for (const i of m?.items ?? []) {
    if (i.label === label && i.type !== 'separator') return i;
    const inner = i.submenu ? findItem(i.submenu, label) : null;
    if (inner) return inner;
  }
  return null;
}

// ---- Tray --------------------------------------------------------------------------------------
let tray: Tray | null = null;
let trayMenu: Menu | null = null;
export class Tray extends EventEmitter {
  constructor(image: NativeImage) {
    super();
    tray = this;
    state.tray = { created: (state.tray?.created ?? 0) + 1, image: image.file, tooltip: null, menu: [], setContextMenuCalls: 0, destroyed: false };
    trayMenu = null;
    event('tray-created');
  }
  setImage(image: NativeImage): void {
    state.tray!.image = image.file;
  }
  setToolTip(text: string): void {
    state.tray!.tooltip = text;
  }
  setContextMenu(menu: Menu): void {
    trayMenu = menu;
    state.tray!.setContextMenuCalls++;
  }
  destroy(): void {
    state.tray!.destroyed = true;
    tray = null;
  }
  isDestroyed(): boolean {
    return tray !== this;
  }
}

// ---- BrowserWindow -----------------------------------------------------------------------------
let nextWindowId = 1;
const windows = new Map<number, BrowserWindow>();
class WebContents extends EventEmitter {
  readonly win: BrowserWindow;
  windowOpenHandler: ((d: { url: string }) => unknown) | null = null;
  session = {
    webRequest: { onHeadersReceived: (_fn: unknown) => {} },
    setPermissionRequestHandler: (_fn: unknown) => {},
  };
  constructor(win: BrowserWindow) {
    super();
    this.win = win;
  }
  setWindowOpenHandler(fn: (d: { url: string }) => unknown): void {
    this.windowOpenHandler = fn;
  }
  send(channel: string, payload: unknown): void {
    this.win.s.sent.push({ channel, payload });
    if (this.win.s.sent.length > 200) this.win.s.sent.shift();
  }
  isDestroyed(): boolean {
    return this.win.s.destroyed;
  }
}
export class BrowserWindow extends EventEmitter {
  readonly s: WindowState;
  readonly webContents: WebContents;
  private minimized = false;
  constructor(options: Record<string, unknown>) {
    super();
    this.s = {
      id: nextWindowId++,
      options: JSON.parse(JSON.stringify(options)),
      loaded: null,
      loadError: null,
      visible: options.show !== false,
      destroyed: false,
      sent: [],
      menu: null,
    };
    this.webContents = new WebContents(this);
    windows.set(this.s.id, this);
    state.windows.push(this.s);
    event('window-created', this.s.id);
  }
  static getAllWindows(): BrowserWindow[] {
    return [...windows.values()];
  }
  async loadFile(file: string): Promise<void> {
    await new Promise((r) => setImmediate(r));
    if (!fs.existsSync(file)) {
      this.s.loadError = `ERR_FILE_NOT_FOUND (-6) loading 'file://${file}'`;
      throw new Error(this.s.loadError);
    }
    this.s.loaded = file;
    this.emit('ready-to-show');
  }
  async loadURL(url: string): Promise<void> {
    await new Promise((r) => setImmediate(r));
    this.s.loaded = url;
    this.emit('ready-to-show');
  }
  setMenu(menu: Menu | null): void {
    this.s.menu = menuState(menu);
    this.menu = menu;
  }
  menu: Menu | null = null;
  show(): void {
    this.s.visible = true;
    this.minimized = false;
  }
  hide(): void {
    this.s.visible = false;
  }
  focus(): void {}
  isMinimized(): boolean {
    return this.minimized;
  }
  restore(): void {
    this.minimized = false;
  }
  isVisible(): boolean {
    return this.s.visible;
  }
  isDestroyed(): boolean {
    return this.s.destroyed;
  }
  close(): void {
    this.destroy();
  }
  destroy(): void {
    if (this.s.destroyed) return;
    this.s.destroyed = true;
    this.s.visible = false;
    windows.delete(this.s.id);
    this.emit('closed');
    if (windows.size === 0) app.emit('window-all-closed');
  }
}

// ---- dialog, clipboard, shell, ipcMain -----------------------------------------------------------
// The test picks the button; by default the dialog is dismissed (Electron answers cancelId).
let messageBoxResponse: number | null = null;
export const dialog = {
  showErrorBox(title: string, content: string): void {
    state.dialogs.push({ kind: 'error', title, content });
    event('dialog', { title, content });
  },
  async showMessageBox(...args: unknown[]): Promise<{ response: number; checkboxChecked: boolean }> {
    const opts = (args.length > 1 ? args[1] : args[0]) as { title?: string; message: string; detail?: string; buttons?: string[]; cancelId?: number };
    state.dialogs.push({ kind: 'message', title: opts.title ?? '', content: [opts.message, opts.detail].filter(Boolean).join('\n'), buttons: opts.buttons });
    event('dialog', opts);
    const response = messageBoxResponse ?? opts.cancelId ?? (opts.buttons?.length ?? 1) - 1;
    messageBoxResponse = null;
    return { response, checkboxChecked: false };
  },
};
export const clipboard = {
  writeText(text: string): void {
    state.clipboard.push(text);
  },
};
export const shell = {
  async openExternal(url: string): Promise<void> {
    state.shell.push({ kind: 'openExternal', target: url });
  },
  async openPath(p: string): Promise<string> {
    state.shell.push({ kind: 'openPath', target: p });
    return fs.existsSync(p) ? '' : `no such file: ${p}`;
  },
  showItemInFolder(p: string): void {
    state.shell.push({ kind: 'showItemInFolder', target: p });
  },
};
type Handler = (event: { senderFrame: { url: string } | null }, ...args: unknown[]) => unknown;
const handlers = new Map<string, Handler>();
export const ipcMain = {
  handle(channel: string, fn: Handler): void {
    if (handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`);
    handlers.set(channel, fn);
    state.ipcHandlers = [...handlers.keys()];
  },
  removeHandler(channel: string): void {
    handlers.delete(channel);
    state.ipcHandlers = [...handlers.keys()];
  },
  on(_channel: string, _fn: unknown): void {},
};

// ---- app ---------------------------------------------------------------------------------------
const appPaths = new Map<string, string>();
function defaultPath(name: string): string {
  const home = os.homedir();
  const config = process.env.XDG_CONFIG_HOME || path.join(home, '.config');
  switch (name) {
    case 'home':
      return home;
    case 'appData':
      return config;
    case 'userData':
      return path.join(config, state.name);
    case 'logs':
      return path.join(appPaths.get('userData') ?? path.join(config, state.name), 'logs');
    case 'temp':
      return os.tmpdir();
    case 'exe':
      return process.execPath;
    default:
      return path.join(home, name);
  }
}
let lockFile: string | null = null;
let readyResolve: () => void;
const readyPromise = new Promise<void>((r) => (readyResolve = r));
let exiting = false;

class App extends EventEmitter {
  readonly isPackaged = process.env.STUB_PACKAGED === '1';
  dock = process.platform === 'darwin' ? { hide: () => void (state.dockHidden = true) } : undefined;
  commandLine = { appendSwitch() {}, hasSwitch: () => false };
  getName(): string {
    return state.name;
  }
  setName(name: string): void {
    state.name = name;
  }
  getVersion(): string {
    return '41.0.0';
  }
  getAppPath(): string {
    // What Electron reports for `electron path/to/main.js`: the folder of the file it was given.
    return path.dirname(process.argv[1]);
  }
  getPath(name: string): string {
    return appPaths.get(name) ?? defaultPath(name);
  }
  setPath(name: string, p: string): void {
    appPaths.set(name, p);
  }
  whenReady(): Promise<void> {
    return readyPromise;
  }
  isReady(): boolean {
    return state.ready;
  }
  focus(): void {}
  setAppUserModelId(): void {}
  getLoginItemSettings(): Record<string, unknown> {
    return { ...loginItem, wasOpenedAtLogin: false };
  }
  setLoginItemSettings(s: Record<string, unknown>): void {
    state.loginItem.push(s);
    const wanted = process.env.STUB_LOGIN_STATUS ?? 'enabled';
    loginItem.openAtLogin = Boolean(s.openAtLogin) && wanted === 'enabled';
    loginItem.status = s.openAtLogin ? wanted : 'not-registered';
  }
  requestSingleInstanceLock(): boolean {
    const dir = this.getPath('userData');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'SingletonLock');
    const queue = path.join(dir, 'SingletonQueue');
    fs.mkdirSync(queue, { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
        lockFile = file;
        state.singleInstanceLock = true;
        // Electron hands a second launch's argv to the first over a socket; here, files in a queue.
        setInterval(() => {
          for (const f of fs.readdirSync(queue)) {
            const p = path.join(queue, f);
            const argv = JSON.parse(fs.readFileSync(p, 'utf8')) as string[];
            fs.rmSync(p);
            state.secondInstances.push(argv);
            this.emit('second-instance', { preventDefault() {} }, argv, process.cwd());
          }
        }, 100).unref();
        return true;
      } catch {
        const pid = Number(fs.readFileSync(file, 'utf8'));
        let alive = false;
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {}
        if (!alive) {
          fs.rmSync(file, { force: true });
          continue;
        }
        fs.writeFileSync(path.join(queue, `${process.pid}.json`), JSON.stringify(process.argv));
        state.singleInstanceLock = false;
        return false;
      }
    }
    state.singleInstanceLock = false;
    return false;
  }
  quit(): void {
    state.quitRequested++;
    if (exiting) return;
    let prevented = false;
    const ev = { preventDefault: () => (prevented = true) };
    this.emit('before-quit', ev);
    if (prevented) return;
    this.emit('will-quit', ev);
    if (prevented) return;
    this.emit('quit', ev, 0);
    this.exit(0);
  }
  exit(code = 0): void {
    exiting = true;
    if (lockFile) fs.rmSync(lockFile, { force: true });
    event('exit', code);
    // Let the exit event reach the test before the channel closes.
    setImmediate(() => process.exit(code));
  }
}
export const app = new App();
export const contextBridge = {};
export const ipcRenderer = {};

// Electron's own loop keeps the app alive until it quits, whatever the app has open.
const keepAlive = setInterval(() => {}, 1 << 30);
void keepAlive;

// Electron becomes ready after the main script has run its first turn.
setImmediate(() => {
  state.ready = true;
  readyResolve();
  app.emit('ready');
});

// ---- commands from the test --------------------------------------------------------------------
function snapshotState(): StubState {
  return {
    ...state,
    paths: { userData: app.getPath('userData'), appData: app.getPath('appData') },
    tray: state.tray && { ...state.tray, menu: menuState(trayMenu) },
    windows: state.windows.map((w) => ({ ...w, menu: windows.get(w.id)?.menu ? menuState(windows.get(w.id)!.menu) : w.menu })),
  };
}

async function run(c: StubCommand): Promise<unknown> {
  switch (c.cmd) {
    case 'state':
      return snapshotState();
    case 'click': {
      let item = findItem(trayMenu, c.label);
      let win: BrowserWindow | null = null;
      if (!item) {
        for (const w of windows.values()) {
          item = findItem(w.menu, c.label);
          if (item) {
            win = w;
            break;
          }
        }
      }
      if (!item) item = findItem(appMenu, c.label);
      if (!item) throw new Error(`no menu item "${c.label}" (tray: ${JSON.stringify(menuState(trayMenu).map((i) => i.label))})`);
      if (!item.enabled) throw new Error(`menu item "${c.label}" is disabled`);
      if (item.type === 'checkbox') item.checked = !item.checked; // Electron flips it before click
      item.click?.(item, win, {});
      return { checked: item.checked };
    }
    case 'invoke': {
      const h = handlers.get(c.channel);
      if (!h) throw new Error(`No handler registered for '${c.channel}'`);
      return await h({ senderFrame: { url: c.senderUrl } }, ...c.args);
    }
    case 'quit':
      app.quit();
      return null;
    case 'dialogResponse':
      messageBoxResponse = c.response;
      return null;
  }
}

process.on('message', (m: { id: number } & StubCommand) => {
  run(m).then(
    (value) => send({ type: 'reply', id: m.id, ok: true, value: value ?? null }),
    (e: unknown) => send({ type: 'reply', id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
});
// A test that went away must not leave the app running.
process.on('disconnect', () => app.exit(3));

export default { app, BrowserWindow, Tray, Menu, nativeImage, dialog, clipboard, shell, ipcMain, contextBridge, ipcRenderer };
