// The settlement cycle's file form (models/settlement_cycle.hpp): JSON round trip, validation of
// what the scheduler relies on, and the CSV form.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "models/errors.hpp"
#include "models/settlement_cycle.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

SettlementCycle sample() {
  SettlementCycle c;
  c.cycle_id = "2024-06-28/1";
  c.deadline = 1719565200;  // 2024-06-28T09:00:00Z
  c.assets = {{"BTC", 8}, {"USD", 2}, {"ETH", 9}};
  c.instructions = {
      {"2024-06-28/1/M1/BTC/in", "M1", "BTC", Leg::pay_in, ObligationKind::net, 150000000},
      {"2024-06-28/1/M2/BTC/out", "M2", "BTC", Leg::pay_out, ObligationKind::net, 150000000},
      {"2024-06-28/1/M1/USD/in/margin_call", "M1", "USD", Leg::pay_in, ObligationKind::margin_call, 1},
      {"2024-06-28/1/M3/ETH/out", "M3", "ETH", Leg::pay_out, ObligationKind::net, INT64_MAX},
  };
  return c;
}

void expect_same(const SettlementCycle& a, const SettlementCycle& b) {
  EXPECT_EQ(a.cycle_id, b.cycle_id);
  EXPECT_EQ(a.deadline, b.deadline);
  ASSERT_EQ(a.assets.size(), b.assets.size());
  for (std::size_t i = 0; i < a.assets.size(); ++i) {
    EXPECT_EQ(a.assets[i].asset, b.assets[i].asset);
    EXPECT_EQ(a.assets[i].scale, b.assets[i].scale);
  }
  ASSERT_EQ(a.instructions.size(), b.instructions.size());
  for (std::size_t i = 0; i < a.instructions.size(); ++i) {
    const auto &x = a.instructions[i], &y = b.instructions[i];
    EXPECT_EQ(x.instruction_id, y.instruction_id);
    EXPECT_EQ(x.member, y.member);
    EXPECT_EQ(x.asset, y.asset);
    EXPECT_EQ(x.leg, y.leg);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.amount, y.amount);
  }
}

/// The input_error message of parsing `json`, or "" when it parses.
std::string error_of(const std::string& json) {
  try {
    parse_cycle_json(json, "cycle.json");
  } catch (const input_error& e) {
    return e.what();
  }
  return "";
}

TEST(SettlementCycle, Names) {
  EXPECT_STREQ(leg_name(Leg::pay_in), "pay_in");
  EXPECT_STREQ(leg_name(Leg::pay_out), "pay_out");
  EXPECT_STREQ(obligation_kind_name(ObligationKind::net), "net");
  EXPECT_STREQ(obligation_kind_name(ObligationKind::margin_call), "margin_call");
  Leg leg{};
  EXPECT_TRUE(parse_leg("pay_out", leg));
  EXPECT_EQ(leg, Leg::pay_out);
  EXPECT_FALSE(parse_leg("payout", leg));
  ObligationKind kind{};
  EXPECT_TRUE(parse_obligation_kind("margin_call", kind));
  EXPECT_EQ(kind, ObligationKind::margin_call);
  EXPECT_FALSE(parse_obligation_kind("call", kind));
}

TEST(SettlementCycle, JsonRoundTripThroughTextAndFile) {
  const SettlementCycle c = sample();
  std::ostringstream out;
  write_cycle_json(out, c);
  const std::string text = out.str();
  EXPECT_NE(text.find("\"amount\": \"1.50000000\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"amount_minor\": 150000000"), std::string::npos) << text;
  EXPECT_NE(text.find("\"deadline\": \"2024-06-28T09:00:00Z\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"kind\": \"margin_call\""), std::string::npos) << text;
  expect_same(c, parse_cycle_json(text, "mem"));

  const std::string path = marginet::testing::scratch_dir() + "/marginet_cycle_roundtrip.json";
  {
    std::ofstream f(path);
    write_cycle_json(f, c);
  }
  expect_same(c, read_cycle_json(path));
  std::remove(path.c_str());

  // Through a JSON value too (what a msgpack decoder hands over).
  expect_same(c, cycle_from_json(nlohmann::json::parse(cycle_to_json(c).dump()), "value"));
}

