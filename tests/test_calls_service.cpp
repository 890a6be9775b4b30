// Collateral and calls through the service (SPEC §9; docs/clearing.md "Collateral and calls"):
// the real `marginet serve --store --scheduler` against a scheduler played by this test (a
// ROUTER socket), so that every message of the hand-off can be looked at, withheld or repeated.
//
// What is checked: margin and what-if queries leave the store and the outbox unchanged; a
// withdrawal that would leave IM uncovered is refused with its figures, the excess may leave; a
// call run's calls are max(0, IM − collateral value) rounded up to the cent; an unacknowledged
// cycle is resent; a report credits each final call once, and a redelivered report changes
// nothing; `net` cycles go through the outbox, a trade id starting with '#' included.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "models/settlement_cycle.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/client.hpp"
#include "service/settlement/wire.hpp"
#include "tests/run_command.hpp"
#include "tests/server_process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace marginet;
using json = nlohmann::ordered_json;

std::string ex(const char* name) { return std::string(MARGINET_SOURCE_DIR) + "/examples/" + name; }

/// The scheduler's side of the link, played by the test.
struct FakeScheduler {
  zmq::context_t ctx;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string endpoint;

  FakeScheduler() {
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    endpoint = router.get(zmq::sockopt::last_endpoint);
  }
  struct Message {
    std::string peer, frame, type;
  };
  /// The next message, or nullopt after `ms`.
  std::optional<Message> receive(int ms = 15'000) {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(ms)) == 0) return std::nullopt;
    zmq::message_t peer, frame;
    (void)router.recv(peer);
    (void)router.recv(frame);
    Message m{peer.to_string(), frame.to_string(), ""};
    m.type = settlement_message_type(m.frame);
    return m;
  }
  /// The next message of `type` (others are dropped unanswered).
  Message expect(const std::string& type) {
    for (int i = 0; i < 100; ++i) {
      auto m = receive();
      if (!m) break;
      if (m->type == type) return *m;
    }
    ADD_FAILURE() << "no " << type << " from the server";
    return {};
  }
  void send(const std::string& peer, const std::string& frame) {
    router.send(zmq::buffer(peer), zmq::send_flags::sndmore);
    router.send(zmq::buffer(frame), zmq::send_flags::none);
  }
};

class CallsService : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "marginet_calls_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = dir_ + "/clearing.sqlite";
    server_ = std::make_unique<marginet::testing::ServerProcess>(
        "--device cpu --quiet --model span16 --instruments " + ex("instruments.csv") + " --market " + ex("market.csv") +
        " --marks " + ex("marks.csv") + " --store " + store_ + " --scheduler " + sched_.endpoint);
    ClientOptions co;
    co.endpoint = server_->endpoint();
    client_ = std::make_unique<MarginClient>(co);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    fs::remove_all(dir_);
  }
  json call(const json& request) { return client_->call(request); }
  void submit(const std::string& id, const std::string& account, const std::string& instrument, const std::string& qty) {
    const json leg = {{"source", "t"}, {"trade_id", id}, {"account", account}, {"instrument", instrument},
                      {"quantity", qty}, {"price", "60000"}, {"time", "2024-06-28T08:00:00Z"}};
    const json r = call({{"type", "trade.submit"}, {"trade", leg}});
    ASSERT_EQ(r["type"], "trade.submit.result") << r.dump();
  }
  /// Everything the store holds that a query must not change.
  std::string store_state() {
    auto s = open_clearing_store(store_, OpenMode::reader);
    const OutboxStats o = s->outbox_stats();
    std::string out = std::to_string(o.unacked) + "/" + std::to_string(o.unsettled) + "/" + std::to_string(o.settled) +
                      "/" + std::to_string(s->movements().size()) + "/" + std::to_string(s->call_run_ids().size()) +
                      "/" + std::to_string(s->journal_size());
    for (const BalanceRow& b : s->balances()) out += "/" + b.account + b.asset + std::to_string(b.amount_minor);
    return out;
  }
  std::int64_t balance(const std::string& account, const std::string& asset) {
    for (const BalanceRow& b : open_clearing_store(store_, OpenMode::reader)->balances(account))
      if (b.asset == asset) return b.amount_minor;
    return 0;
  }

  FakeScheduler sched_;
  std::string dir_, store_;
  std::unique_ptr<marginet::testing::ServerProcess> server_;
  std::unique_ptr<MarginClient> client_;
};

