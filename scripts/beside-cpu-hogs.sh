#!/usr/bin/env bash
# Runs a command beside two CPU busy-loops (a laptop building on both cores) for at most LIMIT_S
# seconds: beside-cpu-hogs.sh LIMIT_S WHAT COMMAND... Exits with the command's status (124 when
# it ran out of time). The hogs are bounded by timeout(1) too and killed by pid whatever happens
# (their shells with them: timeout(1) passes the signal on). Used by test-under-load.sh and
# test-field-under-load.sh.
set -euo pipefail
LIMIT_S=$1
WHAT=$2
shift 2
hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${hogs[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for _ in 1 2; do
  timeout "$((LIMIT_S + 60))" sh -c 'while :; do :; done' &
  hogs+=("$!")
done
echo "$WHAT beside two CPU hogs (pids ${hogs[*]}), at most ${LIMIT_S} s"
timeout "$LIMIT_S" "$@"
