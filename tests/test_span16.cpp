// span16 by hand: one long future, one long call, a covered write; the risk-array input mode;
// edge cases (empty book, zero quantity, missing mark, tied worst scenarios). Every backend.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "host/margin_engine.hpp"
#include "models/errors.hpp"
#include "models/pricing.hpp"
#include "tests/backends.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

constexpr double kNow = 1719561600.0;           // 2024-06-28T08:00:00Z
constexpr double kExpiry = kNow + 91.25 * 86400; // a quarter later

struct Book {
  InstrumentTable instruments;
  MarketSnapshot market;
  Book() {
    market.set_underlying("BTC", UnderlyingMarket{100.0, 0.0, kNow});
    Instrument fut{"FUT", "BTC", InstrumentKind::future, OptionType::call, 0, kExpiry, 1, Settlement::linear};
    Instrument call{"C100", "BTC", InstrumentKind::option, OptionType::call, 100, kExpiry, 1, Settlement::linear};
    Instrument otm{"C150", "BTC", InstrumentKind::option, OptionType::call, 150, kExpiry, 1, Settlement::linear};
    instruments.add(fut);
    instruments.add(call);
    instruments.add(otm);
    market.set_mark("FUT", Mark{100.0, std::numeric_limits<double>::quiet_NaN()});
    market.set_future_forward("BTC", kExpiry, 100.0);
    market.set_mark("C100", Mark{std::numeric_limits<double>::quiet_NaN(), 0.5});
    market.set_mark("C150", Mark{std::numeric_limits<double>::quiet_NaN(), 0.5});
  }
  Position pos(const char* account, const char* id, double q) const {
    return Position{account, instruments.index_of(id), q};
  }
};

Methodology span(double som = 0.0) {
  Methodology m = load_methodology("span16");
  m.span.defaults.short_option_minimum = som;  // PSR 0.15, VSR 0.10, init/maint 1.1
  return m;
}

/// Expected scan risk of a position list by direct Black-76 valuation (independent of the
/// engine's scenario tables): the CME scenario list written out again here.
double hand_scan(const std::vector<std::pair<double, double>>& calls_k_q, double future_q, int* worst) {
  const double F = 100, sigma = 0.5, T = 91.25 / 365.0, psr = 0.15, vsr = 0.10;
  const double moves[16] = {0, 0, 1. / 3, 1. / 3, -1. / 3, -1. / 3, 2. / 3, 2. / 3, -2. / 3, -2. / 3, 1, 1, -1, -1, 3, -3};
  const double vols[16] = {1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 0, 0};
  double best = -1e300;
  for (int s = 0; s < 16; ++s) {
    const double f1 = F * (1 + moves[s] * psr);
    double pnl = future_q * (f1 - F);
    for (auto [k, q] : calls_k_q)
      pnl += q * (black76_price(OptionType::call, f1, k, T, sigma + vols[s] * vsr, 0) -
                  black76_price(OptionType::call, F, k, T, sigma, 0));
    const double loss = -pnl * (s < 14 ? 1.0 : 0.35);
    if (loss > best) best = loss, *worst = s;
  }
  return best;
}

class Span16 : public testing::BackendTest {};

TEST_P(Span16, OneLongFuture) {
  Book b;
  MarginEngine engine(b.instruments, b.market, span(), backend());
  const MarginRun run = engine.run({b.pos("A", "FUT", 2.0)});
  ASSERT_EQ(run.accounts.size(), 1u);
  // Down 3×PSR at 35 % cover: 2 · 100 · 0.45 · 0.35 = 31.5 > down 1×PSR: 2 · 15 = 30.
  EXPECT_NEAR(run.accounts[0].im, 31.5, 1e-12);
  EXPECT_NEAR(run.accounts[0].mm, 31.5 / 1.1, 1e-12);
  EXPECT_EQ(run.accounts[0].underlyings[0].worst_scenario, 15);
  EXPECT_NEAR(run.accounts[0].underlyings[0].delta, 2.0, 1e-12);  // coins of the underlying
  EXPECT_NEAR(run.accounts[0].delta_usd, 2.0 * 100.0, 1e-10);      // Δ·S at an index of 100
  EXPECT_EQ(run.accounts[0].gamma_usd, 0.0);
}

