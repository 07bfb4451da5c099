// A bounded, rotated log file (the tray app's: a user attaches it to a bug report). Lines go to
// `<file>`; past `maxBytes` it becomes `<file>.1` (older ones shift up to `<file>.<keep>`, the
// oldest is dropped), so the files never hold more than (keep + 1) × maxBytes.
import fs from 'node:fs';
import path from 'node:path';

export interface LogFile {
  readonly path: string;
  write(line: string): void;
  close(): void;
}

export function openLogFile(file: string, opts: { maxBytes?: number; keep?: number } = {}): LogFile {
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  const keep = opts.keep ?? 3;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let fd = fs.openSync(file, 'a', 0o600);
  let size = fs.fstatSync(fd).size;
  let broken = false;

  const rotate = () => {
    fs.closeSync(fd);
    fs.rmSync(`${file}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) {
      if (fs.existsSync(`${file}.${i}`)) fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`);
    }
    fs.renameSync(file, `${file}.1`);
    fd = fs.openSync(file, 'a', 0o600);
    size = 0;
  };

  return {
    path: file,
    write(line) {
      if (broken) return;
      const buf = Buffer.from(line.endsWith('\n') ? line : line + '\n');
      try {
        if (size > 0 && size + buf.length > maxBytes) rotate();
        fs.writeSync(fd, buf);
        size += buf.length;
      } catch (e) {
        // A full disk must not take the app down; stderr still has the lines.
        broken = true;
        process.stderr.write(`log file ${file} disabled: ${(e as Error).message}\n`);
      }
    },
    close() {
      if (!broken) fs.closeSync(fd);
      broken = true;
    },
  };
}
