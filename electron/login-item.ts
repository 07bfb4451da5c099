// "Start at login". macOS and Windows have it built in (app.setLoginItemSettings); on Linux it is an
// XDG autostart entry, which we write or remove ourselves (only our own file).
//
// What is registered must start *this* app, packaged or not: unpackaged, Electron needs the main
// script itself (app.getAppPath() is dist/electron, which has no package.json, so "electron
// dist/electron" fails with "Unable to find Electron app"). Autostart passes --hidden: only then does
// the app start without opening its window.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { App } from 'electron';

const DESKTOP_FILE = 'peernix.desktop';
export const HIDDEN_FLAG = '--hidden';

export function autostartFile(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(config, 'autostart', DESKTOP_FILE);
}

/** The command line that starts this app: executable, the main script when unpackaged, --hidden. */
export function launchCommand(app: App, mainScript: string): { exe: string; args: string[] } {
  if (process.env.APPIMAGE) return { exe: process.env.APPIMAGE, args: [HIDDEN_FLAG] };
  return { exe: process.execPath, args: [...(app.isPackaged ? [] : [mainScript]), HIDDEN_FLAG] };
}

export function getStartAtLogin(app: App, mainScript: string): boolean {
  if (process.platform === 'linux') return fs.existsSync(autostartFile());
  const { exe, args } = launchCommand(app, mainScript);
  return app.getLoginItemSettings({ path: exe, args }).openAtLogin;
}

/**
 * Turns start at login on or off and reads back what the OS did. Returns a sentence for the user
 * when the OS refused or wants approval, null when it is as asked.
 */
export function setStartAtLogin(app: App, mainScript: string, on: boolean): string | null {
  const { exe, args } = launchCommand(app, mainScript);
  // macOS registers the running bundle itself; unpackaged, that is bare Electron.app, which would open
  // Electron's default window at login instead of Peernix.
  if (process.platform === 'darwin' && on && !app.isPackaged) {
    return 'Start at login needs the installed Peernix.app (this is a development build)';
  }
  if (process.platform !== 'linux') {
    // path/args are used on Windows; macOS registers this app's bundle.
    app.setLoginItemSettings({ openAtLogin: on, path: exe, args });
    const now = app.getLoginItemSettings({ path: exe, args }) as { openAtLogin: boolean; status?: string };
    if (on && now.status === 'requires-approval') {
      return 'Start at login needs your approval: System Settings → General → Login Items → allow Peernix';
    }
    if (now.openAtLogin !== on) return `the system did not ${on ? 'add Peernix to' : 'remove Peernix from'} the login items`;
    return null;
  }
  const file = autostartFile();
  if (!on) {
    fs.rmSync(file, { force: true });
    return null;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    [
      '[Desktop Entry]',
      'Type=Application',
      'Name=Peernix',
      'Comment=LAN peer-to-peer Nix binary cache',
      `Exec=${[exe, ...args].map(quote).join(' ')}`,
      'Icon=peernix',
      'X-GNOME-Autostart-enabled=true',
      '',
    ].join('\n'),
  );
  return null;
}

/** Desktop Entry Exec quoting: reserved characters inside double quotes, backslash-escaped. */
function quote(s: string): string {
  return /^[A-Za-z0-9_./=-]+$/.test(s) ? s : `"${s.replace(/(["`$\\])/g, '\\$1')}"`;
}
