// The CPU backend's run-time SIMD dispatch of the risk-array stage: every level against the
// scalar element (models/revaluation.hpp's scenario_pnl) cell by cell, over a domain that
// reaches the fallbacks (expiry inside the horizon, deep out of the money, invalid inputs),
// and the margin engine under each level against the reference path.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "host/book_generator.hpp"
#include "host/margin_engine.hpp"
#include "kernels/cpu_simd.hpp"
#include "kernels/risk_arrays.hpp"
#include "kernels/simd/risk_arrays_simd.hpp"
#include "tests/backends.hpp"

namespace marginet {
namespace {

using kernels::SimdLevel;

/// Restores the level the process started with.
class SimdLevelGuard {
 public:
  SimdLevelGuard() : saved_(kernels::simd_level()) {}
  ~SimdLevelGuard() { kernels::set_simd_level(saved_); }

 private:
  SimdLevel saved_;
};

void skip_unless_supported(SimdLevel level) {
  if (static_cast<int>(kernels::simd_supported()) < static_cast<int>(level))
    GTEST_SKIP() << "this CPU does not run " << kernels::simd_name(level);
}

InstrumentState option(OptionType type, double forward, double strike, double years, double vol) {
  InstrumentState st;
  st.kind = InstrumentKind::option;
  st.put_call = type;
  st.strike = strike;
  st.years = years;
  st.contract_size = 1;
  st.forward = forward;
  st.vol = vol;
  st.rate = 0.03;
  st.base_value = value_quote(st, forward, vol, years);
  return st;
}

struct Domain {
  std::vector<InstrumentState> instruments;
  std::vector<ScenarioShock> shocks;  // scenarios × groups
  std::vector<VolTermParams> vol_terms;
  std::size_t groups = 2;
  std::size_t scenarios = 0;
};

/// Options over moneyness 0.2–5, T from minutes to 3 years, σ 2 %–300 %; futures; a few
/// invalid rows. Scenarios: moves −95 %…+500 %, every vol shock kind, 0–30 days elapsed.
Domain wide_domain(std::uint64_t seed) {
  Domain d;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int i = 0; i < 600; ++i) {
    const double forward = i % 2 ? 65000.0 : 3400.0;
    const double strike = forward * std::exp(std::log(0.2) + u(rng) * std::log(25.0));
    const double years = std::exp(std::log(1e-5) + u(rng) * std::log(3.0 / 1e-5));
    const double vol = 0.02 + u(rng) * 2.98;
    InstrumentState st = option(i % 3 ? OptionType::call : OptionType::put, forward, strike, years, vol);
    st.group = i % 2;
    st.contract_size = i % 5 ? 1.0 : 0.1;
    d.instruments.push_back(st);
  }
  InstrumentState future;
  future.kind = InstrumentKind::future;
  future.forward = 65000;
  future.years = 0.2;
  future.group = 1;
  d.instruments.push_back(future);
  InstrumentState bad = option(OptionType::call, 3400, 3000, 0.1, 0.5);
  bad.strike = -1;  // invalid: NaN on every path
  d.instruments.push_back(bad);
  InstrumentState no_vol = option(OptionType::put, 3400, 3600, 0.1, 0.0);  // σ = 0: intrinsic
  d.instruments.push_back(no_vol);

