// The margin engine's kernels against the plain reference path on generated books, for every
// methodology and backend; scenario tiling; what-if against a full re-run.

#include <gtest/gtest.h>

#include <algorithm>

#include "host/book_generator.hpp"
#include "host/margin_engine.hpp"
#include "tests/backends.hpp"

namespace marginet {
namespace {

GeneratedBook small_book(std::uint64_t seed) {
  BookSpec spec;
  spec.underlyings = 3;
  spec.instruments = 240;
  spec.accounts = 40;
  spec.positions = 1500;
  spec.seed = seed;
  return generate_book(spec);
}

Methodology stress_methodology() {
  return parse_methodology(R"({"model":"stress","name":"crash","scenarios":[
      {"name":"crash","shocks":{"BTC":{"move":-0.4,"vol_shift":0.3,"days":1},"*":{"move":-0.3,"vol_shift":0.2}}},
      {"name":"rally","shocks":{"*":{"move":0.35,"vol_shift":-0.1,"vol_kind":"absolute"}}},
      {"name":"vol crush","weight":0.5,"shocks":{"*":{"vol_shift":-0.5,"vol_kind":"relative"}}}]})",
                           "stress.json");
}

void expect_same_accounts(const MarginRun& got, const MarginRun& want, double rel) {
  ASSERT_EQ(got.accounts.size(), want.accounts.size());
  for (std::size_t a = 0; a < got.accounts.size(); ++a) {
    const AccountMargin& g = got.accounts[a];
    const AccountMargin& w = want.accounts[a];
    ASSERT_EQ(g.account, w.account);
    EXPECT_TRUE(testing::near_relative(g.im, w.im, rel, 1e-9)) << g.account;
    EXPECT_TRUE(testing::near_relative(g.mm, w.mm, rel, 1e-9)) << g.account;
    EXPECT_EQ(g.worst_scenario, w.worst_scenario) << g.account;
    ASSERT_EQ(g.underlyings.size(), w.underlyings.size());
    for (std::size_t u = 0; u < g.underlyings.size(); ++u) {
      EXPECT_TRUE(testing::near_relative(g.underlyings[u].scan_risk, w.underlyings[u].scan_risk, rel, 1e-12));
      EXPECT_EQ(g.underlyings[u].worst_scenario, w.underlyings[u].worst_scenario) << g.account;
      EXPECT_TRUE(testing::near_relative(g.underlyings[u].delta, w.underlyings[u].delta, rel, 1e-12));
    }
  }
}

class EngineVsReference : public testing::BackendTest {};

TEST_P(EngineVsReference, EveryMethodology) {
  const GeneratedBook book = small_book(3);
  for (const Methodology& m : {load_methodology("span16"), load_methodology("deribit-pm"), stress_methodology()}) {
    SCOPED_TRACE(m.name);
    MarginEngine engine(book.instruments, book.market, m, backend());
    const MarginRun got = engine.run(book.positions);
    const MarginRun want = reference_margin(book.instruments, book.market, m, book.positions);
    ASSERT_EQ(got.accounts.size(), 40u);
    expect_same_accounts(got, want, 1e-12);
    const double total = [&] { double t = 0; for (auto& a : got.accounts) t += a.im; return t; }();
    EXPECT_GT(total, 0.0);
  }
}

// Per-underlying methodologies sum IM over underlyings: the account's worst scenario is that of
// the underlying whose IM (in the quote currency) is the largest — the one behind most of IM.
TEST_P(EngineVsReference, TheWorstScenarioIsTheLargestUnderlyingsOne) {
  const GeneratedBook book = small_book(11);
  for (const char* name : {"span16", "deribit-pm"}) {
    SCOPED_TRACE(name);
    MarginEngine engine(book.instruments, book.market, load_methodology(name), backend());
    std::size_t multi = 0;
    for (const AccountMargin& a : engine.run(book.positions).accounts) {
      ASSERT_FALSE(a.underlyings.empty());
      const UnderlyingMargin* largest = &a.underlyings[0];
      for (const UnderlyingMargin& u : a.underlyings) {
        const double q = u.im * (u.units == "USD" ? 1.0 : book.market.underlying(u.underlying).index_price);
        const double l = largest->im * (largest->units == "USD" ? 1.0 : book.market.underlying(largest->underlying).index_price);
        if (q > l) largest = &u;
      }
      EXPECT_EQ(a.worst_scenario, largest->worst_scenario) << a.account;
      multi += a.underlyings.size() > 1;
    }
    EXPECT_GT(multi, 10u);  // accounts with several underlyings, where the choice matters
  }
}

