// Multilateral netting (SPEC §6, issue 6): trades per second netted end to end on the chosen
// backend, against the std::map reference in the same run. Workload: generated trades (models/
// trade_generator.hpp), 5,000 members, 10 assets, skewed activity; sizes 1M and 10M trades.
//
//   BM_Net_Reference     std::map, one trade at a time (host/netting_reference) — the baseline
//   BM_Net_Dense         net_trades(): dense accumulation kernel + per-asset totals + the
//                        conservation check (parse excluded) — the default path
//   BM_Net_SortReduce    the same with the sort + reduce-by-key kernel (the measured alternative)
//   BM_Net_ParseIncluded trades.csv text in memory -> parse_trades_csv -> net_trades
//   BM_TradeParse        parse_trades_csv alone on 1 and 2 threads (the parallel chunked parse)
//   BM_Bilateral         the bilateral view (sort + reduce-by-key over 2 × trades)
//
//   bench_netting [--device=cpu|cuda] [--threads=N] [--benchmark_filter=...] [--benchmark_format=json]
// Generating the 10M-trade set and its CSV text takes a while before the first timing (untimed).

#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "bench/bench_context.hpp"
#include "host/dispatch.hpp"
#include "host/netting_engine.hpp"
#include "host/netting_reference.hpp"
#include "kernels/netting.hpp"
#include "models/trade.hpp"
#include "models/trade_generator.hpp"

namespace {

using namespace marginet;

TradeGeneratorConfig config(std::size_t trades) {
  TradeGeneratorConfig cfg;
  cfg.trades = trades;
  cfg.members = 5000;
  cfg.assets = 10;
  cfg.member_skew = 3.0;
  cfg.seed = 20240628;
  return cfg;
}

/// Generated once per size, outside every timed region.
const TradeSet& trade_set(std::size_t trades) {
  static std::map<std::size_t, std::unique_ptr<TradeSet>> cache;
  auto& slot = cache[trades];
  if (!slot) slot = std::make_unique<TradeSet>(generate_trades(config(trades)));
  return *slot;
}

const std::string& trades_csv(std::size_t trades) {
  static std::map<std::size_t, std::unique_ptr<std::string>> cache;
  auto& slot = cache[trades];
  if (!slot) {
    std::ostringstream out;
    write_generated_trades_csv(out, config(trades));
    slot = std::make_unique<std::string>(out.str());
  }
  return *slot;
}

/// Bytes of the columns one pass over the trades reads: 4 × int32 ids + 2 × int64 amounts.
constexpr double kBytesPerTrade = 4 * 4 + 2 * 8;

void BM_Net_Reference(benchmark::State& state) {
  const TradeSet& t = trade_set(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    ReferenceNetting r = reference_netting(t, /*bilateral=*/false);
    benchmark::DoNotOptimize(r.net.size());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  bench::set_bandwidth_counters(state, kBytesPerTrade * static_cast<double>(state.range(0)));
}

void net_with(benchmark::State& state, NettingAlgorithm algorithm) {
  const TradeSet& t = trade_set(static_cast<std::size_t>(state.range(0)));
  const NettingOptions options{bench::backend(), algorithm, false};
  for (auto _ : state) {
    NettingResult r = net_trades(t, options);
    benchmark::DoNotOptimize(r.net.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  bench::set_bandwidth_counters(state, kBytesPerTrade * static_cast<double>(state.range(0)));
}

void BM_Net_Dense(benchmark::State& state) { net_with(state, NettingAlgorithm::dense); }
void BM_Net_SortReduce(benchmark::State& state) { net_with(state, NettingAlgorithm::sort_reduce); }

void BM_Net_ParseIncluded(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const std::string& text = trades_csv(n);
  const AssetTable assets = generator_assets(10);
  const NettingOptions options{bench::backend(), NettingAlgorithm::dense, false};
  for (auto _ : state) {
    const TradeSet t = parse_trades_csv(text, "generated.csv", assets);
    NettingResult r = net_trades(t, options);
    benchmark::DoNotOptimize(r.net.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  bench::set_bandwidth_counters(state, static_cast<double>(text.size()));
}

/// trades.csv text -> TradeSet alone, on range(1) threads (1: the one-chunk parse).
void BM_TradeParse(benchmark::State& state) {
  const std::string& text = trades_csv(static_cast<std::size_t>(state.range(0)));
  const AssetTable assets = generator_assets(10);
  const TradeParseOptions options{static_cast<unsigned>(state.range(1))};
  for (auto _ : state) {
    const TradeSet t = parse_trades_csv(text, "generated.csv", assets, options);
    benchmark::DoNotOptimize(t.quantity().data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  bench::set_bandwidth_counters(state, static_cast<double>(text.size()));
}

void BM_Bilateral(benchmark::State& state) {
  const TradeSet& t = trade_set(static_cast<std::size_t>(state.range(0)));
  const kernels::TradeColumns columns{t.size(), t.buyer().data(), t.seller().data(), t.base_asset().data(),
                                      t.quote_asset().data(), t.quantity().data(), t.notional().data()};
  const auto members = static_cast<std::int32_t>(t.members().size());
  for (auto _ : state) {
    auto b = MARGINET_DISPATCH(bench::backend(), bilateral_obligations, columns, members, 10);
    benchmark::DoNotOptimize(b.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  bench::set_bandwidth_counters(state, kBytesPerTrade * static_cast<double>(state.range(0)));
}

#define NETTING_SIZES ->Arg(1 << 20)->Arg(10000000)->Unit(benchmark::kMillisecond)->UseRealTime()
BENCHMARK(BM_Net_Reference) NETTING_SIZES->Iterations(1);
BENCHMARK(BM_Net_Dense) NETTING_SIZES->MinTime(2.0);
BENCHMARK(BM_Net_SortReduce) NETTING_SIZES->Iterations(2);
BENCHMARK(BM_Net_ParseIncluded) NETTING_SIZES->Iterations(2);
BENCHMARK(BM_TradeParse)->Args({10000000, 1})->Args({10000000, 2})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_Bilateral) NETTING_SIZES->Iterations(2);

}  // namespace

MARGINET_BENCHMARK_MAIN();
