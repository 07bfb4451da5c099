#!/usr/bin/env bash
# Runs every test on this machine: installs Nix, Chromium, Avahi and the npm dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh test
scripts/install-node-deps.sh
exec npm test