TEST(SettlementCycle, AmountTextAloneMinorAloneOrBothAgreeing) {
  const std::string head = R"({"cycle_id":"c","deadline":"2024-06-28T09:00:00Z","assets":[{"asset":"BTC","scale":8}],"instructions":[)";
  const auto one = [&](const std::string& amount) {
    return parse_cycle_json(head + R"({"instruction_id":"i","member":"M","asset":"BTC","leg":"pay_in",)" + amount + "}]}",
                            "cycle.json");
  };
  EXPECT_EQ(one(R"("amount":"0.5")").instructions[0].amount, 50000000);
  EXPECT_EQ(one(R"("amount_minor":7)").instructions[0].amount, 7);
  EXPECT_EQ(one(R"("amount":"0.00000007","amount_minor":7)").instructions[0].amount, 7);
  EXPECT_EQ(one(R"("amount":"1")").instructions[0].kind, ObligationKind::net);  // kind defaults to net
  EXPECT_THROW(one(R"("amount":"0.00000008","amount_minor":7)"), input_error);
  EXPECT_THROW(one(R"("amount":"0.000000001")"), input_error);  // too many decimals
  EXPECT_THROW(one(R"("amount_minor":9223372036854775808)"), input_error);  // beyond int64
  EXPECT_THROW(one(R"("amount_minor":0)"), input_error);
  EXPECT_THROW(one(R"("amount_minor":-5)"), input_error);
  EXPECT_THROW(one(R"("amount_minor":1.5)"), input_error);
  EXPECT_THROW(one(R"("note":"no amount")"), input_error);
  // A numeric deadline (Unix seconds) is accepted too.
  const SettlementCycle c = parse_cycle_json(
      R"({"cycle_id":"c","deadline":1719565200,"assets":[],"instructions":[]})", "x");
  EXPECT_EQ(c.deadline, 1719565200.0);
}

TEST(SettlementCycle, RejectsWhatTheSchedulerCannotSettle) {
  const std::string ok = R"({"cycle_id":"c","assets":[{"asset":"BTC","scale":8}],"instructions":[)"
                         R"({"instruction_id":"i1","member":"M","asset":"BTC","leg":"pay_in","amount_minor":1}]})";
  EXPECT_EQ(error_of(ok), "");
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[]").find("object"), std::string::npos);
  EXPECT_NE(error_of(R"({"assets":[],"instructions":[]})").find("cycle_id"), std::string::npos);
  EXPECT_NE(error_of(R"({"cycle_id":"","assets":[],"instructions":[]})").find("cycle_id"), std::string::npos);
  EXPECT_NE(error_of(R"({"cycle_id":"c","instructions":[]})").find("assets"), std::string::npos);
  EXPECT_NE(error_of(R"({"cycle_id":"c","deadline":"tomorrow","assets":[],"instructions":[]})").find("deadline"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cycle_id":"c","assets":[{"asset":"BTC","scale":19}],"instructions":[]})").find("scale"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cycle_id":"c","assets":[{"asset":"BTC","scale":8},{"asset":"BTC","scale":8}],"instructions":[]})")
                .find("twice"),
            std::string::npos);
  const std::string head = R"({"cycle_id":"c","assets":[{"asset":"BTC","scale":8}],"instructions":[)";
  EXPECT_NE(error_of(head + R"({"instruction_id":"i","member":"M","asset":"ETH","leg":"pay_in","amount_minor":1}]})")
                .find("not in the cycle's assets"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"({"instruction_id":"i","member":"M","asset":"BTC","leg":"in","amount_minor":1}]})")
                .find("leg"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"({"instruction_id":"i","member":"M","asset":"BTC","leg":"pay_in","kind":"fee","amount_minor":1}]})")
                .find("kind"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"({"instruction_id":"i","member":"M","asset":"BTC","leg":"pay_in","amount_minor":1},)"
                            R"({"instruction_id":"i","member":"N","asset":"BTC","leg":"pay_out","amount_minor":1}]})")
                .find("duplicate instruction id"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"({"instruction_id":"i","member":"","asset":"BTC","leg":"pay_in","amount_minor":1}]})")
                .find("member"),
            std::string::npos);
  EXPECT_THROW(read_cycle_json("/nonexistent/cycle.json"), input_error);
}

TEST(SettlementCycle, ValidateCatchesBuiltCyclesToo) {
  SettlementCycle c = sample();
  EXPECT_NO_THROW(validate_cycle(c, "built"));
  c.instructions[1].instruction_id = c.instructions[0].instruction_id;
  EXPECT_THROW(validate_cycle(c, "built"), input_error);
  c = sample();
  c.instructions[0].amount = 0;
  EXPECT_THROW(validate_cycle(c, "built"), input_error);
  EXPECT_EQ(cycle_asset_scale(sample(), "ETH"), 9);
  EXPECT_EQ(cycle_asset_scale(sample(), "SOL"), -1);
}

TEST(SettlementCycle, CsvForm) {
  std::ostringstream out;
  write_cycle_csv(out, sample());
  const std::string text = out.str();
  EXPECT_EQ(text.substr(0, text.find('\n')), "cycle_id,instruction_id,member,asset,leg,kind,amount,amount_minor");
  EXPECT_NE(text.find("2024-06-28/1,2024-06-28/1/M1/BTC/in,M1,BTC,pay_in,net,1.50000000,150000000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("M1,USD,pay_in,margin_call,0.01,1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("M3,ETH,pay_out,net,9223372036.854775807,9223372036854775807\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace marginet
