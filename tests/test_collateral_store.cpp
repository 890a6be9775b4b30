// The clearing store's collateral, call runs and outbox (SPEC §9, docs/clearing.md "Collateral
// and calls"): balances equal their movements, idempotent deposits and withdrawals, a run id
// used once, the outbox's states, and settlement reports applied exactly once.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "models/errors.hpp"
#include "models/settlement_cycle.hpp"
#include "service/clearing/clearing_store.hpp"

namespace {

namespace fs = std::filesystem;
using namespace marginet;

class CollateralStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "marginet_collateral_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (fs::path(dir_) / "clearing.sqlite").string();
    store_ = open_clearing_store(path_, OpenMode::writer);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  std::int64_t balance(const std::string& account, const std::string& asset) const {
    for (const BalanceRow& b : store_->balances(account))
      if (b.asset == asset) return b.amount_minor;
    return 0;
  }

  /// A call run of `calls` (account, call in USD cents), its cycle of margin-call pay-ins.
  std::pair<CallRun, std::optional<SettlementCycle>> make_run(const std::string& run_id,
                                                             const std::vector<std::pair<std::string, std::int64_t>>& calls) {
    CallRun run;
    run.run_id = run_id;
    run.kind = "on_demand";
    run.at = "2026-12-02T16:00:00.000Z";
    run.model = "span16";
    run.asset = "USD";
    run.scale = 2;
    SettlementCycle cycle;
    cycle.cycle_id = "calls-" + run_id;
    cycle.deadline = 1.9e9;
    cycle.assets.push_back({"USD", 2});
    for (const auto& [account, call] : calls) {
      CallRecord c;
      c.account = account;
      c.im = 1000;
      c.mm = 800;
      c.call_minor = call;
      if (call > 0) {
        c.instruction_id = cycle.cycle_id + "/" + account + "/USD/in/margin_call";
        c.state = "pending";
        SettlementInstruction in;
        in.instruction_id = c.instruction_id;
        in.member = account;
        in.asset = "USD";
        in.leg = Leg::pay_in;
        in.kind = ObligationKind::margin_call;
        in.amount = call;
        cycle.instructions.push_back(in);
      }
      run.calls.push_back(c);
    }
    if (cycle.instructions.empty()) return {run, std::nullopt};
    run.cycle_id = cycle.cycle_id;
    return {run, cycle};
  }

  static SettlementReport report_of(const SettlementCycle& cycle, const std::string& state, bool complete,
                                    const std::string& each) {
    SettlementReport r;
    r.cycle_id = cycle.cycle_id;
    r.cycle_state = state;
    r.complete = complete;
    for (const SettlementInstruction& in : cycle.instructions)
      r.instructions.push_back({in.instruction_id, in.amount, each == "final" ? in.amount : 0, each});
    return r;
  }

  std::string dir_, path_;
  std::unique_ptr<ClearingStore> store_;
};

