#!/usr/bin/env bash
# npm dependencies, including Node 24 itself (the `node` package, a devDependency: a toolchain that no
# package carries) that the project's scripts run on; --include=dev keeps it even under NODE_ENV=production.
# Electron's binary can't be downloaded on our machines and isn't needed for the daemon or the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci --include=dev --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<22||(a===22&&b<18)) { console.error("need Node >= 22.18, got "+process.version); process.exit(1) }'
