// Settlement throughput (issue 8): instructions settled per second through the ledger, where
// the SQLite commits (WAL, synchronous=FULL) are the bound, and the time from cycle receipt to
// the last pay-out on sim chains with zero block time.
//   bench_ledger [--benchmark_format=json]
//
// BM_LedgerAppend/<entries>/<batch>: entries appended with one commit per <batch> entries; batch 1
//   (a commit per state change) is the baseline the per-block batching is measured against.
// BM_SettleCycle/<instructions>/<max_transfers_per_block>: a whole cycle (half pay-ins, half
//   pay-outs, two sim chains, finality 3 and 2, chain state persisted too) from receive() to
//   the last pay-out final. One tick = one block per chain = one ledger commit.
//   Counters: receipt_to_last_payout_ms, ticks, entries.
// BM_LedgerCheck/<instructions>/<what>: the checks of a ledger of one settled cycle of that
//   many instructions (signed tree head): what 0 = `ledger verify` without a key (the hash chain
//   and cycle roots: the baseline), 1 = with the CCP's public key and the heads file, 2 = the
//   state tables replayed from the ledger (what a scheduler runs before it starts).

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "bench/bench_context.hpp"
#include "models/settlement_cycle.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/scheduler.hpp"
#include "service/settlement/signing.hpp"
#include "service/settlement/state_check.hpp"
#include "service/settlement/chains/sim_chain.hpp"

namespace {

namespace fs = std::filesystem;
using namespace marginet;

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("marginet_bench_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void BM_LedgerAppend(benchmark::State& state) {
  const auto entries = static_cast<std::size_t>(state.range(0));
  const auto batch = static_cast<std::size_t>(state.range(1));
  const std::string body =
      R"({"amount":150000000,"attempt":1,"from":"submitted","instruction":"c1/M123/BTC/in","to":"confirmed"})";
  std::int64_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const fs::path dir = scratch("append");
    {
      SqliteDb db((dir / "l.sqlite").string());
      Ledger ledger(db);
      state.ResumeTiming();
      for (std::size_t i = 0; i < entries; i += batch) {
        db.begin();
        for (std::size_t j = i; j < std::min(entries, i + batch); ++j)
          ledger.append("c1", "instruction.state", "2024-06-28T08:00:00Z", body);
        db.commit();
      }
      state.PauseTiming();
    }
    bytes += static_cast<std::int64_t>(fs::file_size(dir / "l.sqlite"));
    fs::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(entries));
  state.SetBytesProcessed(bytes);
  state.counters["commits_per_iter"] = static_cast<double>((entries + batch - 1) / batch);
}

SettlementCycle make_cycle(int instructions) {
  SettlementCycle c;
  c.cycle_id = "bench";
  c.deadline = 4070908800;
  c.assets = {{"BTC", 8}, {"USDC", 6}};
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::int64_t> amount(1, 100000000);
  const int members = instructions / 2;  // per asset: members/2 payers, members/2 receivers
  for (const char* asset : {"BTC", "USDC"}) {
    std::int64_t paid = 0;
    for (int m = 0; m < members / 2; ++m) {
      SettlementInstruction i;
      i.member = "P" + std::to_string(m);
      i.asset = asset;
      i.leg = Leg::pay_in;
      i.amount = amount(rng);
      paid += i.amount;
      i.instruction_id = "bench/" + i.member + "/" + asset + "/in";
      c.instructions.push_back(i);
    }
    for (int m = 0; m < members / 2; ++m) {
      SettlementInstruction i;
      i.member = "R" + std::to_string(m);
      i.asset = asset;
      i.leg = Leg::pay_out;
      i.amount = paid / (members / 2) + (m == 0 ? paid % (members / 2) : 0);
      i.instruction_id = "bench/" + i.member + "/" + asset + "/out";
      c.instructions.push_back(i);
    }
  }
  return c;
}

