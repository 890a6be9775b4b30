#!/usr/bin/env bash
# Install marginet's dependencies from Debian 12 packages: what the build and the demo need, and
# with --test what the tests need besides (a headless browser for the demo's report). Idempotent:
# installs only what is missing. Works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libsqlite3-dev sqlite3 libsodium-dev libcurl4-openssl-dev curl
  nlohmann-json3-dev libcli11-dev libspdlog-dev
  libquantlib0-dev
  python3 python3-zmq python3-msgpack python3-nacl python3-matplotlib
  openmpi-bin libopenmpi-dev
)
# The tests open the demo's report in a real headless browser, and look for processes left
# running (pgrep) and drive a pseudo-terminal (script) (tests/test_demo.cpp, test_table.cpp).
if [ "${1:-}" = "--test" ]; then
  packages+=(chromium procps bsdutils)
fi
# The local EVM node and the Solidity compiler come from npm (scripts/evm/setup.sh, run by
# build.sh): the demo settles ETH and USDC on it, the evm tests run against it. Node.js and npm
# from Debian when the machine has none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi

# Thrust/CUB: the CUDA toolkit's CCCL when present, else Debian's packages.
if [ ! -f /usr/local/cuda/include/cccl/thrust/version.h ] && [ ! -f /usr/local/cuda/include/thrust/version.h ]; then
  packages+=(libthrust-dev libcub-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
