#!/usr/bin/env bash
# Starts or stops a local EVM node (anvil, installed into BUILD/evm by scripts/evm/setup.sh)
# for the demo and for trying the evm chain adapter by hand. The tests start their own.
#   scripts/evm/anvil.sh start [PORT] [BUILD_DIR]   # default 8545, build; prints the URL
#   scripts/evm/anvil.sh stop  [PORT] [BUILD_DIR]
# State (pid, log) lives in BUILD_DIR/evm/anvil-PORT.{pid,log}. Dev accounts 0..127
# (ANVIL_ACCOUNTS=N for another count) are unlocked: right for a local node only
# (docs/settlement.md, "Keys").
set -euo pipefail
cmd="${1:-}"
port="${2:-8545}"
build="${3:-build}"
dir="$build/evm"
pidfile="$dir/anvil-$port.pid"
case "$cmd" in
  start)
    if [ ! -x "$dir/node_modules/.bin/anvil" ]; then
      echo "anvil.sh: no anvil in $dir (run scripts/evm/setup.sh $build)" >&2; exit 1
    fi
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "http://127.0.0.1:$port"; exit 0
    fi
    "$dir/node_modules/.bin/anvil" --host 127.0.0.1 --port "$port" --accounts "${ANVIL_ACCOUNTS:-128}" >"$dir/anvil-$port.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      if curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
          --data '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' "http://127.0.0.1:$port"; then
        echo "http://127.0.0.1:$port"; exit 0
      fi
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
      sleep 0.1
    done
    echo "anvil.sh: anvil did not start on port $port; see $dir/anvil-$port.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    echo "usage: scripts/evm/anvil.sh start|stop [PORT] [BUILD_DIR]" >&2; exit 2 ;;
esac