TEST_P(EngineVsReference, TilingOverScenariosChangesNothing) {
  const GeneratedBook book = small_book(5);
  MarginEngine whole(book.instruments, book.market, load_methodology("deribit-pm"), backend());
  MarginEngine tiled(book.instruments, book.market, load_methodology("deribit-pm"), backend());
  tiled.set_tile_bytes(240 * sizeof(double) * 4);  // four scenarios a tile
  const MarginRun a = whole.run(book.positions);
  const MarginRun b = tiled.run(book.positions);
  EXPECT_EQ(a.times.scenario_tiles, 1u);
  EXPECT_GT(b.times.scenario_tiles, 5u);
  ASSERT_EQ(a.accounts.size(), b.accounts.size());
  for (std::size_t i = 0; i < a.accounts.size(); ++i) {
    EXPECT_EQ(a.accounts[i].im, b.accounts[i].im);  // bitwise: the same sums in the same order
    EXPECT_EQ(a.accounts[i].worst_scenario, b.accounts[i].worst_scenario);
  }
}

// The run split by scenarios (service/scaleout/ runs each block on its own rank): blocks computed
// by separate engines, stitched by the exchange, give run()'s figures bit for bit; a what-if
// after it equals one after run().
TEST_P(EngineVsReference, ScenarioBlocksStitchedGiveTheRunBitForBit) {
  const GeneratedBook book = small_book(9);
  for (const char* name : {"span16", "deribit-pm", "mc-es"}) {
    SCOPED_TRACE(name);
    Methodology m = load_methodology(name);
    m.mc.paths = 1001;  // not a multiple of four: the last block is ragged
    MarginEngine whole(book.instruments, book.market, m, backend());
    const MarginRun want = whole.run(book.positions);
    for (std::size_t blocks : {1, 2, 3, 7}) {
      // Blocks 1.. on their own engines, their columns kept; block 0 finishes with them.
      std::vector<std::vector<double>> columns(blocks);
      std::vector<std::pair<std::size_t, std::size_t>> spans(blocks);
      for (std::size_t b = 1; b < blocks; ++b) {
        MarginEngine other(book.instruments, book.market, m, backend());
        const auto done = other.run_scenario_block(
            book.positions, b, blocks, [&](double* pnl, std::size_t rows, std::size_t S, std::size_t s0, std::size_t s1) {
              spans[b] = {s0, s1};
              for (std::size_t r = 0; r < rows; ++r) columns[b].insert(columns[b].end(), pnl + r * S + s0, pnl + r * S + s1);
              return false;
            });
        EXPECT_FALSE(done.has_value());
      }
      MarginEngine first(book.instruments, book.market, m, backend());
      const auto got = first.run_scenario_block(
          book.positions, 0, blocks, [&](double* pnl, std::size_t rows, std::size_t S, std::size_t, std::size_t) {
            for (std::size_t b = 1; b < blocks; ++b) {
              const std::size_t w = spans[b].second - spans[b].first;
              EXPECT_EQ(spans[b].first % 4, 0u) << "blocks start on the vector path's groups of four";
              for (std::size_t r = 0; r < rows; ++r)
                std::copy(columns[b].begin() + static_cast<std::ptrdiff_t>(r * w),
                          columns[b].begin() + static_cast<std::ptrdiff_t>((r + 1) * w), pnl + r * S + spans[b].first);
            }
            return true;
          });
      ASSERT_TRUE(got.has_value());
      ASSERT_EQ(got->accounts.size(), want.accounts.size());
      for (std::size_t i = 0; i < want.accounts.size(); ++i) {
        const AccountMargin& g = got->accounts[i];
        const AccountMargin& w = want.accounts[i];
        EXPECT_EQ(g.im, w.im) << w.account << ", " << blocks << " blocks";
        EXPECT_EQ(g.mm, w.mm) << w.account;
        EXPECT_EQ(g.es, w.es) << w.account;
        EXPECT_EQ(g.worst_scenario, w.worst_scenario) << w.account;
        ASSERT_EQ(g.worst_scenarios.size(), w.worst_scenarios.size());
        for (std::size_t k = 0; k < w.worst_scenarios.size(); ++k) EXPECT_EQ(g.worst_scenarios[k].pnl, w.worst_scenarios[k].pnl);
      }
      const std::vector<Position> trades{Position{want.accounts[0].account, book.positions[3].instrument, 2.5}};
      EXPECT_EQ(first.whatif(want.accounts[0].account, trades).after.im,
                whole.whatif(want.accounts[0].account, trades).after.im);
    }
  }
}