TEST_P(Span16, OneLongCall) {
  Book b;
  MarginEngine engine(b.instruments, b.market, span(), backend());
  const MarginRun run = engine.run({b.pos("A", "C100", 1.0)});
  int worst = -1;
  const double expected = hand_scan({{100, 1.0}}, 0.0, &worst);
  EXPECT_NEAR(run.accounts.at(0).im, expected, 1e-12 * expected);
  EXPECT_EQ(run.accounts[0].underlyings[0].worst_scenario, worst);
  EXPECT_EQ(worst, 13);  // down 3/3 with vol down
}

TEST_P(Span16, CoveredWriteAndTheShortOptionMinimum) {
  Book b;
  int worst = -1;
  const double scan = hand_scan({{150, -1.0}}, 1.0, &worst);
  {
    MarginEngine engine(b.instruments, b.market, span(0.0), backend());
    const MarginRun run = engine.run({b.pos("A", "FUT", 1.0), b.pos("A", "C150", -1.0)});
    EXPECT_NEAR(run.accounts.at(0).im, scan, 1e-12 * scan);
  }
  {  // a short option minimum above the scan risk binds
    MarginEngine engine(b.instruments, b.market, span(40.0), backend());
    const MarginRun run = engine.run({b.pos("A", "FUT", 1.0), b.pos("A", "C150", -1.0)});
    ASSERT_LT(scan, 40.0);
    EXPECT_DOUBLE_EQ(run.accounts.at(0).underlyings[0].short_option_minimum, 40.0);
    EXPECT_DOUBLE_EQ(run.accounts[0].im, 40.0);
  }
}

TEST_P(Span16, TheShortOptionMinimumCountsTheNetShortOfEachSeries) {
  Book b;
  MarginEngine engine(b.instruments, b.market, span(100.0), backend());
  // A long 5 and a short 5 of the same series on two lines: no risk, no short option.
  const MarginRun flat = engine.run({b.pos("A", "C150", 5.0), b.pos("A", "C150", -5.0)});
  EXPECT_DOUBLE_EQ(flat.accounts.at(0).underlyings.at(0).short_option_minimum, 0.0);
  EXPECT_NEAR(flat.accounts[0].im, 0.0, 1e-12);
  // Short 5 and long 2 of one series, long 5 of another: the net short is 3.
  const MarginRun net = engine.run({b.pos("A", "C150", -5.0), b.pos("A", "C150", 2.0), b.pos("A", "C100", 5.0)});
  EXPECT_DOUBLE_EQ(net.accounts.at(0).underlyings.at(0).short_option_minimum, 300.0);
  // A what-if that buys back the short moves the minimum the same way.
  engine.run({b.pos("A", "C150", -5.0)});
  const WhatIfResult w = engine.whatif("A", {b.pos("A", "C150", 5.0)});
  EXPECT_DOUBLE_EQ(w.before.underlyings.at(0).short_option_minimum, 500.0);
  EXPECT_DOUBLE_EQ(w.after.underlyings.at(0).short_option_minimum, 0.0);
  // The reference path agrees.
  const MarginRun ref = reference_margin(b.instruments, b.market, span(100.0),
                                         {b.pos("A", "C150", -5.0), b.pos("A", "C150", 2.0), b.pos("A", "C100", 5.0)});
  EXPECT_DOUBLE_EQ(ref.accounts.at(0).underlyings.at(0).short_option_minimum, 300.0);
}

TEST_P(Span16, PublishedRiskArrayMode) {
  Book b;
  PublishedRiskArrays arrays;
  arrays["FUT"] = {0, 0, -5, -5, 5, 5, -10, -10, 10, 10, -15, -15, 15, 15, -15.75, 20};
  arrays["C100"] = {-1, 1, -4, -2, 3, 1, -8, -6, 4, 2, -12, -10, 5, 3, -20, 6};
  MarginEngine engine(b.instruments, b.market, span(), backend());
  engine.use_published_risk_arrays(arrays);
  // 2 FUT − 1 C100: losses 2·FUT − C100 per scenario; the largest is scenario 16 (index 15):
  // 2·20 − 6 = 34 (published arrays already carry the cover fraction: weight 1; weighted again
  // it would be 11.9 and scenario 14's 2·15 − 3 = 27 would win).
  const MarginRun run = engine.run({b.pos("A", "FUT", 2.0), b.pos("A", "C100", -1.0)});
  EXPECT_DOUBLE_EQ(run.accounts.at(0).im, 34.0);
  EXPECT_EQ(run.accounts[0].underlyings[0].worst_scenario, 15);
  // An instrument without a published array is named.
  MarginEngine missing(b.instruments, b.market, span(), backend());
  missing.use_published_risk_arrays({{"FUT", arrays["FUT"]}});
  try {
    missing.run({b.pos("A", "C100", 1.0)});
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("C100"), std::string::npos) << e.what();
  }
}

