// Settlement on a real EVM node (issue 21): instructions settled per second through the evm
// chain adapter on a local anvil (BUILD/evm, scripts/evm/setup.sh), per batch size.
//   bench_evm_settlement [--benchmark_format=json]
//
// BM_EvmSettle/<legs per batch>: 400 pay-outs from the CCP to 20 members (one payer, so the
// batches are full) submitted, then polled until every one is final (finality depth 1; the
// adapter's state persisted in SQLite as the scheduler runs it; dev_mine). One leg per batch
// (one DvpSettlement.settle per instruction) is the baseline the batching is measured against.
// Counters: instructions/s (items_per_second), transactions per iteration, gas per leg (from
// the batches' receipts).
// BM_EvmCycle/<chain>: a whole cycle through the settlement scheduler (ledger and chain state
// in SQLite, as `marginet scheduler` runs): 1,000 USDC instructions, 10 members paying in 50
// each and 10 receiving 50 pay-outs each, from receive() until the cycle closes (finality 1).
// chain 0 = the sim chain (the baseline: no node at all), 1 = the evm chain on anvil
// (max_legs_per_batch 100). Counters: ticks, transactions (evm).

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "bench/bench_context.hpp"
#include "models/settlement_cycle.hpp"
#include "service/db/sqlite.hpp"
#include "service/settlement/chains/sim_chain.hpp"
#include "service/settlement/scheduler.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_chain.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "tests/anvil_process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace marginet;

constexpr int kMembers = 20;
constexpr int kInstructions = 400;