TEST_P(EngineVsReference, WhatIfEqualsARerunWithTheTrades) {
  const GeneratedBook book = small_book(7);
  for (const char* name : {"span16", "deribit-pm"}) {
    SCOPED_TRACE(name);
    MarginEngine engine(book.instruments, book.market, load_methodology(name), backend());
    const MarginRun base = engine.run(book.positions);
    const std::string account = base.accounts.at(3).account;
    // Two trades: one in an instrument the book holds, one possibly new to the book.
    const std::vector<Position> trades{{account, book.positions[0].instrument, -2.5},
                                       {account, book.instruments.size() - 1, 1.2}};
    const WhatIfResult w = engine.whatif(account, trades);
    std::vector<Position> with = book.positions;
    for (const Position& t : trades) with.push_back(t);
    MarginEngine fresh(book.instruments, book.market, load_methodology(name), backend());
    const MarginRun rerun = fresh.run(with);
    const auto it = std::find_if(rerun.accounts.begin(), rerun.accounts.end(),
                                 [&](const AccountMargin& a) { return a.account == account; });
    ASSERT_NE(it, rerun.accounts.end());
    EXPECT_TRUE(testing::near_relative(w.before.im, base.accounts[3].im, 1e-14));
    EXPECT_TRUE(testing::near_relative(w.after.im, it->im, 1e-12, 1e-9)) << w.after.im << " vs " << it->im;
    EXPECT_TRUE(testing::near_relative(w.im_change, it->im - base.accounts[3].im, 1e-9, 1e-9));
    EXPECT_EQ(w.after.worst_scenario, it->worst_scenario);
  }
}

// A what-if reads the account's rows in the cache and copies only the rows its trades move:
// the underlyings it does not trade come out the same, bit for bit, before and after, and the
// cache is left as it was (a second what-if sees the same "before").
TEST_P(EngineVsReference, AWhatIfMovesOnlyTheRowsItTradesAndLeavesTheCache) {
  const GeneratedBook book = small_book(21);
  MarginEngine engine(book.instruments, book.market, load_methodology("deribit-pm"), backend());
  const MarginRun base = engine.run(book.positions);
  const auto multi = std::find_if(base.accounts.begin(), base.accounts.end(),
                                  [](const AccountMargin& a) { return a.underlyings.size() >= 2; });
  ASSERT_NE(multi, base.accounts.end());
  const std::string traded = multi->underlyings[0].underlying;
  std::size_t instrument = book.instruments.size();
  for (std::size_t i = 0; i < book.instruments.size() && instrument == book.instruments.size(); ++i)
    if (book.instruments[i].underlying == traded) instrument = i;
  ASSERT_LT(instrument, book.instruments.size());
  const WhatIfResult w = engine.whatif(multi->account, {{multi->account, instrument, 3.0}});
  ASSERT_EQ(w.before.underlyings.size(), w.after.underlyings.size());
  std::size_t untouched = 0;
  for (std::size_t k = 0; k < w.before.underlyings.size(); ++k) {
    const UnderlyingMargin& b = w.before.underlyings[k];
    const UnderlyingMargin& a = w.after.underlyings[k];
    ASSERT_EQ(a.underlying, b.underlying);
    if (b.underlying == traded) {
      EXPECT_NE(a.coin_delta, b.coin_delta);
      continue;
    }
    ++untouched;
    EXPECT_EQ(a.im, b.im) << b.underlying;
    EXPECT_EQ(a.worst_scenario, b.worst_scenario) << b.underlying;
    EXPECT_EQ(a.coin_delta, b.coin_delta) << b.underlying;
  }
  EXPECT_GT(untouched, 0u);
  const WhatIfResult again = engine.whatif(multi->account, {{multi->account, instrument, 3.0}});
  EXPECT_EQ(again.before.im, w.before.im);
  EXPECT_EQ(again.after.im, w.after.im);
  EXPECT_EQ(again.before.im, multi->im);
}

