// "Start at login". macOS and Windows have it built in (app.setLoginItemSettings); on Linux it is an
// XDG autostart entry, which we write or remove ourselves (only our own file).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { App } from 'electron';

const DESKTOP_FILE = 'peernix.desktop';

function autostartFile(): string {
  const config = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(config, 'autostart', DESKTOP_FILE);
}

export function getStartAtLogin(app: App): boolean {
  if (process.platform === 'linux') return fs.existsSync(autostartFile());
  return app.getLoginItemSettings().openAtLogin;
}

export function setStartAtLogin(app: App, on: boolean): void {
  if (process.platform !== 'linux') {
    app.setLoginItemSettings({ openAtLogin: on });
    return;
  }
  const file = autostartFile();
  if (!on) {
    fs.rmSync(file, { force: true });
    return;
  }
  // APPIMAGE is set when running from an AppImage; otherwise the running executable (+ app path).
  const exec = process.env.APPIMAGE
    ? quote(process.env.APPIMAGE)
    : [process.execPath, ...(app.isPackaged ? [] : [app.getAppPath()])].map(quote).join(' ');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    ['[Desktop Entry]', 'Type=Application', 'Name=Peernix', 'Comment=LAN peer-to-peer Nix binary cache', `Exec=${exec}`, 'X-GNOME-Autostart-enabled=true', ''].join('\n'),
  );
}

function quote(s: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(s) ? s : `"${s.replace(/(["`$\\])/g, '\\$1')}"`;
}
