#!/usr/bin/env bash
# The field end-to-end files a second time, beside two CPU busy-loops (a laptop building on both
# cores while Nix substitutes): slow, dripping, stalling and cut peers, a real Go peernix, a stalled
# nix-daemon, the share listener under floods, and store summaries over a cut link. They run on
# dual-stack namespace LANs (test/support/netns.ts). `npm test` runs this after the full suite, so CI
# fails when any fails. Bounded: the hogs and the run each by timeout(1); the hogs are killed by pid
# (their shells with them: timeout(1) passes the signal on) whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_S=${PEERNIX_UNDER_LOAD_LIMIT_S:-1500}
FILES=(
  test/e2e/field-share.test.ts
  test/e2e/field-peers.test.ts
  test/e2e/go-peer.test.ts
  test/e2e/daemon-stall.test.ts
  test/e2e/client-gone.test.ts
  test/e2e/summaries.test.ts
)
PATH="$PWD/node_modules/.bin:$PATH" bash scripts/beside-cpu-hogs.sh "$LIMIT_S" "field end-to-end tests" node --test --test-concurrency=1 --test-timeout=900000 "${FILES[@]}"
