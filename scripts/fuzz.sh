#!/bin/sh
# Builds the libFuzzer target of the service's request decoder with clang (ASan + UBSan) and
# runs it for a bounded time.
#   scripts/fuzz.sh [SECONDS]      (default 60)
# Corpus: build-fuzz/corpus (grows), seeded from valid requests in build-fuzz/seeds; crashes land
# in build-fuzz/.
set -eu
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
CXX="${CXX_FUZZ:-clang++}"
OUT=build-fuzz
mkdir -p "$OUT/corpus" "$OUT/seeds"
"$CXX" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DMSGPACK_NO_BOOST -I. fuzz/fuzz_protocol.cpp service/margin/protocol.cpp models/csv.cpp models/errors.cpp models/money.cpp \
  -o "$OUT/fuzz_protocol"
# Debian's interpreter has python3-msgpack (a python3 earlier on PATH may not).
PYTHON="${PYTHON:-/usr/bin/python3}"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" - <<'PY'
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
    with open(f"build-fuzz/seeds/{name}.msgpack", "wb") as f:
        f.write(msgpack.packb(req, use_bin_type=True))
PY
# -rss_limit_mb bounds memory: a decoder that allocates from declared lengths fails here.
"$OUT/fuzz_protocol" -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=512 -max_len=4096 \
  -artifact_prefix="$OUT/" "$OUT/corpus" "$OUT/seeds"
