#!/usr/bin/env bash
# Installs Tessera on a Debian 12 machine, as root:
#   bash deploy/install.sh                      from a checkout: packages, build, then as below
#   bash deploy/install.sh tessera-*.tar.gz     a release tarball made by `npm run package`
#   bash install.sh                             from inside an unpacked release
# Puts the release under /usr/local/lib/tessera (with the Node.js it was built with, so the
# machine needs none), tsd, tsctl and tessera-runtime in /usr/local/bin, the systemd unit in
# /etc/systemd/system/tsd.service and, if there is none yet, /etc/tessera/tsd.yaml with every
# setting commented out. Options: --root DIR installs under DIR instead of / (no packages, no
# systemctl: for images and tests); --no-packages skips apt-get (an offline machine must already
# have them). Installing again replaces the release and keeps the settings and the data root.
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
root=/ packages=yes tarball=
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$(readlink -f "$2"); packages=no; shift 2 ;;
    --no-packages) packages=no; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    -*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    *) tarball=$(readlink -f "$1"); shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

# What tsd runs with: links and rules, mounts, seccomp, tini for `init: true`.
runtime_packages=(iproute2 nftables iptables util-linux libseccomp2 ca-certificates tini)
build_packages=(make g++ python3 libseccomp-dev)
apt_install() {
  [ "$packages" = yes ] || return 0
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Find the release to install: a tarball, the release this script sits in, or a checkout to package.
if [ -n "$tarball" ]; then
  tar -C "$work" -xzf "$tarball"
  release=$(find "$work" -mindepth 2 -maxdepth 2 -name RELEASE -printf '%h\n' | head -1)
  [ -n "$release" ] || { echo "install.sh: $tarball is not a Tessera release (no RELEASE file)" >&2; exit 1; }
elif [ -f "$here/../RELEASE" ]; then
  release=$(readlink -f "$here/..")
elif [ -f "$here/../package.json" ]; then
  apt_install "${build_packages[@]}"
  checkout=$(readlink -f "$here/..")
  # package.sh builds the addon and dist/ itself.
  # zstd-napi compiles from its bundled sources, as in install-deps.sh.
  (cd "$checkout" && { [ -d node_modules ] || npm_config_build_from_source=zstd-napi npm ci --no-audit --no-fund; })
  tar -C "$work" -xzf "$(bash "$checkout/deploy/package.sh" "$work/out" | tail -1)"
  release=$(find "$work" -mindepth 2 -maxdepth 2 -name RELEASE -printf '%h\n' | head -1)
else
  echo "install.sh: no release here; give a tarball made by npm run package" >&2
  exit 1
fi
apt_install "${runtime_packages[@]}"

lib=$root/usr/local/lib/tessera
mkdir -p "$root/usr/local/lib" "$root/usr/local/bin"
# Replace the release whole: a half-copied one must never be what /usr/local/bin points at.
rm -rf "$lib.new" "$lib.old"
cp -a "$release" "$lib.new"
[ -x "$lib.new/node/bin/node" ] || { echo "install.sh: the release carries no Node.js (node/bin/node)" >&2; exit 1; }
[ -e "$lib" ] && mv "$lib" "$lib.old"
mv "$lib.new" "$lib"
rm -rf "$lib.old"

# The commands run the release's own Node.js; the paths are where the release sits once installed.
wrapper() { # name, script under dist/
  printf '#!/bin/sh\nexec /usr/local/lib/tessera/node/bin/node --enable-source-maps /usr/local/lib/tessera/dist/%s "$@"\n' "$2" >"$root/usr/local/bin/$1"
  chmod 755 "$root/usr/local/bin/$1"
}
wrapper tsd daemon/main.js
wrapper tsctl cli/main.js
wrapper tessera-runtime agent/runtime/cli/main.js

install -D -m 644 "$lib/deploy/systemd/tsd.service" "$root/etc/systemd/system/tsd.service"
install -d -m 755 "$root/etc/tessera"
if [ ! -e "$root/etc/tessera/tsd.yaml" ]; then
  "$lib/node/bin/node" "$lib/dist/daemon/main.js" config-example >"$root/etc/tessera/tsd.yaml"
  chmod 644 "$root/etc/tessera/tsd.yaml"
fi
if [ "$root" = / ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

echo "Tessera $(cat "$lib/RELEASE") installed in $lib."
cat <<'NEXT'
Next:
  first manager:   systemctl enable --now tsd
                   tsctl cluster join-token worker > /root/token && chmod 600 /root/token   (copy it to the node, 0600)
  on other nodes:  put   join: <manager address>:7420   and   token-file: /root/token   in /etc/tessera/tsd.yaml,
                   then  systemctl enable --now tsd   (the token is read once; remove the file afterwards)
  settings:        /etc/tessera/tsd.yaml (tsd config-example lists them); logs: journalctl -u tsd
NEXT
