#!/usr/bin/env bash
# Installs everything the suite needs, then runs every test (unit, integration, end to end).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash deploy/install-deps.sh
npx ava
