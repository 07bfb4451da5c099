#!/usr/bin/env bash
# Installs the Debian packages Peernix needs, only those missing. Usage: install-system-deps.sh run|test|bench
set -euo pipefail
want=(nix-bin)
case "${1:-run}" in
  run) ;;
  test) want+=(chromium avahi-daemon avahi-utils dbus iproute2 curl procps prometheus systemd python3 debootstrap tcpdump bind9 bind9-utils bind9-dnsutils) ;;
  bench) want+=(nginx-light curl) ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "peernix: please install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-run}" = test ]; then
  # The roots with Debian sid's Nix 2.34 and trixie's 2.26 that the e2e tests run against (made once
  # per machine, ~4 min each on 2 busy cores; kept in /var/cache/peernix-test).
  here=$(dirname "$0")
  "$here/nix-root.sh" sid >/dev/null & sid=$!
  "$here/nix-root.sh" trixie >/dev/null & trixie=$!
  wait "$sid" && wait "$trixie"
fi
