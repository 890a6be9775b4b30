// Contagion across a network (SPEC §11, docs/contagion.md): the clearing vector of a large
// network by Picard iteration (the kernel) against the fictitious default algorithm (the plain
// loop, one thread) as the baseline, in the same run. Workload: generate_network() with 100,000
// nodes and 1,000,000 links, power-law-ish out-degrees (skew 2), 5 % outside creditors, 10 % of
// the links partly margined, thin capital buffers and 3 % weak nodes: about 4.7 % of the nodes
// default, in 5 waves (Eisenberg–Noe).
//
//   BM_Contagion_FictitiousDefaultReference  rounds of defaults, Gauss–Seidel on the defaulted
//                                            nodes only (models/contagion.cpp) — the baseline
//   BM_Contagion_PicardReference             Picard, plain loop, one thread
//   BM_Contagion_Picard                      Picard, the kernel on --device (default auto)
//   BM_Contagion_FictitiousDefault           the rounds with the kernel solving each one
//   BM_Contagion_Clear                       clear_network(): CSR build, both algorithms, the
//                                            per-node results and the checks (what the CLI runs)
//   BM_Contagion_PicardCuda                  Picard on the CUDA backend; skipped without a device
//
//   bench_contagion [--device=cpu|cuda] [--threads=N] [--benchmark_filter=...] [--benchmark_format=json]
// Generating the network takes about a second before the first timing (untimed).

#include <memory>

#include "bench/bench_context.hpp"
#include "host/contagion_engine.hpp"
#include "models/contagion.hpp"

namespace {

using namespace marginet;

NetworkGeneratorConfig config() {
  NetworkGeneratorConfig c;
  c.nodes = 100000;
  c.links = 1000000;
  c.degree_skew = 2.0;
  c.sink_share = 0.05;
  c.sink_link_share = 0.2;
  c.capital_mean = 0.02;
  c.weak_share = 0.03;
  c.weak_loss = 0.5;
  c.margined_share = 0.1;
  c.seed = 20240628;
  return c;
}

/// Generated once, outside every timed region.
const Network& network() {
  static const std::unique_ptr<Network> net = std::make_unique<Network>(generate_network(config()));
  return *net;
}
const ClearingSystem& clearing_system() {
  static const std::unique_ptr<ClearingSystem> s = std::make_unique<ClearingSystem>(build_clearing_system(network()));
  return *s;
}

void set_counters(benchmark::State& state, const ClearingSystem& s, std::int64_t iterations) {
  state.counters["nodes"] = static_cast<double>(s.nodes);
  state.counters["links"] = static_cast<double>(s.links());
  state.counters["iterations"] = static_cast<double>(iterations);
  // Link reads per second: every iteration gathers over the links it touches.
  state.counters["link_reads/s"] = benchmark::Counter(
      static_cast<double>(iterations) * static_cast<double>(s.links()) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

void set_default_counters(benchmark::State& state, const FictitiousDefaultRun& run) {
  std::int64_t defaulted = 0;
  for (const std::int32_t w : run.wave) defaulted += w > 0;
  state.counters["defaulted"] = static_cast<double>(defaulted);
  state.counters["waves"] = run.waves;
}

void BM_Contagion_FictitiousDefaultReference(benchmark::State& state) {
  const ClearingSystem& s = clearing_system();
  FictitiousDefaultRun run;
  for (auto _ : state) {
    run = reference_fictitious_default(s, {});
    benchmark::DoNotOptimize(run.payment.data());
  }
  state.counters["nodes"] = static_cast<double>(s.nodes);
  state.counters["links"] = static_cast<double>(s.links());
  state.counters["sweeps"] = static_cast<double>(run.sweeps);
  set_default_counters(state, run);
}

void BM_Contagion_PicardReference(benchmark::State& state) {
  const ClearingSystem& s = clearing_system();
  PicardRun run;
  for (auto _ : state) {
    run = reference_picard(s, {});
    benchmark::DoNotOptimize(run.payment.data());
  }
  set_counters(state, s, run.iterations);
}

void picard_with(benchmark::State& state, Backend backend) {
  const ClearingSystem& s = clearing_system();
  PicardRun run;
  for (auto _ : state) {
    run = picard_on(s, {}, backend);
    benchmark::DoNotOptimize(run.payment.data());
  }
  set_counters(state, s, run.iterations);
}

void BM_Contagion_Picard(benchmark::State& state) { picard_with(state, bench::backend()); }

void BM_Contagion_PicardCuda(benchmark::State& state) {
  if (!probe_cuda().available()) {
    state.SkipWithError(("no CUDA device: " + probe_cuda().error).c_str());
    for (auto _ : state) {
    }
    return;
  }
  picard_with(state, Backend::cuda);
}

void BM_Contagion_FictitiousDefault(benchmark::State& state) {
  const ClearingSystem& s = clearing_system();
  FictitiousDefaultRun run;
  for (auto _ : state) {
    run = fictitious_default_on(s, {}, bench::backend());
    benchmark::DoNotOptimize(run.payment.data());
  }
  state.counters["nodes"] = static_cast<double>(s.nodes);
  state.counters["links"] = static_cast<double>(s.links());
  state.counters["iterations"] = static_cast<double>(run.sweeps);
  set_default_counters(state, run);
}

void BM_Contagion_Clear(benchmark::State& state) {
  const Network& net = network();
  ContagionOptions options;
  options.backend = bench::backend();
  ContagionRun run;
  for (auto _ : state) {
    run = clear_network(net, options);
    benchmark::DoNotOptimize(run.nodes.payment.data());
  }
  if (!run.agree) state.SkipWithError("picard and the fictitious default algorithm disagree");
  state.counters["nodes"] = static_cast<double>(run.system.nodes);
  state.counters["links"] = static_cast<double>(run.system.links());
  state.counters["defaulted"] = static_cast<double>(run.nodes.defaulted_count);
  state.counters["waves"] = run.nodes.waves;
  state.counters["picard_s"] = run.picard_s;
  state.counters["fictitious_default_s"] = run.fictitious_default_s;
}

#define CONTAGION_TIMING ->Unit(benchmark::kMillisecond)->UseRealTime()
BENCHMARK(BM_Contagion_FictitiousDefaultReference) CONTAGION_TIMING->MinTime(2.0);
BENCHMARK(BM_Contagion_PicardReference) CONTAGION_TIMING->MinTime(2.0);
BENCHMARK(BM_Contagion_Picard) CONTAGION_TIMING->MinTime(2.0);
BENCHMARK(BM_Contagion_FictitiousDefault) CONTAGION_TIMING->MinTime(2.0);
BENCHMARK(BM_Contagion_Clear) CONTAGION_TIMING->MinTime(2.0);
BENCHMARK(BM_Contagion_PicardCuda) CONTAGION_TIMING->MinTime(2.0);

}  // namespace

MARGINET_BENCHMARK_MAIN();