TEST_P(EngineVsReference, WhatIfForAnAccountWithoutPositions) {
  const GeneratedBook book = small_book(9);
  MarginEngine engine(book.instruments, book.market, load_methodology("span16"), backend());
  engine.run(book.positions);
  const WhatIfResult w = engine.whatif("NEWCOMER", {{"NEWCOMER", 0, 1.0}});
  EXPECT_EQ(w.before.im, 0.0);
  EXPECT_GT(w.after.im, 0.0);
  EXPECT_DOUBLE_EQ(w.im_change, w.after.im);
}

// The book changes (captured trades): committed trades move the cached rows, so a later what-if
// starts from them — the same as a fresh run of the book with the trades — also for an account
// and an instrument the run did not hold, and for a second trade of an instrument revalued on
// demand (a state the run's cached risk arrays do not cover).
TEST_P(EngineVsReference, CommittedTradesMoveTheCachedRows) {
  const GeneratedBook book = small_book(13);
  for (const char* name : {"span16", "deribit-pm"}) {
    SCOPED_TRACE(name);
    const Methodology m = load_methodology(name);
    std::vector<Position> held;  // the run holds only the first half of the book
    held.assign(book.positions.begin(), book.positions.begin() + static_cast<std::ptrdiff_t>(book.positions.size() / 2));
    MarginEngine engine(book.instruments, book.market, m, backend());
    engine.run(held);
    const std::string old_account = held.at(0).account;
    const std::vector<Position> committed{{old_account, book.instruments.size() - 1, 2.0},
                                          {"NEWCOMER", book.positions.back().instrument, -3.0},
                                          {old_account, book.instruments.size() - 1, -0.5}};
    for (const Position& t : committed) engine.commit_trades(t.account, {t});
    std::vector<Position> with = held;
    for (const Position& t : committed) with.push_back(t);
    MarginEngine fresh(book.instruments, book.market, m, backend());
    const MarginRun rerun = fresh.run(with);
    for (const std::string& account : {old_account, std::string("NEWCOMER")}) {
      const auto it = std::find_if(rerun.accounts.begin(), rerun.accounts.end(),
                                   [&](const AccountMargin& a) { return a.account == account; });
      ASSERT_NE(it, rerun.accounts.end()) << account;
      const WhatIfResult w = engine.whatif(account, {{account, book.positions[1].instrument, 0.0}});
      EXPECT_TRUE(testing::near_relative(w.before.im, it->im, 1e-12, 1e-9)) << account << ": " << w.before.im
                                                                             << " vs " << it->im;
      EXPECT_GT(w.before.im, 0.0) << account;
    }
  }
}

MARGINET_INSTANTIATE_BACKENDS(EngineVsReference);

class MarginCrossBackend : public testing::CrossBackendTest {};

TEST_F(MarginCrossBackend, CpuAndCudaAgree) {
  const GeneratedBook book = small_book(11);
  for (const char* name : {"span16", "deribit-pm"}) {
    MarginEngine cpu(book.instruments, book.market, load_methodology(name), Backend::cpu);
    MarginEngine gpu(book.instruments, book.market, load_methodology(name), Backend::cuda);
    expect_same_accounts(gpu.run(book.positions), cpu.run(book.positions), 1e-12);
  }
}

TEST(BookGenerator, IsDeterministicAndHasTheAskedSize) {
  BookSpec spec;
  spec.underlyings = 4;
  spec.instruments = 400;
  spec.accounts = 30;
  spec.positions = 1000;
  const GeneratedBook a = generate_book(spec), b = generate_book(spec);
  EXPECT_EQ(a.positions.size(), 1000u);
  EXPECT_NEAR(static_cast<double>(a.instruments.size()), 400.0, 40.0);
  ASSERT_EQ(a.positions.size(), b.positions.size());
  for (std::size_t i = 0; i < a.positions.size(); ++i) {
    EXPECT_EQ(a.positions[i].account, b.positions[i].account);
    EXPECT_EQ(a.positions[i].quantity, b.positions[i].quantity);
  }
}

}  // namespace
}  // namespace marginet
