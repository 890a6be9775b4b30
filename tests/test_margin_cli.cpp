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
    dir_ = ::testing::TempDir() + "/marginet_margin_cli";
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

TEST_F(MarginCli, CsvMatchesTheEngineOnTheSameFiles) {
  const auto r = run_marginet("margin --device cpu --quiet --model deribit-pm" + files(), false);
  ASSERT_EQ(r.status, 0) << r.output;
  const ReferenceData ref = load_reference_data(dir_ + "/instruments.csv", dir_ + "/market.csv", dir_ + "/marks.csv");
  MarginEngine engine(ref.instruments, ref.market, load_methodology("deribit-pm"), Backend::cpu);
  const MarginRun run = engine.run(read_positions(dir_ + "/positions.csv", ref.instruments));
  std::istringstream in(r.output);
  CsvReader csv(in, "stdout", {"account", "model", "im", "mm", "worst_scenario", "delta", "gamma", "vega"});
  std::size_t n = 0;
  while (csv.next()) {
    ASSERT_LT(n, run.accounts.size());
    EXPECT_EQ(csv.text("account"), run.accounts[n].account);
    EXPECT_EQ(csv.text("model"), "deribit-pm");
    EXPECT_EQ(csv.number("im"), run.accounts[n].im);  // shortest round-trip text: exact
    EXPECT_EQ(csv.integer("worst_scenario"), run.accounts[n].worst_scenario + 1);
    ++n;
  }
  EXPECT_EQ(n, run.accounts.size());
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
  EXPECT_NE(fresh.output.find("\nNOBODY,span16,0,"), std::string::npos) << fresh.output;
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
  EXPECT_NE(r.output.find("\nZZ-NO-POSITIONS,span16,0,0,0,0,0,0,1000,0.00\n"), std::string::npos) << r.output;
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