struct Chain {
  Chain() : anvil("--accounts " + std::to_string(kMembers + 1) + " --gas-limit 100000000"), node(anvil.url()) {
    const auto artifacts = evm::ContractArtifacts::load(testing::evm_contracts_file());
    const auto acc = node.accounts();
    evm::DeployRequest req;
    req.ccp = acc.at(0);
    req.assets = {{"USDC", 6}};
    for (int m = 1; m <= kMembers; ++m) req.members.emplace_back("M" + std::to_string(m), acc.at(static_cast<std::size_t>(m)));
    req.ccp_funding = {{"USDC", 4'000'000'000'000'000'000}};
    req.member_funding = {{"USDC", 1'000'000'000'000'000}};
    evm::NodeAccountSigner signer;
    dep = evm::deploy_settlement(node, signer, artifacts, req);
  }
  /// The evm chain over this node's deployment (finality 1, dev_mine), as both benchmarks run it.
  EvmChainConfig config() const {
    EvmChainConfig cfg = evm::chain_config(dep, anvil.url());  // asset USDC
    cfg.name = "bench";
    cfg.finality_depth = 1;
    cfg.dev_mine = true;
    return cfg;
  }
  testing::AnvilProcess anvil;
  evm::EvmNode node;
  evm::EvmDeployment dep;
};

Chain& chain() {
  static Chain c;
  return c;
}

void BM_EvmSettle(benchmark::State& state) {
  if (!testing::anvil_available()) {
    state.SkipWithError("no local EVM node: run scripts/evm/setup.sh BUILD_DIR");
    return;
  }
  Chain& c = chain();
  EvmChainConfig cfg = c.config();
  cfg.max_legs_per_batch = static_cast<std::size_t>(state.range(0));
  const fs::path dir = fs::temp_directory_path() / ("marginet_bench_evm_" + std::to_string(getpid()));
  fs::create_directories(dir);
  static int run = 0;
  double transactions = 0, gas = 0, legs = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path = (dir / ("state" + std::to_string(++run) + ".sqlite")).string();
    SqliteDb db(path);
    EvmChain chain(cfg, &db);
    std::vector<std::string> keys;
    for (int i = 0; i < kInstructions; ++i) {
      const std::string member = "M" + std::to_string(i % kMembers + 1);
      keys.push_back("run" + std::to_string(run) + "/" + std::to_string(i) + "#1");
      chain.submit({keys.back(), "USDC", c.dep.ccp, c.dep.members.at(member), 1'000'000 + i});
    }
    state.ResumeTiming();
    for (int polls = 0;; ++polls) {
      chain.poll(0);
      bool done = true;
      for (const auto& k : keys) done = done && chain.status(k).state == TransferState::final;
      if (done) break;
      if (polls > 1000) {
        state.SkipWithError(("not final after 1000 polls: " + chain.last_error()).c_str());
        return;
      }
    }
    state.PauseTiming();
    const auto batches = chain.batches();
    transactions += static_cast<double>(batches.size());
    const auto r = c.node.receipt(batches.front().tx_hash);
    if (r) {
      gas += static_cast<double>(r->gas_used);
      legs += static_cast<double>(batches.front().keys.size());
    }
    state.ResumeTiming();
  }
  fs::remove_all(dir);
  state.SetItemsProcessed(state.iterations() * kInstructions);
  state.counters["transactions"] = transactions / static_cast<double>(state.iterations());
  state.counters["gas_per_leg"] = legs > 0 ? gas / legs : 0;
}
BENCHMARK(BM_EvmSettle)->Arg(1)->Arg(10)->Arg(100)->Arg(400)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_EvmCycle(benchmark::State& state) {
  if (!testing::anvil_available()) {
    state.SkipWithError("no local EVM node: run scripts/evm/setup.sh BUILD_DIR");
    return;
  }
  const bool evm = state.range(0) == 1;
  Chain& c = chain();
  static int run = 0;
  double ticks = 0, transactions = 0;
  const fs::path dir = fs::temp_directory_path() / ("marginet_bench_evm_cycle_" + std::to_string(getpid()));
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir);
    fs::create_directories(dir);
    ++run;
    SettlementCycle cycle;
    cycle.cycle_id = "bench-" + std::to_string(run) + (evm ? "-evm" : "-sim");
    cycle.deadline = 4070908800;  // 2099
    cycle.assets = {{"USDC", 6}};
    for (int m = 1; m <= kMembers; ++m)
      for (int k = 0; k < 50; ++k) {
        SettlementInstruction i;
        i.member = "M" + std::to_string(m);
        i.asset = "USDC";
        i.leg = m <= kMembers / 2 ? Leg::pay_in : Leg::pay_out;
        i.amount = 1'000'000 + k;
        i.instruction_id = cycle.cycle_id + "/" + i.member + "/" + std::to_string(k);
        cycle.instructions.push_back(i);
      }
    SchedulerConfig cfg;
    cfg.assets["USDC"] = {6, 0};
    SqliteDb db((dir / "l.sqlite").string()), chain_db((dir / "c.sqlite").string());
    std::unique_ptr<ChainAdapter> adapter;
    if (evm) {
      adapter = std::make_unique<EvmChain>(c.config(), &chain_db);
    } else {
      SimChainConfig sc;
      sc.name = "bench";
      sc.assets = {"USDC"};
      sc.finality_depth = 1;
      sc.member_funding = {{"USDC", 1'000'000'000'000}};
      adapter = std::make_unique<SimChain>(sc, &chain_db);
    }
    SettlementScheduler sched(db, cfg, {adapter.get()});
    state.ResumeTiming();
    sched.receive(cycle, 0);
    int n = 0;
    while (!sched.idle() && n < 10'000) {
      sched.tick(0);
      ++n;
    }
    state.PauseTiming();
    if (!sched.idle()) {
      state.SkipWithError("the cycle did not close");
      return;
    }
    ticks += n;
    if (evm) transactions += static_cast<double>(static_cast<EvmChain*>(adapter.get())->batches().size());
    state.ResumeTiming();
  }
  fs::remove_all(dir);
  state.SetItemsProcessed(state.iterations() * 1000);
  state.counters["ticks"] = ticks / static_cast<double>(state.iterations());
  state.counters["transactions"] = transactions / static_cast<double>(state.iterations());
}
BENCHMARK(BM_EvmCycle)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

MARGINET_BENCHMARK_MAIN();
