#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: is the CUDA path right and how fast is it?
#
#   scripts/gpu-check.sh [BUILD_DIR]        # default: build/, built with CUDA when it is not
#   OUT=/some/folder scripts/gpu-check.sh   # where the figures go (default BUILD_DIR/gpu-check)
#
# Steps, each timed, the whole under 8 minutes on a 16-core machine with the build taken from
# BUILD_DIR (a CUDA build of this revision: `BUILD_DIR=build scripts/build.sh -DMARGINET_CUDA=ON`):
#   1. what the machine is: nvidia-smi, `marginet --version` (backends built, the device found);
#   2. every CUDA and cross-backend test (CTest names with /cuda or CrossBackend): none may skip;
#   3. compute-sanitizer (memcheck) on the kernel tests' CUDA cases, when it is installed;
#   4. the CLI end to end on the demo's book: `margin` under span16, deribit-pm, hvar and mc-es,
#      and `net`, with --device cuda against --device cpu (money and ids equal, risk figures
#      within the cross-backend tolerance of docs/margin.md);
#   5. the benchmarks with --device cuda, their JSON in OUT/ (for bench/RESULTS.md).
#
# Exit status: 0 every step passed; 1 a step failed (named on the last line); 3 a GPU is
# present (nvidia-smi or /dev/nvidia0) but no CUDA device answers marginet — for instance a
# driver older than the CUDA runtime the build links; 4 no NVIDIA GPU on this machine: nothing
# was checked (the tests skip their GPU cases visibly everywhere else).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${1:-${BUILD_DIR:-build}}
OUT=${OUT:-$BUILD_DIR/gpu-check}
PY=/usr/bin/python3  # Debian's interpreter (json only; no extra modules)
START=$(date +%s)
say() { echo "gpu-check: $*"; }
elapsed() { echo $(( $(date +%s) - START )); }
fail() {
  say "FAIL at ${1} ($(elapsed) s): ${2}"
  exit 1
}

# --- 1. the machine ---------------------------------------------------------------------
say "=== 1. the machine"
gpu_present=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then gpu_present=1; fi
[ -e /dev/nvidia0 ] && gpu_present=1
if [ "$gpu_present" = 1 ] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi || true
fi
if [ "$gpu_present" = 0 ]; then
  say "no NVIDIA GPU on this machine (no nvidia-smi listing, no /dev/nvidia0): nothing to check."
  say "Run this on a machine with a GPU; here the test suite runs its CPU backend and skips its GPU cases."
  exit 4
fi
M="$BUILD_DIR/service/marginet"
if [ ! -x "$M" ] || ! "$M" --version 2>/dev/null | grep -q 'backends built: .*cuda'; then
  say "no CUDA build in $BUILD_DIR: building one (Release, CUDA ON)"
  BUILD_DIR="$BUILD_DIR" scripts/build.sh -DMARGINET_CUDA=ON >"$ROOT/gpu-check-build.log" 2>&1 ||
    fail "build" "see gpu-check-build.log"
fi
VERSION=$("$M" --version 2>&1)
echo "$VERSION"
if ! echo "$VERSION" | grep -q '^device: ' || echo "$VERSION" | grep -q '^device: none'; then
  say "a GPU is present but marginet finds no CUDA device:"
  echo "$VERSION" | grep '^device' >&2
  say "(a driver older than the CUDA runtime this build links, a container without the device, CUDA_VISIBLE_DEVICES empty?)"
  exit 3
fi
mkdir -p "$OUT"
echo "$VERSION" >"$OUT/version.txt"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
  --format=csv >"$OUT/nvidia-smi.csv" 2>/dev/null
say "1 done ($(elapsed) s)"

# --- 2. CUDA and cross-backend tests --------------------------------------------------------
say "=== 2. CUDA and cross-backend tests"
(cd "$BUILD_DIR" && ctest -R '/cuda|CrossBackend' --output-on-failure --parallel "$(nproc)" \
  >"$ROOT/$OUT/ctest-cuda.log" 2>&1)
rc=$?
tail -5 "$OUT/ctest-cuda.log"
[ $rc -eq 0 ] || fail "CUDA tests" "see $OUT/ctest-cuda.log"
skipped=$(grep -c '(Skipped)' "$OUT/ctest-cuda.log" || true)
ran=$(grep -cE 'Test +#[0-9]+: .*(Passed|Failed)' "$OUT/ctest-cuda.log" || true)
[ "$ran" -gt 0 ] || fail "CUDA tests" "no test ran"
[ "$skipped" -eq 0 ] || fail "CUDA tests" "$skipped GPU tests skipped on a machine with a GPU"
say "2 done: $ran tests passed, none skipped ($(elapsed) s)"

# --- 3. compute-sanitizer -------------------------------------------------------------------
say "=== 3. compute-sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -z "$SAN" ]; then
  say "3 skipped: compute-sanitizer not installed"
else
  for t in test_greeks_kernel test_netting test_scenario_reduce test_margin_engine test_var_margin test_contagion; do
    [ -x "$BUILD_DIR/tests/$t" ] || continue
    "$SAN" --tool memcheck --error-exitcode 9 "$BUILD_DIR/tests/$t" --gtest_filter='*cuda*:*CrossBackend*' \
      >"$OUT/sanitizer-$t.log" 2>&1 || fail "compute-sanitizer" "$t: see $OUT/sanitizer-$t.log"
  done
  say "3 done: memcheck clean ($(elapsed) s)"