TEST_F(CollateralStoreTest, DepositsAndWithdrawalsKeepBalancesEqualToMovements) {
  const CollateralResult d = store_->deposit({"A1", "USDC", 150'000'000000, "dep-1"});
  ASSERT_EQ(d.outcome, Outcome::recorded) << d.message;
  EXPECT_EQ(d.balance_minor, 150'000'000000);
  EXPECT_EQ(d.scale, 6);
  // The same reference again: a duplicate, nothing changes; other contents: a conflict.
  EXPECT_EQ(store_->deposit({"A1", "USDC", 150'000'000000, "dep-1"}).outcome, Outcome::duplicate);
  const CollateralResult c = store_->deposit({"A1", "USDC", 1, "dep-1"});
  EXPECT_EQ(c.outcome, Outcome::conflict);
  EXPECT_NE(c.message.find("other contents"), std::string::npos) << c.message;
  EXPECT_EQ(balance("A1", "USDC"), 150'000'000000);
  // The account was registered by its first deposit, owned by a member of its name.
  ASSERT_EQ(store_->accounts().size(), 1u);
  EXPECT_EQ(store_->accounts()[0].member, "A1");

  const CollateralResult w = store_->withdraw({"A1", "USDC", 50'000'000000, "wd-1"}, std::nullopt);
  ASSERT_EQ(w.outcome, Outcome::recorded) << w.message;
  EXPECT_EQ(w.balance_minor, 100'000'000000);
  // More than the balance: refused with the figures, nothing changes.
  const CollateralResult big = store_->withdraw({"A1", "USDC", 100'000'000001, "wd-2"}, std::nullopt);
  EXPECT_EQ(big.outcome, Outcome::rejected);
  EXPECT_NE(big.message.find("holds 100000.000000 USDC"), std::string::npos) << big.message;
  EXPECT_EQ(balance("A1", "USDC"), 100'000'000000);
  // Bad input is an outcome, not a crash.
  EXPECT_EQ(store_->deposit({"A1", "DOGE", 1, ""}).outcome, Outcome::rejected);
  EXPECT_EQ(store_->deposit({"A1", "USDC", 0, ""}).outcome, Outcome::rejected);
  EXPECT_EQ(store_->deposit({"A1", "USDC", -5, ""}).outcome, Outcome::rejected);
  EXPECT_EQ(store_->deposit({"bad\x01" "account", "USDC", 5, ""}).outcome, Outcome::rejected);
  EXPECT_EQ(store_->deposit({"A1", "USDC", INT64_MAX, ""}).outcome, Outcome::rejected);  // overflow
  // A withdrawal of everything leaves no balance row.
  ASSERT_EQ(store_->withdraw({"A1", "USDC", 100'000'000000, ""}, std::nullopt).outcome, Outcome::recorded);
  EXPECT_TRUE(store_->balances("A1").empty());

  const auto moves = store_->movements("A1");
  ASSERT_EQ(moves.size(), 3u);
  EXPECT_EQ(moves[0].kind, MovementKind::deposit);
  EXPECT_EQ(moves[1].amount_minor, -50'000'000000);
  EXPECT_EQ(moves[2].reference, "");
  const CollateralVerifyReport v = store_->verify_collateral();
  EXPECT_TRUE(v.ok) << v.summary();
  EXPECT_EQ(v.movements, 3);
}