TEST_F(CallsService, QueriesHaveNoSideEffects) {
  submit("T1", "DESK-A", "BTC-PERPETUAL", "5");
  submit("T2", "DESK-B", "BTC-28JUN24", "-3");
  const std::string before = store_state();
  const std::vector<protocol::InlinePosition> book = {{"DESK-A", "BTC-PERPETUAL", 5.0}, {"DESK-B", "BTC-28JUN24", -3.0}};
  for (int i = 0; i < 20; ++i) {
    const json m = client_->margin(book, i % 2 ? "high" : "normal", "eod-" + std::to_string(i), {{"DESK-A", "USD", 10.0}});
    EXPECT_EQ(m["type"], "margin.result");
    EXPECT_EQ(m.value("cycle_id", ""), "");
    const json w = client_->whatif("DESK-A", {{"DESK-A", "BTC-27SEP24", 2.0}});
    EXPECT_EQ(w["type"], "whatif.result");
  }
  EXPECT_EQ(store_state(), before);
  // Nothing reached the scheduler: the first message it sees is the net cycle sent after them.
  const json n = call({{"type", "net"},
                       {"assets", {{{"asset", "BTC"}, {"scale", 8}}, {{"asset", "USD"}, {"scale", 2}}}},
                       {"trades", {{{"trade_id", "#1"}, {"buyer", "M1"}, {"seller", "M2"}, {"base_asset", "BTC"},
                                    {"quote_asset", "USD"}, {"quantity", "1.5"}, {"price", "60000"}}}},
                       {"cycle_id", "net-hash"}});
  ASSERT_EQ(n["type"], "net.result") << n.dump();
  // '#1' is a trade, not a comment: two members, two assets, four obligations.
  EXPECT_EQ(n["instructions"], 4);
  const auto first = sched_.receive();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->type, "settlement.cycle");
  EXPECT_EQ(decode_settlement_cycle(first->frame).cycle_id, "net-hash");
  // The same net again is the same cycle: no second outbox entry; other trades under the id: conflict.
  EXPECT_EQ(call({{"type", "net"},
                  {"assets", {{{"asset", "BTC"}, {"scale", 8}}, {{"asset", "USD"}, {"scale", 2}}}},
                  {"trades", {{{"trade_id", "#1"}, {"buyer", "M1"}, {"seller", "M2"}, {"base_asset", "BTC"},
                               {"quote_asset", "USD"}, {"quantity", "2"}, {"price", "60000"}}}},
                  {"cycle_id", "net-hash"}})["code"],
            "conflict");
  EXPECT_EQ(open_clearing_store(store_, OpenMode::reader)->outbox_stats().unacked, 1);
}

