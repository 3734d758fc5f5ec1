#!/usr/bin/env bash
# Installs what Tessera needs on a Debian 12 machine (as root): the Debian packages the daemon and
# the test suite use, then the npm packages, the native addon and the TypeScript build.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

packages=(
  runc            # reference OCI runtime: the oracle for our own
  busybox-static  # the test and example image's only binary
  nftables iptables iproute2 util-linux
  docker-registry skopeo umoci   # a real OCI registry on loopback, and tools to fill it
  zstd            # an independent zstd encoder for the tests of zstd-compressed layers
  etcd-server prometheus         # the etcd store backend and metrics scraping
  ca-certificates make g++ python3
  libseccomp-dev  # the addon compiles seccomp profiles to BPF with libseccomp
  iperf3          # bench:overlay measures overlay vs raw veth throughput with it
  tini            # init: true runs its static build (tini-static) as a container's PID 1
  buildah         # the oracle of image builds (test/integration/build-oracle.test.ts, bench:build)
  # Go and the library the OCI runtime-tools validation programs build against, offline
  # (../shared/oci-runtime-tools/run.sh; test/integration/oci-conformance.test.ts)
  golang-go golang-github-opencontainers-runtime-tools-dev golang-github-google-uuid-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages' own services (registry, etcd, prometheus) from starting:
  # tests start their own instances on loopback.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# node-gyp builds the addon against the headers of the Node that runs it, installed with Node
# under /usr here; pointing at them keeps it from downloading headers it cannot reach.
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$(dirname "$(dirname "$(command -v node)")")/include/node/node.h" ]; then
  export npm_config_nodedir="$(dirname "$(dirname "$(command -v node)")")"
fi
# zstd-napi (zstd layers for builds) compiles its bundled zstd sources rather than fetch a prebuilt
# binary from the internet (prebuild-install's default, unreachable here and not checked anyway).
export npm_config_build_from_source=zstd-napi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build
