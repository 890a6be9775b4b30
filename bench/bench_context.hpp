#pragma once
// Every benchmark program starts with MARGINET_BENCHMARK_MAIN() instead of BENCHMARK_MAIN():
// it adds the context of the run (device, backend, CUDA and CCCL versions, compiler, git
// revision) to the console and JSON output, and parses `--device auto|cpu|cuda`,
// `--threads N` before handing the rest to Google Benchmark.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "host/backend.hpp"
#include "host/book_generator.hpp"

namespace marginet::bench {

/// The backend chosen by --device (default auto).
Backend backend();

/// Parses our flags, records the context, runs the benchmarks.
int run_main(int argc, char** argv);

/// Counters every throughput benchmark reports.
void set_bandwidth_counters(benchmark::State& state, double bytes_per_iteration);

/// The p-quantile (0..1) of latency samples (nearest rank).
double percentile(std::vector<double> samples, double p);

/// The standard end-of-day book: 20 underlyings, 100,000 instruments, 10,000 accounts,
/// 1,000,000 positions, seed 2024; MARGINET_EOD_POSITIONS=N scales positions, instruments and
/// accounts together.
BookSpec eod_book_spec();

}  // namespace marginet::bench

#define MARGINET_BENCHMARK_MAIN() \
  int main(int argc, char** argv) { return ::marginet::bench::run_main(argc, argv); }
