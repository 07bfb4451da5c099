#!/usr/bin/env bash
# Runs Peernix headless on this machine with working defaults: installs what's missing, makes sure a
# nix-daemon is running, then `peernix serve` (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh run
scripts/install-node-deps.sh
socket="${NIX_DAEMON_SOCKET_PATH:-/nix/var/nix/daemon-socket/socket}"
if [ "$(id -u)" -eq 0 ] && [ -z "${NIX_DAEMON_SOCKET_PATH:-}" ] && ! pgrep -x nix-daemon >/dev/null; then
  echo "peernix: no nix-daemon is running; starting one (log: /var/log/nix-daemon.log)" >&2
  nohup nix-daemon >>/var/log/nix-daemon.log 2>&1 &
  for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
fi
node_modules/.bin/node scripts/build.ts >/dev/null
exec node_modules/.bin/node dist/cli/peernix.js serve "$@"
