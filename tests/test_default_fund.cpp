// Default management as arithmetic (models/default_fund.hpp): the waterfall by hand, art. 42(3)
// and Cover-2 on a hand case of three scenarios and five members, pro-rata allocation to the
// unit, the configuration's strictness; and the stress P&L of the kernels (host/default_stress)
// against the reference path on every backend.

#include <gtest/gtest.h>

#include <numeric>

#include "host/book_generator.hpp"
#include "host/default_stress.hpp"
#include "models/default_fund.hpp"
#include "models/errors.hpp"
#include "tests/backends.hpp"

namespace marginet {
namespace {

// ---- pro rata ---------------------------------------------------------------------------------

TEST(ProRata, SharesSumToTheAmountAndLargestRemaindersGetTheUnits) {
  EXPECT_EQ(allocate_pro_rata(100, {1, 1, 1}), (std::vector<std::int64_t>{34, 33, 33}));
  EXPECT_EQ(allocate_pro_rata(5000, {4000, 4000, 3500, 3000, 4000}),
            (std::vector<std::int64_t>{1081, 1081, 946, 811, 1081}));
  EXPECT_EQ(allocate_pro_rata(7, {0, 5, 0}), (std::vector<std::int64_t>{0, 7, 0}));
  EXPECT_EQ(allocate_pro_rata(0, {0, 0}), (std::vector<std::int64_t>{0, 0}));
  const std::vector<std::int64_t> big = allocate_pro_rata(INT64_MAX, {INT64_MAX, INT64_MAX / 3, 1});
  __int128 sum = 0;
  for (std::int64_t v : big) sum += v;
  EXPECT_EQ(sum, static_cast<__int128>(INT64_MAX));
  EXPECT_THROW(allocate_pro_rata(1, {0, 0}), input_error);
  EXPECT_THROW(allocate_pro_rata(1, {-1, 2}), input_error);
}

// ---- the waterfall -------------------------------------------------------------------------------

WaterfallInputs four_layer_case(std::int64_t loss) {
  WaterfallInputs in;
  in.loss_minor = loss;
  in.margin_minor = 1000;
  in.contribution_minor = 500;
  in.skin_in_the_game_minor = 2000;
  in.survivors = {{"A", 3000}, {"B", 1000}};
  in.assessment_cap_ppm = 1'000'000;
  return in;
}

std::int64_t absorbed(const WaterfallResult& r, WaterfallLayer layer) {
  for (const LayerTotal& l : r.layers)
    if (l.layer == layer) return l.absorbed_minor;
  ADD_FAILURE() << "no layer " << to_string(layer);
  return -1;
}

TEST(Waterfall, MarginThatCoversTheLossTouchesNothingElse) {
  WaterfallInputs in = four_layer_case(900);
  const WaterfallResult r = run_waterfall(in);
  EXPECT_EQ(absorbed(r, WaterfallLayer::defaulter_margin), 900);
  EXPECT_EQ(absorbed(r, WaterfallLayer::defaulter_contribution), 0);
  EXPECT_EQ(absorbed(r, WaterfallLayer::skin_in_the_game), 0);
  EXPECT_EQ(absorbed(r, WaterfallLayer::survivors_contributions), 0);
  EXPECT_EQ(absorbed(r, WaterfallLayer::assessments), 0);
  EXPECT_EQ(r.margin_surplus_minor, 100);
  EXPECT_EQ(r.covered_minor, 900);
  EXPECT_EQ(r.uncovered_minor, 0);
  EXPECT_TRUE(r.contribution_used.empty());
  EXPECT_TRUE(r.assessed.empty());
  ASSERT_EQ(r.steps.size(), 3u);  // the three single layers, nothing per survivor
  EXPECT_EQ(r.steps[0].remaining_after_minor, 0);
}

TEST(Waterfall, EveryLayerInTurnThenAssessmentsProRata) {
  // 1000 margin + 500 contribution + 2000 skin + 4000 survivors = 7500; 2500 assessed 3:1.
  const WaterfallResult r = run_waterfall(four_layer_case(10'000));
  EXPECT_EQ(absorbed(r, WaterfallLayer::defaulter_margin), 1000);
  EXPECT_EQ(absorbed(r, WaterfallLayer::defaulter_contribution), 500);
  EXPECT_EQ(absorbed(r, WaterfallLayer::skin_in_the_game), 2000);
  EXPECT_EQ(absorbed(r, WaterfallLayer::survivors_contributions), 4000);
  EXPECT_EQ(absorbed(r, WaterfallLayer::assessments), 2500);
  EXPECT_EQ(r.contribution_used, (std::map<std::string, std::int64_t>{{"A", 3000}, {"B", 1000}}));
  EXPECT_EQ(r.assessed, (std::map<std::string, std::int64_t>{{"A", 1875}, {"B", 625}}));
  EXPECT_EQ(r.uncovered_minor, 0);
  EXPECT_EQ(r.margin_surplus_minor, 0);
  // One step per single layer, one per survivor in each pro-rata layer, in order, each
  // leaving the loss remaining after it.
  ASSERT_EQ(r.steps.size(), 7u);
  const std::vector<std::int64_t> remaining{9000, 8500, 6500, 3500, 2500, 625, 0};
  for (std::size_t i = 0; i < r.steps.size(); ++i) EXPECT_EQ(r.steps[i].remaining_after_minor, remaining[i]) << i;
  EXPECT_EQ(r.steps[3].member, "A");
  EXPECT_EQ(r.steps[6].layer, WaterfallLayer::assessments);
}

TEST(Waterfall, AssessmentsStopAtTheCapAndTheRestIsUncovered) {
  WaterfallInputs in = four_layer_case(20'000);
  const WaterfallResult capped = run_waterfall(in);
  EXPECT_EQ(absorbed(capped, WaterfallLayer::assessments), 4000);  // 1× the contributions
  EXPECT_EQ(capped.uncovered_minor, 20'000 - 7500 - 4000);
  EXPECT_EQ(absorbed(capped, WaterfallLayer::uncovered), capped.uncovered_minor);
  EXPECT_EQ(capped.steps.back().layer, WaterfallLayer::uncovered);

  in.assessment_cap_ppm = 500'000;  // 0.5×
  const WaterfallResult half = run_waterfall(in);
  EXPECT_EQ(half.assessed, (std::map<std::string, std::int64_t>{{"A", 1500}, {"B", 500}}));
  EXPECT_EQ(half.uncovered_minor, 20'000 - 7500 - 2000);
  in.assessment_cap_ppm = 0;
  EXPECT_EQ(run_waterfall(in).uncovered_minor, 20'000 - 7500);
}

TEST(Waterfall, ProRataSharesAreExactToTheUnit) {
  WaterfallInputs in;
  in.loss_minor = 100;
  in.survivors = {{"A", 1}, {"B", 1}, {"C", 1}};
  in.assessment_cap_ppm = 0;
  const WaterfallResult r = run_waterfall(in);
  // 100 over three contributions of 1: only 3 available.
  EXPECT_EQ(absorbed(r, WaterfallLayer::survivors_contributions), 3);
  in.survivors = {{"A", 100}, {"B", 100}, {"C", 100}};
  const WaterfallResult s = run_waterfall(in);
  EXPECT_EQ(s.contribution_used, (std::map<std::string, std::int64_t>{{"A", 34}, {"B", 33}, {"C", 33}}));
  EXPECT_THROW(run_waterfall(WaterfallInputs{-1, 0, 0, 0, {}, 0}), input_error);
}

// ---- sizing ------------------------------------------------------------------------------------

/// Three scenarios, five members (losses positive):
///            IM   s0   s1   s2        U(s0) U(s1) U(s2)
///   M1       10   50   10    0         40     0     0
///   M2       20   30   60   20         10    40     0
///   M3        5   25   40    5         20    35     0
///   M4        0    0   15   30          0    15    30
///   M5       30   20   35   70          0     5    40
/// art. 42(3) per scenario: s0 max(40, 20+10) = 40, s1 max(40, 35+15) = 50, s2 max(40, 30) = 40.
/// Cover-2: s0 60, s1 75, s2 70.
std::vector<MemberStress> five_members() {
  return {{"M1", 10, {50, 10, 0}}, {"M2", 20, {30, 60, 20}}, {"M3", 5, {25, 40, 5}},
          {"M4", 0, {0, 15, 30}},  {"M5", 30, {20, 35, 70}}};
}

TEST(FundSizing, Art42AndCover2OnAHandCase) {
  DefaultFundConfig c;
  c.minimum_contribution_minor = 900;  // 9.00
  const FundSizing f = size_default_fund(five_members(), {"s0", "s1", "s2"}, c);
  EXPECT_DOUBLE_EQ(f.art42, 50.0);
  EXPECT_EQ(f.art42_scenario, 1);
  EXPECT_EQ(f.art42_groups, (std::vector<std::string>{"M3", "M4"}));  // U₍₂₎ + U₍₃₎ sizes it
  EXPECT_DOUBLE_EQ(f.cover2, 75.0);
  EXPECT_EQ(f.cover2_scenario, 1);
  EXPECT_EQ(f.cover2_groups, (std::vector<std::string>{"M2", "M3"}));
  EXPECT_EQ(f.fund_minor, 5000);
  // Exposures 40, 40, 35, 30, 40: 5000 pro rata is 1081, 1081, 946, 811, 1081; M4 raised to 900.
  ASSERT_EQ(f.members.size(), 5u);
  const std::vector<std::int64_t> want{1081, 1081, 946, 900, 1081};
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(f.members[i].contribution_minor, want[i]) << f.members[i].member;
  EXPECT_EQ(f.contributions_minor, 1081 * 3 + 946 + 900);
  EXPECT_DOUBLE_EQ(f.members[2].exposure, 35.0);
  EXPECT_EQ(f.members[2].exposure_scenario, 1);
}

TEST(FundSizing, AffiliatesCountTogether) {
  DefaultFundConfig c;
  c.group_of = {{"M3", "G"}, {"M4", "G"}};
  // G: IM 5, losses 25, 55, 35 -> U 20, 50, 30. s1: G 50, M2 40 -> art42 max(50, 40+5) = 50,
  // Cover-2 90 (G + M2).
  const FundSizing f = size_default_fund(five_members(), {"s0", "s1", "s2"}, c);
  ASSERT_EQ(f.groups.size(), 4u);
  EXPECT_DOUBLE_EQ(f.art42, 50.0);
  EXPECT_EQ(f.art42_groups, (std::vector<std::string>{"G"}));
  EXPECT_DOUBLE_EQ(f.cover2, 90.0);
  EXPECT_EQ(f.cover2_groups, (std::vector<std::string>{"G", "M2"}));
  EXPECT_EQ(f.groups[0].group, "G");
  EXPECT_EQ(f.groups[0].members, (std::vector<std::string>{"M3", "M4"}));
  EXPECT_DOUBLE_EQ(f.groups[0].worst_uncovered, 50.0);
}

TEST(FundSizing, FewerThanThreeGroupsAndNoExposure) {
  DefaultFundConfig c;
  c.minimum_contribution_minor = 100;
  const FundSizing one = size_default_fund({{"A", 10, {25}}}, {"s"}, c);
  EXPECT_DOUBLE_EQ(one.art42, 15.0);
  EXPECT_DOUBLE_EQ(one.cover2, 15.0);
  EXPECT_EQ(one.members[0].contribution_minor, 1500);
  const FundSizing none = size_default_fund({{"A", 100, {25}}, {"B", 100, {-5}}}, {"s"}, c);
  EXPECT_EQ(none.fund_minor, 0);
  EXPECT_EQ(none.members[0].contribution_minor, 100);  // the minimum only
  EXPECT_THROW(size_default_fund({{"A", 1, {1, 2}}}, {"s"}, c), input_error);
  EXPECT_THROW(size_default_fund({{"A", 1, {std::nan("")}}}, {"s"}, c), input_error);
}

// ---- the configuration ------------------------------------------------------------------------------

TEST(DefaultFundConfig, BuiltInHasHistoricalAndHypotheticalScenariosOverTheHoldingPeriod) {
  const DefaultFundConfig c = builtin_default_fund_config();
  ASSERT_EQ(c.scenarios.size(), 6u);
  EXPECT_EQ(c.scenarios[0].kind, "historical");
  EXPECT_EQ(c.scenarios[2].kind, "hypothetical");
  EXPECT_EQ(c.skin_in_the_game_minor(), 250'000'000);  // 25 % of 10,000,000.00
  const ScenarioSet set = parse_stress_scenarios(c.scenarios_json, "built-in", {"BTC", "ETH"});
  ASSERT_EQ(set.count, 6u);
  EXPECT_DOUBLE_EQ(set.shock(2, 0).price_move, -0.5);
  EXPECT_DOUBLE_EQ(set.shock(2, 1).price_move, -0.55);
  EXPECT_DOUBLE_EQ(set.shock(2, 0).days, 2.0);  // no "days": the holding period
}

TEST(DefaultFundConfig, UnknownKeysAndBadValuesNameTheField) {
  auto error_of = [](const std::string& text) {
    try {
      parse_default_fund_config(text, "df.json");
    } catch (const input_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string scenarios = R"("scenarios": [{"name": "x", "shocks": {"BTC": {"move": -0.1}}}])";
  EXPECT_NE(error_of(R"({"assesment_cap": 1, )" + scenarios + "}").find("did you mean 'assessment_cap'"), std::string::npos);
  EXPECT_NE(error_of(R"({"ccp": {"skin_in_game_share": 0.2}, )" + scenarios + "}").find("ccp.skin_in_game_share"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"scenarios": [{"name": "x", "shocks": {"BTC": {"mvoe": -0.1}}}]})").find("did you mean 'move'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"minimum_contribution": "12.345", )" + scenarios + "}").find("minimum_contribution"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"groups": {"G": ["A"], "H": ["A"]}, )" + scenarios + "}").find("already in group"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"scenarios": []})").find("scenarios"), std::string::npos);
  EXPECT_NE(error_of(R"({"scenarios": [{"name": "x", "kind": "imagined", "shocks": {"*": {"move": 0.1}}}]})")
                .find("historical or hypothetical"),
            std::string::npos);
  const DefaultFundConfig ok = parse_default_fund_config(
      R"({"minimum_contribution": "12.34", "assessment_cap": 2.5, "holding_period_days": 5,
          "groups": {"G": ["A", "B"]}, )" + scenarios + "}",
      "df.json");
  EXPECT_EQ(ok.minimum_contribution_minor, 1234);
  EXPECT_EQ(ok.assessment_cap_ppm, 2'500'000);
  EXPECT_EQ(ok.group("A"), "G");
  EXPECT_EQ(ok.group("C"), "C");
  EXPECT_NE(ok.scenarios_json.find("\"days\":5"), std::string::npos);
}

// ---- stress P&L on the kernels ------------------------------------------------------------------------

class DefaultStress : public testing::BackendTest {};

TEST_P(DefaultStress, MemberLossesEqualTheReferencePath) {
  BookSpec spec;
  spec.underlyings = 3;
  spec.instruments = 200;
  spec.accounts = 30;
  spec.positions = 1200;
  spec.seed = 16;
  GeneratedBook book = generate_book(spec);
  // Accounts into ten members.
  for (Position& p : book.positions) p.account = "M" + std::to_string(std::hash<std::string>()(p.account) % 10);
  const DefaultFundConfig c = builtin_default_fund_config();
  const MemberStressRun run = run_member_stress(book.instruments, book.market, c, book.positions, {{"IDLE", 5.0}}, backend());
  const AccountPnlMatrix ref =
      reference_account_pnl(book.instruments, book.market, default_scenarios_methodology(c), book.positions);
  ASSERT_EQ(run.scenarios.size(), c.scenarios.size());
  ASSERT_EQ(run.members.size(), ref.accounts.size() + 1);  // + the member with IM and no positions
  std::size_t compared = 0;
  for (const MemberStress& m : run.members) {
    if (m.member == "IDLE") {
      EXPECT_DOUBLE_EQ(m.im, 5.0);
      EXPECT_EQ(m.loss, std::vector<double>(c.scenarios.size(), 0.0));
      continue;
    }
    const auto a = static_cast<std::size_t>(std::find(ref.accounts.begin(), ref.accounts.end(), m.member) - ref.accounts.begin());
    ASSERT_LT(a, ref.accounts.size()) << m.member;
    for (std::size_t s = 0; s < ref.scenarios; ++s) {
      EXPECT_TRUE(testing::near_relative(m.loss[s], -ref.row(a)[s], 1e-12, 1e-6)) << m.member << " s" << s;
      ++compared;
    }
  }
  EXPECT_EQ(compared, ref.accounts.size() * c.scenarios.size());
}

MARGINET_INSTANTIATE_BACKENDS(DefaultStress);

}  // namespace
}  // namespace marginet
