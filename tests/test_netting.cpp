// Multilateral netting (SPEC §6): the kernels on every backend against the std::map reference
// (host/netting_reference.hpp) on random trade sets; the trades loader's rejections; conservation;
// transfer plans; the settlement cycle with margin calls.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "host/dispatch.hpp"
#include "host/netting_engine.hpp"
#include "host/netting_reference.hpp"
#include "kernels/netting.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"
#include "models/trade.hpp"
#include "models/trade_generator.hpp"
#include "tests/backends.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

AssetTable three_assets() {
  AssetTable t;
  t.add("BTC", 8);
  t.add("USD", 2);
  t.add("ETH", 9);
  return t;
}

constexpr const char* kAssetsCsv = "asset,scale\nBTC,8\nUSD,2\nETH,9\n";

TradeSet parse(const std::string& trades_body) {
  return parse_trades_csv("trade_id,buyer,seller,base_asset,quote_asset,quantity,price\n" + trades_body,
                          "trades.csv", three_assets());
}

/// The input_error of parsing `body`, or a failure.
input_error parse_error(const std::string& body) {
  try {
    parse(body);
  } catch (const input_error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an input_error for:\n" << body;
  return input_error("none");
}

void expect_matches_reference(const TradeSet& trades, const NettingResult& r, bool bilateral) {
  const ReferenceNetting ref = reference_netting(trades, bilateral);
  ASSERT_EQ(r.members, static_cast<std::int32_t>(trades.members().size()));
  ASSERT_EQ(r.assets, static_cast<std::int32_t>(trades.assets().size()));
  for (std::int32_t a = 0; a < r.assets; ++a) {
    for (std::int32_t m = 0; m < r.members; ++m) {
      const auto it = ref.net.find({a, m});
      ASSERT_EQ(r.net_of(m, a), it == ref.net.end() ? 0 : it->second) << "member " << m << " asset " << a;
    }
    const AssetNetting& s = r.by_asset[static_cast<std::size_t>(a)];
    EXPECT_EQ(s.gross_deliveries, ref.gross_deliveries[static_cast<std::size_t>(a)]);
    EXPECT_EQ(s.pay_ins, ref.pay_ins[static_cast<std::size_t>(a)]);
    EXPECT_EQ(s.pay_outs, ref.pay_outs[static_cast<std::size_t>(a)]);
    EXPECT_EQ(s.pay_ins, s.pay_outs);
    EXPECT_EQ(s.net_minimal, s.pay_ins);
    EXPECT_EQ(s.excess, s.gross_deliveries - s.pay_ins);
  }
  if (bilateral) {
    ASSERT_EQ(r.bilateral.size(), ref.bilateral.size());
    std::size_t i = 0;
    for (const auto& [key, net] : ref.bilateral) {
      const auto& b = r.bilateral[i++];
      ASSERT_EQ(std::make_tuple(b.member_a, b.member_b, b.asset), key);
      ASSERT_EQ(b.net, net);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels on every backend

class Netting : public testing::BackendTest {
 protected:
  NettingResult net(const TradeSet& trades, NettingAlgorithm algorithm = NettingAlgorithm::dense,
                    bool bilateral = true) {
    return net_trades(trades, NettingOptions{backend(), algorithm, bilateral});
  }
};

TEST_P(Netting, EmptyInput) {
  const TradeSet none(three_assets());
  for (auto algo : {NettingAlgorithm::dense, NettingAlgorithm::sort_reduce}) {
    const NettingResult r = net(none, algo);
    EXPECT_EQ(r.members, 0);
    EXPECT_TRUE(r.net.empty());
    ASSERT_EQ(r.by_asset.size(), 3u);
    for (const auto& s : r.by_asset) {
      EXPECT_EQ(s.gross_deliveries, 0);
      EXPECT_EQ(s.pay_ins, 0);
      EXPECT_EQ(s.efficiency, 0.0);
      EXPECT_EQ(s.bilateral_gross, 0);
    }
    EXPECT_TRUE(r.bilateral.empty());
  }
  // Members known but no trades: a zero table.
  TradeSet idle(three_assets());
  idle.intern_member("A");
  const NettingResult r = net(idle);
  EXPECT_EQ(r.net, std::vector<std::int64_t>(3, 0));
}

TEST_P(Netting, OneTrade) {
  // A buys 1.5 BTC from B at 60000.25 USD: 90000.375 USD, half-even -> 90000.38.
  const TradeSet t = parse("T1,A,B,BTC,USD,1.5,60000.25\n");
  for (auto algo : {NettingAlgorithm::dense, NettingAlgorithm::sort_reduce}) {
    const NettingResult r = net(t, algo);
    const std::int32_t a = *t.members().find("A"), b = *t.members().find("B");
    EXPECT_EQ(r.net_of(a, 0), 150000000);
    EXPECT_EQ(r.net_of(b, 0), -150000000);
    EXPECT_EQ(r.net_of(a, 1), -9000038);
    EXPECT_EQ(r.net_of(b, 1), 9000038);
    EXPECT_EQ(r.net_of(a, 2), 0);
    EXPECT_EQ(r.by_asset[0].gross_deliveries, 150000000);
    EXPECT_EQ(r.by_asset[0].pay_ins, 150000000);
    EXPECT_EQ(r.by_asset[0].payers, 1);
    EXPECT_EQ(r.by_asset[0].receivers, 1);
    EXPECT_EQ(r.by_asset[0].efficiency, 0.0);  // nothing to net with one trade
    ASSERT_EQ(r.bilateral.size(), 2u);
    EXPECT_EQ(r.bilateral[0].net, 150000000);  // A (id 0) receives BTC from B
    EXPECT_EQ(r.bilateral[1].net, -9000038);   // and pays USD
  }
}

TEST_P(Netting, ACycleNetsToNothing) {
  // A -> B -> C -> A, 1 BTC each at the same price: every net is zero, efficiency 1.
  const TradeSet t = parse("T1,B,A,BTC,USD,1,100\nT2,C,B,BTC,USD,1,100\nT3,A,C,BTC,USD,1,100\n");
  const NettingResult r = net(t);
  for (std::int64_t n : r.net) EXPECT_EQ(n, 0);
  EXPECT_EQ(r.by_asset[0].gross_deliveries, 300000000);
  EXPECT_EQ(r.by_asset[0].pay_ins, 0);
  EXPECT_EQ(r.by_asset[0].efficiency, 1.0);
  EXPECT_EQ(r.by_asset[0].excess, 300000000);
  EXPECT_EQ(r.by_asset[0].bilateral_gross, 300000000);  // three different pairs: no bilateral netting
  expect_matches_reference(t, r, true);
}

TEST_P(Netting, MatchesReferenceOnRandomTradeSets) {
  struct Shape {
    std::size_t trades, members, assets;
    double skew;
  };
  for (const Shape& s : {Shape{1, 2, 2, 1.0}, Shape{31, 2, 2, 1.0}, Shape{32, 3, 3, 2.0}, Shape{33, 5, 10, 3.0},
                         Shape{63, 64, 4, 1.0}, Shape{64, 65, 5, 3.0}, Shape{65, 7, 10, 0.5},
                         Shape{1000, 50, 10, 3.0}, Shape{20000, 500, 10, 3.0}, Shape{20000, 3, 2, 1.0}}) {
    for (std::uint64_t seed : {1u, 2u}) {
      TradeGeneratorConfig cfg;
      cfg.trades = s.trades;
      cfg.members = s.members;
      cfg.assets = s.assets;
      cfg.member_skew = s.skew;
      cfg.seed = seed;
      const TradeSet t = generate_trades(cfg);
      SCOPED_TRACE(::testing::Message() << s.trades << " trades, " << s.members << " members, " << s.assets
                                        << " assets, seed " << seed);
      const NettingResult dense = net(t, NettingAlgorithm::dense, true);
      expect_matches_reference(t, dense, true);
      const NettingResult sorted = net(t, NettingAlgorithm::sort_reduce, false);
      EXPECT_EQ(dense.net, sorted.net);
    }
  }
}

TEST_P(Netting, Int64EdgeIsExactOnEveryBackend) {
  TradeSet t(three_assets());
  const std::int32_t a = t.intern_member("A"), b = t.intern_member("B"), c = t.intern_member("C");
  t.add(a, b, 0, 1, kMax - 10, kMax);  // BTC gross INT64_MAX − 10, USD gross INT64_MAX
  t.add(c, a, 0, 2, 10, 5);            // BTC gross exactly INT64_MAX
  // One more minor unit of USD or BTC is rejected cleanly, and the set is left unchanged.
  EXPECT_THROW(t.add(b, c, 2, 1, 1, 1), input_error);
  EXPECT_THROW(t.add(b, c, 0, 2, 1, 1), input_error);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.gross_deliveries()[0], kMax);
  EXPECT_EQ(t.gross_deliveries()[1], kMax);
  EXPECT_EQ(t.gross_deliveries()[2], 5);
  for (auto algo : {NettingAlgorithm::dense, NettingAlgorithm::sort_reduce}) {
    SCOPED_TRACE(netting_algorithm_name(algo));
    const NettingResult r = net(t, algo);
    EXPECT_EQ(r.net_of(a, 0), kMax - 20);
    EXPECT_EQ(r.net_of(b, 0), -(kMax - 10));
    EXPECT_EQ(r.net_of(c, 0), 10);
    EXPECT_EQ(r.net_of(a, 1), -kMax);
    EXPECT_EQ(r.net_of(b, 1), kMax);
    EXPECT_EQ(r.net_of(c, 2), -5);
    EXPECT_EQ(r.by_asset[1].pay_ins, kMax);
    EXPECT_EQ(r.by_asset[1].efficiency, 0.0);
    expect_matches_reference(t, r, true);
  }
}

TEST_P(Netting, PlansSettleEveryNetWithAtMostNMinusOnePayments) {
  TradeGeneratorConfig cfg;
  cfg.trades = 5000;
  cfg.members = 200;
  cfg.assets = 10;
  const TradeSet t = generate_trades(cfg);
  const NettingResult r = net(t);
  const std::vector<Transfer> p2p = p2p_plan(t, r);
  std::vector<std::int64_t> balance = r.net;  // what each member still has to receive (+) or pay (−)
  std::vector<std::size_t> payments(static_cast<std::size_t>(r.assets), 0);
  for (const Transfer& x : p2p) {
    ASSERT_GT(x.amount, 0);
    ASSERT_NE(x.from, kCcp);
    ASSERT_NE(x.to, kCcp);
    const std::size_t base = static_cast<std::size_t>(x.asset) * static_cast<std::size_t>(r.members);
    ASSERT_LT(balance[base + static_cast<std::size_t>(x.from)], 0) << "only debtors pay";
    ASSERT_GT(balance[base + static_cast<std::size_t>(x.to)], 0) << "only creditors receive";
    balance[base + static_cast<std::size_t>(x.from)] += x.amount;
    balance[base + static_cast<std::size_t>(x.to)] -= x.amount;
    ++payments[static_cast<std::size_t>(x.asset)];
  }
  for (std::int64_t left : balance) ASSERT_EQ(left, 0) << "every net settled";
  for (std::int32_t a = 0; a < r.assets; ++a) {
    const auto& s = r.by_asset[static_cast<std::size_t>(a)];
    const std::size_t n = static_cast<std::size_t>(s.payers + s.receivers);
    EXPECT_LE(payments[static_cast<std::size_t>(a)], n > 0 ? n - 1 : 0) << "asset " << a;
    EXPECT_GT(n, 2u);  // a real test: many members hold a net in every asset
  }
  // Hub: one payment per member with a non-zero net, through the CCP.
  const std::vector<Transfer> hub = hub_plan(t, r);
  std::vector<std::int64_t> into_ccp(static_cast<std::size_t>(r.assets), 0), out_of_ccp(into_ccp);
  for (const Transfer& x : hub) {
    ASSERT_TRUE((x.from == kCcp) != (x.to == kCcp));
    (x.to == kCcp ? into_ccp : out_of_ccp)[static_cast<std::size_t>(x.asset)] += x.amount;
  }
  for (std::int32_t a = 0; a < r.assets; ++a) {
    EXPECT_EQ(into_ccp[static_cast<std::size_t>(a)], r.by_asset[static_cast<std::size_t>(a)].pay_ins);
    EXPECT_EQ(out_of_ccp[static_cast<std::size_t>(a)], r.by_asset[static_cast<std::size_t>(a)].pay_outs);
  }
  EXPECT_EQ(hub.size(), static_cast<std::size_t>(std::count_if(r.net.begin(), r.net.end(),
                                                               [](std::int64_t n) { return n != 0; })));
}

TEST_P(Netting, PlanHandTieBreaksByName) {
  // BTC nets: A −3, B −3, C +2, D +4. Largest debtor (tie A/B -> A) pays largest creditor D 3;
  // then B pays D 1 and C 2: three payments for four members.
  const TradeSet t = parse("T1,D,A,BTC,USD,0.00000003,1000000\nT2,D,B,BTC,USD,0.00000001,1000000\nT3,C,B,BTC,USD,0.00000002,1000000\n");
  const NettingResult r = net(t);
  std::vector<Transfer> plan = p2p_plan(t, r);
  plan.erase(std::remove_if(plan.begin(), plan.end(), [](const Transfer& x) { return x.asset != 0; }), plan.end());
  ASSERT_EQ(plan.size(), 3u);
  auto name = [&](std::int32_t id) { return t.members().name(id); };
  EXPECT_EQ(name(plan[0].from) + ">" + name(plan[0].to) + ":" + std::to_string(plan[0].amount), "A>D:3");
  EXPECT_EQ(name(plan[1].from) + ">" + name(plan[1].to) + ":" + std::to_string(plan[1].amount), "B>C:2");
  EXPECT_EQ(name(plan[2].from) + ">" + name(plan[2].to) + ":" + std::to_string(plan[2].amount), "B>D:1");
}

MARGINET_INSTANTIATE_BACKENDS(Netting);

class NettingCrossBackend : public testing::CrossBackendTest {};

TEST_F(NettingCrossBackend, CpuAndCudaAgreeToTheUnit) {
  TradeGeneratorConfig cfg;
  cfg.trades = 200000;
  cfg.members = 5000;
  cfg.assets = 10;
  const TradeSet t = generate_trades(cfg);
  for (auto algo : {NettingAlgorithm::dense, NettingAlgorithm::sort_reduce}) {
    const NettingResult cpu = net_trades(t, {Backend::cpu, algo, true});
    const NettingResult gpu = net_trades(t, {Backend::cuda, algo, true});
    EXPECT_EQ(cpu.net, gpu.net);
    ASSERT_EQ(cpu.bilateral.size(), gpu.bilateral.size());
    for (std::size_t i = 0; i < cpu.bilateral.size(); ++i) {
      EXPECT_EQ(cpu.bilateral[i].net, gpu.bilateral[i].net);
      EXPECT_EQ(cpu.bilateral[i].member_a, gpu.bilateral[i].member_a);
    }
    for (std::size_t a = 0; a < cpu.by_asset.size(); ++a) {
      EXPECT_EQ(cpu.by_asset[a].pay_ins, gpu.by_asset[a].pay_ins);
      EXPECT_EQ(cpu.by_asset[a].payers, gpu.by_asset[a].payers);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The trades loader

TEST(TradesCsv, ParsesExactlyWithCommentsQuotesAndAnyColumnOrder) {
  const TradeSet t = parse_trades_csv(
      "# a comment\n"
      "price,quantity,quote_asset,base_asset,seller,buyer,trade_id,venue\n"
      "\n"
      "60000.25,1.5,USD,BTC,B,A,T1,x\n"
      "  3000.5 , 2 ,USD,ETH,\"C, Inc.\",A,\"T\"\"2\",y\n",
      "trades.csv", three_assets());
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t.members().name(t.buyer()[1]), "A");
  EXPECT_EQ(t.members().name(t.seller()[1]), "C, Inc.");
  EXPECT_EQ(t.quantity()[0], 150000000);
  EXPECT_EQ(t.notional()[0], 9000038);  // 90000.375 -> half-even 90000.38
  EXPECT_EQ(t.quantity()[1], 2000000000);
  EXPECT_EQ(t.notional()[1], 600100);
  EXPECT_EQ(t.gross_deliveries()[1], 9000038 + 600100);
}

TEST(TradesCsv, RejectsSelfTradesNamingLineAndField) {
  const input_error e = parse_error("T1,A,B,BTC,USD,1,1\nT2,A,A,BTC,USD,1,1\n");
  EXPECT_EQ(e.file(), "trades.csv");
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.field(), "seller");
  EXPECT_NE(std::string(e.what()).find("self-trade"), std::string::npos) << e.what();
}

TEST(TradesCsv, RejectsDuplicateTradeIds) {
  const input_error e = parse_error("T1,A,B,BTC,USD,1,1\nT2,A,C,BTC,USD,1,1\nT1,C,B,BTC,USD,1,1\n");
  EXPECT_EQ(e.line(), 4);
  EXPECT_EQ(e.field(), "trade_id");
  EXPECT_NE(std::string(e.what()).find("duplicate trade id 'T1' (first at line 2)"), std::string::npos) << e.what();
  // Quoting does not hide a duplicate.
  EXPECT_EQ(parse_error("T9,A,B,BTC,USD,1,1\n\"T9\",A,C,BTC,USD,1,1\n").field(), "trade_id");
}

TEST(TradesCsv, RejectsInt64EdgeAmountsCleanly) {
  // Quantity beyond int64 minor units.
  input_error e = parse_error("T1,A,B,BTC,USD,92233720368.54775808,1\n");
  EXPECT_EQ(e.field(), "quantity");
  EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  // The notional beyond int64: 92233720368 BTC × 1e9 USD.
  e = parse_error("T1,A,B,BTC,USD,92233720368,1000000000\n");
  EXPECT_EQ(e.field(), "price");
  // Each trade fits, their total does not: the line that overflows the gross is named.
  e = parse_error("T1,A,B,BTC,USD,92233720368.54775807,0.00000001\nT2,B,A,BTC,USD,0.00000001,1000000\n");
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.field(), "quantity");
  EXPECT_NE(std::string(e.what()).find("total deliveries of BTC"), std::string::npos) << e.what();
  // Exactly at the edge is fine.
  const TradeSet t = parse("T1,A,B,BTC,USD,92233720368.54775807,0.00000001\n");
  EXPECT_EQ(t.quantity()[0], kMax);
}

TEST(TradesCsv, RejectsEveryOtherBrokenRule) {
  struct Case {
    const char* row;
    const char* field;
    const char* words;
  };
  for (const Case& c : {Case{"T1,A,B,BTC,USD,1.000000001,1", "quantity", "too many decimals"},
                        Case{"T1,A,B,BTC,USD,0,1", "quantity", "> 0"},
                        Case{"T1,A,B,BTC,USD,-1,1", "quantity", "> 0"},
                        Case{"T1,A,B,BTC,USD,1,0", "price", "> 0"},
                        Case{"T1,A,B,BTC,USD,1,-5", "price", "> 0"},
                        Case{"T1,A,B,BTC,USD,1,1e3", "price", "not a decimal"},
                        Case{"T1,A,B,BTC,USD,0.00000001,0.01", "price", "zero minor units"},
                        Case{"T1,A,B,DOGE,USD,1,1", "base_asset", "unknown asset 'DOGE'"},
                        Case{"T1,A,B,BTC,EUR,1,1", "quote_asset", "unknown asset 'EUR'"},
                        Case{"T1,A,B,BTC,BTC,1,1", "quote_asset", "same asset"},
                        Case{"T1,,B,BTC,USD,1,1", "buyer", "empty"},
                        Case{",A,B,BTC,USD,1,1", "trade_id", "empty"},
                        Case{"T1,A,B,BTC,USD,1", "", "expected 7 fields"},
                        Case{"T1,A,B,BTC,USD,1,\"1", "", "unterminated"}}) {
    const input_error e = parse_error(std::string(c.row) + "\n");
    EXPECT_EQ(e.line(), 2) << c.row;
    EXPECT_EQ(e.field(), c.field) << c.row;
    EXPECT_NE(std::string(e.what()).find(c.words), std::string::npos) << c.row << " -> " << e.what();
  }
  EXPECT_THROW(parse_trades_csv("", "t.csv", three_assets()), input_error);
  EXPECT_THROW(parse_trades_csv("trade_id,buyer,seller,base_asset,quote_asset,quantity\n", "t.csv", three_assets()),
               input_error);
  EXPECT_THROW(read_trades_csv("/nonexistent/trades.csv", three_assets()), input_error);
}

TEST(AssetsCsv, LoadsAndRejects) {
  std::istringstream ok(kAssetsCsv);
  const AssetTable t = read_assets_csv(ok, "assets.csv");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[2].name, "ETH");
  EXPECT_EQ(t[2].scale, 9);
  EXPECT_EQ(*t.find("USD"), 1);
  for (const char* bad : {"asset,scale\nBTC,8\nBTC,8\n", "asset,scale\nBTC,19\n", "asset,scale\nBTC,-1\n",
                          "asset,scale\nBTC,x\n", "asset,scale\n,8\n", "asset\nBTC\n"}) {
    std::istringstream in(bad);
    EXPECT_THROW(read_assets_csv(in, "assets.csv"), input_error) << bad;
  }
}

TEST(TradeGenerator, IsDeterministicAndItsCsvParsesToTheSameTrades) {
  TradeGeneratorConfig cfg;
  cfg.trades = 3000;
  cfg.members = 40;
  cfg.assets = 10;
  const TradeSet a = generate_trades(cfg), b = generate_trades(cfg);
  EXPECT_EQ(a.quantity(), b.quantity());
  EXPECT_EQ(a.buyer(), b.buyer());
  std::ostringstream trades, assets;
  write_generated_trades_csv(trades, cfg);
  write_assets_csv(assets, generator_assets(cfg.assets));
  std::istringstream assets_in(assets.str());
  const TradeSet c = parse_trades_csv(trades.str(), "generated.csv", read_assets_csv(assets_in, "assets"));
  ASSERT_EQ(c.size(), a.size());
  EXPECT_EQ(c.quantity(), a.quantity());
  EXPECT_EQ(c.notional(), a.notional());
  EXPECT_EQ(c.base_asset(), a.base_asset());
  EXPECT_EQ(c.quote_asset(), a.quote_asset());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(c.members().name(c.buyer()[i]), a.members().name(a.buyer()[i]));
    ASSERT_EQ(c.members().name(c.seller()[i]), a.members().name(a.seller()[i]));
  }
  // Skewed: the busiest tenth of the members are in most trades.
  std::size_t busy = 0;
  for (std::size_t i = 0; i < a.size(); ++i) busy += a.buyer()[i] < 4 || a.seller()[i] < 4;
  EXPECT_GT(busy, a.size() / 2);
  cfg.seed = 2;
  EXPECT_NE(generate_trades(cfg).quantity(), a.quantity());
}

// ---------------------------------------------------------------------------------------------
// Conservation, margin calls and the settlement cycle

TEST(NettingConservation, ABrokenResultIsAnInternalError) {
  TradeGeneratorConfig cfg;
  cfg.trades = 500;
  cfg.members = 20;
  const TradeSet t = generate_trades(cfg);
  NettingResult r = net_trades(t);
  EXPECT_NO_THROW(check_conservation(t, r));
  NettingResult broken = r;
  broken.net[3] += 1;  // one minor unit created from nothing
  EXPECT_THROW(check_conservation(t, broken), logic_error);
  broken = r;
  std::swap(broken.net[0], broken.net[1]);  // still sums to zero, but the totals may disagree
  broken.by_asset[0].pay_ins += 1;
  EXPECT_THROW(check_conservation(t, broken), logic_error);
  broken = r;
  broken.net.pop_back();
  EXPECT_THROW(check_conservation(t, broken), logic_error);
}

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = marginet::testing::scratch_dir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(MarginCalls, RoundUpSumAndReject) {
  const AssetTable assets = three_assets();
  const std::string ok = temp_file("marginet_calls_ok.csv",
                                   "account,asset,amount\nM2,USD,100.001\nM1,BTC,0.5\nM2,USD,1\nM3,USD,0\n");
  const std::vector<MarginCall> calls = read_margin_calls_csv(ok, assets);
  ASSERT_EQ(calls.size(), 2u);  // the zero call is skipped, M2's two calls summed
  EXPECT_EQ(calls[0].account, "M1");
  EXPECT_EQ(calls[0].amount, 50000000);
  EXPECT_EQ(calls[1].account, "M2");
  EXPECT_EQ(calls[1].amount, 10001 + 100);  // 100.001 rounds UP to 100.01
  for (const char* bad : {"account,asset,amount\nM1,EUR,1\n", "account,asset,amount\nM1,USD,-1\n",
                          "account,asset,amount\nM1,USD,abc\n", "account,asset,amount\n,USD,1\n",
                          "account,asset\nM1,USD\n"}) {
    const std::string path = temp_file("marginet_calls_bad.csv", bad);
    EXPECT_THROW(read_margin_calls_csv(path, assets), input_error) << bad;
  }
}

TEST(SettlementCycleFromNetting, InstructionsAreCompleteStableAndIndependentOfInputOrder) {
  const std::string rows[] = {"T1,A,B,BTC,USD,1.5,60000.25", "T2,B,C,BTC,USD,2,60010", "T3,C,A,ETH,USD,3,3000",
                              "T4,D,A,ETH,BTC,10,0.05"};
  std::string forward, backward;
  for (int i = 0; i < 4; ++i) forward += rows[i] + "\n", backward += rows[3 - i] + "\n";
  const TradeSet t1 = parse(forward), t2 = parse(backward);
  const std::vector<MarginCall> calls{{"B", "USD", 12345}, {"Z", "BTC", 7}};
  const SettlementCycle c1 = build_settlement_cycle(t1, net_trades(t1), calls, "cyc", 1719565200);
  const SettlementCycle c2 = build_settlement_cycle(t2, net_trades(t2), calls, "cyc", 1719565200);
  std::ostringstream j1, j2;
  write_cycle_json(j1, c1);
  write_cycle_json(j2, c2);
  EXPECT_EQ(j1.str(), j2.str()) << "the cycle does not depend on the order of the trades";

  const NettingResult r = net_trades(t1);
  std::size_t nets = 0;
  std::map<std::pair<std::string, std::string>, std::int64_t> signed_net;
  for (const auto& i : c1.instructions) {
    EXPECT_GT(i.amount, 0);
    if (i.kind == ObligationKind::margin_call) {
      EXPECT_EQ(i.leg, Leg::pay_in);
      EXPECT_EQ(i.instruction_id, "cyc/" + i.member + "/" + i.asset + "/in/margin_call");
      continue;
    }
    ++nets;
    signed_net[{i.member, i.asset}] = i.leg == Leg::pay_out ? i.amount : -i.amount;
    EXPECT_EQ(i.instruction_id, "cyc/" + i.member + "/" + i.asset + (i.leg == Leg::pay_out ? "/out" : "/in"));
  }
  EXPECT_EQ(nets, static_cast<std::size_t>(std::count_if(r.net.begin(), r.net.end(), [](std::int64_t n) { return n != 0; })));
  for (std::int32_t m = 0; m < r.members; ++m)
    for (std::int32_t a = 0; a < r.assets; ++a) {
      const auto it = signed_net.find({t1.members().name(m), t1.assets()[a].name});
      EXPECT_EQ(it == signed_net.end() ? 0 : it->second, r.net_of(m, a));
    }
  // Ordered by member, asset (file order), then pay-in, margin call, pay-out.
  EXPECT_EQ(c1.instructions.front().member, "A");
  EXPECT_EQ(c1.instructions.back().instruction_id, "cyc/Z/BTC/in/margin_call");
  EXPECT_NO_THROW(validate_cycle(c1, "built"));
  // Round trip through the file form.
  const SettlementCycle back = parse_cycle_json(j1.str(), "cycle.json");
  ASSERT_EQ(back.instructions.size(), c1.instructions.size());
  EXPECT_EQ(back.instructions[3].amount, c1.instructions[3].amount);
  EXPECT_THROW(build_settlement_cycle(t1, r, {{"B", "EUR", 1}}, "cyc", 0), input_error);
  EXPECT_THROW(build_settlement_cycle(t1, r, {}, "", 0), usage_error);
}

}  // namespace
}  // namespace marginet

