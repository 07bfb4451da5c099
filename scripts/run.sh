#!/usr/bin/env bash
# Runs Peernix headless on this machine with working defaults: installs what's missing, makes sure a
# nix-daemon is running, then `peernix serve` (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh run
scripts/install-node-deps.sh
socket="${NIX_DAEMON_SOCKET_PATH:-/nix/var/nix/daemon-socket/socket}"
daemon_up() { NIX_CONFIG='experimental-features = nix-command' nix store ping --store daemon >/dev/null 2>&1; }
if [ "$(id -u)" -eq 0 ] && [ -z "${NIX_DAEMON_SOCKET_PATH:-}" ] && ! daemon_up; then
  echo "peernix: no nix-daemon answers on $socket; starting one (log: /var/log/nix-daemon.log)" >&2
  # Its own session, so stopping Peernix (Ctrl-C) leaves the system's daemon running.
  setsid nohup nix-daemon >>/var/log/nix-daemon.log 2>&1 < /dev/null &
  for _ in $(seq 50); do daemon_up && break; sleep 0.1; done
fi
node_modules/.bin/node scripts/build.ts >/dev/null
# NAR buffers of 256 KiB are freed back to the system only if malloc maps them on their own; glibc's
# adaptive threshold would soon put them on the heap, where a burst of transfers stays resident for good.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
exec node_modules/.bin/node dist/cli/peernix.js serve "$@"
