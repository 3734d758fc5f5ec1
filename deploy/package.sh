#!/usr/bin/env bash
# `npm run package [-- OUT_DIR]`: a release tarball that installs offline on a Debian 12 machine of
# the same architecture (deploy/install.sh inside it): the compiled dist/ (without its tests), the
# runtime dependencies from node_modules (dev ones pruned), the built addon and shim, the .proto
# files, bin/, the systemd unit and the example stack. Builds the addon and dist/ first, from the sources as they are.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
out_dir=$(readlink -f "${1:-release}")
version=$(node -p 'require("./package.json").version')
arch=$(node -p 'process.arch')
name="tessera-$version-linux-$arch"

# Always from the checkout as it is: a dist/ or addon left from older sources must not ship.
if [ -f build/Makefile ]; then npx node-gyp build >/dev/null; else npx node-gyp rebuild >/dev/null; fi
npm run build >/dev/null

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/build/Release" "$root/deploy" "$root/proto"
cp package.json package-lock.json README.md "$root/"
cp -r bin examples "$root/"
cp build/Release/tessera_native.node build/Release/tessera-shim "$root/build/Release/"
cp proto/*.proto "$root/proto/"
cp -r deploy/systemd deploy/install.sh "$root/deploy/"
cp -r dist "$root/" && rm -rf "$root/dist/test"   # the compiled tests stay behind
cp -r node_modules "$root/"
# Offline: prune deletes what only development needs and fetches nothing. Scripts stay off, or the
# addon's install script would rebuild what was just copied.
(cd "$root" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
# The Node.js this was built and tested with: the target machine needs none of its own.
mkdir -p "$root/node/bin" && cp "$(command -v node)" "$root/node/bin/node"
printf '%s\n' "$version" >"$root/RELEASE"
mkdir -p "$out_dir"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out_dir/$name.tar.gz" "$name"
echo "$out_dir/$name.tar.gz"