  d.vol_terms.assign(d.groups, VolTermParams{0.5, 0.25, 0.3, 0.13, 0.5});
  d.scenarios = 203;  // not a multiple of 4: a short last block
  const VolShock kinds[] = {VolShock::none, VolShock::absolute, VolShock::relative, VolShock::deribit_up,
                            VolShock::deribit_down};
  for (std::size_t s = 0; s < d.scenarios; ++s)
    for (std::size_t g = 0; g < d.groups; ++g) {
      ScenarioShock sh;
      sh.price_move = -0.95 + u(rng) * (s % 7 ? 1.9 : 5.95);
      // Scenarios below 120 share a kind in each block of four (the vector path's vol shocks,
      // when the tile starts at a multiple of four); the rest mix the kinds within a block.
      sh.vol_kind = s < 120 ? kinds[(s / 4 + g) % 5] : kinds[(s + g) % 5];
      sh.vol_shift = sh.vol_kind == VolShock::absolute ? u(rng) - 0.5 : u(rng) * 1.2 - 0.6;
      if (s == 9 || s == 14) sh.vol_shift = std::nan("");  // a NaN shift: σ' is the floor
      sh.days = s % 3 ? 2.0 : std::floor(u(rng) * 30.0);
      d.shocks.push_back(sh);
    }
  return d;
}

std::vector<double> risk_arrays_at(SimdLevel level, const Domain& d, std::size_t s0, std::size_t s1,
                                   PnlUnits units) {
  kernels::set_simd_level(level);
  std::vector<double> risk(d.instruments.size() * (s1 - s0), -12345.0);
  const kernels::RiskArrayArgs args{d.instruments.data(), d.instruments.size(), d.shocks.data(), d.groups,
                                    d.vol_terms.data(), s0, s1, units, risk.data()};
  kernels::cpu::risk_arrays(args);
  return risk;
}

class RiskArraysSimd : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override { skip_unless_supported(GetParam()); }
  SimdLevelGuard guard_;
};

TEST_P(RiskArraysSimd, EveryCellMatchesTheScalarElement) {
  const Domain d = wide_domain(42);
  for (const PnlUnits units : {PnlUnits::quote, PnlUnits::coin}) {
    for (const auto& [s0, s1] : {std::pair<std::size_t, std::size_t>{0, d.scenarios}, {5, 66}, {17, 18}}) {
      kernels::simd::reset_simd_cell_counts();
      const std::vector<double> risk = risk_arrays_at(GetParam(), d, s0, s1, units);
      const std::size_t width = s1 - s0;
      std::size_t checked = 0, exact = 0;
      for (std::size_t i = 0; i < d.instruments.size(); ++i) {
        const InstrumentState& st = d.instruments[i];
        const double base = units == PnlUnits::coin ? st.base_value / st.forward : st.base_value;
        for (std::size_t s = s0; s < s1; ++s) {
          const double want = scenario_pnl(st, d.shocks[s * d.groups + static_cast<std::size_t>(st.group)],
                                           d.vol_terms[static_cast<std::size_t>(st.group)], units);
          const double got = risk[i * width + (s - s0)];
          if (std::isnan(want)) {
            EXPECT_TRUE(std::isnan(got)) << "instrument " << i << " scenario " << s;
            continue;
          }
          ++checked;
          if (got == want) ++exact;
          if (GetParam() == SimdLevel::scalar) {
            ASSERT_EQ(got, want) << "instrument " << i << " scenario " << s;
          } else {
            // The shocked value and the base value are each good to a few ulp; their difference
            // to a few ulp of the larger. Far in the tails (values below 1e-30 of the notional)
            // libmvec's exp and erfc keep fewer digits; such values are nothing in a margin.
            const double scale = std::fabs(want) + std::fabs(base);
            const double notional = st.contract_size * st.forward;
            ASSERT_LE(std::fabs(got - want), 2e-14 * scale + 1e-30 * notional)
                << "instrument " << i << " scenario " << s << ": " << got << " vs " << want;
          }
        }
      }
      EXPECT_GT(checked, d.instruments.size() * width / 2);
      if (GetParam() == SimdLevel::avx2 && width >= 4) {
        const kernels::simd::SimdCellCounts counts = kernels::simd::simd_cell_counts();
        EXPECT_EQ(counts.vector_cells + counts.scalar_cells, d.instruments.size() * width);
        // This domain is built to reach the fallbacks (on the EOD book the vector path takes
        // most cells: bench_margin_eod_quantlib's vector_cell_share); still a good part here.
        EXPECT_GT(counts.vector_cells, (counts.vector_cells + counts.scalar_cells) / 4)
            << "vector " << counts.vector_cells << " scalar " << counts.scalar_cells;
        EXPECT_LT(exact, checked);  // the vector path really ran (libmvec rounds differently)
        if (width > 50) {
          EXPECT_GT(counts.cancelling_cells, 0u);  // and its cancellation-free branch
        }
      }
    }
  }
}

