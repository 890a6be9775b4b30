// Default-fund sizing (docs/default-management.md) on the standard end-of-day book: 1,000,000
// positions, 10,000 accounts as members in 500 groups of 20, 1,000 seeded default scenarios.
//
//   BM_DefaultFundSizing  the whole sizing: span16 IM of every account, the stress P&L of every
//                         member in every scenario on the kernels, art. 42(3), Cover-2,
//                         contributions, liquidity Cover-2
//   BM_StressPnl          the stress stage alone (risk arrays + portfolio P&L, 1,000 scenarios)
//   BM_MarginEodSpan16    the baseline in the same run: the span16 end-of-day margin run
// MARGINET_EOD_POSITIONS=N scales the book; MARGINET_DF_SCENARIOS=N the scenarios.

#include <cstdlib>
#include <random>
#include <set>
#include <sstream>

#include "bench/bench_context.hpp"
#include "host/default_stress.hpp"
#include "host/margin_engine.hpp"
#include "service/margin/default_management.hpp"

namespace {

using namespace marginet;

std::size_t scenario_count() {
  const char* env = std::getenv("MARGINET_DF_SCENARIOS");
  return env ? static_cast<std::size_t>(std::strtoull(env, nullptr, 10)) : 1000;
}

struct Setup {
  GeneratedBook book;
  DefaultFundConfig fund;
  Methodology span = load_methodology("span16");
  std::map<std::string, std::string> member_of;  // none: each account is its own member
};

/// 1,000 scenarios: a common crypto factor and an idiosyncratic move per underlying, vol shocks
/// that rise as prices fall, seeded.
const Setup& setup() {
  static const Setup s = [] {
    Setup x;
    x.book = generate_book(bench::eod_book_spec());
    std::mt19937_64 rng(42);
    std::normal_distribution<double> n(0.0, 1.0);
    std::ostringstream json;
    json << R"({"scenarios": [)";
    const std::size_t S = scenario_count();
    for (std::size_t s = 0; s < S; ++s) {
      const double market = 0.15 * n(rng);
      json << (s ? "," : "") << R"({"name": "s)" << s << R"(", "kind": "hypothetical", "shocks": {)";
      for (std::size_t u = 0; u < x.book.underlyings.size(); ++u) {
        const double move = std::max(-0.9, market + 0.05 * n(rng));
        json << (u ? "," : "") << '"' << x.book.underlyings[u] << R"(": {"move": )" << move
             << R"(, "vol_shift": )" << std::max(-0.5, -1.5 * move) << R"(, "vol_kind": "relative"})";
      }
      json << "}}";
    }
    json << "]}";
    x.fund = parse_default_fund_config(json.str(), "bench");
    // Accounts into 500 groups of (about) 20 members.
    std::set<std::string> accounts;
    for (const Position& p : x.book.positions) accounts.insert(p.account);
    std::size_t i = 0;
    for (const std::string& a : accounts) x.fund.group_of[a] = "G" + std::to_string(i++ % 500);
    return x;
  }();
  return s;
}

void BM_DefaultFundSizing(benchmark::State& state) {
  const Setup& s = setup();
  FundSizingRun run;
  for (auto _ : state) {
    run = size_fund(s.book.instruments, s.book.market, s.span, s.fund, s.book.positions, s.member_of, bench::backend());
    benchmark::DoNotOptimize(run.sizing.fund_minor);
  }
  state.counters["positions"] = static_cast<double>(s.book.positions.size());
  state.counters["members"] = static_cast<double>(run.sizing.members.size());
  state.counters["groups"] = static_cast<double>(run.sizing.groups.size());
  state.counters["scenarios"] = static_cast<double>(run.sizing.scenarios.size());
  state.counters["stress_s"] = run.stress_seconds;
  state.counters["margin_s"] = run.margin_seconds;
  state.counters["fund_usd"] = static_cast<double>(run.sizing.fund_minor) / 100.0;
}

void BM_StressPnl(benchmark::State& state) {
  const Setup& s = setup();
  for (auto _ : state) {
    const MemberStressRun r = run_member_stress(s.book.instruments, s.book.market, s.fund, s.book.positions, {}, bench::backend());
    benchmark::DoNotOptimize(r.members.data());
  }
  state.counters["scenarios"] = static_cast<double>(s.fund.scenarios.size());
  state.counters["positions"] = static_cast<double>(s.book.positions.size());
}

void BM_MarginEodSpan16(benchmark::State& state) {
  const Setup& s = setup();
  for (auto _ : state) {
    MarginEngine engine(s.book.instruments, s.book.market, s.span, bench::backend());
    const MarginRun r = engine.run(s.book.positions);
    benchmark::DoNotOptimize(r.accounts.data());
  }
}

BENCHMARK(BM_DefaultFundSizing)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();
BENCHMARK(BM_StressPnl)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();
BENCHMARK(BM_MarginEodSpan16)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();

}  // namespace

MARGINET_BENCHMARK_MAIN();
