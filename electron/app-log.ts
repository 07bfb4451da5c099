// The app's log: stderr from the first line, and once the state directory is known also
// `<state>/logs/peernix-app.log`, which the tray's and the window's "Open log" show.
import path from 'node:path';
import { shell } from 'electron';
import { createLogger, type Logger } from '../src/base/log.ts';
import { openLogFile, type LogFile } from '../src/base/log-file.ts';

export class AppLog {
  log: Logger = createLogger('info', 'peernix-app');
  private file: LogFile | null = null;

  /** From now on every line also goes to the log file in `stateDir`. */
  openFile(stateDir: string): void {
    const file = openLogFile(path.join(stateDir, 'logs', 'peernix-app.log'));
    this.file = file;
    this.log = createLogger('info', 'peernix-app', (line) => {
      process.stderr.write(line + '\n');
      file.write(line);
    });
  }

  open(): void {
    const file = this.file;
    if (!file) return;
    shell.openPath(file.path).then(
      (err) => err && this.log.warn(`could not open the log ${file.path}: ${err}`),
      (e: unknown) => this.log.warn(`could not open the log: ${(e as Error).message}`),
    );
  }

  showInFolder(): void {
    if (this.file) shell.showItemInFolder(this.file.path);
  }

  close(): void {
    this.file?.close();
  }
}
