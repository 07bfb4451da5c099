#!/bin/sh
# Makes (once) and prints a Debian root holding a modern Nix, for the tests that run Peernix against
# Nix 2.34 (sid) and 2.26 (trixie) as well as the machine's own Nix 2.8.
# The roots are kept where the machine keeps caches ($PEERNIX_TEST_CACHE, default /var/cache/peernix-test),
# so only the first run on a machine pays for debootstrap; a root is used only once its debootstrap
# finished (a marker written last), and a half-made one from a crash is made again.
# Usage: scripts/nix-root.sh sid|trixie   → prints the root's path on stdout (progress goes to stderr)
set -eu
suite=${1:?usage: nix-root.sh sid|trixie}
case $suite in sid|trixie) ;; *) echo "nix-root.sh: unknown suite $suite" >&2; exit 2 ;; esac
cache=${PEERNIX_TEST_CACHE:-/var/cache/peernix-test}/nix-roots
root=$cache/$suite
marker=$root/.peernix-root-complete
mkdir -p "$cache"

if [ -f "$marker" ]; then echo "$root"; exit 0; fi

# Several test files may ask at once: one makes the root, the others wait for it.
exec 9>"$cache/$suite.lock"
flock 9
if [ -f "$marker" ]; then echo "$root"; exit 0; fi

# The machine's own Debian mirror (no internet here; the mirror is what apt reaches).
mirror=${PEERNIX_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$mirror" ] && break
  done
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || { echo "nix-root.sh: debootstrap is missing (scripts/install-system-deps.sh test installs it)" >&2; exit 1; }

work=$cache/$suite.new
rm -rf "$work" "$root"
start=$(date +%s)
echo "nix-root.sh: making the $suite root with Nix from $mirror (once per machine)…" >&2
debootstrap --variant=minbase --include=nix-bin,ca-certificates,libdbi-perl "$suite" "$work" "$mirror" >"$cache/$suite.log" 2>&1 || {
  echo "nix-root.sh: debootstrap $suite failed; its log: $cache/$suite.log" >&2; tail -5 "$cache/$suite.log" >&2; exit 1; }
# Not `nix --version`: Nix needs /proc, which is mounted only while a test runs.
version="nix-bin $(chroot "$work" dpkg-query -W -f '${Version}' nix-bin)"
printf '%s\n' "$version" >"$work/.peernix-root-complete.tmp"
mv "$work" "$root"
mv "$root/.peernix-root-complete.tmp" "$marker"
echo "nix-root.sh: $suite root ready ($version) in $(( $(date +%s) - start )) s" >&2
echo "$root"
