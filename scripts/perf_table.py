"""Prints the table of scripts/perf-table.sh from the benchmarks' JSON in a folder.

/usr/bin/python3 scripts/perf_table.py FOLDER   (json only; any Python 3)
"""
import json
import os
import sys


def load(folder, name):
    with open(os.path.join(folder, name + ".json")) as f:
        doc = json.load(f)
    by_name = {}
    for b in doc["benchmarks"]:
        if b.get("run_type", "iteration") == "iteration" and "error_occurred" not in b:
            by_name[b["name"]] = b
    return doc["context"], by_name


def find(runs, prefix):
    for name, b in runs.items():
        if name.startswith(prefix):
            return b
    raise SystemExit(f"perf_table: no benchmark named {prefix}... in the JSON")


def seconds(b):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return b["real_time"] * scale


def main():
    folder = sys.argv[1]
    context, greeks = load(folder, "greeks")
    _, netting = load(folder, "netting")
    _, whatif = load(folder, "whatif")
    _, eod = load(folder, "eod")
    rows = []

    ql = find(greeks, "BM_QuantLib_AnalyticEuropean")["items_per_second"]
    # The AVX2 path where the CPU runs it (its benchmarks are skipped, with an error, elsewhere).
    paths = "avx2" if any(k.startswith("BM_Ours_CpuKernel/avx2") for k in greeks) else "scalar"
    one = find(greeks, f"BM_Ours_CpuKernel/{paths}/1048576/1/")["items_per_second"]
    two = find(greeks, f"BM_Ours_CpuKernel/{paths}/1048576/2/")["items_per_second"]
    rows.append(("greeks, price + 7 greeks",
                 f"one thread ({paths}) {one / 1e6:.1f} M options/s; two threads {two / 1e6:.1f} M/s",
                 f"QuantLib AnalyticEuropeanEngine {ql / 1e3:.0f} k/s",
                 f"one thread **{one / ql:.0f}×**, two threads {two / ql:.0f}×, scaling {two / one:.2f}×",
                 "≥ 100× QuantLib; ≥ 1.8× one thread on 2 cores",
                 one / ql >= 100 and two / one >= 1.8))

    dense = find(netting, "BM_Net_Dense/10000000")["items_per_second"]
    parse = find(netting, "BM_Net_ParseIncluded/10000000")["items_per_second"]
    rows.append(("netting from trades.csv, parse included (10 M trades)",
                 f"{parse / 1e6:.2f} M trades/s ({1e7 / parse:.2f} s)",
                 f"netting kernel alone {dense / 1e6:.0f} M trades/s",
                 f"1/{dense / parse:.0f} of the kernel", "≥ 20 M trades/s end to end", parse >= 20e6))

    fast = find(whatif, "BM_WhatIf/lane:2")
    queued = find(whatif, "BM_WhatIf/lane:1")
    echo = find(whatif, "BM_ZmqEcho")
    rows.append(("what-if over ZeroMQ, 200 positions, 1,250 scenarios",
                 f"p50 {fast['p50_us']:.0f} µs, p99 {fast['p99_us']:.0f} µs (fast lane)",
                 f"engine {fast['engine_p50_us']:.1f} µs; queued lane p50 {queued['p50_us']:.0f} / p99 "
                 f"{queued['p99_us']:.0f} µs; bare ZeroMQ round trip p50 {echo['p50_us']:.0f} / p99 {echo['p99_us']:.0f} µs",
                 f"p99 {fast['p99_us'] / echo['p99_us']:.2f}× the bare round trip",
                 "p99 < 100 µs on loopback", fast["p99_us"] < 100))

    def eod_run(key):
        return find(eod, f"BM_MarginEOD/{key}/")

    def stages(run):
        return (f"{run['total_s']:.3f} s (prepare {run['prepare_s']:.3f}, risk arrays {run['risk_arrays_s']:.3f}, "
                f"aggregation {run['aggregation_s']:.3f}, reduction {run['reduction_s']:.3f})")

    mc, hv = eod_run("mc_es"), eod_run("hvar")
    rows.append(("mc-es EOD, 10,000 paths, standard book", stages(mc),
                 f"hvar (1,250 scenarios) {hv['total_s']:.2f} s", f"{mc['total_s'] / hv['total_s']:.1f}× hvar's time",
                 "< 10 s on 2 cores", mc["total_s"] < 10))
    for label, key, goal_text in (("span16 EOD, standard book", "span16", "≥ 200× QuantLib; prepare ≤ the compute"),
                                  ("deribit-pm EOD, standard book", "deribit_pm", ""),
                                  ("hvar EOD, 1,250 scenarios, standard book", "hvar", "")):
        run = eod_run(key)
        base = find(eod, f"BM_QuantLibPerPosition/{key}/")["extrapolated_s"]
        compute = run["risk_arrays_s"] + run["aggregation_s"] + run["reduction_s"]
        met = (base / run["total_s"] >= 200 and run["prepare_s"] <= compute) if goal_text else None
        rows.append((label, stages(run), f"QuantLib per position, extrapolated: {base:.1f} s",
                     f"**{base / run['total_s']:.0f}×** QuantLib", goal_text or "(no goal of its own)", met))

    loads = []
    for which, label in ((0, "instruments"), (1, "marks"), (2, "positions")):
        b = find(eod, f"BM_LoadEodInput/file:{which}/")
        loads.append(f"{label} {seconds(b) * 1e3:.0f} ms ({b['items_per_second'] / 1e6:.2f} M rows/s)")
    rows.append(("loading the EOD book's files (read and parsed, each on its own)", "; ".join(loads), "", "",
                 "(no goal of its own)", None))

    print()
    print(f"revision {context.get('marginet_revision', '?')}, backend {context.get('marginet_backend', '?')}, "
          f"host {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs at "
          f"{context.get('mhz_per_cpu', '?')} MHz, load average before {open(os.path.join(folder, 'load_before')).read().strip()}, "
          f"after {open(os.path.join(folder, 'load_after')).read().strip()}")
    print()
    print("| work | now | baseline in the same run | ratio | goal | met |")
    print("|---|---|---|---|---|---|")
    for work, now, base, ratio, goal, met in rows:
        print(f"| {work} | {now} | {base} | {ratio} | {goal} | {'yes' if met else ('—' if met is None else 'no')} |")


if __name__ == "__main__":
    main()
