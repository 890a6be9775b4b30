// The batch greeks kernel and the portfolio aggregation (kernels/greeks.hpp) on every backend,
// against the plain host loop over models/pricing.hpp; sizes around warp boundaries and large
// enough for many blocks; the CPU's AVX2 path against its scalar path within the tolerance of
// docs/pricing.md; CPU and CUDA agree to 1e-12 relative (skipped without a GPU).

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "host/greeks_engine.hpp"
#include "kernels/cpu_simd.hpp"
#include "models/reference_data.hpp"
#include "tests/backends.hpp"

namespace marginet {
namespace {

using testing::near_relative;

GreeksBatch random_batch(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  GreeksBatch b;
  for (std::size_t i = 0; i < n; ++i) {
    const double pick = u(rng);
    const InstrumentKind kind = pick < 0.8   ? InstrumentKind::option
                                : pick < 0.9 ? InstrumentKind::future
                                : pick < 0.95 ? InstrumentKind::perpetual
                                              : InstrumentKind::spot;
    const double F = 1000 + 60000 * u(rng);
    const double T = i % 97 == 0 ? 0.0 : std::exp(std::log(1e-4) + u(rng) * std::log(5e4));
    const double sigma = i % 89 == 0 ? 0.0 : 0.01 + 3 * u(rng);
    b.push_back(kind, u(rng) < 0.5 ? OptionType::call : OptionType::put,
                u(rng) < 0.5 ? Settlement::linear : Settlement::inverse, F,
                F / std::exp(std::log(0.2) + u(rng) * std::log(25.0)), T, sigma, -0.02 + 0.22 * u(rng));
  }
  return b;
}

std::vector<std::vector<double>*> columns(GreeksTable& t) {
  return {&t.price, &t.price_coin, &t.delta, &t.delta_coin, &t.gamma, &t.vega,
          &t.theta, &t.rho,        &t.vanna, &t.volga,      &t.iv};
}

class GreeksKernel : public testing::BackendTest {};

/// Runs the CPU backend's scalar path while alive (the vector path is tested against it).
class ScalarPath {
 public:
  ScalarPath() : saved_(kernels::simd_level()) { kernels::set_simd_level(kernels::SimdLevel::scalar); }
  ~ScalarPath() { kernels::set_simd_level(saved_); }

