#!/usr/bin/env bash
# Configure and build marginet (Release) into ./build. Extra arguments go to CMake, e.g.
#   scripts/build.sh -DMARGINET_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$BUILD_DIR" --parallel "${JOBS:-$(nproc)}"