namespace marginet {
namespace {

/// Generated trades as CSV with comments and blank lines here and there.
std::string trades_text(std::size_t n, std::uint64_t seed) {
  TradeGeneratorConfig cfg;
  cfg.trades = n;
  cfg.members = 60;
  cfg.assets = 10;
  cfg.seed = seed;
  std::ostringstream out;
  write_generated_trades_csv(out, cfg);
  std::istringstream in(out.str());
  std::string text, line;
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; std::getline(in, line); ++i) {
    if (i > 0 && rng() % 97 == 0) text += "# a comment\n";
    if (i > 0 && rng() % 89 == 0) text += "\n";
    text += line + "\n";
  }
  return text;
}

std::string error_of(std::string_view text, const TradeParseOptions& options) {
  try {
    parse_trades_csv(text, "t.csv", generator_assets(10), options);
  } catch (const input_error& e) {
    return e.what();
  }
  return "no error";
}

// The file split into chunks parsed in parallel gives what one pass gives: the same member ids,
// rows and totals, and the same first error, whatever the split.
TEST(ParallelTradeParse, AnySplitGivesTheOnePassResult) {
  const std::string text = trades_text(20'000, 5);
  const AssetTable assets = generator_assets(10);
  const TradeSet one = parse_trades_csv(text, "t.csv", assets, {1, 1});
  ASSERT_EQ(one.size(), 20'000u);
  for (unsigned threads : {2u, 3u, 7u, 16u}) {
    SCOPED_TRACE(threads);
    const TradeSet many = parse_trades_csv(text, "t.csv", assets, {threads, 1});  // chunks of any size
    ASSERT_EQ(many.size(), one.size());
    EXPECT_EQ(many.buyer(), one.buyer());
    EXPECT_EQ(many.seller(), one.seller());
    EXPECT_EQ(many.base_asset(), one.base_asset());
    EXPECT_EQ(many.quote_asset(), one.quote_asset());
    EXPECT_EQ(many.quantity(), one.quantity());
    EXPECT_EQ(many.notional(), one.notional());
    EXPECT_EQ(many.gross_deliveries(), one.gross_deliveries());
    ASSERT_EQ(many.members().size(), one.members().size());
    for (std::size_t m = 0; m < one.members().size(); ++m)
      EXPECT_EQ(many.members().name(static_cast<std::int32_t>(m)), one.members().name(static_cast<std::int32_t>(m)));
  }
}

TEST(ParallelTradeParse, TheFirstBadLineIsReportedWhateverTheSplit) {
  const std::string text = trades_text(5'000, 9);
  std::mt19937_64 rng(3);
  // Each kind of fault at a random line in the second half, plus an earlier one in some cases.
  for (int round = 0; round < 14; ++round) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    const std::size_t at = lines.size() / 2 + rng() % (lines.size() / 2 - 1);
    if (lines[at].empty() || lines[at][0] == '#') continue;
    switch (round % 7) {
      case 0: lines[at] = "X1,M0001,M0001,BTC,USD,1,100"; break;            // self-trade
      case 1: lines[at] = "X2,M0001,M0002,BTC,NOPE,1,100"; break;           // unknown asset
      case 2: lines[at] = "X3,M0001,M0002,BTC,USD,1.123456789,100"; break;  // too many decimals
      case 3: lines[at] = "X4,M0001,M0002,BTC,USD,1"; break;                // a field missing
      case 4: lines[at] = "T1,M0001,M0002,BTC,USD,1,100"; break;            // T1 again: a duplicate id
      case 5: lines[at] = "X6,\"M0001,M0002,BTC,USD,1,100"; break;          // unterminated quote
      case 6:  // BTC deliveries past int64 minor units: 2 × 5e18 satoshi, the second line named
        lines[lines.size() / 3] = "X7,M0001,M0002,BTC,USD,50000000000,0.000001";
        lines[at] = "X8,M0003,M0004,BTC,USD,50000000000,0.000001";
        break;
    }
    if (round >= 7) lines[lines.size() / 4] = "Y1,M0003,M0003,ETH,USD,1,100";  // an earlier self-trade
    std::string bad;
    for (const std::string& l : lines) bad += l + "\n";
    const std::string expected = error_of(bad, {1, 1});
    ASSERT_NE(expected, "no error") << round;
    for (unsigned threads : {2u, 5u, 13u}) EXPECT_EQ(error_of(bad, {threads, 1}), expected) << round << " " << threads;
  }
}

}  // namespace
}  // namespace marginet
