import fs from 'node:fs';
import path from 'node:path';

// Notices within seconds that this machine's Nix trust settings may have changed: a stamp (inode, size,
// change and modification times) of nix.conf, every file it includes and the folders holding them (a
// file created beside them, such as an optional include that did not exist, changes its folder). A
// stat of a handful of files every couple of seconds costs nothing; watching with inotify would miss
// editors that replace a file, and includes that appear later.

/** One comparable string for the state of these files and their folders ('-' for an absent one). */
export function filesStamp(files: string[]): string {
  const all = new Set<string>();
  for (const f of files) {
    all.add(f);
    all.add(path.dirname(f));
  }
  const parts: string[] = [];
  for (const f of [...all].sort()) {
    try {
      const st = fs.statSync(f, { bigint: true });
      parts.push(`${f}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`);
    } catch (e) {
      parts.push(`${f}:-${(e as NodeJS.ErrnoException).code ?? ''}`);
    }
  }
  return parts.join('\n');
}

export interface TrustFilesOptions {
  /** The files the trust settings were last read from (the top nix.conf even when absent). */
  files: () => string[];
  /** Called when their stamp changed since the last check. */
  changed: () => void;
}

export class TrustFiles {
  private readonly opts: TrustFilesOptions;
  private stamp: string;

  constructor(opts: TrustFilesOptions) {
    this.opts = opts;
    this.stamp = filesStamp(opts.files());
  }

  /** Compares the files with the last check; reports a change once. */
  check(): boolean {
    const now = filesStamp(this.opts.files());
    if (now === this.stamp) return false;
    this.stamp = now;
    this.opts.changed();
    return true;
  }
}