TEST_F(CollateralStoreTest, AssetsHaveOneScale) {
  EXPECT_EQ(store_->asset_scales().at("BTC"), 8);
  store_->add_asset("SOL", 9);
  store_->add_asset("SOL", 9);  // the same again is fine
  EXPECT_THROW(store_->add_asset("SOL", 6), input_error);
  EXPECT_THROW(store_->add_asset("X", 19), input_error);
  EXPECT_EQ(store_->deposit({"A1", "SOL", 1'500000000, ""}).outcome, Outcome::recorded);
}

TEST_F(CollateralStoreTest, CallRunGoesToTheOutboxOnceAndSettlesExactlyOnce) {
  ASSERT_EQ(store_->deposit({"A1", "USD", 10'000'00, "d1"}).outcome, Outcome::recorded);
  auto [run, cycle] = make_run("run-1", {{"A1", 2'500'00}, {"A2", 0}, {"A3", 1'234'57}});
  ASSERT_TRUE(cycle);
  ASSERT_EQ(store_->record_call_run(run, cycle), Outcome::recorded);
  // A run id is used once: a second record changes nothing.
  auto [again, again_cycle] = make_run("run-1", {{"A1", 9'999'99}});
  EXPECT_EQ(store_->record_call_run(again, again_cycle), Outcome::duplicate);
  EXPECT_EQ(store_->call_run_ids(), std::vector<std::string>{"run-1"});

  const auto pending = store_->pending_calls("USD");
  EXPECT_EQ(pending.at("A1"), 2'500'00);
  EXPECT_EQ(pending.at("A3"), 1'234'57);
  EXPECT_EQ(pending.count("A2"), 0u);

  OutboxStats st = store_->outbox_stats();
  EXPECT_EQ(st.unacked, 1);
  EXPECT_EQ(st.oldest_unacked, "calls-run-1");
  auto due = store_->outbox_due(4e9, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].state, "pending");
  EXPECT_EQ(due[0].cycle.instructions.size(), 2u);
  store_->outbox_attempted("calls-run-1", 4e9 + 1);
  EXPECT_TRUE(store_->outbox_due(4e9, 10).empty());  // backing off
  store_->outbox_acked("calls-run-1", "recorded", "2 instructions, durable", 0);
  st = store_->outbox_stats();
  EXPECT_EQ(st.unacked, 0);
  EXPECT_EQ(st.unsettled, 1);
  EXPECT_EQ(store_->outbox_entry("calls-run-1")->attempts, 1);

  // A report of a cycle still open changes no balance.
  ReportApplied a = store_->apply_settlement_report(report_of(*cycle, "open", false, "pending"));
  EXPECT_TRUE(a.known);
  EXPECT_FALSE(a.completed);
  EXPECT_EQ(balance("A1", "USD"), 10'000'00);

  // Complete: each final call credits its account once.
  const SettlementReport done = report_of(*cycle, "closed", true, "final");
  a = store_->apply_settlement_report(done);
  EXPECT_TRUE(a.completed);
  EXPECT_EQ(a.credits, 2);
  EXPECT_EQ(balance("A1", "USD"), 12'500'00);
  EXPECT_EQ(balance("A3", "USD"), 1'234'57);
  // Redelivered: nothing changes.
  a = store_->apply_settlement_report(done);
  EXPECT_EQ(a.credits, 0);
  EXPECT_FALSE(a.completed);
  EXPECT_EQ(balance("A1", "USD"), 12'500'00);
  EXPECT_TRUE(store_->pending_calls("USD").empty());
  EXPECT_EQ(store_->outbox_stats().settled, 1);

  const auto shown = store_->call_run("");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->run_id, "run-1");
  EXPECT_EQ(shown->cycle_state, "settled");
  ASSERT_EQ(shown->calls.size(), 3u);
  EXPECT_EQ(shown->calls[0].state, "final");
  EXPECT_EQ(shown->calls[0].settled_minor, 2'500'00);
  EXPECT_EQ(shown->calls[1].state, "none");
  EXPECT_TRUE(store_->verify_collateral().ok) << store_->verify_collateral().summary();
}

TEST_F(CollateralStoreTest, DefaultedCallCreditsNothingAndRejectedCycleCancelsItsCalls) {
  auto [run, cycle] = make_run("run-2", {{"A1", 500'00}, {"A2", 700'00}});
  ASSERT_EQ(store_->record_call_run(run, cycle), Outcome::recorded);
  SettlementReport r = report_of(*cycle, "closed", true, "final");
  r.instructions[1].state = "defaulted";
  r.instructions[1].settled = 0;
  // The ack was lost but the report came: it counts as acknowledged.
  const ReportApplied a = store_->apply_settlement_report(r);
  EXPECT_TRUE(a.completed);
  EXPECT_EQ(balance("A1", "USD"), 500'00);
  EXPECT_EQ(balance("A2", "USD"), 0);
  EXPECT_EQ(store_->call_run("run-2")->calls[1].state, "defaulted");

  auto [run3, cycle3] = make_run("run-3", {{"A1", 100'00}});
  ASSERT_EQ(store_->record_call_run(run3, cycle3), Outcome::recorded);
  store_->outbox_acked("calls-run-3", "rejected", "bad cycle", 0);
  EXPECT_EQ(store_->outbox_entry("calls-run-3")->state, "rejected");
  EXPECT_EQ(store_->call_run("run-3")->calls[0].state, "rejected");
  EXPECT_TRUE(store_->pending_calls("USD").empty());
  EXPECT_TRUE(store_->outbox_due(4e9, 10).empty());
}

TEST_F(CollateralStoreTest, UnknownAtTheSchedulerIsSentAgain) {
  auto [run, cycle] = make_run("run-4", {{"A1", 100'00}});
  ASSERT_EQ(store_->record_call_run(run, cycle), Outcome::recorded);
  store_->outbox_acked("calls-run-4", "recorded", "", 4e9);
  EXPECT_TRUE(store_->outbox_due(1e9, 10).empty());
  store_->apply_settlement_report(report_of(*cycle, "unknown", false, "pending"));
  const auto due = store_->outbox_due(1e9, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].state, "pending");
}

TEST_F(CollateralStoreTest, WithdrawalPayoutInTheOutboxAndReturnedWhenNotPaid) {
  ASSERT_EQ(store_->deposit({"A1", "USD", 1'000'00, ""}).outcome, Outcome::recorded);
  SettlementCycle payout;
  payout.cycle_id = "withdrawal-w1";
  payout.deadline = 1.9e9;
  payout.assets.push_back({"USD", 2});
  payout.instructions.push_back({"withdrawal-w1/A1/USD/out", "A1", "USD", Leg::pay_out, ObligationKind::margin_call, 400'00});
  const CollateralResult w = store_->withdraw({"A1", "USD", 400'00, "w1"}, payout);
  ASSERT_EQ(w.outcome, Outcome::recorded) << w.message;
  EXPECT_EQ(w.cycle_id, "withdrawal-w1");
  EXPECT_EQ(balance("A1", "USD"), 600'00);
  // The same withdrawal again: nothing more leaves, no second cycle.
  EXPECT_EQ(store_->withdraw({"A1", "USD", 400'00, "w1"}, payout).outcome, Outcome::duplicate);
  EXPECT_EQ(store_->outbox_stats().unacked, 1);
  SettlementReport r = report_of(payout, "closed", true, "defaulted");
  const ReportApplied a = store_->apply_settlement_report(r);
  EXPECT_EQ(a.returns, 1);
  EXPECT_EQ(balance("A1", "USD"), 1'000'00);
  EXPECT_TRUE(store_->verify_collateral().ok);
}

TEST_F(CollateralStoreTest, NetCyclesAreIdempotentByIdAndContents) {
  SettlementCycle net;
  net.cycle_id = "net-1";
  net.deadline = 1.9e9;
  net.assets.push_back({"BTC", 8});
  net.instructions.push_back({"net-1/M1/BTC/in", "M1", "BTC", Leg::pay_in, ObligationKind::net, 5});
  net.instructions.push_back({"net-1/M2/BTC/out", "M2", "BTC", Leg::pay_out, ObligationKind::net, 5});
  EXPECT_EQ(store_->outbox_put("net", net), Outcome::recorded);
  EXPECT_EQ(store_->outbox_put("net", net), Outcome::duplicate);
  net.instructions[0].amount = 6;
  EXPECT_EQ(store_->outbox_put("net", net), Outcome::conflict);
  EXPECT_EQ(store_->outbox_stats().unacked, 1);
}

TEST_F(CollateralStoreTest, SurvivesReopening) {
  ASSERT_EQ(store_->deposit({"A1", "BTC", 150000000, "d"}).outcome, Outcome::recorded);
  auto [run, cycle] = make_run("run-5", {{"A1", 100'00}});
  ASSERT_EQ(store_->record_call_run(run, cycle), Outcome::recorded);
  store_.reset();
  auto reader = open_clearing_store(path_, OpenMode::reader);
  EXPECT_EQ(reader->balances("A1").at(0).amount_minor, 150000000);
  EXPECT_EQ(reader->outbox_stats().unacked, 1);
  EXPECT_EQ(reader->call_run("run-5")->calls.at(0).call_minor, 100'00);
}

}  // namespace