TEST_F(CallsService, WithdrawalNeverBelowIm) {
  submit("T1", "DESK-A", "BTC-PERPETUAL", "10");
  json d = call({{"type", "collateral.deposit"}, {"account", "DESK-A"}, {"asset", "USDC"}, {"amount", "500000"},
                 {"reference", "dep-1"}});
  ASSERT_EQ(d["type"], "collateral.deposit.result") << d.dump();
  EXPECT_EQ(d["balance"], "500000.000000");
  d = call({{"type", "collateral.deposit"}, {"account", "DESK-A"}, {"asset", "USDC"}, {"amount", "500000"},
            {"reference", "dep-1"}});
  EXPECT_EQ(d["outcome"], "duplicate");
  // Everything: refused, with the figures; nothing changes.
  const json refused = call({{"type", "collateral.withdraw"}, {"account", "DESK-A"}, {"asset", "USDC"}, {"amount", "500000"}});
  ASSERT_EQ(refused["type"], "error") << refused.dump();
  EXPECT_EQ(refused["code"], "insufficient_collateral");
  const double im = refused["check"]["im"].get<double>();
  EXPECT_GT(im, 0);
  EXPECT_LT(refused["check"]["value_after"].get<double>(), im);
  EXPECT_EQ(balance("DESK-A", "USDC"), 500000'000000);
  // The excess: allowed, and what is left still covers IM.
  const json w = call({{"type", "collateral.withdraw"}, {"account", "DESK-A"}, {"asset", "USDC"}, {"amount", "excess"},
                       {"reference", "w-1"}});
  ASSERT_EQ(w["type"], "collateral.withdraw.result") << w.dump();
  EXPECT_GE(w["check"]["value_after"].get<double>(), im);
  EXPECT_LT(w["check"]["value_after"].get<double>(), im + 0.01);  // rounded down to the micro-USDC
  EXPECT_FALSE(w["cycle_id"].get<std::string>().empty());
  // Its pay-out reaches the scheduler.
  const auto m = sched_.expect("settlement.cycle");
  const SettlementCycle c = decode_settlement_cycle(m.frame);
  ASSERT_EQ(c.instructions.size(), 1u);
  EXPECT_EQ(c.instructions[0].leg, Leg::pay_out);
  EXPECT_EQ(c.instructions[0].amount, 500000'000000 - balance("DESK-A", "USDC"));
  EXPECT_TRUE(c.liquidity_draw) << "collateral released: funded by what the CCP holds, not by a pay-in";
  // Nothing more may leave.
  const json again = call({{"type", "collateral.withdraw"}, {"account", "DESK-A"}, {"asset", "USDC"}, {"amount", "1"}});
  EXPECT_EQ(again["code"], "insufficient_collateral") << again.dump();
}

TEST_F(CallsService, CallRunSettlesThroughTheOutboxExactlyOnce) {
  submit("T1", "DESK-A", "BTC-PERPETUAL", "10");
  submit("T2", "DESK-B", "BTC-28JUN24", "-4");
  submit("T3", "DESK-C", "BTC-27SEP24", "1");
  ASSERT_EQ(call({{"type", "collateral.deposit"}, {"account", "DESK-A"}, {"asset", "USD"}, {"amount", "1000"}})["type"],
            "collateral.deposit.result");
  ASSERT_EQ(call({{"type", "collateral.deposit"}, {"account", "DESK-C"}, {"asset", "BTC"}, {"amount", "100"}})["type"],
            "collateral.deposit.result");
  const json r = call({{"type", "calls.run"}, {"run_id", "eod-1"}, {"kind", "eod"}});
  ASSERT_EQ(r["type"], "calls.run.result") << r.dump();
  EXPECT_EQ(r["outcome"], "recorded");
  // Each call: max(0, IM − collateral value) rounded up to the cent.
  std::map<std::string, std::int64_t> calls;
  for (const json& row : r["rows"]) {
    const std::string account = row[0];
    const double im = row[1], value = row[3];
    std::int64_t cents = 0;
    const std::string call = row[4];
    cents = std::llround(std::stod(call) * 100);
    const double shortfall_cents = std::max(0.0, (im - value) * 100);
    EXPECT_GE(static_cast<double>(cents), shortfall_cents - 1e-6) << account;
    EXPECT_LT(static_cast<double>(cents), shortfall_cents + 1.0) << account;
    calls[account] = cents;
  }
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_GT(calls["DESK-A"], 0);
  EXPECT_GT(calls["DESK-B"], 0);
  EXPECT_EQ(calls["DESK-C"], 0);  // 100 BTC covers one future
  // The same run id again: that run, nothing new.
  EXPECT_EQ(call({{"type", "calls.run"}, {"run_id", "eod-1"}})["outcome"], "duplicate");

  // The cycle arrives; withheld acks make the server send it again.
  const auto first = sched_.expect("settlement.cycle");
  const SettlementCycle cycle = decode_settlement_cycle(first.frame);
  EXPECT_EQ(cycle.cycle_id, "calls-eod-1");
  ASSERT_EQ(cycle.instructions.size(), 2u);
  const auto again = sched_.expect("settlement.cycle");
  EXPECT_EQ(again.frame, first.frame);
  sched_.send(again.peer, encode_settlement_ack({cycle.cycle_id, "recorded", "durable"}));
  // Then it asks; a report of the open cycle changes nothing.
  auto q = sched_.expect("settlement.query");
  EXPECT_EQ(decode_settlement_query(q.frame), "calls-eod-1");
  SettlementReport rep;
  rep.cycle_id = cycle.cycle_id;
  rep.cycle_state = "open";
  for (const auto& in : cycle.instructions) rep.instructions.push_back({in.instruction_id, in.amount, 0, "pending"});
  sched_.send(q.peer, encode_settlement_report(rep));
  q = sched_.expect("settlement.query");
  EXPECT_EQ(balance("DESK-A", "USD"), 1000'00);
  // Complete: each call credited once; the same report again credits nothing.
  rep.cycle_state = "closed";
  rep.complete = true;
  for (auto& o : rep.instructions) o.settled = o.amount, o.state = "final";
  sched_.send(q.peer, encode_settlement_report(rep));
  sched_.send(q.peer, encode_settlement_report(rep));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline &&
         open_clearing_store(store_, OpenMode::reader)->outbox_stats().settled < 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // room for the second report to be applied
  EXPECT_EQ(balance("DESK-A", "USD"), 1000'00 + calls["DESK-A"]);
  EXPECT_EQ(balance("DESK-B", "USD"), calls["DESK-B"]);
  const json shown = call({{"type", "calls.query"}, {"run_id", "eod-1"}});
  ASSERT_EQ(shown["type"], "calls.query.result");
  EXPECT_EQ(shown["cycle_state"], "settled");
  for (const json& row : shown["rows"]) EXPECT_EQ(row[6], calls[row[0]] > 0 ? "final" : "none") << row.dump();
  const json st = client_->status();
  EXPECT_EQ(st["outbox"]["unacked"], 0);
  EXPECT_EQ(st["outbox"]["unsettled"], 0);
  EXPECT_TRUE(open_clearing_store(store_, OpenMode::reader)->verify_collateral().ok);
  // A second run counts nothing in transit now, and the new collateral covers the calls made.
  const json r2 = call({{"type", "calls.run"}, {"run_id", "eod-2"}});
  for (const json& row : r2["rows"]) EXPECT_EQ(row[4], "0.00") << row.dump();
}

TEST_F(CallsService, AMissedCallIsHandedOverToDefaultManagement) {
  submit("T1", "DESK-A", "BTC-PERPETUAL", "10");
  submit("T2", "DESK-B", "BTC-28JUN24", "-4");
  const json r = call({{"type", "calls.run"}, {"run_id", "eod-1"}, {"kind", "eod"}});
  ASSERT_EQ(r["type"], "calls.run.result") << r.dump();
  const auto m = sched_.expect("settlement.cycle");
  const SettlementCycle cycle = decode_settlement_cycle(m.frame);
  ASSERT_EQ(cycle.instructions.size(), 2u);
  sched_.send(m.peer, encode_settlement_ack({cycle.cycle_id, "recorded", "durable"}));
  const auto q = sched_.expect("settlement.query");
  // DESK-A pays; DESK-B pays a third and misses its deadline: the scheduler reports it defaulted.
  SettlementReport rep;
  rep.cycle_id = cycle.cycle_id;
  rep.cycle_state = "closed";
  rep.complete = true;
  for (const auto& in : cycle.instructions) {
    const bool b = in.member == "DESK-B";
    rep.instructions.push_back({in.instruction_id, in.amount, b ? in.amount / 3 : in.amount, b ? "defaulted" : "final"});
  }
  sched_.send(q.peer, encode_settlement_report(rep));
  // The service declares DESK-B in default: closed out, its positions and collateral (the third
  // it paid) moved to the house account, the waterfall recorded.
  std::vector<DefaultSummary> defaults;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && defaults.empty()) {
    defaults = open_clearing_store(store_, OpenMode::reader)->defaults();
    if (defaults.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(defaults.size(), 1u);
  EXPECT_EQ(defaults[0].member, "DESK-B");
  EXPECT_NE(defaults[0].reason.find(cycle.cycle_id), std::string::npos) << defaults[0].reason;
  EXPECT_EQ(defaults[0].positions_moved, 1);
  EXPECT_GT(defaults[0].loss_minor, 0);
  EXPECT_FALSE(defaults[0].steps.empty());
  auto store = open_clearing_store(store_, OpenMode::reader);
  EXPECT_TRUE(store->positions("DESK-B").empty());
  EXPECT_EQ(store->positions("CCP-HOUSE").size(), 1u);
  EXPECT_TRUE(store->unhandled_missed_pay_ins().empty());
  EXPECT_TRUE(store->verify_journal().ok) << store->verify_journal().summary();
  // A member in default captures nothing more.
  const json leg = {{"source", "t"}, {"trade_id", "T9"}, {"account", "DESK-B"}, {"instrument", "BTC-PERPETUAL"},
                    {"quantity", "1"}, {"price", "60000"}, {"time", "2024-06-28T08:00:00Z"}};
  const json refused = call({{"type", "trade.submit"}, {"trade", leg}});
  EXPECT_NE(refused.dump().find("in default"), std::string::npos) << refused.dump();
}

TEST_F(CallsService, TheOperatorDeclaresADefaultThroughTheService) {
  submit("T1", "DESK-A", "BTC-PERPETUAL", "10");
  submit("T2", "DESK-B", "BTC-28JUN24", "-4");
  const json r = call({{"type", "default.declare"}, {"member", "DESK-B"}, {"reason", "insolvent"}, {"default_id", "D-1"}});
  ASSERT_EQ(r["type"], "default.declare.result") << r.dump();
  EXPECT_EQ(r["outcome"], "recorded");
  EXPECT_EQ(r["default_id"], "D-1");
  EXPECT_EQ(r["currency"], "USD");
  EXPECT_EQ(r["positions"], 1);
  ASSERT_FALSE(r["rows"].empty());
  EXPECT_EQ(r["rows"][0][0], "defaulter_margin");
  EXPECT_EQ(r["rows"][0][2], "0.00");  // DESK-B posted no collateral
  // The book moved: DESK-B holds nothing, the house account its future.
  const json p = call({{"type", "positions.query"}, {"account", "DESK-B"}});
  EXPECT_TRUE(p["rows"].empty()) << p.dump();
  const json again = call({{"type", "default.declare"}, {"member", "DESK-B"}});
  EXPECT_EQ(again["outcome"], "duplicate") << again.dump();
  EXPECT_EQ(again["default_id"], "D-1");
  EXPECT_EQ(again["loss"], r["loss"]);
  const json unknown = call({{"type", "default.declare"}, {"member", "NOBODY"}});
  EXPECT_EQ(unknown["type"], "error");
  EXPECT_EQ(unknown["code"], "bad_request") << unknown.dump();
  const auto cli = marginet::testing::run_command(std::string(MARGINET_EXE) + " default declare DESK-A --connect " +
                                                  server_->endpoint() + " --quiet", false);
  ASSERT_EQ(cli.status, 0) << cli.output;
  EXPECT_EQ(cli.output.substr(0, cli.output.find('\n')), "step,layer,member,available_USD,absorbed_USD,remaining_USD");
}

TEST_F(CallsService, WithoutAStoreTheSchedulerIsRefused) {
  const auto r = marginet::testing::run_command(std::string(MARGINET_EXE) + " serve --instruments " + ex("instruments.csv") +
                                                " --market " + ex("market.csv") + " --marks " + ex("marks.csv") +
                                                " --scheduler tcp://127.0.0.1:1 --bind tcp://127.0.0.1:0");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--scheduler needs --store"), std::string::npos) << r.output;
}

}  // namespace