fi

# --- 4. the CLI end to end, cuda against cpu ------------------------------------------------
say "=== 4. the CLI: --device cuda against --device cpu on the demo's book"
W="$OUT/demo"
rm -rf "$W"
"$M" --device cpu --quiet demo --workdir "$W" --members 8 >"$OUT/demo.log" 2>&1 || fail "demo book" "see $OUT/demo.log"
E="--instruments $W/instruments.csv --market $W/market.csv --marks $W/marks.csv --positions $W/positions.csv"
for model in span16 deribit-pm hvar mc-es; do
  extra=""
  [ "$model" = hvar ] && extra="--returns $W/returns.csv"
  for dev in cpu cuda; do
    "$M" --device "$dev" --quiet --format json --out "$OUT/margin-$model-$dev.json" margin $E --model "$model" $extra ||
      fail "CLI" "margin --model $model --device $dev"
  done
  "$PY" - "$OUT/margin-$model-cpu.json" "$OUT/margin-$model-cuda.json" <<'EOF' || fail "CLI" "margin --model $model: cuda differs from cpu"
import json, sys
cpu, gpu = (json.load(open(p)) for p in sys.argv[1:3])
assert len(cpu) == len(gpu), "account count"
worst = 0.0
for a, b in zip(cpu, gpu):
    assert a["account"] == b["account"], (a["account"], b["account"])
    # the call is exact text in the settlement asset's minor unit: equal, or one unit apart where
    # the IM sits on a rounding boundary (the IMs are checked below)
    unit = 10.0 ** -len(a["call"].split(".")[1]) if "." in a["call"] else 1.0
    assert abs(float(a["call"]) - float(b["call"])) <= unit * 1.000001, ("call", a["account"], a["call"], b["call"])
    for k in ("im", "mm", "delta_usd", "gamma_usd", "vega_usd"):
        x, y = float(a[k]), float(b[k])
        # relative 1e-12 plus a floor of 1e-15 of the account's scale (its IM and notional sensitivities)
        scale = max(abs(float(a["im"])), abs(float(a["delta_usd"])), 1.0)
        err = abs(x - y)
        worst = max(worst, err / (abs(x) + 1e-300))
        assert err <= 1e-12 * max(abs(x), abs(y)) + 1e-15 * scale, (a["account"], k, x, y)
    assert a["worst_scenario"] == b["worst_scenario"] or abs(float(a["im"]) - float(b["im"])) <= 1e-12 * abs(float(a["im"])), \
        ("worst scenario", a["account"], a["worst_scenario"], b["worst_scenario"])
print(f"  {len(cpu)} accounts agree; largest relative difference {worst:.2e}")
EOF
done
for dev in cpu cuda; do
  "$M" --device "$dev" --quiet --format json --out "$OUT/net-$dev.json" net --trades "$W/spot_trades.csv" \
    --assets "$W/assets.csv" || fail "CLI" "net --device $dev"
done
cmp -s "$OUT/net-cpu.json" "$OUT/net-cuda.json" || fail "CLI" "net: cuda and cpu differ (money must be equal bit for bit)"
say "4 done: margin (4 methodologies) and net agree ($(elapsed) s)"

# --- 5. benchmarks -------------------------------------------------------------------------
say "=== 5. benchmarks --device cuda"
B="$BUILD_DIR/bench"
run_bench() {  # name, filter
  [ -x "$B/$1" ] || { say "  $1 not built: skipped"; return; }
  "$B/$1" --device=cuda --benchmark_filter="$2" --benchmark_out="$OUT/$1.json" --benchmark_out_format=json \
    >"$OUT/$1.txt" 2>&1 || fail "benchmarks" "$1: see $OUT/$1.txt"
  grep -E '^BM_' "$OUT/$1.txt" | cut -c1-150
}
run_bench bench_greeks_quantlib 'BM_QuantLib|BM_Ours_Kernel/'
run_bench bench_margin_eod_quantlib 'BM_MarginEOD/(span16|deribit_pm|hvar|mc_es)/'
run_bench bench_netting 'BM_Net_Dense/10000000|BM_Net_SortReduce/10000000'
run_bench bench_scenario_reduce '.'
run_bench bench_whatif '.'
"$PY" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
figures = {"version": open(os.path.join(out, "version.txt")).read(), "benchmarks": []}
for name in sorted(os.listdir(out)):
    if name.startswith("bench_") and name.endswith(".json"):
        data = json.load(open(os.path.join(out, name)))
        figures["context"] = data.get("context", {})
        for b in data.get("benchmarks", []):
            figures["benchmarks"].append({k: v for k, v in b.items() if not isinstance(v, (dict, list))})
json.dump(figures, open(os.path.join(out, "gpu-figures.json"), "w"), indent=1)
print(f"  {len(figures['benchmarks'])} figures in {os.path.join(out, 'gpu-figures.json')}")
EOF
say "5 done ($(elapsed) s)"
say "PASS in $(elapsed) s; figures in $OUT/gpu-figures.json (for bench/RESULTS.md)"
