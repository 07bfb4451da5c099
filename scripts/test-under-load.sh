#!/usr/bin/env bash
# The unit suite beside two CPU busy-loops (a laptop building on both cores): a test that passes only
# on an idle machine fails the people who need Peernix most. The hogs are bounded (timeout) and killed
# by pid whatever happens. Not yet part of .ci/run: some unit tests still time themselves with the
# real clock and fail here (issue #27).
set -euo pipefail
cd "$(dirname "$0")/.."
hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${hogs[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_hogs EXIT
for _ in 1 2; do
  timeout 900 sh -c 'while :; do :; done' &
  hogs+=("$!")
done
echo "unit tests beside two CPU hogs (pids ${hogs[*]})"
PATH="$PWD/node_modules/.bin:$PATH" node --test --test-concurrency=1 'test/unit/**/*.test.ts'
