// What-if latency in process (issue 4): a 200-position account, one proposed trade, margin
// before/after from the cached P&L rows (no revaluation). p50 / p99 over the iterations.
//   bench_whatif [--device=cpu|cuda]

#include <algorithm>
#include <chrono>
#include <vector>

#include "bench/bench_context.hpp"
#include "host/book_generator.hpp"
#include "host/margin_engine.hpp"

namespace {

using namespace marginet;

void BM_WhatIf(benchmark::State& state, const char* model) {
  BookSpec spec;
  spec.underlyings = 2;
  spec.instruments = 2000;
  spec.accounts = 1;
  spec.positions = 200;
  spec.seed = 3;
  const GeneratedBook book = generate_book(spec);
  Methodology m = load_methodology(model);
  if (m.kind == MethodologyKind::hvar) {
    write_returns_history("/tmp/marginet_whatif_returns.csv", book.underlyings, 1251, spec.valuation_time, 5, false);
    m.hvar.returns = "/tmp/marginet_whatif_returns.csv";
  }
  MarginEngine engine(book.instruments, book.market, m, bench::backend());
  std::vector<std::size_t> cover;
  for (std::size_t i = 0; i < book.instruments.size(); i += 97) cover.push_back(i);
  engine.run(book.positions, cover);
  const std::string account = book.positions.front().account;
  std::vector<double> micros;
  std::size_t k = 0;
  for (auto _ : state) {
    const std::vector<Position> trade{{account, cover[k++ % cover.size()], 1.5}};
    const auto t0 = std::chrono::steady_clock::now();
    const WhatIfResult w = engine.whatif(account, trade);
    micros.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(w.im_change);
  }
  std::sort(micros.begin(), micros.end());
  state.counters["scenarios"] = static_cast<double>(engine.scenarios().count);
  state.counters["p50_us"] = micros[micros.size() / 2];
  state.counters["p99_us"] = micros[std::min(micros.size() - 1, micros.size() * 99 / 100)];
}

BENCHMARK_CAPTURE(BM_WhatIf, span16, "span16")->Iterations(2000)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_WhatIf, deribit_pm, "deribit-pm")->Iterations(2000)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_WhatIf, hvar_1250, "hvar")->Iterations(2000)->Unit(benchmark::kMicrosecond);

}  // namespace

MARGINET_BENCHMARK_MAIN();