// Two sim chains, finality 3 (BTC) and 2 (USDC), members funded, no CCP liquidity;
// `per_block` transfers per block at most (0: unlimited).
SchedulerConfig settle_config(std::size_t per_block) {
  SchedulerConfig cfg;
  cfg.assets["BTC"] = {8, 0};
  cfg.assets["USDC"] = {6, 0};
  SimChainConfig btc;
  btc.name = "btc";
  btc.assets = {"BTC"};
  btc.finality_depth = 3;
  btc.max_transfers_per_block = per_block;
  btc.member_funding["BTC"] = 1000000000000;
  SimChainConfig eth = btc;
  eth.name = "eth";
  eth.assets = {"USDC"};
  eth.finality_depth = 2;
  eth.member_funding = {{"USDC", 1000000000000}};
  cfg.sim_chains = {btc, eth};
  return cfg;
}

void BM_SettleCycle(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto per_block = static_cast<std::size_t>(state.range(1));
  const SettlementCycle cycle = make_cycle(n);
  const SchedulerConfig cfg = settle_config(per_block);
  double receipt_to_payout = 0, ticks = 0, entries = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const fs::path dir = scratch("settle");
    {
      SqliteDb db((dir / "l.sqlite").string());
      SqliteDb chain_db((dir / "c.sqlite").string());
      std::vector<std::unique_ptr<SimChain>> sims;
      std::vector<ChainAdapter*> chains;
      for (const auto& sc : cfg.sim_chains) {
        sims.push_back(std::make_unique<SimChain>(sc, &chain_db));
        chains.push_back(sims.back().get());
      }
      SettlementScheduler sched(db, cfg, chains);
      state.ResumeTiming();
      const auto t0 = std::chrono::steady_clock::now();
      double now = 1719561600;
      sched.receive(cycle, now);
      int t = 0;
      while (!sched.idle()) {
        sched.tick(now += 1);
        ++t;
      }
      receipt_to_payout += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      state.PauseTiming();
      ticks += t;
      entries += static_cast<double>(sched.ledger().size());
    }
    fs::remove_all(dir);
    state.ResumeTiming();
  }
  const double it = static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["receipt_to_last_payout_ms"] = receipt_to_payout / it;
  state.counters["ticks"] = ticks / it;
  state.counters["entries"] = entries / it;
}

// One settled, signed ledger per size, built once.
struct SignedLedger {
  fs::path dir;
  VerifyKey key;
  std::int64_t entries = 0;
};

const SignedLedger& signed_ledger(int n) {
  static std::map<int, SignedLedger> built;
  auto it = built.find(n);
  if (it != built.end()) return it->second;
  SignedLedger l;
  l.dir = scratch("check_" + std::to_string(n));
  const SchedulerConfig cfg = settle_config(0);
  const SigningKey key = generate_signing_key();
  l.key = key.public_key;
  {
    SqliteDb db((l.dir / "l.sqlite").string());
    SimChain b(cfg.sim_chains[0], nullptr), e(cfg.sim_chains[1], nullptr);
    SettlementScheduler sched(db, cfg, {&b, &e});
    sched.ledger().set_signing_key(key);
    double now = 1719561600;
    sched.receive(make_cycle(n), now);
    while (!sched.idle()) sched.tick(now += 1);
    sched.ledger().publish_heads();
    l.entries = sched.ledger().size();
  }
  return built.emplace(n, l).first->second;
}

void BM_LedgerCheck(benchmark::State& state) {
  const SignedLedger& l = signed_ledger(static_cast<int>(state.range(0)));
  const int what = static_cast<int>(state.range(1));
  SqliteDb db((l.dir / "l.sqlite").string());
  Ledger ledger(db);
  for (auto _ : state) {
    bool ok = false;
    if (what == 0) {
      ok = ledger.verify().ok;
    } else if (what == 1) {
      LedgerVerifyOptions opt;
      opt.public_key = l.key;
      ok = ledger.verify(opt).ok;
    } else {
      ok = check_scheduler_state(db).ok();
    }
    if (!ok) state.SkipWithError("the check failed");
  }
  state.counters["entries"] = static_cast<double>(l.entries);
  state.SetItemsProcessed(state.iterations() * l.entries);
}

BENCHMARK(BM_LedgerAppend)->Args({256, 1})->Args({4096, 64})->Args({4096, 512})->Args({4096, 4096})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SettleCycle)
    ->Args({1000, 0})
    ->Args({10000, 0})
    ->Args({10000, 500})
    ->Args({10000, 50})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

BENCHMARK(BM_LedgerCheck)
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->Args({10000, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

MARGINET_BENCHMARK_MAIN();