 private:
  kernels::SimdLevel saved_;
};

TEST_P(GreeksKernel, MatchesTheHostReferenceAcrossSizes) {
  const ScalarPath scalar;
  for (std::size_t n : {0u, 1u, 31u, 32u, 33u, 63u, 64u, 65u, 5000u}) {
    const GreeksBatch batch = random_batch(n, static_cast<unsigned>(n) + 1);
    GreeksTable got = compute_greeks(backend(), batch);
    GreeksTable want = compute_greeks_reference(batch);
    ASSERT_EQ(got.size(), n);
    const auto g = columns(got), w = columns(want);
    for (std::size_t c = 0; c < g.size(); ++c)
      for (std::size_t i = 0; i < n; ++i) {
        if (std::isnan((*w[c])[i])) {
          EXPECT_TRUE(std::isnan((*g[c])[i])) << "column " << c << " row " << i;
          continue;
        }
        ASSERT_TRUE(std::isfinite((*g[c])[i])) << "column " << c << " row " << i;
        // The CPU backend's scalar path runs the same code as the reference: bitwise. The CUDA kernels are
        // built without multiply-add contraction (--fmad=false), but CUDA's exp, log and erfc
        // may differ from glibc's by an ulp: 1e-12 relative.
        if (backend() == Backend::cpu)
          ASSERT_EQ((*g[c])[i], (*w[c])[i]) << "column " << c << " row " << i << " n " << n;
        else
          ASSERT_TRUE(near_relative((*g[c])[i], (*w[c])[i], 1e-12, 1e-300)) << "column " << c << " row " << i;
      }
  }
}

TEST_P(GreeksKernel, ExampleBookEndToEnd) {
  const std::string dir = std::string(MARGINET_SOURCE_DIR) + "/examples/";
  const ReferenceData ref = load_reference_data(dir + "instruments.csv", dir + "market.csv", dir + "marks.csv");
  const GreeksTable g = compute_greeks(backend(), ref.instruments, ref.market);
  ASSERT_EQ(g.size(), ref.instruments.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    const Instrument& ins = ref.instruments[i];
    if (ins.kind != InstrumentKind::option) {
      EXPECT_EQ(g.delta[i], 1.0) << ins.id;
      EXPECT_TRUE(std::isnan(g.iv[i])) << ins.id;
      continue;
    }
    // A mark price comes back as the price (the implied vol reprices it).
    const Mark& mark = ref.market.mark(ins.id);
    const double F = ref.market.forward(ins.underlying, ins.expiry);
    if (!mark.has_iv()) {
      const double quote = ins.settlement == Settlement::inverse ? mark.mark_price * F : mark.mark_price;
      EXPECT_TRUE(near_relative(g.price[i], quote, 1e-12)) << ins.id;
    } else {
      EXPECT_EQ(g.iv[i], mark.mark_iv) << ins.id;
    }
    if (ins.settlement == Settlement::inverse) {
      EXPECT_DOUBLE_EQ(g.delta_coin[i], g.delta[i] - g.price[i] / F) << ins.id;
    }
  }
  // The 28JUN24 options take the forward of the marked 28JUN24 future.
  EXPECT_TRUE(ref.market.forward_from_future("BTC", ref.instruments.at("BTC-28JUN24").expiry));
}

TEST_P(GreeksKernel, PortfolioGreeksPerAccountAndUnderlying) {
  const std::string dir = std::string(MARGINET_SOURCE_DIR) + "/examples/";
  const ReferenceData ref = load_reference_data(dir + "instruments.csv", dir + "market.csv", dir + "marks.csv");
  const GreeksTable g = compute_greeks(backend(), ref.instruments, ref.market);
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<std::size_t> pick(0, ref.instruments.size() - 1);
  std::normal_distribution<double> qty(0, 10);
  std::vector<Position> positions;
  for (int p = 0; p < 3000; ++p)
    positions.push_back({"acct" + std::to_string(p % 37), pick(rng), qty(rng)});
  const PortfolioGreeks got = aggregate_portfolio_greeks(backend(), ref.instruments, g, positions);
  const PortfolioGreeks want = aggregate_portfolio_greeks_reference(ref.instruments, g, positions);
  ASSERT_EQ(got.accounts.size(), 37u);
  ASSERT_EQ(got.underlyings, (std::vector<std::string>{"BTC", "ETH"}));
  ASSERT_EQ(got.values.size(), want.values.size());
  for (std::size_t k = 0; k < got.values.size(); ++k)
    ASSERT_TRUE(near_relative(got.values[k], want.values[k], 1e-12, 1e-9)) << k;

  // A hand case: one account long 2 BTC-PERPETUAL and short 0.5 of the CME put (contract 0.1 BTC).
  const std::vector<Position> hand{{"a", ref.instruments.index_of("BTC-PERPETUAL"), 2.0},
                                   {"a", ref.instruments.index_of("CME-BTC-JUN24-68000-P"), -0.5},
                                   {"b", ref.instruments.index_of("ETH-PERPETUAL"), 1.0}};
  const PortfolioGreeks h = aggregate_portfolio_greeks(backend(), ref.instruments, g, hand);
  const std::size_t put = ref.instruments.index_of("CME-BTC-JUN24-68000-P");
  const double* a_btc = h.cell(0, 0);
  EXPECT_DOUBLE_EQ(a_btc[2], 2.0 - 0.05 * g.delta[put]);  // delta column
  EXPECT_DOUBLE_EQ(a_btc[5], -0.05 * g.vega[put]);        // vega column
  EXPECT_EQ(h.cell(0, 1)[2], 0.0);                        // account a has no ETH
  EXPECT_EQ(h.cell(1, 1)[2], 1.0);
}

TEST_P(GreeksKernel, EmptyPortfolio) {
  InstrumentTable none;
  const PortfolioGreeks p = aggregate_portfolio_greeks(backend(), none, GreeksTable{}, {});
  EXPECT_TRUE(p.values.empty());
}

MARGINET_INSTANTIATE_BACKENDS(GreeksKernel);

/// The natural scale of each column (docs/pricing.md): the floor of the cross-path tolerance is
/// 1e-15 of it, for figures that cancel to far below their inputs (a delta near 0, a vanna at
/// d2 ≈ 0). Columns in GreeksTable order, price .. volga.
std::vector<double> natural_scales(const GreeksBatch& b, std::size_t i) {
  const double F = b.forward[i], T = b.expiry_years[i], sigma = b.sigma[i];
  const double sqrtT = std::sqrt(T), s = sigma * sqrtT;
  const double d = s > 0 ? 1 + std::fabs(std::log(F / b.strike[i])) / s + s : 1;  // |d1|, |d2| bound
  const double vol = sigma > 0 ? sigma : 1;
  return {F, 1, 1, 1, s > 0 ? 1 / (F * s) : 1, F * sqrtT, F * (vol / (sqrtT > 0 ? sqrtT : 1) + std::fabs(b.rate[i])),
          (T + 1) * F, d / vol, F * sqrtT * d * d / vol};
}

TEST(GreeksSimd, TheAvx2PathMatchesTheScalarPathWithinTheTolerance) {
  if (kernels::simd_supported() != kernels::SimdLevel::avx2) GTEST_SKIP() << "this CPU does not run avx2";
  const kernels::SimdLevel saved = kernels::simd_level();
  for (std::size_t n : {0u, 1u, 3u, 4u, 5u, 7u, 8u, 9u, 4099u, 20000u}) {
    GreeksBatch batch = random_batch(n, static_cast<unsigned>(n) + 77);
    // Inputs valid_black_inputs refuses, each in some lane: both paths give NaN there.
    const double nan = std::nan(""), inf = HUGE_VAL;
    for (std::size_t i = 2; i < n; i += 37) {
      switch ((i / 37) % 8) {
        case 0: batch.forward[i] = -1.0; break;
        case 1: batch.strike[i] = 0.0; break;
        case 2: batch.expiry_years[i] = -0.1; break;
        case 3: batch.sigma[i] = nan; break;
        case 4: batch.forward[i] = inf; break;
        case 5: batch.strike[i] = inf; break;
        case 6: batch.expiry_years[i] = inf; break;
        default: batch.sigma[i] = -0.2; break;
      }
    }
    kernels::set_simd_level(kernels::SimdLevel::scalar);
    GreeksTable want = compute_greeks(Backend::cpu, batch);
    kernels::set_simd_level(kernels::SimdLevel::avx2);
    GreeksTable got = compute_greeks(Backend::cpu, batch);
    kernels::set_simd_level(saved);
    const auto g = columns(got), w = columns(want);
    std::size_t checked = 0, exact = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::vector<double> scale = natural_scales(batch, i);
      for (std::size_t c = 0; c < scale.size(); ++c) {
        const double a = (*g[c])[i], b = (*w[c])[i];
        if (std::isnan(b)) {
          EXPECT_TRUE(std::isnan(a)) << "column " << c << " row " << i;
          continue;
        }
        ++checked;
        exact += a == b;
        ASSERT_TRUE(testing::within_backend_tolerance(a, b, scale[c]))
            << "column " << c << " row " << i << " (F " << batch.forward[i] << ", K " << batch.strike[i] << ", T "
            << batch.expiry_years[i] << ", sigma " << batch.sigma[i] << ")";
      }
    }
    if (n >= 4099) {
      EXPECT_LT(exact, checked) << "the vector path ran (libmvec rounds differently from libm)";
      EXPECT_GT(checked, n * 9);
    }
  }
}

class GreeksCrossBackend : public testing::CrossBackendTest {};

TEST_F(GreeksCrossBackend, CpuAndCudaAgreeWithinTheTolerance) {
  const GreeksBatch batch = random_batch(100000, 99);
  GreeksTable cpu = compute_greeks(Backend::cpu, batch);
  GreeksTable gpu = compute_greeks(Backend::cuda, batch);
  const auto c = columns(cpu), g = columns(gpu);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::vector<double> scale = natural_scales(batch, i);
    for (std::size_t k = 0; k < scale.size(); ++k)  // price .. volga (the iv column is an input)
      ASSERT_TRUE(testing::within_backend_tolerance((*c[k])[i], (*g[k])[i], scale[k])) << "column " << k << " row " << i;
  }
}

}  // namespace
}  // namespace marginet
