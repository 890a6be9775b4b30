// `marginet margin` and `marginet whatif` end to end through the real binary, on a generated
// book written to CSV: results equal the in-process engine; bad input exits 2 naming the file.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "host/book_generator.hpp"
#include "host/margin_engine.hpp"
#include "models/csv.hpp"
#include "models/positions.hpp"
#include "models/reference_data.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

using testing::run_marginet;

class MarginCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = marginet::testing::scratch_dir() + "/marginet_margin_cli";
    BookSpec spec;
    spec.underlyings = 2;
    spec.instruments = 120;
    spec.accounts = 12;
    spec.positions = 300;
    write_book(generate_book(spec), dir_);
  }
  static std::string files() {
    return " --instruments " + dir_ + "/instruments.csv --market " + dir_ + "/market.csv --marks " + dir_ +
           "/marks.csv --positions " + dir_ + "/positions.csv";
  }
  static std::string dir_;
};
std::string MarginCli::dir_;

// --on-device-error is a common option: its values are checked, and `cpu` changes nothing while
// the device (here: none) has not failed.
TEST_F(MarginCli, TheDeviceErrorPolicyIsAnOptionWithTwoValues) {
  const auto bad = run_marginet("margin --device cpu --quiet --on-device-error fallback --model span16" + files());
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("--on-device-error"), std::string::npos) << bad.output;
  const auto refuse = run_marginet("margin --device cpu --quiet --model span16 --format csv" + files(), false);
  const auto cpu =
      run_marginet("margin --device cpu --quiet --on-device-error cpu --model span16 --format csv" + files(), false);
  ASSERT_EQ(refuse.status, 0) << refuse.output;
  ASSERT_EQ(cpu.status, 0) << cpu.output;
  EXPECT_EQ(cpu.output, refuse.output);
  EXPECT_NE(cpu.output.find("span16"), std::string::npos);
}