TEST_P(Span16, EdgeCases) {
  Book b;
  MarginEngine engine(b.instruments, b.market, span(), backend());
  EXPECT_TRUE(engine.run({}).accounts.empty());
  const MarginRun zero = engine.run({b.pos("Z", "C100", 0.0)});
  ASSERT_EQ(zero.accounts.size(), 1u);
  EXPECT_EQ(zero.accounts[0].im, 0.0);
  EXPECT_EQ(zero.accounts[0].underlyings[0].worst_scenario, 0);  // all tie at 0: the first
  // A long and an equal short of the same future: every scenario ties at zero.
  const MarginRun flat = engine.run({b.pos("F", "FUT", 1.0), b.pos("F", "FUT", -1.0)});
  EXPECT_EQ(flat.accounts.at(0).im, 0.0);
  EXPECT_EQ(flat.accounts[0].underlyings[0].worst_scenario, 0);
}

TEST_P(Span16, MissingMarkNamesTheInstrument) {
  Book b;
  Instrument lonely{"C200", "BTC", InstrumentKind::option, OptionType::call, 200, kExpiry, 1, Settlement::linear};
  b.instruments.add(lonely);
  MarginEngine engine(b.instruments, b.market, span(), backend());
  try {
    engine.run({b.pos("A", "C200", 1.0)});
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("C200"), std::string::npos) << e.what();
  }
}

MARGINET_INSTANTIATE_BACKENDS(Span16);

TEST(Span16Scenarios, CmeOrderAndWeights) {
  const ScenarioSet set = make_scenarios(span(), {"BTC"});
  ASSERT_EQ(set.count, 16u);
  EXPECT_DOUBLE_EQ(set.shock(0, 0).price_move, 0.0);
  EXPECT_DOUBLE_EQ(set.shock(0, 0).vol_shift, 0.10);
  EXPECT_DOUBLE_EQ(set.shock(1, 0).vol_shift, -0.10);
  EXPECT_DOUBLE_EQ(set.shock(2, 0).price_move, 0.05);
  EXPECT_DOUBLE_EQ(set.shock(13, 0).price_move, -0.15);
  EXPECT_DOUBLE_EQ(set.shock(14, 0).price_move, 0.45);
  EXPECT_EQ(set.shock(14, 0).vol_kind, VolShock::none);
  EXPECT_DOUBLE_EQ(set.weights[13], 1.0);
  EXPECT_DOUBLE_EQ(set.weights[15], 0.35);
}

TEST(Span16Config, JsonPerUnderlying) {
  const Methodology m = parse_methodology(
      R"({"model":"span16","extreme_cover_fraction":0.3,"default":{"price_scan_range":0.2},
          "underlyings":{"ETH":{"price_scan_range":0.25,"short_option_minimum":10}}})", "s.json");
  EXPECT_DOUBLE_EQ(m.span.extreme_cover_fraction, 0.3);
  EXPECT_DOUBLE_EQ(m.span.params("BTC").price_scan_range, 0.2);
  EXPECT_DOUBLE_EQ(m.span.params("ETH").price_scan_range, 0.25);
  EXPECT_DOUBLE_EQ(m.span.params("ETH").volatility_scan_range, 0.10);
  EXPECT_THROW(parse_methodology(R"({"model":"span16","default":{"price_scan_range":-1}})", "s"), input_error);
}

TEST(RiskArrayFile, ReadsSixteenLossesPerInstrument) {
  const std::string path = marginet::testing::scratch_dir() + "/risk_arrays.csv";
  {
    std::ofstream f(path);
    f << "instrument,s1,s2,s3,s4,s5,s6,s7,s8,s9,s10,s11,s12,s13,s14,s15,s16\n"
         "FUT,0,0,-5,-5,5,5,-10,-10,10,10,-15,-15,15,15,-15.75,15.75\n";
  }
  const PublishedRiskArrays arrays = read_risk_arrays(path);
  ASSERT_EQ(arrays.at("FUT").size(), 16u);
  EXPECT_DOUBLE_EQ(arrays.at("FUT")[15], 15.75);
  {
    std::ofstream f(path);
    f << "instrument,s1,s2,s3,s4,s5,s6,s7,s8,s9,s10,s11,s12,s13,s14,s15,s16\nFUT,0,0,x,,,,,,,,,,,,,\n";
  }
  try {
    read_risk_arrays(path);
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.field(), "s3");
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace marginet
