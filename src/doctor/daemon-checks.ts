import type { DoctorCheck } from '../base/api.ts';
import type { DoctorFacts } from './facts.ts';

// Is there a nix-daemon to substitute through, and which one.

export function daemonChecks(f: DoctorFacts): DoctorCheck[] {
  const d = f.daemon;
  if (d.ok) {
    return [
      {
        id: 'daemon.reachable',
        group: 'nix-daemon',
        title: 'nix-daemon reachable',
        status: 'ok',
        detail: `${d.socketPath}: Nix ${d.version ?? '(version not reported by this protocol)'}, worker protocol ${d.protocol ?? '?'}`,
        fix: null,
      },
      configAge(f),
    ];
  }
  if (d.stalled) {
    return [
      {
        id: 'daemon.reachable',
        group: 'nix-daemon',
        title: 'nix-daemon reachable',
        status: 'fail',
        detail: `${(d.error ?? 'no answer').replace(/\.+$/, '')}: the nix-daemon accepts connections but answers nothing (stopped or wedged). Peernix still answers lookups from the store database where it can read it; NARs from this machine wait for the daemon and fail after a few seconds.`,
        fix: `Resume or restart the nix-daemon: \`sudo systemctl restart nix-daemon\` (a process stopped with SIGSTOP resumes with \`sudo kill -CONT <pid>\`).`,
      },
    ];
  }
  return [
    {
      id: 'daemon.reachable',
      group: 'nix-daemon',
      title: 'nix-daemon reachable',
      status: 'fail',
      detail: `${(d.error ?? 'no answer').replace(/\.+$/, '')}. Peernix reads this machine's store through the nix-daemon: without it, it shares nothing and Nix (multi-user) can't substitute at all.`,
      fix:
        `Start the nix-daemon: \`sudo systemctl start nix-daemon\` (or \`sudo nix-daemon &\` where there is no systemd).` +
        (d.socketPath !== '/nix/var/nix/daemon-socket/socket'
          ? ` Peernix looks for it at ${d.socketPath} (--store / NIX_DAEMON_SOCKET_PATH): check that path.`
          : ''),
    },
  ];
}

// The daemon reads nix.conf when it starts: a substituter line added since does nothing yet.
function configAge(f: DoctorFacts): DoctorCheck {
  const base = { id: 'daemon.config-age', group: 'nix-daemon', title: 'nix-daemon has read the current nix.conf' } as const;
  const file = f.system.files[0] ?? '/etc/nix/nix.conf';
  const restart = 'Restart it: `sudo systemctl restart nix-daemon`.';
  const changed = f.systemConfChangedAt;
  const started = f.daemon.startedAt;
  if (changed === null) return { ...base, status: 'ok', detail: `No ${file}: the daemon runs with Nix's defaults.`, fix: null };
  if (started === null) {
    return {
      ...base,
      status: 'unknown',
      detail: `Can't tell when the nix-daemon started (that needs root here); it reads ${file} only then.`,
      fix: `If you changed ${file} since it started: ${restart}`,
    };
  }
  // The start time is known to a second or so (/proc/stat's boot time is in whole seconds).
  if (changed > started + 1500) {
    return {
      ...base,
      status: 'fail',
      detail: `${file} changed at ${new Date(changed).toISOString()}, after the nix-daemon started (${new Date(started).toISOString()}): it still runs with the settings from before.`,
      fix: restart,
    };
  }
  return { ...base, status: 'ok', detail: `Started ${new Date(started).toISOString()}, after ${file} last changed.`, fix: null };
}
