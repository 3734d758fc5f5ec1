#!/usr/bin/env bash
# Brings up a single-node cluster on this machine and deploys examples/hello/stack.yaml:
# busybox httpd, 3 replicas, published on port 8080.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash deploy/install-deps.sh
bin/tsctl cluster up
image_dir="$(mktemp -d)"
trap 'rm -rf "$image_dir"' EXIT
node dist/deploy/build-example-image.js "$image_dir/busybox.tar"
bin/tsctl image load "$image_dir/busybox.tar"
# apply follows the service until its 3 replicas run (and fails, naming why, if they do not).
bin/tsctl apply -f examples/hello/stack.yaml
bin/tsctl get tasks hello
echo
echo "The example answers at http://127.0.0.1:8080/ (and on this machine's own addresses, port 8080):"
busybox wget -q -O - http://127.0.0.1:8080/ || true
echo "Try: bin/tsctl get services; bin/tsctl scale hello=5; bin/tsctl logs hello; bin/tsctl cluster down"