TEST_P(RiskArraysSimd, TilesOfAnyWidthGiveTheSameBits) {
  const Domain d = wide_domain(7);
  const std::vector<double> whole = risk_arrays_at(GetParam(), d, 0, d.scenarios, PnlUnits::quote);
  for (const std::size_t width : {1u, 3u, 5u, 6u, 50u}) {
    SCOPED_TRACE(width);
    for (std::size_t s0 = 0; s0 < d.scenarios; s0 += width) {
      const std::size_t s1 = std::min(d.scenarios, s0 + width);
      const std::vector<double> tile = risk_arrays_at(GetParam(), d, s0, s1, PnlUnits::quote);
      for (std::size_t i = 0; i < d.instruments.size(); ++i)
        for (std::size_t s = s0; s < s1; ++s) {
          const double a = whole[i * d.scenarios + s], b = tile[i * (s1 - s0) + (s - s0)];
          ASSERT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << "instrument " << i << " scenario " << s;
        }
    }
  }
}

TEST_P(RiskArraysSimd, EmptyInputsWriteNothing) {
  Domain d = wide_domain(1);
  const std::vector<double> none = risk_arrays_at(GetParam(), d, 7, 7, PnlUnits::quote);
  EXPECT_TRUE(none.empty());
  d.instruments.clear();
  EXPECT_TRUE(risk_arrays_at(GetParam(), d, 0, d.scenarios, PnlUnits::quote).empty());
}

TEST_P(RiskArraysSimd, HvarAndDeribitMarginMatchTheReference) {
  kernels::set_simd_level(GetParam());
  BookSpec spec;
  spec.underlyings = 3;
  spec.instruments = 300;
  spec.accounts = 37;
  spec.positions = 2000;
  spec.seed = 77;
  const GeneratedBook book = generate_book(spec);
  Methodology hvar = load_methodology("hvar");
  // One file per level: ctest runs the instances in parallel processes.
  hvar.hvar.returns = ::testing::TempDir() + "simd_returns_" + kernels::simd_name(GetParam()) + ".csv";
  write_returns_history(hvar.hvar.returns, book.underlyings, 301, 1719561600.0, 5, false);
  for (const Methodology& m : {hvar, load_methodology("deribit-pm"), load_methodology("span16")}) {
    SCOPED_TRACE(m.name);
    MarginEngine engine(book.instruments, book.market, m, Backend::cpu);
    const MarginRun got = engine.run(book.positions);
    const MarginRun want = reference_margin(book.instruments, book.market, m, book.positions);
    ASSERT_EQ(got.accounts.size(), want.accounts.size());
    for (std::size_t a = 0; a < got.accounts.size(); ++a) {
      EXPECT_TRUE(testing::near_relative(got.accounts[a].im, want.accounts[a].im, 1e-12, 1e-9))
          << got.accounts[a].account;
      EXPECT_EQ(got.accounts[a].worst_scenario, want.accounts[a].worst_scenario) << got.accounts[a].account;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, RiskArraysSimd, ::testing::Values(SimdLevel::scalar, SimdLevel::avx2),
                         [](const ::testing::TestParamInfo<SimdLevel>& info) {
                           return std::string(kernels::simd_name(info.param));
                         });

TEST(SimdDispatch, ALevelTheCpuLacksFallsBack) {
  SimdLevelGuard guard;
  EXPECT_EQ(kernels::set_simd_level(SimdLevel::scalar), SimdLevel::scalar);
  EXPECT_EQ(kernels::simd_level(), SimdLevel::scalar);
  const SimdLevel used = kernels::set_simd_level(SimdLevel::avx2);
  EXPECT_EQ(used, kernels::simd_supported());
  EXPECT_EQ(kernels::simd_level(), used);
}

}  // namespace
}  // namespace marginet
