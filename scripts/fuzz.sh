#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time:
#   protocol         the service's request decoder (fuzz/fuzz_protocol.cpp)
#   settlement_wire  the settlement wire decoders (fuzz/fuzz_settlement_wire.cpp)
#   scripts/fuzz.sh [SECONDS] [TARGET...]   (default 60 seconds for each target; all targets)
# Environment: CXX_FUZZ (default clang++), PYTHON (for the protocol seeds), FUZZ_OUT (default
# build-fuzz).
# Per target: corpus in build-fuzz/corpus/TARGET (grows), seeded from valid frames in
# build-fuzz/seeds/TARGET (written at each run: by Python for protocol, by the target's own
# encoders for settlement_wire); crashes land in build-fuzz/ as TARGET-crash-*. The script goes on
# to the next target after a crash and exits non-zero if any target failed.
set -eu
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
[ $# -gt 0 ] && shift
TARGETS="${*:-protocol settlement_wire}"
CXX="${CXX_FUZZ:-clang++}"
OUT="${FUZZ_OUT:-build-fuzz}"
FLAGS="-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DMSGPACK_NO_BOOST -I."

for target in $TARGETS; do
  mkdir -p "$OUT/corpus/$target" "$OUT/seeds/$target"
  case "$target" in
    protocol)
      "$CXX" $FLAGS fuzz/fuzz_protocol.cpp service/margin/protocol.cpp models/csv.cpp models/errors.cpp models/money.cpp \
        -o "$OUT/fuzz_protocol"
      # Debian's interpreter has python3-msgpack (a python3 earlier on PATH may not).
      PYTHON="${PYTHON:-/usr/bin/python3}"
      [ -x "$PYTHON" ] || PYTHON=python3
      SEEDS="$OUT/seeds/protocol" "$PYTHON" - <<'PY'
import os
import msgpack
seeds = {
    "ping": {"v": 1, "type": "ping", "id": 1},
    "status": {"v": 1, "type": "status", "id": "s"},
    "margin": {"v": 1, "type": "margin", "id": 2, "priority": "high", "cycle_id": "c1",
               "portfolios": [{"account": "A", "positions": [["BTC-PERPETUAL", 1.5], ["BTC-28JUN24", -2]]},
                              {"account": "B", "positions": [{"instrument": "X", "quantity": 3}]}]},
    "whatif": {"v": 1, "type": "whatif", "id": 3, "account": "A", "trades": [["X", -1]], "positions": [["Y", 2]]},
    "greeks": {"v": 1, "type": "greeks", "id": 4, "instruments": ["X"]},
    "net": {"v": 1, "type": "net", "id": 5, "assets": [["BTC", 8], ["USD", 2]], "deadline": "2024-06-28T09:00:00Z",
            "trades": [["T1", "A", "B", "BTC", "USD", "1.5", "60000.25"]]},
    "market": {"v": 1, "type": "market.update", "id": 6, "underlyings": [{"underlying": "BTC", "index_price": 1.0}],
               "marks": [{"instrument": "X", "mark_price": 2.0, "mark_iv": 0.5}]},
}
for name, req in seeds.items():
    with open(os.path.join(os.environ["SEEDS"], f"{name}.msgpack"), "wb") as f:
        f.write(msgpack.packb(req, use_bin_type=True))
PY
      ;;
    settlement_wire)
      "$CXX" $FLAGS fuzz/fuzz_settlement_wire.cpp service/settlement/wire.cpp models/settlement_cycle.cpp \
        models/identifier.cpp models/csv.cpp models/errors.cpp models/money.cpp \
        -o "$OUT/fuzz_settlement_wire"
      # The seeds are frames made by wire.cpp's encoders: the target writes them itself.
      "$OUT/fuzz_settlement_wire" -write_seeds="$OUT/seeds/settlement_wire"
      ;;
    *)
      echo "fuzz.sh: unknown target '$target' (protocol, settlement_wire)" >&2
      exit 2
      ;;
  esac
done

failed=""
for target in $TARGETS; do
  echo "fuzz.sh: fuzzing $target for $SECONDS_TO_RUN s"
  # -rss_limit_mb bounds memory: a decoder that allocates from declared lengths fails here.
  "$OUT/fuzz_$target" -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=512 -max_len=4096 \
    -artifact_prefix="$OUT/$target-" "$OUT/corpus/$target" "$OUT/seeds/$target" || failed="$failed $target"
done
if [ -n "$failed" ]; then
  echo "fuzz.sh: failed:$failed (crash inputs in $OUT/)" >&2
  exit 1
fi
