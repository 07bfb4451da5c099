import type { DoctorCheck } from '../api.ts';
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
        (d.socketPath !== '/nix/var/nix/daemon-socket/socket' ? ` Peernix looks for it at ${d.socketPath} (--store / NIX_DAEMON_SOCKET_PATH): check that path.` : ''),
    },
  ];
}
