// Per-account worst-loss reduction (SPEC §5 stage 3): the kernel on the chosen backend against
// the plain single-thread reference loop, on P&L matrices of accounts × scenarios.
//   bench_scenario_reduce [--device=cpu|cuda] [--threads=N] [--benchmark_format=json]

#include <random>
#include <vector>

#include "bench/bench_context.hpp"
#include "host/dispatch.hpp"
#include "kernels/scenario_reduce.hpp"
#include "models/scenario_math.hpp"

namespace {

struct Matrix {
  std::size_t rows, scenarios;
  std::vector<double> pnl, weights, loss;
  std::vector<std::int32_t> scenario;
  Matrix(std::size_t r, std::size_t s)
      : rows(r), scenarios(s), pnl(r * s), weights(s, 1.0), loss(r), scenario(r) {
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal;
    for (auto& x : pnl) x = normal(rng);
  }
};

void BM_WorstLoss_Reference(benchmark::State& state) {
  Matrix m(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
  for (auto _ : state) {
    for (std::size_t a = 0; a < m.rows; ++a) {
      const auto w = marginet::worst_weighted_loss(&m.pnl[a * m.scenarios], m.weights.data(), m.scenarios);
      m.loss[a] = w.loss;
      m.scenario[a] = w.scenario;
    }
    benchmark::DoNotOptimize(m.loss.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
  marginet::bench::set_bandwidth_counters(state, 8.0 * static_cast<double>(m.pnl.size()));
}

void BM_WorstLoss_Kernel(benchmark::State& state) {
  Matrix m(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
  const marginet::kernels::WorstLossArgs args{m.pnl.data(), m.rows, m.scenarios, m.weights.data(),
                                              m.loss.data(), m.scenario.data()};
  for (auto _ : state) {
    MARGINET_DISPATCH(marginet::bench::backend(), weighted_worst_loss, args);
    benchmark::DoNotOptimize(m.loss.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
  marginet::bench::set_bandwidth_counters(state, 8.0 * static_cast<double>(m.pnl.size()));
}

// accounts × scenarios: the span16 and hvar shapes of the EOD run.
#define SHAPES ->Args({10000, 16})->Args({10000, 1250})->Unit(benchmark::kMillisecond)->UseRealTime()
BENCHMARK(BM_WorstLoss_Reference) SHAPES;
BENCHMARK(BM_WorstLoss_Kernel) SHAPES;

}  // namespace

MARGINET_BENCHMARK_MAIN();
