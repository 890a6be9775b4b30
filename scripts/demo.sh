#!/usr/bin/env bash
# README command 1: install dependencies, build Release, run the demo (the main job). When the
# build has the local EVM node (build/evm, scripts/evm/setup.sh), ETH and USDC settle on it:
# started here on port ${ANVIL_PORT:-8545}, stopped when the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
b="${BUILD_DIR:-build}"
port="${ANVIL_PORT:-8545}"
if [ -x "$b/evm/node_modules/.bin/anvil" ] && url="$(scripts/evm/anvil.sh start "$port" "$b")"; then
  trap 'scripts/evm/anvil.sh stop "$port" "$b"' EXIT
  "$b/service/marginet" demo --evm-rpc "$url" --evm-contracts "$b/evm/contracts.json" "$@"
else
  echo "demo: no local EVM node; ETH and USDC settle on a simulated chain"
  exec "$b/service/marginet" demo "$@"
fi
