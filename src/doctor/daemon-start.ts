import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

// When the nix-daemon listening on a socket started (Linux /proc): it reads nix.conf only then, so a
// line added later does nothing until it restarts. The listening socket's inode (/proc/net/unix)
// leads to the process holding it; reading another user's fds needs root, so null means "can't tell".

const CLOCK_TICKS = 100; // USER_HZ on every Linux architecture Nix runs on
const LISTENING = 0x10000; // __SO_ACCEPTCON in /proc/net/unix Flags

export function daemonStartedAt(socketPath: string): number | null {
  try {
    const inodes = new Set<string>();
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 8 && f[7] === socketPath && (parseInt(f[3], 16) & LISTENING) !== 0) inodes.add(f[6]);
    }
    if (inodes.size === 0) return null;
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    let earliest: number | null = null;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue; // gone, or not ours to read
      }
      const holds = fds.some((fd) => {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
          return m !== null && inodes.has(m[1]);
        } catch {
          return false;
        }
      });
      if (!holds) continue;
      // Field 22 of /proc/PID/stat, counted after the parenthesised command name (which may hold spaces).
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const started = (btime + Number(fields[19]) / CLOCK_TICKS) * 1000;
      // Forked per-connection children hold the listening socket too; the main daemon started first.
      if (earliest === null || started < earliest) earliest = started;
    }
    return earliest;
  } catch {
    return null;
  }
}
