// Trade capture over the wire: the real `marginet serve --store` on a loopback port, driven by
// the C++ client (service/margin/client.hpp). Idempotency, conflicts, packages all or nothing,
// cancels, signatures, the pre-trade check with its figures, the cached rows following the kept
// positions, and a kill -9 in the middle of a stream of submits from several clients.
// Every server is a child process ended on teardown; every loop is bounded in count and time.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "service/clearing/clearing_store.hpp"
#include "service/margin/client.hpp"
#include "tests/server_process.hpp"

namespace marginet {
namespace {

using json = nlohmann::ordered_json;
using testing::ServerProcess;

const std::string kExamples = std::string(MARGINET_SOURCE_DIR) + "/examples/";
const std::string kRef = " --instruments " + kExamples + "instruments.csv --market " + kExamples +
                         "market.csv --marks " + kExamples + "marks.csv";

class TradeCapture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/marginet_capture_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = dir_ + "/clearing.sqlite";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::unique_ptr<ServerProcess> start(const std::string& extra = "") {
    return std::make_unique<ServerProcess>("--device cpu --quiet --model span16 --store " + store_ + kRef + " " + extra);
  }
  static ClientOptions at(const ServerProcess& s) {
    ClientOptions o;
    o.endpoint = s.endpoint();
    o.timeout_ms = 60'000;
    return o;
  }
  static TradeInput trade(const std::string& id, const std::string& account, const std::string& instrument,
                          const std::string& quantity, const std::string& price = "0.05") {
    TradeInput t;
    t.source = "rfq";
    t.trade_id = id;
    t.account = account;
    t.instrument = instrument;
    t.quantity_text = quantity;
    t.price_text = price;
    t.time = "2024-06-28T08:00:00Z";
    return t;
  }
  /// Kept positions of the store as text, read through a reader (the server holds the writer).
  std::map<std::string, std::string> positions() const {
    std::map<std::string, std::string> out;
    auto st = open_clearing_store(store_, OpenMode::reader);
    for (const PositionRow& p : st->positions()) out[p.account + "/" + p.instrument] = quantity_text(p.quantity_units);
    return out;
  }
  std::string dir_, store_;
};

TEST_F(TradeCapture, RecordDuplicateConflictCancel) {
  auto srv = start();
  MarginClient c(at(*srv));
  json r = c.submit_trades({trade("T1", "DESK-A", "BTC-PERPETUAL", "2.5", "64250.5")});
  ASSERT_EQ(r["type"], "trade.submit.result") << r.dump();
  EXPECT_EQ(r["outcome"], "recorded");
  ASSERT_EQ(r["legs"].size(), 1u);
  EXPECT_EQ(r["legs"][0]["journal_seq"], 1);

  // The same trade again (other spelling of the same decimals): a duplicate, nothing changes.
  r = c.submit_trades({trade("T1", "DESK-A", "BTC-PERPETUAL", "2.50", "64250.50")});
  EXPECT_EQ(r["outcome"], "duplicate") << r.dump();
  EXPECT_EQ(r["legs"][0]["journal_seq"], 1);

  // The same key with another quantity: a conflict.
  r = c.submit_trades({trade("T1", "DESK-A", "BTC-PERPETUAL", "3", "64250.5")});
  ASSERT_EQ(r["type"], "error");
  EXPECT_EQ(r["code"], "conflict");

  // Floats are refused: not exact.
  json bad{{"type", "trade.submit"},
           {"trade", {{"source", "rfq"}, {"trade_id", "F1"}, {"account", "DESK-A"}, {"instrument", "BTC-PERPETUAL"},
                      {"quantity", 0.1}, {"price", "1"}, {"time", "2024-06-28T08:00:00Z"}}}};
  r = c.call(bad);
  EXPECT_EQ(r["code"], "bad_request") << r.dump();

  json p = c.positions("DESK-A");
  ASSERT_EQ(p["rows"].size(), 1u);
  EXPECT_EQ(p["rows"][0][2], "2.5");

  r = c.cancel_trade("rfq", "T1", "booked twice");
  ASSERT_EQ(r["type"], "trade.cancel.result") << r.dump();
  EXPECT_EQ(r["outcome"], "cancelled");
  EXPECT_EQ(c.cancel_trade("rfq", "T1")["outcome"], "duplicate");
  EXPECT_EQ(c.cancel_trade("rfq", "NOPE")["code"], "not_found");
  EXPECT_TRUE(c.positions("DESK-A")["rows"].empty());

  const json j = c.trades();
  ASSERT_EQ(j["rows"].size(), 2u);  // the trade and its cancel: a cancel never deletes
  EXPECT_EQ(c.status()["store"]["journal_entries"], 2);
  EXPECT_EQ(j["rows"][1][1], "cancel");
  EXPECT_EQ(j["rows"][1][6], "-2.5");
}

TEST_F(TradeCapture, PackageIsAllOrNothing) {
  auto srv = start();
  MarginClient c(at(*srv));
  json r = c.submit_trades({trade("P1-a", "FUND-B", "BTC-28JUN24-70000-C", "-2"),
                            trade("P1-b", "FUND-B", "NO-SUCH-INSTRUMENT", "1")},
                           "RFQ-1");
  ASSERT_EQ(r["type"], "error") << r.dump();
  EXPECT_EQ(r["code"], "unknown_instrument");
  EXPECT_EQ(r["leg"], 1);
  EXPECT_TRUE(positions().empty()) << "no leg of a refused package is recorded";

  r = c.submit_trades({trade("P2-a", "FUND-B", "BTC-28JUN24-70000-C", "-2"),
                       trade("P2-b", "FUND-B", "BTC-28JUN24", "1.25", "64000")},
                      "RFQ-2");
  ASSERT_EQ(r["type"], "trade.submit.result") << r.dump();
  EXPECT_EQ(r["package_id"], "RFQ-2");
  EXPECT_EQ(positions(), (std::map<std::string, std::string>{{"FUND-B/BTC-28JUN24", "1.25"},
                                                             {"FUND-B/BTC-28JUN24-70000-C", "-2"}}));
}

TEST_F(TradeCapture, SignedTradesOfAMemberWithAKey) {
  const Ed25519Keypair keys = generate_ed25519_keypair();
  const Ed25519Keypair other = generate_ed25519_keypair();
  {
    auto st = open_clearing_store(store_, OpenMode::writer);
    st->add_member("MM", keys.public_key_hex);
    st->add_account("MM-C", "MM");
  }
  auto srv = start();
  MarginClient c(at(*srv));
  EXPECT_EQ(c.submit_trades({trade("S1", "MM-C", "BTC-PERPETUAL", "1")})["code"], "bad_signature");
  EXPECT_EQ(c.submit_trades({trade("S2", "MM-C", "BTC-PERPETUAL", "1")}, "", other.secret_key_hex)["code"],
            "bad_signature");
  // Signed for one quantity, sent with another: the signature does not cover it.
  TradeInput tampered = trade("S3", "MM-C", "BTC-PERPETUAL", "1");
  tampered.signature_hex = sign_trade_hex(parse_trade(tampered), keys.secret_key_hex);
  tampered.quantity_text = "10";
  EXPECT_EQ(c.submit_trades({tampered})["code"], "bad_signature");
  const json ok = c.submit_trades({trade("S4", "MM-C", "BTC-PERPETUAL", "1")}, "", keys.secret_key_hex);
  EXPECT_EQ(ok["outcome"], "recorded") << ok.dump();
  EXPECT_EQ(positions(), (std::map<std::string, std::string>{{"MM-C/BTC-PERPETUAL", "1"}}));
  // An account of a member without a key needs no signature.
  EXPECT_EQ(c.submit_trades({trade("U1", "DESK-A", "BTC-PERPETUAL", "1")})["outcome"], "recorded");
}

TEST_F(TradeCapture, PretradeCheckRefusesWithTheFiguresAndRowsFollowTrades) {
  {
    auto st = open_clearing_store(store_, OpenMode::writer);
    st->add_member("DESK", std::nullopt);
    st->add_account("DESK-A", "DESK");
    st->set_pretrade_headroom("DESK-A", 0.0);
  }
  // DESK-A holds 150,000 USDC and 1.5 BTC (examples/collateral.csv).
  auto srv = start("--collateral " + kExamples + "collateral.csv");
  MarginClient c(at(*srv));
  // A large short call package: IM far above the collateral.
  json r = c.submit_trades({trade("R1-a", "DESK-A", "BTC-28JUN24-65000-C", "-400"),
                            trade("R1-b", "DESK-A", "BTC-28JUN24-70000-C", "-400")},
                           "RFQ-BIG");
  ASSERT_EQ(r["type"], "error") << r.dump();
  EXPECT_EQ(r["code"], "insufficient_margin");
  ASSERT_TRUE(r.contains("pretrade")) << r.dump();
  const double im_after = r["pretrade"]["im_after"], value = r["pretrade"]["collateral_value"];
  EXPECT_GT(im_after, value);
  EXPECT_GT(value, 0.0);
  EXPECT_EQ(r["pretrade"]["units"], "USD");
  EXPECT_TRUE(positions().empty());

  // A small package passes and reports its figures.
  r = c.submit_trades({trade("R2-a", "DESK-A", "BTC-28JUN24-70000-C", "-1"),
                       trade("R2-b", "DESK-A", "BTC-PERPETUAL", "0.5", "64000")},
                      "RFQ-SMALL");
  ASSERT_EQ(r["type"], "trade.submit.result") << r.dump();
  ASSERT_TRUE(r.contains("pretrade"));
  const double im_recorded = r["pretrade"]["im_after"];
  EXPECT_LE(im_recorded, value);

  // The cached rows followed the recorded trades: what-if of nothing extra now starts from the
  // package's IM, and equals what a fresh server computes from the store's positions.
  const json w = c.whatif("DESK-A", {{"DESK-A", "BTC-PERPETUAL", 0.0}});
  ASSERT_EQ(w["type"], "whatif.result") << w.dump();
  EXPECT_NEAR(w["before"]["im"].get<double>(), im_recorded, 1e-9 * std::max(1.0, im_recorded));
  srv.reset();
  auto again = start();
  MarginClient c2(at(*again));
  const json w2 = c2.whatif("DESK-A", {{"DESK-A", "BTC-PERPETUAL", 0.0}});
  EXPECT_NEAR(w2["before"]["im"].get<double>(), im_recorded, 1e-9 * std::max(1.0, im_recorded));
}

// The what-if fast lane (issue 22): with the compute thread idle and nothing queued a what-if
// on the cached rows is answered on the socket thread ("lane": "fast", the same figures as the
// queued path); a what-if sent right behind a trade of the same account never overtakes it:
// it is queued and starts from the book with the trade. --no-whatif-fast-lane queues them all.
TEST_F(TradeCapture, WhatIfFastLaneAnswersAtOnceAndNeverOvertakesATrade) {
  {
    auto st = open_clearing_store(store_, OpenMode::writer);
    st->add_member("DESK", std::nullopt);
    st->add_account("DESK-A", "DESK");
  }
  auto srv = start();
  MarginClient c(at(*srv));
  ASSERT_EQ(c.submit_trades({trade("F1", "DESK-A", "BTC-28JUN24-70000-C", "-2")})["type"], "trade.submit.result");
  // The compute thread may still be finishing the submit (its reply goes out before the
  // request's work ends): the what-if is queued then. Once it is idle the fast lane answers.
  json fast;
  for (int i = 0; i < 100; ++i) {
    fast = c.whatif("DESK-A", {{"DESK-A", "BTC-28JUN24-65000-C", -1.0}});
    ASSERT_EQ(fast["type"], "whatif.result") << fast.dump();
    if (fast["timing"]["lane"] == "fast") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(fast["timing"]["lane"], "fast");
  EXPECT_GE(fast["timing"]["engine_us"].get<double>(), 0.0);
  // A trade and a what-if back to back on one connection: the what-if sees the trade.
  auto frame = [](json j) {
    const std::vector<std::uint8_t> b = json::to_msgpack(j);
    return std::string(b.begin(), b.end());
  };
  const json leg{{"source", "rfq"},        {"trade_id", "F2"}, {"account", "DESK-A"}, {"instrument", "BTC-28JUN24-70000-C"},
                 {"quantity", "-3"}, {"price", "0.05"}, {"time", "2024-06-28T08:00:00Z"}};
  c.send_raw(frame({{"v", 1}, {"id", 901}, {"type", "trade.submit"}, {"trade", leg}}));
  c.send_raw(frame({{"v", 1}, {"id", 902}, {"type", "whatif"}, {"account", "DESK-A"},
                    {"trades", json::array({json::array({"BTC-28JUN24-65000-C", -1.0})})}}));
  std::map<int, json> replies;
  for (int i = 0; i < 2; ++i) {
    const auto r = c.receive_raw(30'000);
    ASSERT_TRUE(r.has_value());
    const json j = json::from_msgpack(*r);
    replies[j["id"].get<int>()] = j;
  }
  ASSERT_EQ(replies[901]["type"], "trade.submit.result") << replies[901].dump();
  ASSERT_EQ(replies[902]["type"], "whatif.result") << replies[902].dump();
  const json after = c.whatif("DESK-A", {{"DESK-A", "BTC-28JUN24-65000-C", -1.0}});
  EXPECT_NEAR(replies[902]["before"]["im"].get<double>(), after["before"]["im"].get<double>(),
              1e-9 * std::max(1.0, after["before"]["im"].get<double>()));
  EXPECT_GT(after["before"]["im"].get<double>(), fast["before"]["im"].get<double>());  // the trade counted
  // The queued path gives the same figures.
  srv.reset();
  auto queued_srv = start("--no-whatif-fast-lane");
  MarginClient q(at(*queued_srv));
  const json queued = q.whatif("DESK-A", {{"DESK-A", "BTC-28JUN24-65000-C", -1.0}});
  EXPECT_EQ(queued["timing"]["lane"], "queued");
  EXPECT_NEAR(queued["after"]["im"].get<double>(), after["after"]["im"].get<double>(),
              1e-9 * std::max(1.0, after["after"]["im"].get<double>()));
}

TEST_F(TradeCapture, WithoutAStoreTheServerSaysSo) {
  ServerProcess srv("--device cpu --quiet --model span16" + kRef);
  MarginClient c(at(srv));
  EXPECT_EQ(c.submit_trades({trade("X1", "DESK-A", "BTC-PERPETUAL", "1")})["code"], "no_store");
}

// kill -9 of the server during a stream of submits from four clients: after a restart every
// acknowledged trade is in the journal exactly once, no package is half recorded, and a resend
// of everything records exactly what was missing.
TEST_F(TradeCapture, KillNineDuringSubmitsLosesAndDuplicatesNothing) {
  constexpr int kClients = 4, kPerClient = 250;
  auto srv = start();
  const std::string endpoint = srv->endpoint();
  std::mutex mu;
  std::set<std::string> acked;  // trade ids (package legs: "<package>/<leg>")
  std::atomic<int> sent{0};
  std::atomic<bool> stop{false};
  auto legs_of = [](int client, int k) {
    const std::string id = "c" + std::to_string(client) + "-" + std::to_string(k);
    std::vector<TradeInput> legs{trade(id + "/a", "ACC" + std::to_string(client), "BTC-PERPETUAL", "1", "64000")};
    if (k % 3 == 0) legs.push_back(trade(id + "/b", "ACC" + std::to_string(client), "BTC-28JUN24", "-1", "64100"));
    return std::make_pair(k % 3 == 0 ? id : std::string(), legs);
  };
  std::vector<std::thread> clients;
  for (int cl = 0; cl < kClients; ++cl)
    clients.emplace_back([&, cl] {
      ClientOptions o;
      o.endpoint = endpoint;
      o.timeout_ms = 2'000;
      MarginClient c(o);
      for (int k = 0; k < kPerClient && !stop; ++k) {
        auto [package, legs] = legs_of(cl, k);
        ++sent;
        try {
          const json r = c.submit_trades(legs, package);
          if (r["type"] == "trade.submit.result") {
            std::lock_guard<std::mutex> lk(mu);
            for (const auto& l : legs) acked.insert(l.trade_id);
          }
        } catch (const client_error&) {
          return;  // the server is gone
        }
      }
    });
  // Kill once a good part of the stream is acknowledged (bounded wait).
  for (int i = 0; i < 3000; ++i) {
    {
      std::lock_guard<std::mutex> lk(mu);
      if (acked.size() >= 300) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  srv->stop(SIGKILL);
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_GE(acked.size(), 300u) << "too few acknowledgements before the kill";

  // Every acknowledged trade exactly once; packages whole.
  std::map<std::string, int> seen;
  {
    auto st = open_clearing_store(store_, OpenMode::reader);
    for (const JournalEntry& e : st->trades({})) ++seen[e.trade_id];
    const JournalVerifyReport v = st->verify_journal();
    EXPECT_TRUE(v.ok) << v.summary();
  }
  for (const std::string& id : acked) EXPECT_EQ(seen[id], 1) << id;
  for (const auto& [id, n] : seen) {
    EXPECT_EQ(n, 1) << id;
    if (id.size() > 2 && id.substr(id.size() - 2) == "/b") {
      const std::string a = id.substr(0, id.size() - 2) + "/a";
      EXPECT_EQ(seen.count(a), 1u) << "package " << id << " half recorded";
    }
  }
  // Restart and resend everything: what was recorded is a duplicate, the rest is recorded now.
  auto again = start();
  MarginClient c(at(*again));
  std::size_t duplicates = 0, recorded = 0;
  for (int cl = 0; cl < kClients; ++cl)
    for (int k = 0; k < kPerClient; ++k) {
      auto [package, legs] = legs_of(cl, k);
      const json r = c.submit_trades(legs, package);
      ASSERT_EQ(r["type"], "trade.submit.result") << r.dump();
      const bool was = seen.count(legs[0].trade_id) > 0;
      EXPECT_EQ(r["outcome"], was ? "duplicate" : "recorded") << legs[0].trade_id;
      (was ? duplicates : recorded) += 1;
    }
  EXPECT_GE(duplicates, 200u);
  const json p = c.positions("ACC0");
  ASSERT_FALSE(p["rows"].empty());
  for (const auto& row : p["rows"])
    EXPECT_EQ(row[2], row[1] == "BTC-PERPETUAL" ? std::to_string(kPerClient) : "-" + std::to_string((kPerClient + 2) / 3))
        << row.dump();
}

}  // namespace
}  // namespace marginet