TEST_F(MarginCli, CsvMatchesTheEngineOnTheSameFiles) {
  // deribit-pm margins each coin on its own, in the coin: a row per account and currency.
  const auto r = run_marginet("margin --device cpu --quiet --model deribit-pm" + files(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  const ReferenceData ref = load_reference_data(dir_ + "/instruments.csv", dir_ + "/market.csv", dir_ + "/marks.csv");
  MarginEngine engine(ref.instruments, ref.market, load_methodology("deribit-pm"), Backend::cpu);
  const MarginRun run = engine.run(read_positions(dir_ + "/positions.csv", ref.instruments));
  std::istringstream in(r.output);
  CsvReader csv(in, "stdout",
                {"account", "model", "currency", "im", "mm", "collateral_value", "call", "call_asset", "worst_scenario",
                 "coin_delta"});
  std::size_t rows = 0;
  for (const AccountMargin& a : run.accounts)
    for (const UnderlyingMargin& u : a.underlyings) {
      ASSERT_TRUE(csv.next());
      EXPECT_EQ(csv.text("account"), a.account);
      EXPECT_EQ(csv.text("model"), "deribit-pm");
      EXPECT_EQ(csv.text("currency"), u.underlying);
      EXPECT_EQ(csv.text("call_asset"), u.underlying);
      EXPECT_EQ(csv.number("im"), u.im);  // shortest round-trip text: exact, in the coin
      EXPECT_EQ(csv.number("coin_delta"), u.coin_delta);
      EXPECT_EQ(csv.integer("worst_scenario"), u.worst_scenario + 1);
      ++rows;
    }
  EXPECT_FALSE(csv.next());
  EXPECT_GT(rows, run.accounts.size());  // two underlyings: some accounts hold both

  // A USD methodology: one row per account in USD, the sensitivities summed in USD.
  const auto s = run_marginet("margin --device cpu --quiet --model span16" + files(), false);
  ASSERT_EQ(s.status, 0) << s.output;
  MarginEngine span(ref.instruments, ref.market, load_methodology("span16"), Backend::cpu);
  const MarginRun sr = span.run(read_positions(dir_ + "/positions.csv", ref.instruments));
  std::istringstream sin(s.output);
  CsvReader scsv(sin, "stdout", {"account", "currency", "im", "call_asset", "delta_usd", "gamma_usd", "vega_usd"});
  for (const AccountMargin& a : sr.accounts) {
    ASSERT_TRUE(scsv.next());
    EXPECT_EQ(scsv.text("account"), a.account);
    EXPECT_EQ(scsv.text("currency"), "USD");
    EXPECT_EQ(scsv.text("call_asset"), "USD");
    EXPECT_EQ(scsv.number("im"), a.im);
    double delta_usd = 0;
    for (const UnderlyingMargin& u : a.underlyings) delta_usd += u.delta * ref.market.underlying(u.underlying).index_price;
    EXPECT_NEAR(scsv.number("delta_usd"), delta_usd, 1e-9 * std::max(1.0, std::fabs(delta_usd)));
  }
  EXPECT_FALSE(scsv.next());
}

TEST_F(MarginCli, EveryJsonFigureHasAUnit) {
  for (const char* model : {"span16", "deribit-pm", "mc-es --paths 300"}) {
    SCOPED_TRACE(model);
    const auto r = run_marginet(std::string("margin --device cpu --quiet --format json --model ") + model + files(), false);
    ASSERT_EQ(r.status, 0) << r.output;
    const auto doc = nlohmann::json::parse(r.output);
    ASSERT_FALSE(doc.empty());
    for (const auto& a : doc) {
      ASSERT_TRUE(a.contains("units"));
      for (const auto& [key, unit] : a["units"].items()) {
        EXPECT_TRUE(a.contains(key)) << key;  // the units object names fields that are there
        EXPECT_FALSE(unit.get<std::string>().empty()) << key;
      }
      for (const char* figure : {"im", "mm", "collateral_value", "call", "delta_usd", "gamma_usd", "vega_usd"})
        EXPECT_TRUE(a["units"].contains(figure)) << figure;
      for (const auto& u : a["underlyings"]) {
        for (const auto& [key, unit] : u["units"].items()) EXPECT_TRUE(u.contains(key)) << key;
        std::size_t figures = 0;  // numeric fields of the row, each of which must have a unit
        for (const auto& [key, value] : u.items()) {
          if (!value.is_number() || key == "worst_scenario") continue;
          ++figures;
          EXPECT_TRUE(u["units"].contains(key)) << key;
        }
        EXPECT_GE(figures, 3u);  // delta, gamma, vega at least: the loop above checked something
        EXPECT_EQ(u["units"]["delta"], u["underlying"]);  // coins of the underlying, whatever the model
      }
    }
  }
}

TEST_F(MarginCli, TableFormatAlignsColumnsAndRoundsToTheUnit) {
  const auto r = run_marginet("margin --device cpu --quiet --format table --model span16" + files(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream in(r.output);
  std::string header, line;
  ASSERT_TRUE(std::getline(in, header));
  const std::size_t im_end = header.find(" im") + 3;  // numbers are right-aligned under their header
  ASSERT_NE(header.find("worst_scenario"), std::string::npos);
  std::size_t rows = 0;
  while (std::getline(in, line)) {
    ASSERT_EQ(line.size() >= im_end, true) << line;
    // The im figure ends where its header does, with two decimals (USD).
    const std::size_t start = line.rfind(' ', im_end - 1) + 1;
    const std::string im = line.substr(start, im_end - start);
    ASSERT_GE(im.size(), 4u) << line;
    EXPECT_EQ(im[im.size() - 3], '.') << line;
    EXPECT_EQ(im.find_first_not_of("0123456789.,-"), std::string::npos) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 12u);
  // Scenarios are labelled on a terminal ("15 up extreme", "13 down 3/3, vol up").
  EXPECT_NE(r.output.find(", vol "), std::string::npos) << r.output;
}

TEST_F(MarginCli, JsonCarriesBreakdownAndFiveWorstScenarios) {
  const auto r = run_marginet("margin --device cpu --quiet --format json --model span16" + files(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto doc = nlohmann::json::parse(r.output);
  ASSERT_TRUE(doc.is_array());
  ASSERT_FALSE(doc.empty());
  const auto& a = doc[0];
  EXPECT_TRUE(a.contains("underlyings"));
  EXPECT_EQ(a["worst_scenarios"].size(), 5u);
  double total = 0;
  for (const auto& u : a["underlyings"]) total += u["im"].get<double>();
  EXPECT_NEAR(total, a["im"].get<double>(), 1e-9 * std::max(1.0, total));
  // Worst first: P&L ascending.
  EXPECT_LE(a["worst_scenarios"][0]["pnl"].get<double>(), a["worst_scenarios"][4]["pnl"].get<double>());
}

TEST_F(MarginCli, WhatIfReportsBeforeAfterAndChange) {
  const std::string trades = dir_ + "/trades.csv";
  {
    std::ofstream f(trades);
    f << "instrument,quantity\nBTC-PERPETUAL,-3\nETH-F028,2\n";
  }
  const auto r = run_marginet("whatif --device cpu --quiet --model span16 --account ACC000000 --trades " + trades + files(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream in(r.output);
  CsvReader csv(in, "stdout", {"account", "im_before", "im_after", "im_change"});
  ASSERT_TRUE(csv.next());
  EXPECT_EQ(csv.text("account"), "ACC000000");
  EXPECT_NEAR(csv.number("im_after") - csv.number("im_before"), csv.number("im_change"), 1e-6);
  EXPECT_NE(csv.number("im_change"), 0.0);
}

TEST_F(MarginCli, UnknownInstrumentInPositionsExits2NamingFileLineField) {
  const std::string bad = dir_ + "/bad_positions.csv";
  {
    std::ofstream f(bad);
    f << "account,instrument,quantity\nA,BTC-PERPETUAL,1\nA,NOPE-1,2\n";
  }
  const auto r = run_marginet("margin --device cpu --quiet --instruments " + dir_ + "/instruments.csv --market " + dir_ +
                              "/market.csv --marks " + dir_ + "/marks.csv --positions " + bad);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("bad_positions.csv:3: field 'instrument'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("NOPE-1"), std::string::npos) << r.output;
}

TEST_F(MarginCli, AbsurdQuantitiesExit2NamingFileLineField) {
  const std::string ref = " --device cpu --quiet --instruments " + dir_ + "/instruments.csv --market " + dir_ +
                          "/market.csv --marks " + dir_ + "/marks.csv --positions ";
  for (const char* q : {"1e308", "-2e12", "inf", "nan"}) {
    SCOPED_TRACE(q);
    const std::string bad = dir_ + "/huge_positions.csv";
    std::ofstream(bad) << "account,instrument,quantity\nA,BTC-PERPETUAL,1\nA,BTC-PERPETUAL," << q << "\n";
    const auto r = run_marginet("margin" + ref + bad);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find(bad + ":3: field 'quantity'"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
  }
}

TEST_F(MarginCli, WhatIfOfAnAccountWithoutPositionsIsAnErrorUnlessNew) {
  const std::string trades = dir_ + "/new_trades.csv";
  std::ofstream(trades) << "instrument,quantity\nBTC-PERPETUAL,-3\n";
  const auto unknown = run_marginet("whatif --device cpu --quiet --model span16 --account NOBODY --trades " + trades + files());
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("account 'NOBODY' holds no position"), std::string::npos) << unknown.output;
  const auto fresh = run_marginet(
      "whatif --device cpu --quiet --model span16 --account NOBODY --new-account --trades " + trades + files(), false);
  ASSERT_EQ(fresh.status, 0) << fresh.output;
  EXPECT_NE(fresh.output.find("\nNOBODY,span16,USD,0,"), std::string::npos) << fresh.output;
  // --collateral was accepted and ignored by whatif: it is not an option of whatif any more.
  EXPECT_EQ(run_marginet("whatif --device cpu --quiet --account ACC000000 --trades " + trades + files() +
                         " --collateral " + trades)
                .status,
            2);
}

TEST_F(MarginCli, CollateralOnlyAccountsAreListedAndJointRowsHaveNoIm) {
  const std::string col = dir_ + "/collateral_only.csv";
  std::ofstream(col) << "account,asset,amount\nZZ-NO-POSITIONS,USD,1000\n";
  const auto r = run_marginet("margin --device cpu --quiet --model span16 --collateral " + col + files(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\nZZ-NO-POSITIONS,span16,USD,0,0,1000,0.00,USD,0,0,0,0\n"), std::string::npos) << r.output;
  // mc-es margins the account as a whole: per underlying, sensitivities only; no stressed ES
  // without a stressed period.
  const auto j = run_marginet("margin --device cpu --quiet --model mc-es --paths 300 --format json" + files(), false);
  ASSERT_EQ(j.status, 0) << j.output;
  const auto accounts = nlohmann::json::parse(j.output);
  ASSERT_FALSE(accounts.empty());
  EXPECT_FALSE(accounts[0].contains("stressed_es"));
  ASSERT_FALSE(accounts[0]["underlyings"].empty());
  EXPECT_FALSE(accounts[0]["underlyings"][0].contains("im"));
  EXPECT_TRUE(accounts[0]["underlyings"][0].contains("delta"));
  const auto s = run_marginet("margin --device cpu --quiet --model span16 --format json" + files(), false);
  EXPECT_TRUE(nlohmann::json::parse(s.output)[0]["underlyings"][0].contains("im"));
}

TEST_F(MarginCli, UnknownModelExits2) {
  const auto r = run_marginet("margin --device cpu --quiet --model no-such-model" + files());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no-such-model"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace marginet
