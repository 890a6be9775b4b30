// Trade capture throughput and latency of the clearing store (SPEC §9): durable submits into a
// SQLite file (WAL, synchronous=FULL), where the commit (an fsync) is the bound.
//   bench_trade_capture [--benchmark_format=json]
//
// BM_SubmitBatch/<trades per transaction>: new single-trade submissions, `batch` of them per
//   submit() call = one transaction, one commit. items/s = trades/s. Batch 1 is a commit per
//   trade (the latency-first baseline); 64 and 1024 are what a server batching the requests
//   waiting on its socket gets.
// BM_SubmitLatency: one trade per submit(), timed one by one; counters p50_us, p99_us, max_us.
// BM_SubmitPackage/<legs>: one package of <legs> legs per transaction (all or nothing).
// Trades spread over 100 accounts x 8 instruments; the store grows across iterations.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_context.hpp"
#include "service/clearing/clearing_store.hpp"

namespace {

namespace fs = std::filesystem;
using namespace marginet;

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("marginet_bench_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const char* const kInstruments[] = {"BTC-PERPETUAL", "ETH-PERPETUAL",       "BTC-28JUN24",
                                    "ETH-28JUN24",   "BTC-28JUN24-70000-C", "BTC-28JUN24-60000-P",
                                    "ETH-28JUN24-4000-C", "ETH-28JUN24-3000-P"};

TradeInput make_trade(std::int64_t n, const std::string& package_id = "") {
  TradeInput t;
  t.source = "bench";
  t.trade_id = "T" + std::to_string(n);
  t.account = "ACC" + std::to_string(n % 100);
  t.instrument = kInstruments[(n / 100) % 8];
  t.quantity_text = (n % 3 == 0 ? "-" : "") + std::to_string(1 + n % 17) + ".25";
  t.price_text = std::to_string(60000 + n % 1000) + ".5";
  t.time = "2024-06-28T08:00:00.125Z";
  t.package_id = package_id;
  return t;
}

void check(const std::vector<SubmitResult>& r, benchmark::State& state) {
  for (const SubmitResult& x : r)
    if (x.outcome != Outcome::recorded) state.SkipWithError(("not recorded: " + x.message).c_str());
}

void BM_SubmitBatch(benchmark::State& state) {
  const auto batch = static_cast<std::int64_t>(state.range(0));
  const fs::path dir = scratch("capture");
  std::int64_t n = 0;
  {
    auto store = open_clearing_store((dir / "c.sqlite").string(), OpenMode::writer);
    std::vector<Submission> subs;
    for (auto _ : state) {
      subs.clear();
      for (std::int64_t i = 0; i < batch; ++i) subs.push_back(Submission::trade(make_trade(n++)));
      check(store->submit(subs), state);
    }
    state.counters["journal_entries"] = static_cast<double>(store->journal_size());
  }
  fs::remove_all(dir);
  state.SetItemsProcessed(n);
}

void BM_SubmitLatency(benchmark::State& state) {
  const fs::path dir = scratch("latency");
  std::vector<double> us;
  {
    auto store = open_clearing_store((dir / "c.sqlite").string(), OpenMode::writer);
    std::int64_t n = 0;
    for (auto _ : state) {
      const std::vector<Submission> one = {Submission::trade(make_trade(n++))};
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = store->submit(one);
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      check(r, state);
    }
  }
  fs::remove_all(dir);
  std::sort(us.begin(), us.end());
  auto at = [&us](double q) { return us.empty() ? 0.0 : us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))]; };
  state.counters["p50_us"] = at(0.5);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = us.empty() ? 0.0 : us.back();
  state.SetItemsProcessed(state.iterations());
}

void BM_SubmitPackage(benchmark::State& state) {
  const auto legs = static_cast<std::int64_t>(state.range(0));
  const fs::path dir = scratch("package");
  std::int64_t n = 0;
  {
    auto store = open_clearing_store((dir / "c.sqlite").string(), OpenMode::writer);
    for (auto _ : state) {
      std::vector<TradeInput> l;
      const std::string pid = "PKG" + std::to_string(n);
      for (std::int64_t i = 0; i < legs; ++i) l.push_back(make_trade(n++, pid));
      check(store->submit({Submission::package(std::move(l))}), state);
    }
  }
  fs::remove_all(dir);
  state.SetItemsProcessed(n);
}

BENCHMARK(BM_SubmitBatch)->Arg(1)->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SubmitLatency)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_SubmitPackage)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

MARGINET_BENCHMARK_MAIN();
