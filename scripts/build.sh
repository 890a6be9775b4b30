#!/usr/bin/env bash
# Configure and build marginet (Release) into ./build. Extra arguments go to CMake, e.g.
#   scripts/build.sh -DMARGINET_CUDA=OFF
# Where node and npm are installed, also the local EVM node and the compiled contracts
# (scripts/evm/setup.sh: npm packages into BUILD/evm, nothing global); without them the evm
# tests skip, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$BUILD_DIR" --parallel "${JOBS:-$(nproc)}"
if command -v npm >/dev/null && command -v node >/dev/null; then
  scripts/evm/setup.sh "$BUILD_DIR"
else
  echo "build: no node/npm: the local EVM node (anvil) and the contracts are not installed; the evm tests will skip"
fi
