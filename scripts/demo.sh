#!/usr/bin/env bash
# README command 1: install dependencies, build Release, run the demo (the main job).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec "${BUILD_DIR:-build}/service/marginet" demo "$@"
