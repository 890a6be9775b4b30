#!/usr/bin/env bash
# The five headline performance figures, each with its baseline, in one run on this machine:
#
#   scripts/perf-table.sh [BUILD_DIR]      # default: build/ (a Release build with benchmarks)
#   OUT=/some/folder scripts/perf-table.sh # where the JSON goes (default BUILD_DIR/perf-table)
#
#   greeks      bench_greeks_quantlib: our batch kernel (AVX2 path where the CPU has it) on one
#               and two threads against QuantLib's AnalyticEuropeanEngine
#   netting     bench_netting: trades.csv text -> parse -> net, 10 M trades, against the
#               netting kernel alone
#   what-if     bench_service_load: one trade for a 200-position account, 1,250 scenarios, over
#               ZeroMQ on loopback, against the engine's own time and a bare ZeroMQ round trip
#   mc-es, span16 (and deribit-pm, hvar)
#               bench_margin_eod_quantlib: the end-of-day run of the standard book (1 M
#               positions) against QuantLib's per-position loop, extrapolated; and how fast
#               each of its input files loads (instruments, marks, positions)
#
# It takes about 2 minutes on 2 cores and needs about 6 GiB of memory. Run it on an idle machine:
# the load average before and after is printed with the table. The table is markdown, for
# bench/RESULTS.md; the JSON of every benchmark is kept in OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${BUILD_DIR:-build}}
OUT=${OUT:-$BUILD_DIR/perf-table}
PY=/usr/bin/python3  # Debian's interpreter (json only)
B=$BUILD_DIR/bench
for exe in bench_greeks_quantlib bench_netting bench_service_load bench_margin_eod_quantlib; do
  [ -x "$B/$exe" ] || { echo "perf-table: $B/$exe is missing: build with benchmarks (scripts/build.sh)" >&2; exit 2; }
done
mkdir -p "$OUT"
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "perf-table: revision $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, load average $(load)"
echo "$(load)" > "$OUT/load_before"
run() {  # name, executable, arguments...
  local name=$1 exe=$2
  shift 2
  local t0=$(date +%s)
  echo "perf-table: $name ..."
  "$B/$exe" --benchmark_format=json --benchmark_out="$OUT/$name.json" --benchmark_out_format=json "$@" >/dev/null
  echo "perf-table: $name done in $(( $(date +%s) - t0 )) s"
}
run greeks bench_greeks_quantlib --benchmark_filter='BM_QuantLib_AnalyticEuropean|BM_Ours_CpuKernel'
run netting bench_netting --benchmark_filter='BM_Net_Dense/10000000|BM_Net_ParseIncluded/10000000|BM_TradeParse'
run whatif bench_service_load --benchmark_filter='BM_WhatIf|BM_ZmqEcho' --benchmark_min_time=3
run eod bench_margin_eod_quantlib \
  --benchmark_filter='BM_MarginEOD/(span16|deribit_pm|hvar|mc_es)/|BM_QuantLibPerPosition|BM_LoadEodInput'
echo "$(load)" > "$OUT/load_after"
"$PY" scripts/perf_table.py "$OUT"
