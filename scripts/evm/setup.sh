#!/usr/bin/env bash
# Installs the local EVM node (anvil, from the npm package @foundry-rs/anvil-linux-amd64: the
# binary ships inside the package, nothing is downloaded at install or run time) and the
# Solidity compiler (solc-js) into BUILD/evm with npm, at the versions package-lock.json pins,
# then compiles service/settlement/evm/contracts/*.sol into BUILD/evm/contracts.json.
# Idempotent: installs only when the lock file changed, compiles only when a contract did.
# Usage: scripts/evm/setup.sh [BUILD_DIR]   (default: build). Needs node and npm.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-build}"
mkdir -p "$build/evm"
dest="$(cd "$build/evm" && pwd)"
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "evm setup: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
if ! cmp -s "$root/scripts/evm/package-lock.json" "$dest/package-lock.json" || [ ! -x "$dest/node_modules/.bin/anvil" ]; then
  cp "$root/scripts/evm/package.json" "$root/scripts/evm/package-lock.json" "$dest/"
  echo "evm setup: npm ci into $dest (anvil 1.7.1, solc 0.8.37)"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false)
fi
contracts="$root/service/settlement/evm/contracts"
newest="$(ls -t "$contracts"/*.sol "$root/scripts/evm/compile.js" | head -1)"
if [ ! -f "$dest/contracts.json" ] || [ "$newest" -nt "$dest/contracts.json" ]; then
  NODE_PATH="$dest/node_modules" node "$root/scripts/evm/compile.js" "$contracts" "$dest/contracts.json"
fi
"$dest/node_modules/.bin/anvil" --version | head -1
