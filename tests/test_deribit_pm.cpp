// deribit-pm against Deribit's published responses (private/pme/simulate):
//  * API docs example, 2024-06-17: BTC index 65666.19, BTC-PERPETUAL +0.314538364 coin,
//    BTC-28JUN24 −0.001187534 coin, BTC defaults;
//  * an ETH account, 2026-02-15: ETH index 1949.34, ETH-PERPETUAL −0.999487053 coin, ETH
//    parameters (price_range 0.18, pnl_offset 0.6, min_annualised_move 0.005).
// Every backend, and the reference path.

#include <gtest/gtest.h>

#include <sstream>

#include "host/collateral.hpp"
#include "host/margin_engine.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/deribit_pm.hpp"
#include "models/reference_data.hpp"
#include "tests/backends.hpp"

namespace marginet {
namespace {

struct Book {
  InstrumentTable instruments;
  MarketSnapshot market;
  std::vector<Position> positions;
};

Book btc_example() {
  Book b;
  std::istringstream inst("id,underlying,kind,put_call,strike,expiry,contract_size,settlement\n"
                          "BTC-PERPETUAL,,,,,,,\nBTC-28JUN24,,,,,,,\n");
  b.instruments = load_instruments(inst, "instruments.csv");
  std::istringstream mkt("underlying,index_price,rate,valuation_time\nBTC,65666.19,0,2024-06-17T10:22:20Z\n");
  b.market = load_market(mkt, "market.csv");
  std::istringstream marks("instrument,mark_price,mark_iv\nBTC-PERPETUAL,65910.57,\nBTC-28JUN24,67371.75,\n");
  load_marks(marks, "marks.csv", b.instruments, b.market);
  b.positions = {{"A", b.instruments.index_of("BTC-PERPETUAL"), 0.314538364},
                 {"A", b.instruments.index_of("BTC-28JUN24"), -0.001187534}};
  return b;
}

Book eth_example() {
  Book b;
  std::istringstream inst("id,underlying,kind,put_call,strike,expiry,contract_size,settlement\nETH-PERPETUAL,,,,,,,\n");
  b.instruments = load_instruments(inst, "instruments.csv");
  std::istringstream mkt("underlying,index_price,rate,valuation_time\nETH,1949.34,0,2026-02-15T23:20:09Z\n");
  b.market = load_market(mkt, "market.csv");
  std::istringstream marks("instrument,mark_price,mark_iv\nETH-PERPETUAL,1949.49,\n");
  load_marks(marks, "marks.csv", b.instruments, b.market);
  b.positions = {{"E", b.instruments.index_of("ETH-PERPETUAL"), -0.999487053}};
  return b;
}

class DeribitPublished : public testing::BackendTest {};

TEST_P(DeribitPublished, BtcExampleOfTheApiDocs) {
  Book b = btc_example();
  MarginEngine engine(b.instruments, b.market, load_methodology("deribit-pm"), backend());
  const MarginRun run = engine.run(b.positions);
  ASSERT_EQ(run.accounts.size(), 1u);
  ASSERT_EQ(run.accounts[0].underlyings.size(), 1u);
  const UnderlyingMargin& btc = run.accounts[0].underlyings[0];
  EXPECT_EQ(btc.units, "BTC");
  EXPECT_NEAR(btc.scan_risk, 0.05968587238095239, 1e-12);           // worst_case
  EXPECT_EQ(btc.worst_scenario, 0);  // −16 %, first of the three vol scenarios of that bucket
  EXPECT_NEAR(btc.roll_shock, 0.00315725898, 1e-12);
  EXPECT_EQ(btc.delta_shock, 0.0);
  // risk_matrix_margin: the worst case rounded to 9 decimals (0.059685872) plus the roll shock.
  EXPECT_NEAR(btc.im, 0.06284313098, 1e-12);
  EXPECT_NEAR(btc.mm, 0.050274504784, 1e-12);
  EXPECT_NEAR(btc.coin_delta, 0.314538364 - 0.001187534, 1e-12);
  EXPECT_NEAR(run.accounts[0].im, 0.06284313098 * 65666.19, 1e-12 * 65666.19);  // in USD
}

TEST_P(DeribitPublished, EthAccountWithPnlOffset) {
  Book b = eth_example();
  MarginEngine engine(b.instruments, b.market, load_methodology("deribit-pm"), backend());
  const MarginRun run = engine.run(b.positions);
  ASSERT_EQ(run.accounts.size(), 1u);
  const UnderlyingMargin& eth = run.accounts[0].underlyings[0];
  EXPECT_NEAR(eth.scan_risk, 0.15246412672881357, 1e-12);
  EXPECT_EQ(eth.worst_scenario, 24);  // +18 % bucket (Deribit reports index 25 of the tied three)
  EXPECT_NEAR(eth.roll_shock, 0.004997435265, 1e-11);
  EXPECT_NEAR(eth.im, 0.157461562265, 1e-12);  // round9(0.152464126728…) + roll shock
  EXPECT_NEAR(eth.mm, 0.125969249812, 1e-12);
}

MARGINET_INSTANTIATE_BACKENDS(DeribitPublished);

TEST(DeribitPerCurrency, CoinCollateralCountsTowardItsCoinOnlyAndTheCallIsInTheCoin) {
  Book b = btc_example();
  const Methodology m = load_methodology("deribit-pm");
  ASSERT_TRUE(margins_in_coin(m));  // the default
  MarginEngine engine(b.instruments, b.market, m, Backend::cpu);
  MarginRun run = engine.run(b.positions);
  // 0.05 BTC and 10,000 USDC: the BTC counts toward the BTC margin whole (same currency), the
  // USDC toward nothing (Deribit margins each currency on its own).
  apply_collateral(run, {{"A", "BTC", 0.05}, {"A", "USDC", 10000}}, b.market, m);
  const AccountMargin& a = run.accounts.at(0);
  ASSERT_EQ(a.currencies.size(), 2u);
  EXPECT_EQ(a.currencies[0].currency, "BTC");
  EXPECT_NEAR(a.currencies[0].im, 0.06284313098, 1e-12);
  EXPECT_NEAR(a.currencies[0].mm, 0.050274504784, 1e-12);
  EXPECT_EQ(a.currencies[0].collateral_value, 0.05);
  EXPECT_EQ(a.currencies[0].scale, 8);
  EXPECT_EQ(a.currencies[0].call_minor, 1'284'314);  // 0.01284313098 BTC rounded up: 0.01284314
  EXPECT_EQ(a.currencies[1].currency, "USDC");
  EXPECT_EQ(a.currencies[1].im, 0.0);
  EXPECT_EQ(a.currencies[1].collateral_value, 10000.0);
  EXPECT_EQ(a.currencies[1].call_minor, 0);

  // margin_currency "usd": cross-margined in USD, the BTC after its haircut, no per-coin rows.
  const Methodology usd = parse_methodology(R"({"model": "deribit-pm", "general": {"margin_currency": "usd"}})", "usd.json");
  EXPECT_FALSE(margins_in_coin(usd));
  MarginRun cross = MarginEngine(b.instruments, b.market, usd, Backend::cpu).run(b.positions);
  apply_collateral(cross, {{"A", "BTC", 0.05}, {"A", "USDC", 10000}}, b.market, usd);
  EXPECT_TRUE(cross.accounts.at(0).currencies.empty());
  EXPECT_NEAR(cross.accounts.at(0).collateral_value, 0.05 * 65666.19 * 0.9 + 10000, 1e-9);
  EXPECT_EQ(cross.accounts.at(0).call_minor, 0);  // 4,126.68 USD of IM, 12,955 USD of collateral
}

TEST(DeribitPerCurrency, MarginCurrencyIsChecked) {
  EXPECT_THROW(parse_methodology(R"({"model": "deribit-pm", "general": {"margin_currency": "eur"}})", "x.json"),
               input_error);
  EXPECT_THROW(parse_methodology(R"({"model": "deribit-pm", "currency": {"BTC": {"scale": 2.5}}})", "x.json"),
               input_error);
  const Methodology m =
      parse_methodology(R"({"model": "deribit-pm", "currency": {"BTC": {"scale": 6}}})", "x.json");
  EXPECT_EQ(m.deribit.currency("BTC").scale, 6);
  EXPECT_EQ(m.deribit.currency("ETH").scale, 9);
}

TEST(DeribitPublished, ReferencePathAgrees) {
  Book b = btc_example();
  const MarginRun ref = reference_margin(b.instruments, b.market, load_methodology("deribit-pm"), b.positions);
  EXPECT_NEAR(ref.accounts.at(0).underlyings.at(0).scan_risk, 0.05968587238095239, 1e-12);
  EXPECT_NEAR(ref.accounts.at(0).underlyings.at(0).im, 0.06284313098, 1e-12);
}

TEST(DeribitEntry, PublishedRiskVectorsOfTheBtcExample) {
  // initial_risk_vectors of BTC-PERPETUAL: standard[0] (−16 %) and extended[0] (−66 %) equal
  // the edge of the table; the aggregated extended vector is zero after the dampener.
  DeribitRowParams p;
  p.index_price = 65666.19;
  const double q = 0.314538364;
  const double pnl16 = q * -0.16 / 0.84;
  EXPECT_NEAR(pnl16, -0.05991206933333334, 1e-15);
  const double pnl66 = q * -0.66 / 0.34;
  p.extended_dampener = 0;  // pre-aggregated: transform only
  EXPECT_NEAR(deribit_entry(pnl66, -0.66, true, p), -0.05991206933333334, 1e-15);
  p.extended_dampener = 100000;
  EXPECT_EQ(deribit_entry(pnl66, -0.66, true, p), 0.0);
  // +500 %: the edge of the +16 % side (gains counted whole here: pnl_offset 1).
  p.extended_dampener = 0;
  p.pnl_offset = 1.0;
  EXPECT_NEAR(deribit_entry(q * 5.0 / 6.0, 5.0, true, p), q * 0.16 / 1.16, 1e-15);
}

TEST(DeribitEntry, GainsCountPnlOffsetLossesUnchanged) {
  DeribitRowParams p;
  p.pnl_offset = 0.6;
  EXPECT_NEAR(deribit_entry(0.21939959699999997, 0.0, false, p), 0.13163975819999998, 1e-16);
  EXPECT_EQ(deribit_entry(-0.5, 0.1, false, p), -0.5);
}

TEST(DeribitEntry, DampenerNeverCrossesZero) {
  DeribitRowParams p;
  p.index_price = 100;
  p.extended_dampener = 1;  // damp at −66 %: (0.66/0.16 − 1)·1/(0.84·100) ≈ 0.0372
  const double small = deribit_entry(-0.01 * 0.34 / 0.66, -0.66, true, p);
  EXPECT_EQ(small, 0.0);
  const double big = deribit_entry(-10.0, -0.66, true, p);
  EXPECT_LT(big, 0.0);
  EXPECT_GT(big, -10.0);
}

TEST(DeribitAddOns, RollAndDeltaShock) {
  EXPECT_NEAR(deribit_roll_shock(0.314538364, 0.0, 0.075, 0.01), 0.00314538364, 1e-15);
  EXPECT_NEAR(deribit_roll_shock(-2.0, 1.0, 0.075, 0.01), 0.15, 1e-15);
  EXPECT_EQ(deribit_delta_shock(100.0, 65000.0, 20e6, 0.1), 0.0);       // 6.5M < 20M
  EXPECT_NEAR(deribit_delta_shock(400.0, 75000.0, 20e6, 0.1), 400 * 0.1 * 0.5, 1e-9);  // 30M: half way
  EXPECT_NEAR(deribit_delta_shock(-1000.0, 75000.0, 20e6, 0.1), 100.0, 1e-9);          // capped
  // The three readings at 400 BTC, index 75,000 (30M against a 20M threshold).
  EXPECT_NEAR(deribit_delta_shock(400.0, 75000.0, 20e6, 0.1, DeltaShockRule::ramp), 20.0, 1e-9);
  EXPECT_NEAR(deribit_delta_shock(400.0, 75000.0, 20e6, 0.1, DeltaShockRule::step), 40.0, 1e-9);
  EXPECT_NEAR(deribit_delta_shock(400.0, 75000.0, 20e6, 0.1, DeltaShockRule::excess), (400.0 - 20e6 / 75000.0) * 0.1, 1e-9);
  for (DeltaShockRule r : {DeltaShockRule::ramp, DeltaShockRule::step, DeltaShockRule::excess})
    EXPECT_EQ(deribit_delta_shock(100.0, 65000.0, 20e6, 0.1, r), 0.0);  // below the threshold: none
  EXPECT_EQ(parse_methodology(R"({"model": "deribit-pm", "general": {"delta_shock_rule": "step"}})", "d.json")
                .deribit.general.delta_shock_rule,
            DeltaShockRule::step);
  EXPECT_EQ(load_methodology("deribit-pm").deribit.general.delta_shock_rule, DeltaShockRule::ramp);
  EXPECT_THROW(parse_methodology(R"({"model": "deribit-pm", "general": {"delta_shock_rule": "cliff"}})", "d.json"),
               input_error);
}

TEST(DeribitScenarios, TwentySevenStandardThenEightExtended) {
  const Methodology m = load_methodology("deribit-pm");
  const ScenarioSet set = make_scenarios(m, {"BTC", "ETH"});
  ASSERT_EQ(set.count, 35u);
  EXPECT_DOUBLE_EQ(set.shock(0, 0).price_move, -0.16);
  EXPECT_DOUBLE_EQ(set.shock(0, 1).price_move, -0.18);
  EXPECT_DOUBLE_EQ(set.shock(13, 0).price_move, 0.0);
  EXPECT_DOUBLE_EQ(set.shock(26, 0).price_move, 0.16);
  EXPECT_EQ(set.shock(0, 0).vol_kind, VolShock::deribit_up);
  EXPECT_EQ(set.shock(1, 0).vol_kind, VolShock::none);
  EXPECT_EQ(set.shock(2, 0).vol_kind, VolShock::deribit_down);
  EXPECT_DOUBLE_EQ(set.shock(27, 0).price_move, -0.66);
  EXPECT_DOUBLE_EQ(set.shock(34, 1).price_move, 5.0);
  EXPECT_EQ(set.shock(34, 1).vol_kind, VolShock::deribit_up);
}

TEST(DeribitVolShock, TermScaling) {
  VolTermParams p{0.5, 0.25, 0.30, 0.13, 0.5};
  ScenarioShock up{0, 0, 0, VolShock::deribit_up}, down{0, 0, 0, VolShock::deribit_down};
  // DTE 30: scale 1. Up: 0.6·1.5 = 0.9; down: 0.6·0.75 = 0.45.
  EXPECT_NEAR(shocked_vol(up, 0.6, 30, p), 0.9, 1e-15);
  EXPECT_NEAR(shocked_vol(down, 0.6, 30, p), 0.45, 1e-15);
  // DTE 7.5 (< 30): scale 4^0.30. The up shock's floor: at least 0.5.
  EXPECT_NEAR(shocked_vol(up, 0.2, 7.5, p), std::max(0.5, 0.2 * (1 + 0.5 * std::pow(4.0, 0.30))), 1e-15);
  // DTE 120: scale 0.25^0.13, long-term power.
  EXPECT_NEAR(shocked_vol(down, 0.8, 120, p), 0.8 * (1 - 0.25 * std::pow(0.25, 0.13)), 1e-15);
  // DTE below 1 counts as 1.
  EXPECT_DOUBLE_EQ(shocked_vol(down, 0.8, 0.01, p), shocked_vol(down, 0.8, 1.0, p));
}

TEST(DeribitConfig, PublishedLayoutOverridesDefaults) {
  const Methodology m = parse_methodology(
      R"({"model":"deribit-pm","general":{"mm_factor":0.75},
          "currency_pair":{"btc_usd":{"price_range":0.2}},"currency":{"btc":{"pnl_offset":0.5}}})",
      "cfg.json");
  EXPECT_DOUBLE_EQ(m.deribit.general.mm_factor, 0.75);
  EXPECT_DOUBLE_EQ(m.deribit.pair("BTC").price_range, 0.2);
  EXPECT_DOUBLE_EQ(m.deribit.pair("BTC").volatility_range_up, 0.5);  // untouched default
  EXPECT_DOUBLE_EQ(m.deribit.currency("BTC").pnl_offset, 0.5);
  EXPECT_DOUBLE_EQ(m.deribit.pair("ETH").price_range, 0.18);
  EXPECT_THROW(parse_methodology(R"({"model":"deribit-pm","currency":{"btc":{"pnl_offset":2}}})", "c"),
               input_error);
  EXPECT_THROW(parse_methodology(R"({"model":"nope"})", "c"), input_error);
  EXPECT_THROW(parse_methodology("{", "c"), input_error);
}

}  // namespace
}  // namespace marginet
