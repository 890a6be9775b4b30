// `marginet net` end to end: the real binary on the sample files in examples/, its CSV and JSON
// forms, the settlement cycle file, and exit code 2 with file, line and field on bad input.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>

#include "models/settlement_cycle.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

using testing::run_marginet;

const std::string kExamples = std::string(MARGINET_SOURCE_DIR) + "/examples/";
const std::string kInputs = "--trades " + kExamples + "trades.csv --assets " + kExamples + "assets.csv";

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = marginet::testing::scratch_dir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(NetCli, OneTablePerStream) {
  const std::string summary = marginet::testing::scratch_dir() + "/net_summary.csv";
  const auto r = run_marginet("net --device cpu --summary " + summary + " " + kInputs, /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string& out = r.output;
  EXPECT_EQ(out.substr(0, out.find('\n')), "member,asset,net");
  // T1: ALPHA buys 1.5 BTC at 60000.25; T3: ALPHA sells 1.25 BTC. ALPHA nets +0.25 BTC.
  EXPECT_NE(out.find("\nALPHA,BTC,0.25000000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nCHARLIE,BTC,-1.75000000\n"), std::string::npos) << out;
  // stdout is one table: no blank line, no second header.
  EXPECT_EQ(out.find("\n\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("asset,scale"), std::string::npos) << out;
  // The summary in its own file.
  const std::string s = read_text(summary);
  EXPECT_EQ(s.substr(0, 20), "asset,scale,gross_de") << s;
  EXPECT_NE(s.find("\nBTC,8,5.85000000,1.75000000,1.75000000,1,3,"), std::string::npos) << s;
  // A plan or a bilateral view in CSV needs its own file.
  EXPECT_EQ(run_marginet("net --device cpu --quiet --plan hub " + kInputs).status, 2);
  EXPECT_EQ(run_marginet("net --device cpu --quiet --bilateral " + kInputs).status, 2);
}

TEST(NetCli, JsonWithP2pPlanAndBilateralView) {
  const auto r = run_marginet("net --device cpu --quiet --format json --plan p2p --bilateral " + kInputs, false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j.contains("nets"));
  ASSERT_TRUE(j.contains("assets"));
  ASSERT_TRUE(j.contains("plan"));
  ASSERT_TRUE(j.contains("bilateral"));
  std::int64_t btc_sum = 0;
  for (const auto& n : j["nets"])
    if (n["asset"] == "BTC") btc_sum += n["net_minor"].get<std::int64_t>();
  EXPECT_EQ(btc_sum, 0) << "nets of an asset sum to zero";
  for (const auto& a : j["assets"]) {
    EXPECT_EQ(a["pay_ins"], a["pay_outs"]);
    const std::size_t members = a["payers"].get<std::size_t>() + a["receivers"].get<std::size_t>();
    std::size_t payments = 0;
    for (const auto& p : j["plan"]) payments += p["asset"] == a["asset"];
    EXPECT_LE(payments, members - 1) << a.dump();
  }
  EXPECT_FALSE(j["bilateral"].empty());
  EXPECT_EQ(j["bilateral"][0]["member_a"], "ALPHA");
}

TEST(NetCli, HubPlanAndSortReduceAgree) {
  const std::string a = marginet::testing::scratch_dir() + "/plan_dense.csv", b = marginet::testing::scratch_dir() + "/plan_sorted.csv";
  const auto dense = run_marginet("net --device cpu --quiet --plan hub --plan-out " + a + " " + kInputs, false);
  const auto sorted =
      run_marginet("net --device cpu --quiet --plan hub --algorithm sort_reduce --plan-out " + b + " " + kInputs, false);
  ASSERT_EQ(dense.status, 0) << dense.output;
  EXPECT_EQ(dense.output, sorted.output);
  const std::string plan = read_text(a);
  EXPECT_EQ(plan, read_text(b));
  EXPECT_EQ(plan.substr(0, plan.find('\n')), "asset,from,to,amount");
  EXPECT_NE(plan.find("\nBTC,CHARLIE,CCP,1.75000000\n"), std::string::npos) << plan;
  EXPECT_NE(plan.find("\nBTC,CCP,DELTA,0.90000000\n"), std::string::npos) << plan;
}

TEST(NetCli, SettlementCycleWithMarginCalls) {
  const std::string cycle = marginet::testing::scratch_dir() + "/marginet_net_cycle.json";
  const auto r = run_marginet("net --device cpu --quiet " + kInputs + " --collateral-calls " + kExamples +
                                  "collateral_calls.csv --cycle-id 2024-06-28/1 --deadline 2024-06-28T09:00:00Z"
                                  " --cycle-out " + cycle,
                              false);
  ASSERT_EQ(r.status, 0) << r.output;
  const SettlementCycle c = read_cycle_json(cycle);
  EXPECT_EQ(c.cycle_id, "2024-06-28/1");
  EXPECT_EQ(c.deadline, 1719565200.0);
  ASSERT_EQ(c.assets.size(), 4u);
  bool call_seen = false;
  for (const auto& i : c.instructions) {
    if (i.instruction_id == "2024-06-28/1/CHARLIE/USD/in/margin_call") {
      call_seen = true;
      EXPECT_EQ(i.amount, 800001);  // 8000.004 rounded up to the cent
      EXPECT_EQ(i.leg, Leg::pay_in);
    }
  }
  EXPECT_TRUE(call_seen);
  // The CSV form of the same cycle.
  const std::string csv = marginet::testing::scratch_dir() + "/marginet_net_cycle.csv";
  ASSERT_EQ(run_marginet("net --quiet " + kInputs + " --collateral-calls " + kExamples +
                         "collateral_calls.csv --cycle-id 2024-06-28/1 --cycle-out " + csv)
                .status,
            0);
  std::ifstream in(csv);
  std::string header, row;
  std::getline(in, header);
  EXPECT_EQ(header, "cycle_id,instruction_id,member,asset,leg,kind,amount,amount_minor");
  std::size_t rows = 0;
  bool csv_call = false;
  while (std::getline(in, row)) {
    ++rows;
    csv_call = csv_call || row == "2024-06-28/1,2024-06-28/1/CHARLIE/USD/in/margin_call,CHARLIE,USD,pay_in,margin_call,8000.01,800001";
  }
  EXPECT_EQ(rows, c.instructions.size());
  EXPECT_TRUE(csv_call);
  // The same inputs without a cycle id give the same derived id twice.
  const std::string a = marginet::testing::scratch_dir() + "/marginet_net_cycle_a.json";
  const std::string b = marginet::testing::scratch_dir() + "/marginet_net_cycle_b.json";
  ASSERT_EQ(run_marginet("net --quiet " + kInputs + " --cycle-out " + a).status, 0);
  ASSERT_EQ(run_marginet("net --quiet " + kInputs + " --cycle-out " + b).status, 0);
  EXPECT_EQ(read_cycle_json(a).cycle_id, read_cycle_json(b).cycle_id);
  EXPECT_EQ(read_cycle_json(a).cycle_id.rfind("net-", 0), 0u);
}

TEST(NetCli, BadInputExitsTwoNamingFileLineAndField) {
  const std::string assets = kExamples + "assets.csv";
  const std::string self = temp_file("marginet_net_self.csv",
                                     "trade_id,buyer,seller,base_asset,quote_asset,quantity,price\n"
                                     "T1,A,B,BTC,USD,1,100\nT2,C,C,BTC,USD,1,100\n");
  auto r = run_marginet("net --quiet --trades " + self + " --assets " + assets);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("marginet_net_self.csv:3: field 'seller'"), std::string::npos) << r.output;

  const std::string dup = temp_file("marginet_net_dup.csv",
                                    "trade_id,buyer,seller,base_asset,quote_asset,quantity,price\n"
                                    "T1,A,B,BTC,USD,1,100\nT1,C,B,BTC,USD,1,100\n");
  r = run_marginet("net --quiet --trades " + dup + " --assets " + assets);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("field 'trade_id': duplicate trade id 'T1'"), std::string::npos) << r.output;

  const std::string edge = temp_file("marginet_net_edge.csv",
                                     "trade_id,buyer,seller,base_asset,quote_asset,quantity,price\n"
                                     "T1,A,B,BTC,USD,92233720368.54775808,1\n");
  r = run_marginet("net --quiet --trades " + edge + " --assets " + assets);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("field 'quantity'"), std::string::npos) << r.output;

  r = run_marginet("net --quiet --trades /nonexistent.csv --assets " + assets);
  EXPECT_EQ(r.status, 2) << r.output;
  r = run_marginet("net --quiet --assets " + assets);  // --trades missing
  EXPECT_EQ(r.status, 2) << r.output;
  r = run_marginet("net --quiet --plan star " + kInputs);
  EXPECT_EQ(r.status, 2) << r.output;
  r = run_marginet("net --quiet --deadline tomorrow --cycle-out /dev/null " + kInputs);
  EXPECT_EQ(r.status, 2) << r.output;
}

}  // namespace
}  // namespace marginet
