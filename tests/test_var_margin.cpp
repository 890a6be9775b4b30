// VaR-based margin: Philox against Random123's known answers, the k-largest rule by hand,
// EWMA filtering by hand, overlapping returns, Cholesky; hvar and mc-es through the engine
// against the reference path on every backend; the same seed gives the same margins.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>

#include "host/book_generator.hpp"
#include "host/margin_engine.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/philox.hpp"
#include "models/tail_risk.hpp"
#include "models/var_scenarios.hpp"
#include "tests/backends.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

TEST(Philox, Random123KnownAnswers) {
  const Philox4x32 a = philox4x32_10({{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(a.v[0], 0x6627e8d5u);
  EXPECT_EQ(a.v[1], 0xe169c58du);
  EXPECT_EQ(a.v[2], 0xbc57ac4cu);
  EXPECT_EQ(a.v[3], 0x9b00dbd8u);
  const Philox4x32 b = philox4x32_10({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(b.v[0], 0x408f276du);
  EXPECT_EQ(b.v[1], 0x41c83b0eu);
  EXPECT_EQ(b.v[2], 0xa20bc7c6u);
  EXPECT_EQ(b.v[3], 0x6d5451fdu);
  const Philox4x32 c = philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(c.v[0], 0xd16cfe09u);
  EXPECT_EQ(c.v[1], 0x94fdccebu);
  EXPECT_EQ(c.v[2], 0x5001e420u);
  EXPECT_EQ(c.v[3], 0x24126ea1u);
}

TEST(Philox, NormalsHaveUnitMomentsAndAreReproducible) {
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = philox_normal(7, static_cast<std::uint32_t>(i / 4), static_cast<std::uint32_t>(i % 4));
    sum += z;
    sq += z * z;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0, 0.01);
  EXPECT_EQ(philox_normal(7, 123, 1), philox_normal(7, 123, 1));
  EXPECT_NE(philox_normal(7, 123, 1), philox_normal(8, 123, 1));
}

TEST(TailRisk, HundredScenariosAtNinetyFivePercent) {
  // Losses 1..100 (P&L −1..−100) in a shuffled order: k = ceil(0.05·100) = 5,
  // VaR = 5th largest = 96, ES = mean(96..100) = 98.
  std::vector<double> pnl(100);
  for (int i = 0; i < 100; ++i) pnl[static_cast<std::size_t>(i)] = -(i + 1.0);
  std::shuffle(pnl.begin(), pnl.end(), std::mt19937(3));
  const std::size_t k = tail_count(0.95, 100);
  ASSERT_EQ(k, 5u);
  std::vector<double> heap(k);
  const TailRisk t = tail_risk(pnl.data(), pnl.size(), k, heap.data());
  EXPECT_DOUBLE_EQ(t.var, 96.0);
  EXPECT_DOUBLE_EQ(t.es, 98.0);
  EXPECT_DOUBLE_EQ(t.worst, 100.0);
  EXPECT_EQ(pnl[static_cast<std::size_t>(t.worst_scenario)], -100.0);
  EXPECT_EQ(tail_count(0.99, 100), 1u);
  EXPECT_EQ(tail_count(0.99, 1250), 13u);
  EXPECT_EQ(tail_count(0.99, 10000), 100u);
}

TEST(TailRisk, OrderKeysSortAsTheDoublesAndRoundTrip) {
  const std::vector<double> xs = {-1e300, -3.5, -1.0, -1e-300, -0.0, 0.0, 1e-300, 2.0, 7.25, 1e300};
  for (std::size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(key_value(order_key(xs[i])), xs[i]);
    EXPECT_EQ(std::signbit(key_value(order_key(xs[i]))), std::signbit(xs[i]));
    if (i > 0) {
      EXPECT_LT(order_key(xs[i - 1]), order_key(xs[i])) << xs[i - 1] << " vs " << xs[i];
    }
  }
}

// The GPU's radix select (tail_risk_by_select, run by a warp per row on CUDA) against the
// CPU's heap: the same worst loss and VaR, ES to the cross-backend tolerance; with ties, equal
// losses across the k-th place, a row shorter than k, negative and positive losses.
TEST(TailRisk, TheRadixSelectTakesTheSameTailAsTheHeap) {
  std::mt19937_64 rng(11);
  std::student_t_distribution<double> fat(3.0);
  std::uniform_int_distribution<int> small(-4, 4);
  int checked = 0;
  for (std::size_t n : {1, 2, 31, 32, 33, 100, 1250, 4099}) {
    for (int ties = 0; ties < 2; ++ties) {
      std::vector<double> pnl(n);
      for (auto& x : pnl) x = ties ? 1000.0 * small(rng) : 1e4 * fat(rng);
      for (std::size_t k : {std::size_t{1}, std::size_t{2}, std::size_t{13}, std::size_t{100}, n}) {
        std::vector<double> heap(std::max<std::size_t>(k, 1));
        const TailRisk h = tail_risk(pnl.data(), n, std::min(k, n), heap.data());
        const TailRisk r = tail_risk_by_select(pnl.data(), n, k);
        EXPECT_EQ(r.var, h.var) << "n " << n << " k " << k << " ties " << ties;
        EXPECT_EQ(r.worst, h.worst);
        EXPECT_EQ(r.worst_scenario, h.worst_scenario);
        EXPECT_NEAR(r.es, h.es, 1e-12 * std::fabs(h.es) + 1e-9) << "n " << n << " k " << k;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 8 * 2 * 5);
  const TailRisk none = tail_risk_by_select(nullptr, 0, 5);
  EXPECT_EQ(none.worst_scenario, -1);
}

TEST(TailRisk, EsIsAtLeastVarAndGrowsWithConfidence) {
  std::mt19937_64 rng(5);
  std::student_t_distribution<double> fat(3.0);
  std::vector<double> pnl(1250);
  for (auto& x : pnl) x = fat(rng);
  double last_var = -1e300, last_es = -1e300;
  for (double alpha : {0.9, 0.95, 0.975, 0.99, 0.995}) {
    const std::size_t k = tail_count(alpha, pnl.size());
    std::vector<double> heap(k);
    const TailRisk t = tail_risk(pnl.data(), pnl.size(), k, heap.data());
    EXPECT_GE(t.es, t.var);
    EXPECT_GE(t.var, last_var);
    EXPECT_GE(t.es, last_es);
    last_var = t.var;
    last_es = t.es;
    // Against a full sort.
    std::vector<double> losses(pnl.size());
    for (std::size_t i = 0; i < pnl.size(); ++i) losses[i] = -pnl[i];
    std::sort(losses.rbegin(), losses.rend());
    double sum = 0;
    for (std::size_t i = 0; i < k; ++i) sum += losses[i];
    EXPECT_DOUBLE_EQ(t.var, losses[k - 1]);
    EXPECT_NEAR(t.es, sum / static_cast<double>(k), 1e-12 * std::fabs(sum));
  }
}

TEST(Ewma, MatchesAHandComputation) {
  // λ = 0.9, returns 0.01, −0.02, 0.03: σ²_0 = mean(r²) = (1e-4 + 4e-4 + 9e-4)/3,
  // σ²_1 = 0.9σ²_0 + 0.1·1e-4, σ²_2 = 0.9σ²_1 + 0.1·4e-4, now = 0.9σ²_2 + 0.1·9e-4.
  const std::vector<double> r{0.01, -0.02, 0.03};
  const double v0 = (1e-4 + 4e-4 + 9e-4) / 3, v1 = 0.9 * v0 + 0.1 * 1e-4, v2 = 0.9 * v1 + 0.1 * 4e-4;
  const double now = std::sqrt(0.9 * v2 + 0.1 * 9e-4);
  const std::vector<double> f = ewma_filter(r, 0.9);
  EXPECT_NEAR(f[0], 0.01 * now / std::sqrt(v0), 1e-16);
  EXPECT_NEAR(f[1], -0.02 * now / std::sqrt(v1), 1e-16);
  EXPECT_NEAR(f[2], 0.03 * now / std::sqrt(v2), 1e-16);
  EXPECT_EQ(ewma_filter(r, 0.0), r);  // λ = 0: no filtering
}

TEST(OverlappingReturns, CompoundOverTheHoldingPeriod) {
  const auto h = overlapping_returns({0.1, -0.1, 0.2, 0.0}, 2);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_NEAR(h[0], 1.1 * 0.9 - 1, 1e-15);
  EXPECT_NEAR(h[1], 0.9 * 1.2 - 1, 1e-15);
  EXPECT_NEAR(h[2], 0.2, 1e-15);
  EXPECT_TRUE(overlapping_returns({0.1}, 2).empty());
}

TEST(Cholesky, FactorsAndRejectsNonPositiveDefinite) {
  const std::vector<double> a{4, 2, 2, 3};
  const auto l = cholesky(a, 2, {"A", "B"});
  EXPECT_DOUBLE_EQ(l[0], 2.0);
  EXPECT_DOUBLE_EQ(l[2], 1.0);
  EXPECT_DOUBLE_EQ(l[3], std::sqrt(2.0));
  // Three assets pairwise correlated −0.9: not positive definite.
  const std::vector<double> bad{1, -0.9, -0.9, -0.9, 1, -0.9, -0.9, -0.9, 1};
  EXPECT_THROW(cholesky(bad, 3, {"A", "B", "C"}), input_error);
}

// --- through the engine -------------------------------------------------------------------

std::string write_returns(const std::vector<std::string>& underlyings, int days, unsigned seed, const char* name,
                          double scale = 1.0) {
  const std::string path = marginet::testing::scratch_dir() + "/" + name;
  std::ofstream f(path);
  f << "date,underlying,return,vol_return\n";
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n;
  for (int d = 0; d < days; ++d) {
    const double market = n(rng);
    for (const auto& u : underlyings)
      f << format_iso8601_utc(1.6e9 + d * 86400.0).substr(0, 10) << "," << u << ","
        << scale * 0.03 * (0.7 * market + 0.7 * n(rng)) << "," << 0.02 * n(rng) << "\n";
  }
  return path;
}

GeneratedBook small_book() {
  BookSpec spec;
  spec.underlyings = 3;
  spec.instruments = 150;
  spec.accounts = 25;
  spec.positions = 600;
  spec.seed = 17;
  return generate_book(spec);
}

class VarMargin : public testing::BackendTest {};

TEST_P(VarMargin, HvarMatchesTheReference) {
  const GeneratedBook book = small_book();
  Methodology m = load_methodology("hvar");
  m.hvar.returns = write_returns(book.underlyings, 260, 1, "returns.csv");
  m.hvar.stress_returns = write_returns(book.underlyings, 60, 2, "stress.csv", 1.3);  // a rougher period
  MarginEngine engine(book.instruments, book.market, m, backend());
  const MarginRun got = engine.run(book.positions);
  const MarginRun want = reference_margin(book.instruments, book.market, m, book.positions);
  ASSERT_EQ(got.accounts.size(), want.accounts.size());
  int floor_binds = 0, base_binds = 0;
  EXPECT_EQ(engine.scenarios().count, 259u + 59u);
  EXPECT_EQ(engine.scenarios().stress_offset, 259u);
  for (std::size_t a = 0; a < got.accounts.size(); ++a) {
    const AccountMargin& g = got.accounts[a];
    EXPECT_TRUE(testing::near_relative(g.im, want.accounts[a].im, 1e-12, 1e-9)) << g.account;
    EXPECT_TRUE(testing::near_relative(g.es, want.accounts[a].es, 1e-12, 1e-9)) << g.account;
    EXPECT_GE(g.es, g.var);
    EXPECT_DOUBLE_EQ(g.im, std::max(0.0, std::max(g.es, g.stressed_es)));
    // The worst scenario is the one behind IM: in the stressed period when its floor binds.
    EXPECT_EQ(g.worst_scenario >= 259, g.stressed_es > g.es) << g.account;
    (g.stressed_es > g.es ? floor_binds : base_binds) += 1;
  }
  std::printf("stressed floor binds for %d of %d accounts\n", floor_binds, floor_binds + base_binds);
  EXPECT_GT(floor_binds, 0);  // the case is exercised both ways
  EXPECT_GT(base_binds, 0);
}

TEST_P(VarMargin, McEsMatchesTheReferenceAndIsReproducible) {
  const GeneratedBook book = small_book();
  Methodology m = load_methodology("mc-es");
  m.mc.paths = 2000;
  m.mc.seed = 99;
  MarginEngine engine(book.instruments, book.market, m, backend());
  const MarginRun got = engine.run(book.positions);
  const MarginRun again = engine.run(book.positions);
  const MarginRun want = reference_margin(book.instruments, book.market, m, book.positions);
  ASSERT_EQ(got.accounts.size(), want.accounts.size());
  double total = 0;
  for (std::size_t a = 0; a < got.accounts.size(); ++a) {
    EXPECT_TRUE(testing::near_relative(got.accounts[a].im, want.accounts[a].im, 1e-12, 1e-9));
    EXPECT_EQ(got.accounts[a].im, again.accounts[a].im);
    total += got.accounts[a].im;
  }
  EXPECT_GT(total, 0.0);
  // Another seed draws other paths.
  m.mc.seed = 100;
  MarginEngine other(book.instruments, book.market, m, backend());
  EXPECT_NE(other.run(book.positions).accounts[0].im, got.accounts[0].im);
}

TEST_P(VarMargin, WhatIfOnHvar) {
  const GeneratedBook book = small_book();
  Methodology m = load_methodology("hvar");
  m.hvar.returns = write_returns(book.underlyings, 120, 4, "returns_w.csv");
  MarginEngine engine(book.instruments, book.market, m, backend());
  const MarginRun base = engine.run(book.positions);
  const std::string acc = base.accounts[2].account;
  const std::vector<Position> trades{{acc, 5, 3.0}};
  const WhatIfResult w = engine.whatif(acc, trades);
  std::vector<Position> with = book.positions;
  with.push_back(trades[0]);
  MarginEngine fresh(book.instruments, book.market, m, backend());
  const MarginRun rerun = fresh.run(with);
  const auto a = std::find_if(rerun.accounts.begin(), rerun.accounts.end(),
                              [&acc](const AccountMargin& r) { return r.account == acc; });
  ASSERT_NE(a, rerun.accounts.end()) << acc << " missing from the re-run";
  EXPECT_TRUE(testing::near_relative(w.after.im, a->im, 1e-12, 1e-9));
}

/// An account's figures never depend on the rest of the book: with every methodology, each
/// account margined alone equals the same account margined in the whole book, for a book whose
/// accounts hold disjoint underlyings (each account on one underlying) — and a what-if that
/// brings an account a new underlying equals a re-run.
TEST_P(VarMargin, AnAccountsMarginDoesNotDependOnOtherAccounts) {
  const GeneratedBook book = small_book();
  ASSERT_GE(book.underlyings.size(), 3u);
  // Account of each underlying: every position of that underlying.
  std::vector<Position> disjoint;
  for (const Position& p : book.positions)
    disjoint.push_back({"ACC-" + book.instruments[p.instrument].underlying, p.instrument, p.quantity});
  Methodology hvar = load_methodology("hvar");
  hvar.hvar.returns = write_returns(book.underlyings, 120, 5, "returns_d.csv");
  Methodology mc = load_methodology("mc-es");
  mc.mc.paths = 1500;
  std::vector<std::size_t> all(book.instruments.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  for (const Methodology& m : {load_methodology("span16"), load_methodology("deribit-pm"), hvar, mc}) {
    SCOPED_TRACE(m.name);
    MarginEngine whole(book.instruments, book.market, m, backend());
    const MarginRun together = whole.run(disjoint);
    ASSERT_EQ(together.accounts.size(), book.underlyings.size());
    for (const AccountMargin& a : together.accounts) {
      std::vector<Position> own;
      for (const Position& p : disjoint)
        if (p.account == a.account) own.push_back(p);
      MarginEngine alone(book.instruments, book.market, m, backend());
      const MarginRun solo = alone.run(own);  // a run over this account's one underlying
      ASSERT_EQ(solo.accounts.size(), 1u);
      EXPECT_EQ(solo.accounts[0].im, a.im) << a.account;  // bitwise: the same row, the same scenarios
      EXPECT_EQ(solo.accounts[0].worst_scenario, a.worst_scenario) << a.account;
    }
    // A what-if that gives the first account a second underlying (the run covers every
    // instrument, as the service's does), against a re-run.
    const std::string acc = together.accounts[0].account;
    std::size_t other = 0;
    while (book.instruments[other].underlying == acc.substr(4)) ++other;
    const std::vector<Position> trades{{acc, other, 2.0}};
    MarginEngine covered(book.instruments, book.market, m, backend());
    covered.run(disjoint, all);
    const WhatIfResult w = covered.whatif(acc, trades);
    std::vector<Position> with = disjoint;
    with.push_back(trades[0]);
    MarginEngine fresh(book.instruments, book.market, m, backend());
    const MarginRun rerun = fresh.run(with, all);
    EXPECT_TRUE(testing::near_relative(w.after.im, rerun.accounts[0].im, 1e-12, 1e-9))
        << w.after.im << " vs " << rerun.accounts[0].im;
  }
}

MARGINET_INSTANTIATE_BACKENDS(VarMargin);

class VarCrossBackend : public testing::CrossBackendTest {};

TEST_F(VarCrossBackend, SameSeedSameMarginsOnCpuAndGpu) {
  const GeneratedBook book = small_book();
  Methodology m = load_methodology("mc-es");
  m.mc.paths = 4000;
  MarginEngine cpu(book.instruments, book.market, m, Backend::cpu);
  MarginEngine gpu(book.instruments, book.market, m, Backend::cuda);
  const MarginRun a = cpu.run(book.positions), b = gpu.run(book.positions);
  for (std::size_t i = 0; i < a.accounts.size(); ++i)
    EXPECT_TRUE(testing::near_relative(a.accounts[i].im, b.accounts[i].im, 1e-12, 1e-9));
}

TEST(VarConfig, ReturnsFileErrorsNameFileLineField) {
  const std::string path = marginet::testing::scratch_dir() + "/bad_returns.csv";
  {
    std::ofstream f(path);
    f << "date,underlying,return\n2024-01-01,BTC,0.01\n2024-01-02,BTC,-1.5\n";
  }
  try {
    read_returns(path);
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.field(), "return");
  }
  HvarConfig c;
  c.returns = write_returns({"BTC"}, 10, 1, "only_btc.csv");
  EXPECT_THROW(historical_scenarios(c, {"BTC", "ETH"}, "hvar"), input_error);  // no ETH returns
  EXPECT_THROW(parse_methodology(R"({"model":"hvar","confidence":1.5})", "h.json"), input_error);
  EXPECT_THROW(parse_methodology(R"({"model":"mc-es","correlations":{"A/B":2}})", "m.json"), input_error);
}

}  // namespace
}  // namespace marginet
