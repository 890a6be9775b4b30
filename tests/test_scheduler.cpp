// The settlement scheduler's rules (SPEC §8), on in-process sim chains with a virtual clock:
// DvP release, Cover-1 liquidity, missed deadlines (roll / default management), pro-rata
// shortfall, reorgs before finality, duplicate cycles, a cycle arriving while another is open,
// pay-out retries, recovery after a restart, determinism.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "models/errors.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/scheduler.hpp"
#include "service/settlement/state_check.hpp"
#include "service/settlement/chains/sim_chain.hpp"

namespace {

using namespace marginet;
namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double kT0 = 1719561600;  // 2024-06-28T08:00:00Z
constexpr std::int64_t kBtc = 100000000;   // 1 BTC in minor units
constexpr std::int64_t kUsdc = 1000000;    // 1 USDC

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("marginet_sched_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

SchedulerConfig make_config(std::int64_t btc_liquidity, std::int64_t usdc_liquidity) {
  SchedulerConfig cfg;
  cfg.assets["BTC"] = {8, btc_liquidity};
  cfg.assets["USDC"] = {6, usdc_liquidity};
  SimChainConfig btc;
  btc.name = "bitcoin-sim";
  btc.assets = {"BTC"};
  btc.finality_depth = 3;
  btc.seed = 7;
  btc.member_funding["BTC"] = 1000 * kBtc;
  btc.ccp_funding["BTC"] = btc_liquidity;
  SimChainConfig usdc;
  usdc.name = "ethereum-sim";
  usdc.assets = {"USDC"};
  usdc.finality_depth = 2;
  usdc.seed = 8;
  usdc.member_funding["USDC"] = 10000000 * kUsdc;
  usdc.ccp_funding["USDC"] = usdc_liquidity;
  cfg.sim_chains = {btc, usdc};
  return cfg;
}

SettlementInstruction ins(const std::string& cycle, const std::string& member, const std::string& asset, Leg leg,
                          std::int64_t amount, ObligationKind kind = ObligationKind::net) {
  SettlementInstruction i;
  i.instruction_id = cycle + "/" + member + "/" + asset + "/" + (leg == Leg::pay_in ? "in" : "out") +
                     (kind == ObligationKind::margin_call ? "/margin_call" : "");
  i.member = member;
  i.asset = asset;
  i.leg = leg;
  i.kind = kind;
  i.amount = amount;
  return i;
}

// M1 pays 2 BTC; M2 receives 1.5 BTC, M3 receives 0.5 BTC. M2 pays 60,000 USDC, M1 receives it.
SettlementCycle three_member_cycle(const std::string& id, double deadline) {
  SettlementCycle c;
  c.cycle_id = id;
  c.deadline = deadline;
  c.assets = {{"BTC", 8}, {"USDC", 6}};
  c.instructions = {ins(id, "M1", "BTC", Leg::pay_in, 2 * kBtc),
                    ins(id, "M2", "BTC", Leg::pay_out, 150000000),
                    ins(id, "M3", "BTC", Leg::pay_out, 50000000),
                    ins(id, "M2", "USDC", Leg::pay_in, 60000 * kUsdc),
                    ins(id, "M1", "USDC", Leg::pay_out, 60000 * kUsdc)};
  return c;
}

// One scheduler over a database file, with its sim chains (in memory or persisted).
struct Rig {
  fs::path dir;
  SchedulerConfig cfg;
  std::unique_ptr<SqliteDb> db, chain_db;
  std::vector<std::unique_ptr<SimChain>> chains;
  std::unique_ptr<SettlementScheduler> sched;
  double now = kT0;

  Rig(const std::string& name, SchedulerConfig c, bool persist_chains = false, bool fresh = true)
      : dir(fresh ? fresh_dir(name) : fs::temp_directory_path() / ("marginet_sched_" + name + "_" + std::to_string(getpid()))),
        cfg(std::move(c)) {
    open(persist_chains);
  }
  void open(bool persist_chains) {
    sched.reset();
    chains.clear();
    db.reset();
    chain_db.reset();
    db = std::make_unique<SqliteDb>((dir / "ledger.sqlite").string());
    if (persist_chains) chain_db = std::make_unique<SqliteDb>((dir / "chains.sqlite").string());
    std::vector<ChainAdapter*> ptrs;
    for (const auto& sc : cfg.sim_chains) {
      chains.push_back(std::make_unique<SimChain>(sc, chain_db.get()));
      ptrs.push_back(chains.back().get());
    }
    sched = std::make_unique<SettlementScheduler>(*db, cfg, ptrs);
  }
  SimChain& chain(const std::string& asset) {
    for (auto& c : chains)
      for (const auto& a : c->assets())
        if (a == asset) return *c;
    throw std::runtime_error("no chain");
  }
  TickReport step() {
    now += 1;
    return sched->tick(now);
  }
  int run_until_idle(int max_ticks = 500) {
    int n = 0;
    while (!sched->idle() && n < max_ticks) {
      step();
      ++n;
    }
    return n;
  }
  // State of an instruction from the database.
  std::string state_of(const std::string& id) {
    SqliteStatement q(*db, "SELECT state FROM sched_instructions WHERE instruction_id = ?");
    q.bind(1, id);
    return q.step() ? q.text(0) : "(none)";
  }
  std::int64_t settle_of(const std::string& id) {
    SqliteStatement q(*db, "SELECT settle FROM sched_instructions WHERE instruction_id = ?");
    q.bind(1, id);
    return q.step() ? q.int64(0) : -1;
  }
  std::vector<LedgerEntry> entries_of_kind(const std::string& kind) {
    std::vector<LedgerEntry> out;
    for (auto& e : sched->ledger().entries())
      if (e.kind == kind) out.push_back(e);
    return out;
  }
  // seq of the first/last ledger entry moving `id` to `to`; 0 when none.
  std::int64_t seq_of(const std::string& id, const std::string& to, bool last = false) {
    std::int64_t found = 0;
    for (auto& e : entries_of_kind("instruction.state")) {
      const json b = json::parse(e.body);
      if (b["instruction"] == id && b["to"] == to) {
        found = e.seq;
        if (!last) break;
      }
    }
    return found;
  }
};

TEST(Scheduler, EverythingSettlesAndBalancesMatchTheObligations) {
  Rig r("happy", make_config(0, 0));
  EXPECT_EQ(r.sched->receive(three_member_cycle("c1", kT0 + 100), r.now), CycleReceipt::recorded);
  r.run_until_idle();
  ASSERT_TRUE(r.sched->idle());
  for (const auto& i : three_member_cycle("c1", 0).instructions) EXPECT_EQ(r.state_of(i.instruction_id), "final");
  const std::int64_t btc0 = 1000 * kBtc, usdc0 = 10000000 * kUsdc;
  EXPECT_EQ(r.chain("BTC").balance("M1", "BTC"), btc0 - 2 * kBtc);
  EXPECT_EQ(r.chain("BTC").balance("M2", "BTC"), btc0 + 150000000);
  EXPECT_EQ(r.chain("BTC").balance("M3", "BTC"), btc0 + 50000000);
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 0);
  EXPECT_EQ(r.chain("USDC").balance("M1", "USDC"), usdc0 + 60000 * kUsdc);
  EXPECT_EQ(r.chain("USDC").balance("M2", "USDC"), usdc0 - 60000 * kUsdc);
  EXPECT_EQ(r.chain("USDC").balance("CCP", "USDC"), 0);
  const auto rep = r.sched->ledger().verify();
  EXPECT_TRUE(rep.ok) << rep.message;
  EXPECT_EQ(rep.cycles_checked, 1);
  const auto st = r.sched->status();
  EXPECT_EQ(st.cycles_closed, 1);
  EXPECT_EQ(st.instructions_per_state.at("final"), 5);
  EXPECT_TRUE(st.value_pending.empty());
}

TEST(Scheduler, PayInsFirstAndAMembersPayOutsOnlyAfterItsPayInsAreFinal) {
  Rig r("dvp", make_config(0, 0));
  r.sched->receive(three_member_cycle("c1", kT0 + 100), r.now);
  r.step();  // opens the cycle: pay-ins submitted, no pay-out yet
  std::size_t pay_ins = 0, pay_outs = 0;
  for (const auto& in : r.sched->open_instructions()) {
    const bool pay_in = in.leg == Leg::pay_in;
    ++(pay_in ? pay_ins : pay_outs);
    EXPECT_EQ(in.state, pay_in ? InstructionState::submitted : InstructionState::instructed) << in.id;
  }
  EXPECT_GT(pay_ins, 0u);
  EXPECT_GT(pay_outs, 0u);
  r.run_until_idle();
  // M1 receives USDC only after M1's BTC pay-in is final (and the USDC pay-in that funds it).
  const auto m1_in_final = r.seq_of("c1/M1/BTC/in", "final");
  const auto m1_out_submitted = r.seq_of("c1/M1/USDC/out", "submitted");
  ASSERT_GT(m1_in_final, 0);
  EXPECT_GT(m1_out_submitted, m1_in_final);
  EXPECT_GT(m1_out_submitted, r.seq_of("c1/M2/USDC/in", "final"));
  EXPECT_GT(r.seq_of("c1/M2/BTC/out", "submitted"), r.seq_of("c1/M2/USDC/in", "final"));
  // The path of a pay-in: instructed -> submitted -> confirmed -> final.
  EXPECT_LT(r.seq_of("c1/M1/BTC/in", "submitted"), r.seq_of("c1/M1/BTC/in", "confirmed"));
  EXPECT_LT(r.seq_of("c1/M1/BTC/in", "confirmed"), m1_in_final);
}

TEST(Scheduler, FinalityDepthAndBlockTimeOfEachChainAreHonoured) {
  SchedulerConfig cfg = make_config(0, 0);
  cfg.sim_chains[0].block_time = 10;  // BTC: a block every 10 s, 3 confirmations
  Rig r("blocktime", cfg);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 1000;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins("c1", "M1", "BTC", Leg::pay_in, kBtc), ins("c1", "M2", "BTC", Leg::pay_out, kBtc)};
  r.sched->receive(c, r.now);
  int ticks = r.run_until_idle(1000);
  // Pay-in: mined in the first block (<= 10 s), final 2 blocks later; pay-out: 3 more blocks.
  EXPECT_GE(ticks, 50);
  EXPECT_LE(ticks, 75);
  EXPECT_EQ(r.state_of("c1/M2/BTC/out"), "final");
  EXPECT_GE(r.chain("BTC").height(), 6u);
}

TEST(Scheduler, AMemberFailingItsPayInIsRolledWhileOthersSettleOnLiquidity) {
  // M3 pays 1 BTC and fails; the CCP's 5 BTC of liquidity covers it (Cover-1), so M1 and M2
  // are paid before the deadline. M3's own pay-out is withheld and rolled.
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  cfg.sim_chains[0].failing_members = {"M3"};
  Rig r("fail_payin", cfg);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 60;
  c.assets = {{"BTC", 8}, {"USDC", 6}};
  c.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, kBtc), ins("c1", "M4", "BTC", Leg::pay_in, kBtc),
                    ins("c1", "M1", "BTC", Leg::pay_out, 150000000), ins("c1", "M2", "BTC", Leg::pay_out, 50000000),
                    ins("c1", "M3", "USDC", Leg::pay_out, 1000 * kUsdc), ins("c1", "M4", "USDC", Leg::pay_in, 1000 * kUsdc)};
  r.sched->receive(c, r.now);
  for (int i = 0; i < 20; ++i) r.step();  // well before the deadline
  EXPECT_EQ(r.state_of("c1/M3/BTC/in"), "failed");
  EXPECT_EQ(r.state_of("c1/M1/BTC/out"), "final");
  EXPECT_EQ(r.state_of("c1/M2/BTC/out"), "final");
  EXPECT_EQ(r.state_of("c1/M4/BTC/in"), "final");
  EXPECT_EQ(r.state_of("c1/M3/USDC/out"), "instructed");  // withheld: M3 has not paid
  r.run_until_idle();
  EXPECT_GE(r.now, kT0 + 60);
  EXPECT_EQ(r.state_of("c1/M3/BTC/in"), "rolled");
  EXPECT_EQ(r.state_of("c1/M3/USDC/out"), "rolled");
  const auto st = r.sched->status();
  EXPECT_EQ(st.carried.at("BTC"), kBtc);
  EXPECT_EQ(st.carried.at("USDC"), 1000 * kUsdc);
  EXPECT_EQ(st.shortfall.count("BTC"), 0u);
  // Liquidity: 5 BTC + 1 BTC in - 2 BTC out = 4 BTC.
  EXPECT_EQ(st.liquidity.at("BTC"), 4 * kBtc);
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 4 * kBtc);
  EXPECT_EQ(r.chain("BTC").balance("M3", "BTC"), 1000 * kBtc);  // never moved
  EXPECT_TRUE(r.sched->ledger().verify().ok);
}

TEST(Scheduler, WithoutEnoughLiquidityPayOutsWaitAndAShortfallIsHeldProRata) {
  // M3 fails to pay 3 BTC; liquidity 1 BTC. Funds at the deadline: 2 BTC (M4) + 1 BTC = 3 of
  // 5 BTC owed to M1 (3) and M2 (2): paid 1.8 and 1.2, held 1.2 and 0.8.
  SchedulerConfig cfg = make_config(kBtc, 0);
  cfg.sim_chains[0].failing_members = {"M3"};
  Rig r("shortfall", cfg);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 30;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, 3 * kBtc), ins("c1", "M4", "BTC", Leg::pay_in, 2 * kBtc),
                    ins("c1", "M1", "BTC", Leg::pay_out, 3 * kBtc), ins("c1", "M2", "BTC", Leg::pay_out, 2 * kBtc)};
  r.sched->receive(c, r.now);
  for (int i = 0; i < 20; ++i) r.step();
  EXPECT_EQ(r.state_of("c1/M1/BTC/out"), "instructed");  // not covered: waits for the deadline
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/M1/BTC/out"), "final");
  EXPECT_EQ(r.settle_of("c1/M1/BTC/out"), 180000000);
  EXPECT_EQ(r.settle_of("c1/M2/BTC/out"), 120000000);
  EXPECT_EQ(r.chain("BTC").balance("M1", "BTC"), 1000 * kBtc + 180000000);
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 0);
  const auto st = r.sched->status();
  EXPECT_EQ(st.shortfall.at("BTC"), 2 * kBtc);
  EXPECT_EQ(st.carried.at("BTC"), 2 * kBtc + 3 * kBtc);  // held pay-outs + M3's rolled pay-in
  const auto sf = r.entries_of_kind("payout.shortfall");
  ASSERT_EQ(sf.size(), 1u);
  const json b = json::parse(sf[0].body);
  EXPECT_EQ(b["funds"], 3 * kBtc);
  EXPECT_EQ(b["shortfall"], 2 * kBtc);
}

TEST(Scheduler, ProRataSplitsEveryUnitExactly) {
  // 3 receivers of 1 unit each and 2 units of funds: paid 1,1,0 by largest remainder, ties by id.
  SchedulerConfig cfg = make_config(0, 0);
  cfg.sim_chains[0].failing_members = {"P"};
  Rig r("prorata", cfg);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 10;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins("c1", "P", "BTC", Leg::pay_in, 1), ins("c1", "Q", "BTC", Leg::pay_in, 2),
                    ins("c1", "A", "BTC", Leg::pay_out, 1), ins("c1", "B", "BTC", Leg::pay_out, 1),
                    ins("c1", "C", "BTC", Leg::pay_out, 1)};
  r.sched->receive(c, r.now);
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/A/BTC/out"), "final");
  EXPECT_EQ(r.state_of("c1/B/BTC/out"), "final");
  EXPECT_EQ(r.state_of("c1/C/BTC/out"), "rolled");
  EXPECT_EQ(r.settle_of("c1/A/BTC/out") + r.settle_of("c1/B/BTC/out"), 2);
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 0);
}

TEST(Scheduler, MissedDeadlineCanGoToDefaultManagement) {
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  cfg.on_missed_deadline = MissedDeadlineAction::default_management;
  cfg.sim_chains[0].failing_members = {"M3"};
  Rig r("default", cfg);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 20;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, kBtc), ins("c1", "M3", "BTC", Leg::pay_out, 10),
                    ins("c1", "M1", "BTC", Leg::pay_out, kBtc - 10)};
  r.sched->receive(c, r.now);
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/M3/BTC/in"), "defaulted");
  EXPECT_EQ(r.state_of("c1/M3/BTC/out"), "defaulted");
  EXPECT_EQ(r.state_of("c1/M1/BTC/out"), "final");
  EXPECT_TRUE(r.sched->status().carried.empty());
  const auto d = r.entries_of_kind("cycle.deadline");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(json::parse(d[0].body)["members_missed"], json::array({"M3"}));
}

TEST(Scheduler, APayInInFlightAtTheDeadlineThatThenFailsIsRolledOrDefaultedAndTheCycleCloses) {
  // The cycle opens after its deadline: M3's pay-in is submitted, still in flight when the
  // deadline is processed, and fails afterwards. It must end rolled (or defaulted), not stay
  // `failed` with the cycle open for ever.
  for (const auto action : {MissedDeadlineAction::roll, MissedDeadlineAction::default_management}) {
    SchedulerConfig cfg = make_config(5 * kBtc, 0);
    cfg.on_missed_deadline = action;
    cfg.sim_chains[0].failing_members = {"M3"};
    const bool roll = action == MissedDeadlineAction::roll;
    Rig r(roll ? "late_fail_roll" : "late_fail_default", cfg);
    SettlementCycle c;
    c.cycle_id = "c1";
    c.deadline = r.now - 10;
    c.assets = {{"BTC", 8}};
    c.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, kBtc), ins("c1", "M1", "BTC", Leg::pay_out, kBtc)};
    r.sched->receive(c, r.now);
    EXPECT_LT(r.run_until_idle(300), 300) << "the cycle never closed";
    EXPECT_TRUE(r.sched->idle());
    EXPECT_EQ(r.state_of("c1/M3/BTC/in"), roll ? "rolled" : "defaulted");
    EXPECT_GT(r.seq_of("c1/M3/BTC/in", "failed"), 0) << "it failed on the chain first";
    EXPECT_EQ(r.state_of("c1/M1/BTC/out"), "final");  // paid from liquidity
    if (roll) {
      EXPECT_EQ(r.sched->status().carried.at("BTC"), kBtc);
    }
    EXPECT_TRUE(r.sched->ledger().verify().ok);
  }
}

TEST(Scheduler, AReorgUndoesAConfirmationBeforeFinality) {
  Rig r("reorg", make_config(0, 0));
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 100;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins("c1", "M1", "BTC", Leg::pay_in, kBtc), ins("c1", "M2", "BTC", Leg::pay_out, kBtc)};
  r.sched->receive(c, r.now);
  r.step();  // submitted
  r.step();  // mined: 1 confirmation
  EXPECT_EQ(r.state_of("c1/M1/BTC/in"), "confirmed");
  r.step();  // 2 confirmations (finality 3)
  EXPECT_EQ(r.state_of("c1/M1/BTC/in"), "confirmed");
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), kBtc);
  r.chain("BTC").inject_reorg(2);
  r.step();
  EXPECT_EQ(r.state_of("c1/M1/BTC/in"), "submitted");
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 0);  // undone on the chain too
  EXPECT_EQ(r.state_of("c1/M2/BTC/out"), "instructed");
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/M1/BTC/in"), "final");
  EXPECT_EQ(r.state_of("c1/M2/BTC/out"), "final");
  EXPECT_EQ(r.chain("BTC").balance("M1", "BTC"), 1000 * kBtc - kBtc);
  EXPECT_EQ(r.chain("BTC").balance("M2", "BTC"), 1000 * kBtc + kBtc);
  EXPECT_EQ(r.chain("BTC").reorgs(), 1u);
  // The ledger tells the story: confirmed, back to submitted (reorg), confirmed, final; final once.
  int finals = 0, reorgs = 0;
  for (auto& e : r.entries_of_kind("instruction.state")) {
    const json b = json::parse(e.body);
    if (b["instruction"] != "c1/M1/BTC/in") continue;
    if (b["to"] == "final") ++finals;
    if (b["from"] == "confirmed" && b["to"] == "submitted") ++reorgs;
  }
  EXPECT_EQ(finals, 1);
  EXPECT_EQ(reorgs, 1);
  EXPECT_TRUE(r.sched->ledger().verify().ok);
}

TEST(Scheduler, RandomReorgsNeverUndoFinalityAndRunsAreDeterministic) {
  auto run = [](const std::string& name) {
    SchedulerConfig cfg = make_config(0, 0);
    cfg.sim_chains[0].reorg_probability = 0.3;
    cfg.sim_chains[0].reorg_depth = 2;
    cfg.sim_chains[0].max_transfers_per_block = 3;
    Rig r(name, cfg);
    SettlementCycle c;
    c.cycle_id = "c1";
    c.deadline = kT0 + 10000;
    c.assets = {{"BTC", 8}};
    for (int m = 0; m < 10; ++m) {
      c.instructions.push_back(ins("c1", "P" + std::to_string(m), "BTC", Leg::pay_in, (m + 1) * 1000));
      c.instructions.push_back(ins("c1", "R" + std::to_string(m), "BTC", Leg::pay_out, (10 - m) * 1000));
    }
    r.sched->receive(c, r.now);
    r.run_until_idle(2000);
    EXPECT_TRUE(r.sched->idle());
    EXPECT_GT(r.chain("BTC").reorgs(), 0u);
    for (const auto& i : c.instructions) EXPECT_EQ(r.state_of(i.instruction_id), "final");
    EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 0);
    // No instruction went final twice.
    std::map<std::string, int> finals;
    std::string bodies;
    for (auto& e : r.sched->ledger().entries()) {
      bodies += e.body + "\n";
      if (e.kind != "instruction.state") continue;
      const json b = json::parse(e.body);
      if (b["to"] == "final") ++finals[b["instruction"].get<std::string>()];
    }
    for (const auto& [id, n] : finals) EXPECT_EQ(n, 1) << id;
    EXPECT_EQ(finals.size(), c.instructions.size());
    return bodies;
  };
  EXPECT_EQ(run("det_a"), run("det_b"));
}

TEST(Scheduler, ADuplicateCycleChangesNothing) {
  Rig r("dup", make_config(0, 0));
  const auto c = three_member_cycle("c1", kT0 + 100);
  EXPECT_EQ(r.sched->receive(c, r.now), CycleReceipt::recorded);
  const auto size = r.sched->ledger().size();
  EXPECT_EQ(r.sched->receive(c, r.now), CycleReceipt::duplicate);
  EXPECT_EQ(r.sched->ledger().size(), size);
  r.run_until_idle();
  const auto after = r.sched->ledger().size();
  EXPECT_EQ(r.sched->receive(c, r.now), CycleReceipt::duplicate);  // also once closed
  r.run_until_idle();
  EXPECT_EQ(r.sched->ledger().size(), after);
  EXPECT_EQ(r.chain("BTC").balance("M1", "BTC"), 1000 * kBtc - 2 * kBtc);  // paid once
  // The same id with other contents is refused.
  auto changed = c;
  changed.instructions[0].amount += 1;
  EXPECT_THROW(r.sched->receive(changed, r.now), input_error);
  EXPECT_EQ(r.sched->ledger().size(), after);
  // An instruction delivered again inside another cycle: that cycle is refused whole (ids are
  // unique across cycles), nothing of it recorded.
  SettlementCycle c2;
  c2.cycle_id = "c2";
  c2.deadline = kT0 + 1000;
  c2.assets = c.assets;
  c2.instructions = {c.instructions[0], ins("c2", "M9", "BTC", Leg::pay_in, 5)};
  EXPECT_THROW(r.sched->receive(c2, r.now), input_error);
  EXPECT_EQ(r.sched->ledger().size(), after);
  SqliteStatement q(*r.db, "SELECT COUNT(*) FROM sched_instructions WHERE cycle_id='c2'");
  q.step();
  EXPECT_EQ(q.int64(0), 0);
}

TEST(Scheduler, ACycleArrivingWhileAnotherIsOpenWaitsAndReceivesTheRolledObligations) {
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  Rig r("queued", cfg);
  r.chain("BTC").set_balance("M3", "BTC", 0);  // M3 cannot pay in c1
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = kT0 + 20;
  c1.assets = {{"BTC", 8}};
  c1.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, kBtc), ins("c1", "M1", "BTC", Leg::pay_out, kBtc)};
  r.sched->receive(c1, r.now);
  r.step();
  EXPECT_EQ(r.sched->open_cycle(), "c1");
  SettlementCycle c2;
  c2.cycle_id = "c2";
  c2.deadline = kT0 + 100;
  c2.assets = {{"BTC", 8}};
  c2.instructions = {ins("c2", "M2", "BTC", Leg::pay_in, 10), ins("c2", "M1", "BTC", Leg::pay_out, 10)};
  EXPECT_EQ(r.sched->receive(c2, r.now), CycleReceipt::recorded);
  r.step();
  EXPECT_EQ(r.sched->open_cycle(), "c1");
  EXPECT_EQ(r.sched->status().cycles_queued, 1);
  EXPECT_EQ(r.state_of("c2/M2/BTC/in"), "instructed");  // nothing of c2 moves while c1 is open
  // Before c1's deadline M3 is funded again: its rolled pay-in will succeed in c2.
  while (r.sched->open_cycle() == "c1") r.step();
  EXPECT_EQ(r.state_of("c1/M3/BTC/in"), "rolled");
  EXPECT_EQ(r.state_of("c1/M1/BTC/out"), "final");  // covered by liquidity
  r.chain("BTC").set_balance("M3", "BTC", 10 * kBtc);
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/M3/BTC/in@c2"), "final");
  EXPECT_EQ(r.state_of("c2/M1/BTC/out"), "final");
  const auto st = r.sched->status();
  EXPECT_EQ(st.cycles_closed, 2);
  EXPECT_EQ(st.liquidity.at("BTC"), 5 * kBtc);  // replenished by the rolled pay-in
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 5 * kBtc);
  EXPECT_EQ(r.sched->ledger().verify().cycles_checked, 2);
}

TEST(Scheduler, AHeldShortfallIsPaidInTheNextCycle) {
  SchedulerConfig cfg = make_config(0, 0);
  Rig r("held_next", cfg);
  r.chain("BTC").set_balance("M3", "BTC", 0);
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = kT0 + 15;
  c1.assets = {{"BTC", 8}};
  c1.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, 100), ins("c1", "M4", "BTC", Leg::pay_in, 100),
                     ins("c1", "M1", "BTC", Leg::pay_out, 150), ins("c1", "M2", "BTC", Leg::pay_out, 50)};
  r.sched->receive(c1, r.now);
  while (!r.sched->idle()) r.step();
  EXPECT_EQ(r.settle_of("c1/M1/BTC/out"), 75);
  EXPECT_EQ(r.settle_of("c1/M2/BTC/out"), 25);
  r.chain("BTC").set_balance("M3", "BTC", 1000);
  SettlementCycle c2;
  c2.cycle_id = "c2";
  c2.deadline = r.now + 100;
  c2.assets = {{"BTC", 8}};
  r.sched->receive(c2, r.now);
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/M1/BTC/out@c2"), "final");
  EXPECT_EQ(r.settle_of("c1/M1/BTC/out@c2"), 75);
  EXPECT_EQ(r.chain("BTC").balance("M1", "BTC"), 1000 * kBtc + 150);
  EXPECT_EQ(r.chain("BTC").balance("M2", "BTC"), 1000 * kBtc + 50);
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 0);
  EXPECT_TRUE(r.sched->status().carried.empty());
}

TEST(Scheduler, AFailedPayOutIsRetriedThenCarried) {
  SchedulerConfig cfg = make_config(0, 0);
  cfg.max_payout_attempts = 2;
  Rig r("payout_retry", cfg);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 100;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins("c1", "M1", "BTC", Leg::pay_in, 100), ins("c1", "M2", "BTC", Leg::pay_out, 100)};
  r.sched->receive(c, r.now);
  while (r.state_of("c1/M1/BTC/in") != "final") r.step();
  r.chain("BTC").fail_transfers_from("CCP");
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/M2/BTC/out"), "rolled");
  EXPECT_EQ(r.sched->status().carried.at("BTC"), 100);
  int fails = 0;
  for (auto& e : r.entries_of_kind("instruction.state"))
    if (json::parse(e.body)["to"] == "failed") ++fails;
  EXPECT_EQ(fails, 2);
}

TEST(Scheduler, MarginCallsAreCollectedAsPayInsAndGateTheMembersPayOuts) {
  Rig r("margin_call", make_config(0, 0));
  r.chain("USDC").set_balance("M1", "USDC", 0);  // M1 cannot meet its margin call
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 20;
  c.assets = {{"BTC", 8}, {"USDC", 6}};
  c.instructions = {ins("c1", "M2", "BTC", Leg::pay_in, 100), ins("c1", "M1", "BTC", Leg::pay_out, 100),
                    ins("c1", "M1", "USDC", Leg::pay_in, 500 * kUsdc, ObligationKind::margin_call)};
  r.sched->receive(c, r.now);
  r.run_until_idle();
  EXPECT_EQ(r.state_of("c1/M1/USDC/in/margin_call"), "rolled");
  EXPECT_EQ(r.state_of("c1/M1/BTC/out"), "rolled");  // withheld: M1's margin call is not paid
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), 100);
}

TEST(Scheduler, RestartRecoversFromTheDatabaseAndSettlesExactlyOnce) {
  SchedulerConfig cfg = make_config(0, 0);
  cfg.sim_chains[0].reorg_probability = 0.2;
  cfg.sim_chains[0].reorg_depth = 2;
  cfg.sim_chains[0].max_transfers_per_block = 4;
  auto r = std::make_unique<Rig>("restart", cfg, true);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 100000;
  c.assets = {{"BTC", 8}};
  std::int64_t total = 0;
  for (int m = 0; m < 12; ++m) {
    c.instructions.push_back(ins("c1", "P" + std::to_string(m), "BTC", Leg::pay_in, 1000 + m));
    total += 1000 + m;
  }
  c.instructions.push_back(ins("c1", "R", "BTC", Leg::pay_out, total));
  r->sched->receive(c, r->now);
  int restarts = 0;
  while (!r->sched->idle() && restarts < 100) {
    r->step();
    r->step();
    // Restart: everything in memory is dropped; the scheduler and the chain reload.
    const double now = r->now;
    r = std::make_unique<Rig>("restart", cfg, true, false);
    r->now = now;
    EXPECT_EQ(r->sched->receive(c, r->now), CycleReceipt::duplicate);
    ++restarts;
  }
  ASSERT_TRUE(r->sched->idle());
  EXPECT_GT(restarts, 3);
  for (const auto& i : c.instructions) EXPECT_EQ(r->state_of(i.instruction_id), "final");
  EXPECT_EQ(r->chain("BTC").balance("R", "BTC"), 1000 * kBtc + total);
  EXPECT_EQ(r->chain("BTC").balance("CCP", "BTC"), 0);
  EXPECT_TRUE(r->sched->ledger().verify().ok);
}

TEST(Scheduler, BadCyclesAreInputErrors) {
  Rig r("bad", make_config(0, 0));
  const auto entries = r.sched->ledger().size();
  auto c = three_member_cycle("c1", kT0 + 100);
  c.instructions[0].asset = "DOGE";
  EXPECT_THROW(r.sched->receive(c, r.now), input_error);
  c = three_member_cycle("c1", kT0 + 100);
  c.instructions[1].instruction_id = c.instructions[0].instruction_id;
  EXPECT_THROW(r.sched->receive(c, r.now), input_error);
  c = three_member_cycle("c1", kT0 + 100);
  c.instructions[0].amount = 0;
  EXPECT_THROW(r.sched->receive(c, r.now), input_error);
  c = three_member_cycle("c1\n", kT0 + 100);
  EXPECT_THROW(r.sched->receive(c, r.now), input_error);
  c = three_member_cycle("c1", kT0 + 100);
  c.assets[0].scale = 6;
  EXPECT_THROW(r.sched->receive(c, r.now), input_error);
  EXPECT_EQ(r.sched->ledger().size(), entries);
}

TEST(Scheduler, ChainsFileIsParsedAndCheckedFieldByField) {
  const std::string good = R"({"ccp_address": "CCP", "on_missed_deadline": "roll",
    "assets": {"BTC": {"scale": 8, "ccp_liquidity": "2.5"}},
    "chains": [{"name": "b", "adapter": "sim", "assets": ["BTC"], "block_time": 0, "finality_depth": 3,
                "reorg_probability": 0.1, "reorg_depth": 2, "member_funding": {"BTC": "10"}}]})";
  const SchedulerConfig cfg = parse_scheduler_config(good, "chains.json");
  EXPECT_EQ(cfg.assets.at("BTC").ccp_liquidity, 250000000);
  EXPECT_EQ(cfg.sim_chains.at(0).member_funding.at("BTC"), 1000000000);
  EXPECT_EQ(cfg.sim_chains.at(0).ccp_funding.at("BTC"), 250000000);
  auto bad = [](const std::string& text, const std::string& field) {
    try {
      SchedulerConfig c = parse_scheduler_config(text, "chains.json");
      std::vector<std::unique_ptr<SimChain>> chains;
      for (const auto& sc : c.sim_chains) chains.push_back(std::make_unique<SimChain>(sc));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const input_error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  bad("[1]", "chains.json");
  bad(R"({"assets": {"BTC": {"scale": 8, "ccp_liquidity": "0.000000001"}}, "chains": [{"name": "b", "assets": ["BTC"]}]})",
      "ccp_liquidity");
  bad(R"({"assets": {"BTC": {"scale": 8}}, "chains": [{"name": "b", "adapter": "lightning", "assets": ["BTC"]}]})",
      "adapter");
  bad(R"({"assets": {"BTC": {"scale": 8}, "ETH": {"scale": 9}}, "chains": [{"name": "b", "assets": ["BTC"]}]})",
      "ETH");
  bad(R"({"assets": {"BTC": {"scale": 8}}, "chains": [{"name": "b", "assets": ["BTC"], "finality_depth": 2,
        "reorg_probability": 0.5, "reorg_depth": 2}]})", "reorg_depth");
  bad(R"({"on_missed_deadline": "pray", "assets": {"BTC": {"scale": 8}}, "chains": [{"name": "b", "assets": ["BTC"]}]})",
      "on_missed_deadline");
}

TEST(Scheduler, MinorUnitsParseExactly) {
  EXPECT_EQ(parse_minor_units("1.5", 8).value(), 150000000);
  EXPECT_EQ(parse_minor_units("0.00000001", 8).value(), 1);
  EXPECT_EQ(parse_minor_units("1.500000000", 8).value(), 150000000);  // trailing zeros beyond the scale
  EXPECT_FALSE(parse_minor_units("1.000000001", 8).has_value());
  EXPECT_FALSE(parse_minor_units("abc", 8).has_value());
  EXPECT_FALSE(parse_minor_units("99999999999999999999", 0).has_value());
  EXPECT_EQ(format_minor_units(150000000, 8), "1.50000000");
  EXPECT_EQ(format_minor_units(-5, 2), "-0.05");
  EXPECT_EQ(format_minor_units(7, 0), "7");
}

// ---------------------------------------------------------------------------------------------
// read_settlement_report: the answer to settlement.query, over real runs

const InstructionOutcome* outcome(const SettlementReport& rep, const std::string& id) {
  for (const auto& o : rep.instructions)
    if (o.instruction_id == id) return &o;
  return nullptr;
}

// "final 100/100" etc., so that a failure shows the whole outcome.
std::string text(const InstructionOutcome* o) {
  if (!o) return "(absent)";
  return o->state + " " + std::to_string(o->settled) + "/" + std::to_string(o->amount);
}

TEST(SettlementReport, ACycleThatSettlesFullyIsCompleteWithEveryInstructionFinal) {
  Rig r("report_full", make_config(0, 0));
  const SettlementCycle c = three_member_cycle("c1", kT0 + 100);
  r.sched->receive(c, r.now);
  SettlementReport rep = read_settlement_report(*r.db, "c1");
  EXPECT_EQ(rep.cycle_id, "c1");
  EXPECT_EQ(rep.cycle_state, "queued");
  EXPECT_FALSE(rep.complete);
  ASSERT_EQ(rep.instructions.size(), c.instructions.size());
  for (const auto& o : rep.instructions) {
    EXPECT_EQ(o.state, "pending") << o.instruction_id;
    EXPECT_EQ(o.settled, 0) << o.instruction_id;
  }
  r.step();
  rep = read_settlement_report(*r.db, "c1");
  EXPECT_EQ(rep.cycle_state, "open");
  EXPECT_FALSE(rep.complete);
  r.run_until_idle();
  rep = read_settlement_report(*r.db, "c1");
  EXPECT_EQ(rep.cycle_state, "closed");
  EXPECT_TRUE(rep.complete);
  ASSERT_EQ(rep.instructions.size(), c.instructions.size());
  for (std::size_t i = 0; i < c.instructions.size(); ++i) {
    // In cycle order, each with its amount, all of it settled.
    EXPECT_EQ(rep.instructions[i].instruction_id, c.instructions[i].instruction_id);
    EXPECT_EQ(rep.instructions[i].amount, c.instructions[i].amount);
    EXPECT_EQ(rep.instructions[i].settled, c.instructions[i].amount);
    EXPECT_EQ(rep.instructions[i].state, "final");
  }
}

TEST(SettlementReport, AnObligationRolledToTheNextCycleIsPendingUntilItSettlesThere) {
  // M3 cannot pay 1 BTC by c1's deadline: its pay-in and its withheld USDC pay-out are rolled.
  // The CCP's liquidity pays M1; M4's USDC pay-in is final.
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  ASSERT_EQ(cfg.on_missed_deadline, MissedDeadlineAction::roll);
  Rig r("report_roll", cfg);
  r.chain("BTC").set_balance("M3", "BTC", 0);
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = kT0 + 20;
  c1.assets = {{"BTC", 8}, {"USDC", 6}};
  c1.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, kBtc), ins("c1", "M1", "BTC", Leg::pay_out, kBtc),
                     ins("c1", "M4", "USDC", Leg::pay_in, 1000 * kUsdc),
                     ins("c1", "M3", "USDC", Leg::pay_out, 1000 * kUsdc)};
  r.sched->receive(c1, r.now);
  r.run_until_idle();
  ASSERT_EQ(r.state_of("c1/M3/BTC/in"), "rolled");
  ASSERT_EQ(r.state_of("c1/M3/USDC/out"), "rolled");
  ASSERT_EQ(r.sched->status().carried.at("BTC"), kBtc);  // waiting for a cycle

  // Closed, but two obligations wait for the next cycle: not complete.
  SettlementReport rep = read_settlement_report(*r.db, "c1");
  EXPECT_EQ(rep.cycle_state, "closed");
  EXPECT_FALSE(rep.complete);
  ASSERT_EQ(rep.instructions.size(), 4u);
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/in")), "pending 0/" + std::to_string(kBtc));
  EXPECT_EQ(text(outcome(rep, "c1/M3/USDC/out")), "pending 0/" + std::to_string(1000 * kUsdc));
  EXPECT_EQ(text(outcome(rep, "c1/M1/BTC/out")), "final " + std::to_string(kBtc) + "/" + std::to_string(kBtc));
  EXPECT_EQ(text(outcome(rep, "c1/M4/USDC/in")),
            "final " + std::to_string(1000 * kUsdc) + "/" + std::to_string(1000 * kUsdc));

  // M3 is funded again; the next cycle (with its own instruction) opens and carries them in.
  r.chain("BTC").set_balance("M3", "BTC", 10 * kBtc);
  SettlementCycle c2;
  c2.cycle_id = "c2";
  c2.deadline = r.now + 100;
  c2.assets = {{"BTC", 8}};
  c2.instructions = {ins("c2", "M2", "BTC", Leg::pay_in, 10), ins("c2", "M5", "BTC", Leg::pay_out, 10)};
  r.sched->receive(c2, r.now);
  r.step();
  ASSERT_EQ(r.sched->open_cycle(), "c2");
  ASSERT_EQ(r.state_of("c1/M3/BTC/in@c2"), "submitted");
  rep = read_settlement_report(*r.db, "c1");
  EXPECT_FALSE(rep.complete);
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/in")), "pending 0/" + std::to_string(kBtc));  // in flight in c2
  // c2 reports its own instructions only, not the ones carried into it.
  SettlementReport rep2 = read_settlement_report(*r.db, "c2");
  EXPECT_EQ(rep2.cycle_state, "open");
  ASSERT_EQ(rep2.instructions.size(), 2u);
  EXPECT_EQ(rep2.instructions[0].instruction_id, "c2/M2/BTC/in");
  EXPECT_EQ(rep2.instructions[1].instruction_id, "c2/M5/BTC/out");

  r.run_until_idle();
  ASSERT_EQ(r.state_of("c1/M3/BTC/in@c2"), "final");
  ASSERT_EQ(r.state_of("c1/M3/USDC/out@c2"), "final");
  rep = read_settlement_report(*r.db, "c1");
  EXPECT_EQ(rep.cycle_state, "closed");
  EXPECT_TRUE(rep.complete);
  for (const auto& o : rep.instructions) {
    EXPECT_EQ(o.state, "final") << o.instruction_id;
    EXPECT_EQ(o.settled, o.amount) << o.instruction_id;
  }
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/in")), "final " + std::to_string(kBtc) + "/" + std::to_string(kBtc));
  rep2 = read_settlement_report(*r.db, "c2");
  EXPECT_TRUE(rep2.complete);
  EXPECT_EQ(text(outcome(rep2, "c2/M5/BTC/out")), "final 10/10");
}

TEST(SettlementReport, AHeldShortfallCountsWhatWasPaidAndFollowsTheRestAcrossCycles) {
  // As in AHeldShortfallIsPaidInTheNextCycle: M1 is paid 75 of 150 in c1, the rest in c2; and
  // M3's pay-in, rolled twice (c2 and c3), settles in c3: the chain c1/M3 -> @c2 -> @c2@c3.
  Rig r("report_held", make_config(0, 0));
  r.chain("BTC").set_balance("M3", "BTC", 0);
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = kT0 + 15;
  c1.assets = {{"BTC", 8}};
  c1.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, 100), ins("c1", "M4", "BTC", Leg::pay_in, 100),
                     ins("c1", "M1", "BTC", Leg::pay_out, 150), ins("c1", "M2", "BTC", Leg::pay_out, 50)};
  r.sched->receive(c1, r.now);
  r.run_until_idle();
  SettlementReport rep = read_settlement_report(*r.db, "c1");
  EXPECT_FALSE(rep.complete);
  EXPECT_EQ(text(outcome(rep, "c1/M1/BTC/out")), "pending 75/150");
  EXPECT_EQ(text(outcome(rep, "c1/M2/BTC/out")), "pending 25/50");
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/in")), "pending 0/100");
  EXPECT_EQ(text(outcome(rep, "c1/M4/BTC/in")), "final 100/100");

  // c2: M3 still cannot pay: rolled again (c1/M3/BTC/in@c2 -> c1/M3/BTC/in@c2@c3). The held
  // pay-outs are not covered (funds 0), so they are held again too.
  SettlementCycle c2;
  c2.cycle_id = "c2";
  c2.deadline = r.now + 10;
  c2.assets = {{"BTC", 8}};
  r.sched->receive(c2, r.now);
  r.run_until_idle();
  ASSERT_EQ(r.state_of("c1/M3/BTC/in@c2"), "rolled");
  rep = read_settlement_report(*r.db, "c1");
  EXPECT_FALSE(rep.complete);
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/in")), "pending 0/100");

  r.chain("BTC").set_balance("M3", "BTC", 1000);
  SettlementCycle c3;
  c3.cycle_id = "c3";
  c3.deadline = r.now + 100;
  c3.assets = {{"BTC", 8}};
  r.sched->receive(c3, r.now);
  // A cycle with nothing of its own has nothing pending, yet it is complete only once closed.
  SettlementReport rep3 = read_settlement_report(*r.db, "c3");
  EXPECT_EQ(rep3.cycle_state, "queued");
  EXPECT_FALSE(rep3.complete);
  r.step();
  ASSERT_EQ(r.sched->open_cycle(), "c3");
  rep3 = read_settlement_report(*r.db, "c3");
  EXPECT_EQ(rep3.cycle_state, "open");
  EXPECT_TRUE(rep3.instructions.empty());
  EXPECT_FALSE(rep3.complete);
  r.run_until_idle();
  ASSERT_EQ(r.state_of("c1/M3/BTC/in@c2@c3"), "final");
  rep = read_settlement_report(*r.db, "c1");
  EXPECT_TRUE(rep.complete);
  EXPECT_EQ(text(outcome(rep, "c1/M1/BTC/out")), "final 150/150");
  EXPECT_EQ(text(outcome(rep, "c1/M2/BTC/out")), "final 50/50");
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/in")), "final 100/100");
  EXPECT_EQ(r.chain("BTC").balance("M1", "BTC"), 1000 * kBtc + 150);
  // c2 and c3 had no instructions of their own: closed, complete, empty.
  rep3 = read_settlement_report(*r.db, "c3");
  EXPECT_EQ(rep3.cycle_state, "closed");
  EXPECT_TRUE(rep3.complete);
  EXPECT_TRUE(rep3.instructions.empty());
}

TEST(SettlementReport, ObligationsHandedToDefaultManagementAreDefaultedAndTheCycleComplete) {
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  cfg.on_missed_deadline = MissedDeadlineAction::default_management;
  Rig r("report_default", cfg);
  r.chain("BTC").set_balance("M3", "BTC", 0);
  SettlementCycle c;
  c.cycle_id = "c1";
  c.deadline = kT0 + 20;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, kBtc), ins("c1", "M3", "BTC", Leg::pay_out, 10),
                    ins("c1", "M1", "BTC", Leg::pay_out, kBtc - 10)};
  r.sched->receive(c, r.now);
  r.run_until_idle();
  ASSERT_EQ(r.state_of("c1/M3/BTC/in"), "defaulted");
  const SettlementReport rep = read_settlement_report(*r.db, "c1");
  EXPECT_EQ(rep.cycle_state, "closed");
  EXPECT_TRUE(rep.complete);
  ASSERT_EQ(rep.instructions.size(), 3u);
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/in")), "defaulted 0/" + std::to_string(kBtc));
  EXPECT_EQ(text(outcome(rep, "c1/M3/BTC/out")), "defaulted 0/10");
  EXPECT_EQ(text(outcome(rep, "c1/M1/BTC/out")),
            "final " + std::to_string(kBtc - 10) + "/" + std::to_string(kBtc - 10));
}

TEST(SettlementReport, AnUnknownCycleIsUnknownAndANonSchedulerDatabaseIsAnInputError) {
  Rig r("report_unknown", make_config(0, 0));
  r.sched->receive(three_member_cycle("c1", kT0 + 100), r.now);
  r.run_until_idle();
  const SettlementReport rep = read_settlement_report(*r.db, "c9");
  EXPECT_EQ(rep.cycle_id, "c9");
  EXPECT_EQ(rep.cycle_state, "unknown");
  EXPECT_FALSE(rep.complete);
  EXPECT_TRUE(rep.instructions.empty());
  EXPECT_EQ(read_settlement_report(*r.db, "").cycle_state, "unknown");
  SqliteDb other((r.dir / "other.sqlite").string());
  other.exec("CREATE TABLE t(x)");
  EXPECT_THROW(read_settlement_report(other, "c1"), input_error);
}

TEST(SettlementReport, AChainIsFollowedByOriginNotByIdPattern) {
  // Ids holding LIKE wildcards, and a producer's own id that looks like a carried one: only the
  // instructions carried from X (origin links) count for X.
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  Rig r("report_ids", cfg);
  r.chain("BTC").set_balance("M_", "BTC", 0);  // M_ and MX cannot pay in c1: rolled to c2
  r.chain("BTC").set_balance("MX", "BTC", 0);
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = kT0 + 20;
  c1.assets = {{"BTC", 8}};
  auto with_id = [](SettlementInstruction i, const std::string& id) {
    i.instruction_id = id;
    return i;
  };
  c1.instructions = {with_id(ins("c1", "M_", "BTC", Leg::pay_in, 100), "p%_"),
                     with_id(ins("c1", "MX", "BTC", Leg::pay_in, 300), "pX1"),
                     with_id(ins("c1", "M9", "BTC", Leg::pay_out, 400), "q")};
  r.sched->receive(c1, r.now);
  r.run_until_idle();
  ASSERT_EQ(r.state_of("p%_"), "rolled");
  ASSERT_EQ(r.state_of("pX1"), "rolled");
  r.chain("BTC").set_balance("M_", "BTC", 1000);
  r.chain("BTC").set_balance("MX", "BTC", 1000);
  // c2 also holds an instruction whose id starts with "q@" (not carried from "q") and one with
  // "p%_@" (the same: a producer's id), both pay-ins that fail.
  SettlementCycle c2;
  c2.cycle_id = "c2";
  c2.deadline = r.now + 20;
  c2.assets = {{"BTC", 8}};
  c2.instructions = {with_id(ins("c2", "MZ", "BTC", Leg::pay_in, 7, ObligationKind::margin_call), "q@c2x"),
                     with_id(ins("c2", "MZ", "BTC", Leg::pay_in, 8, ObligationKind::margin_call), "p%_@zz")};
  r.chain("BTC").set_balance("MZ", "BTC", 0);
  r.sched->receive(c2, r.now);
  r.run_until_idle();
  ASSERT_EQ(r.state_of("p%_@c2"), "final");
  ASSERT_EQ(r.state_of("pX1@c2"), "final");  // matches LIKE 'p%_@%', but is pX1's
  ASSERT_EQ(r.state_of("q@c2x"), "rolled");
  SettlementReport rep = read_settlement_report(*r.db, "c1");
  EXPECT_TRUE(rep.complete);
  EXPECT_EQ(text(outcome(rep, "p%_")), "final 100/100");
  EXPECT_EQ(text(outcome(rep, "pX1")), "final 300/300");
  EXPECT_EQ(text(outcome(rep, "q")), "final 400/400");
  SettlementReport rep2 = read_settlement_report(*r.db, "c2");
  EXPECT_FALSE(rep2.complete);  // MZ's pay-ins wait for a third cycle
  EXPECT_EQ(text(outcome(rep2, "q@c2x")), "pending 0/7");
  EXPECT_EQ(text(outcome(rep2, "p%_@zz")), "pending 0/8");
  // c3 carries them in as "q@c2x@c3" and "p%_@zz@c3": within the id range of "q" and "p%_",
  // carried (origin set), but from the producer's "q@c2x" and "p%_@zz", not from "q" or "p%_".
  r.chain("BTC").set_balance("MZ", "BTC", 1000);
  SettlementCycle c3;
  c3.cycle_id = "c3";
  c3.deadline = r.now + 100;
  c3.assets = {{"BTC", 8}};
  r.sched->receive(c3, r.now);
  r.step();
  ASSERT_EQ(r.state_of("p%_@zz@c3"), "submitted");
  EXPECT_EQ(text(outcome(read_settlement_report(*r.db, "c1"), "p%_")), "final 100/100");
  r.run_until_idle();
  ASSERT_EQ(r.state_of("p%_@zz@c3"), "final");
  rep = read_settlement_report(*r.db, "c1");
  EXPECT_EQ(text(outcome(rep, "p%_")), "final 100/100");
  EXPECT_EQ(text(outcome(rep, "q")), "final 400/400");
  rep2 = read_settlement_report(*r.db, "c2");
  EXPECT_TRUE(rep2.complete);
  EXPECT_EQ(text(outcome(rep2, "q@c2x")), "final 7/7");
  EXPECT_EQ(text(outcome(rep2, "p%_@zz")), "final 8/8");
}

TEST(Scheduler, ACarriedIdThatAProducerAlreadyUsedGetsASuffixInsteadOfStoppingTheScheduler) {
  // c1's failing pay-in is rolled into c2 as "<id>@c2"; c2 itself already holds an instruction
  // of that id (a producer's choice). The carry becomes "<id>@c2~2"; nothing stops.
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  cfg.sim_chains[0].failing_members = {"M3"};
  Rig r("carry_collision", cfg);
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = r.now + 20;
  c1.assets = {{"BTC", 8}};
  c1.instructions = {ins("c1", "M3", "BTC", Leg::pay_in, kBtc), ins("c1", "M1", "BTC", Leg::pay_out, kBtc)};
  SettlementCycle c2 = c1;
  c2.cycle_id = "c2";
  c2.deadline = r.now + 200;
  c2.instructions = {ins("c2", "M4", "BTC", Leg::pay_in, kBtc), ins("c2", "M1", "BTC", Leg::pay_out, kBtc)};
  c2.instructions[0].instruction_id = "c1/M3/BTC/in@c2";
  r.sched->receive(c1, r.now);
  r.sched->receive(c2, r.now);
  EXPECT_LT(r.run_until_idle(1000), 1000);
  EXPECT_EQ(r.state_of("c1/M3/BTC/in"), "rolled");
  EXPECT_EQ(r.state_of("c1/M3/BTC/in@c2"), "final");  // the producer's own instruction (M4 pays)
  EXPECT_NE(r.state_of("c1/M3/BTC/in@c2~2"), "(none)");  // the carry
  EXPECT_TRUE(r.sched->ledger().verify().ok);
  // The report of c1 follows its carry, not the producer's look-alike.
  const SettlementReport rep = read_settlement_report(*r.db, "c1");
  const InstructionOutcome* o = outcome(rep, "c1/M3/BTC/in");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->settled, 0);
}

TEST(Scheduler, ACycleReusingAnInstructionIdOfAnotherCycleIsRefusedWhole) {
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  Rig r("reused_id", cfg);
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = r.now + 100;
  c1.assets = {{"BTC", 8}};
  c1.instructions = {ins("c1", "M1", "BTC", Leg::pay_in, kBtc), ins("c1", "M2", "BTC", Leg::pay_out, kBtc)};
  ASSERT_EQ(r.sched->receive(c1, r.now), CycleReceipt::recorded);
  const auto entries = r.sched->ledger().entries().size();
  SettlementCycle c2 = c1;
  c2.cycle_id = "c2";
  c2.instructions = {ins("c2", "M3", "BTC", Leg::pay_in, kBtc), c1.instructions[1]};  // c1's pay-out again
  try {
    r.sched->receive(c2, r.now);
    ADD_FAILURE() << "a reused instruction id was accepted";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("recorded already in cycle 'c1'"), std::string::npos) << e.what();
  }
  // Nothing of c2 was recorded; with its own ids it is welcome.
  EXPECT_EQ(r.sched->ledger().entries().size(), entries);
  EXPECT_EQ(r.sched->status().cycles_queued + r.sched->status().cycles_open, 1);
  c2.instructions[1] = ins("c2", "M2", "BTC", Leg::pay_out, kBtc);
  EXPECT_EQ(r.sched->receive(c2, r.now), CycleReceipt::recorded);
  EXPECT_LT(r.run_until_idle(), 500);
  EXPECT_TRUE(r.sched->ledger().verify().ok);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hardening (issue 15): every finding of the attack, as a test.

// A cycle of one lone pay-out: nothing pays in for it.
SettlementCycle lone_payout(const std::string& id, double deadline, std::int64_t amount, bool draw) {
  SettlementCycle c;
  c.cycle_id = id;
  c.deadline = deadline;
  c.assets = {{"BTC", 8}};
  c.instructions = {ins(id, "M2", "BTC", Leg::pay_out, amount)};
  c.liquidity_draw = draw;
  return c;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e.what();
  }
  return "(no input_error)";
}

TEST(SchedulerHardening, APayOutNotFundedByPayInsNeedsALiquidityDrawFromASenderAllowedToDraw) {
  Rig r("draws", make_config(5 * kBtc, 0));
  // The attack: a lone pay-out, paid from CCP liquidity because nothing checked it.
  std::string m = message_of([&] { r.sched->receive(lone_payout("x1", r.now + 60, 5 * kBtc, false), r.now); });
  EXPECT_NE(m.find("liquidity_draw"), std::string::npos) << m;
  // Marked as a draw, from a producer without the right: refused, naming the sender.
  m = message_of([&] { r.sched->receive(lone_payout("x1", r.now + 60, 5 * kBtc, true), r.now, {"desk-7", false}); });
  EXPECT_NE(m.find("desk-7"), std::string::npos) << m;
  EXPECT_NE(m.find("not authorised"), std::string::npos) << m;
  // Net pay-ins above net pay-outs do not balance either.
  SettlementCycle over;
  over.cycle_id = "x2";
  over.deadline = r.now + 60;
  over.assets = {{"BTC", 8}};
  over.instructions = {ins("x2", "M1", "BTC", Leg::pay_in, 3 * kBtc), ins("x2", "M2", "BTC", Leg::pay_out, 2 * kBtc)};
  m = message_of([&] { r.sched->receive(over, r.now); });
  EXPECT_NE(m.find("differ"), std::string::npos) << m;
  EXPECT_TRUE(r.sched->idle()) << "nothing was recorded";
  // Margin calls pay in without a pay-out: balanced enough (collateral comes in).
  SettlementCycle calls;
  calls.cycle_id = "x3";
  calls.deadline = r.now + 60;
  calls.assets = {{"BTC", 8}};
  calls.instructions = {ins("x3", "M1", "BTC", Leg::pay_in, kBtc, ObligationKind::margin_call)};
  EXPECT_EQ(r.sched->receive(calls, r.now, {"service", false}), CycleReceipt::recorded);
  // A sender allowed to draw: recorded and paid from liquidity.
  EXPECT_EQ(r.sched->receive(lone_payout("x4", r.now + 60, 2 * kBtc, true), r.now, {"service", true}),
            CycleReceipt::recorded);
  r.run_until_idle();
  EXPECT_EQ(r.state_of("x4/M2/BTC/out"), "final");
  EXPECT_EQ(r.sched->status().liquidity.at("BTC"), 3 * kBtc);
}

TEST(SchedulerHardening, AmountsOutOfRangeAndSumsThatWouldOverflowAreRefusedAndTheStatusStaysReadable) {
  Rig r("overflow", make_config(0, 0));
  // Two pay-outs of INT64_MAX (the attack overflowed the sums, then `status` failed for good).
  SettlementCycle c = lone_payout("o1", r.now + 60, INT64_MAX, true);
  c.instructions.push_back(ins("o1", "M3", "BTC", Leg::pay_out, INT64_MAX));
  std::string m = message_of([&] { r.sched->receive(c, r.now); });
  EXPECT_NE(m.find("amount"), std::string::npos) << m;
  // Each within range, their sum not.
  c = lone_payout("o2", r.now + 60, kMaxSettlementAmount, true);
  c.instructions.push_back(ins("o2", "M3", "BTC", Leg::pay_out, kMaxSettlementAmount));
  m = message_of([&] { r.sched->receive(c, r.now); });
  EXPECT_NE(m.find("add up to more than"), std::string::npos) << m;
  EXPECT_NO_THROW(r.sched->status());
  // Many queued cycles at the bound: 60 x 2 x 10^17 exceeds INT64_MAX; the status saturates.
  for (int i = 0; i < 60; ++i) {
    SettlementCycle big;
    big.cycle_id = "b" + std::to_string(i);
    big.deadline = r.now + 3600;
    big.assets = {{"BTC", 8}};
    big.instructions = {ins(big.cycle_id, "M1", "BTC", Leg::pay_in, kMaxSettlementAmount),
                        ins(big.cycle_id, "M2", "BTC", Leg::pay_out, kMaxSettlementAmount)};
    ASSERT_EQ(r.sched->receive(big, r.now), CycleReceipt::recorded);
  }
  SchedulerStatus st;
  ASSERT_NO_THROW(st = r.sched->status());
  EXPECT_EQ(st.value_pending.at("BTC"), INT64_MAX);
}

TEST(SchedulerHardening, TextsThatAreNotCleanBoundsAndDeadlinesAreRefusedWhole) {
  SchedulerConfig cfg = make_config(0, 0);
  cfg.max_instructions_per_cycle = 4;
  Rig r("texts", cfg);
  const auto entries = r.sched->ledger().size();
  auto c = three_member_cycle("t1", r.now + 60);
  c.instructions[0].member = "M\xff";  // what any margin client could put in an account name
  std::string m = message_of([&] { r.sched->receive(c, r.now); });
  EXPECT_NE(m.find("UTF-8"), std::string::npos) << m;
  c = three_member_cycle("t1", 1e300);
  m = message_of([&] { r.sched->receive(c, r.now); });
  EXPECT_NE(m.find("deadline"), std::string::npos) << m;
  c = three_member_cycle("t1", r.now + 60);  // five instructions, four allowed
  m = message_of([&] { r.sched->receive(c, r.now); });
  EXPECT_NE(m.find("more than the 4"), std::string::npos) << m;
  c.instructions[0].instruction_id = std::string(600, 'i');
  m = message_of([&] { r.sched->receive(c, r.now); });
  EXPECT_NE(m.find("longer than 512"), std::string::npos) << m;
  EXPECT_EQ(r.sched->ledger().size(), entries);
}

TEST(SchedulerHardening, ABlockTimeLongerThanTheTimeLeftEndsAtTheGraceAndTheLateTransfersAreRecorded) {
  // BTC blocks every 1,000 s (final after 3); the cycle's deadline is 10 s away, the grace
  // 60 s. The attack left the cycle open (and every later one waiting) until the block came.
  SchedulerConfig cfg = make_config(kBtc, 1000 * kUsdc);
  cfg.grace_seconds = 60;
  cfg.sim_chains[0].block_time = 1000;
  Rig r("slow_block", cfg);
  SettlementCycle c1;
  c1.cycle_id = "c1";
  c1.deadline = r.now + 10;
  c1.assets = {{"BTC", 8}};
  c1.instructions = {ins("c1", "M1", "BTC", Leg::pay_in, kBtc), ins("c1", "M2", "BTC", Leg::pay_out, kBtc)};
  SettlementCycle c2;
  c2.cycle_id = "c2";
  c2.deadline = r.now + 600;
  c2.assets = {{"USDC", 6}};
  c2.instructions = {ins("c2", "M3", "USDC", Leg::pay_in, 50 * kUsdc), ins("c2", "M4", "USDC", Leg::pay_out, 50 * kUsdc)};
  r.sched->receive(c1, r.now);
  r.sched->receive(c2, r.now);
  const double start = r.now;
  while (r.now < start + 200) r.step();  // well before the first BTC block at +1,000 s
  EXPECT_TRUE(r.sched->idle()) << "c1 ended at its deadline + grace, c2 settled after it";
  // M1's pay-in was in flight: defaulted, not rolled (a roll would ask it to pay twice). M2's
  // pay-out, released at the deadline from the CCP's liquidity (Cover-1), expired in flight.
  EXPECT_EQ(r.state_of("c1/M1/BTC/in"), "defaulted");
  EXPECT_EQ(r.state_of("c1/M2/BTC/out"), "expired");
  EXPECT_EQ(r.state_of("c2/M3/USDC/in"), "final");
  EXPECT_EQ(r.state_of("c2/M4/USDC/out"), "final");
  EXPECT_EQ(r.sched->status().transfers_watched, 2);
  EXPECT_EQ(r.sched->status().liquidity.at("BTC"), 0);
  // The blocks come: both transfers land after their instructions ended; recorded, and the
  // CCP's BTC liquidity holds the late pay-in.
  while (r.now < start + 4000) {
    r.now += 50;
    r.sched->tick(r.now);
  }
  EXPECT_EQ(r.entries_of_kind("transfer.late_final").size(), 2u);
  EXPECT_EQ(r.sched->status().transfers_watched, 0);
  EXPECT_EQ(r.state_of("c1/M2/BTC/out"), "final");
  EXPECT_EQ(r.sched->status().liquidity.at("BTC"), kBtc);
  EXPECT_EQ(r.chain("BTC").balance("CCP", "BTC"), kBtc);
  EXPECT_EQ(r.chain("BTC").balance("M2", "BTC"), 1001 * kBtc);
  EXPECT_TRUE(r.sched->ledger().verify().ok);
  EXPECT_TRUE(check_scheduler_state(*r.db).ok());
}

TEST(SchedulerHardening, APayOutInFlightAtTheGraceExpiresClosesTheCycleAndItsLateFinalIsRecorded) {
  SchedulerConfig cfg = make_config(5 * kBtc, 0);
  cfg.grace_seconds = 30;
  cfg.sim_chains[0].block_time = 500;
  Rig r("expire", cfg);
  r.sched->receive(lone_payout("e1", r.now + 10, 2 * kBtc, true), r.now);
  const double start = r.now;
  while (r.now < start + 100) r.step();
  EXPECT_TRUE(r.sched->idle());
  EXPECT_EQ(r.state_of("e1/M2/BTC/out"), "expired");
  EXPECT_EQ(r.sched->status().liquidity.at("BTC"), 3 * kBtc) << "an expired pay-out left the wallet";
  while (r.now < start + 2000) {  // blocks every 500 s, final after 3
    r.now += 10;
    r.sched->tick(r.now);
  }
  EXPECT_EQ(r.state_of("e1/M2/BTC/out"), "final");
  EXPECT_EQ(r.entries_of_kind("transfer.late_final").size(), 1u);
  EXPECT_EQ(r.chain("BTC").balance("M2", "BTC"), 1000 * kBtc + 2 * kBtc);
  EXPECT_EQ(r.sched->status().liquidity.at("BTC"), 3 * kBtc);
  EXPECT_TRUE(check_scheduler_state(*r.db).ok());
}

TEST(SchedulerHardening, TheOperatorEndsTheOpenCycleAndTheStatusNamesWhoBlocksIt) {
  for (const auto action : {MissedDeadlineAction::roll, MissedDeadlineAction::default_management}) {
    const bool roll = action == MissedDeadlineAction::roll;
    SchedulerConfig cfg = make_config(0, 0);
    Rig r(roll ? "op_roll" : "op_close", cfg);
    r.chain("BTC").set_balance("M1", "BTC", 0);  // M1 cannot pay: its pay-in fails, retried never
    auto c = three_member_cycle("c1", r.now + 3600);
    r.sched->receive(c, r.now);
    for (int i = 0; i < 20; ++i) r.step();
    SchedulerStatus st = r.sched->status();
    ASSERT_EQ(st.open_cycle, "c1");
    ASSERT_TRUE(st.blocking.count("M1")) << "M1's pay-in keeps c1 open";
    EXPECT_NE(st.blocking.at("M1").find("pay-in BTC 2.00000000"), std::string::npos) << st.blocking.at("M1");
    // Ending a cycle that is not the open one is refused, naming its state.
    std::string m = message_of([&] { r.sched->end_cycle("c9", action, r.now, "ops"); });
    EXPECT_NE(m.find("unknown"), std::string::npos) << m;
    const std::string done = r.sched->end_cycle("c1", action, r.now, "ops");
    EXPECT_NE(done.find("closed by the operator"), std::string::npos) << done;
    EXPECT_TRUE(r.sched->idle());
    EXPECT_EQ(r.state_of("c1/M1/BTC/in"), roll ? "rolled" : "defaulted");
    EXPECT_EQ(r.state_of("c1/M2/USDC/in"), "final");
    EXPECT_EQ(r.state_of("c1/M1/USDC/out"), roll ? "rolled" : "defaulted");  // withheld: M1 did not pay
    EXPECT_EQ(r.entries_of_kind("cycle.ended_by_operator").size(), 1u);
    m = message_of([&] { r.sched->end_cycle("c1", action, r.now, "ops"); });
    EXPECT_NE(m.find("closed"), std::string::npos) << m;
    EXPECT_TRUE(r.sched->ledger().verify().ok);
    EXPECT_TRUE(check_scheduler_state(*r.db).ok());
  }
}

TEST(SchedulerHardening, StateTablesChangedBehindTheSchedulersBackStopItAndAreNamed) {
  // The attack: UPDATE a pending pay-out's amount; the restarted scheduler paid 54 BTC, not 30.
  SchedulerConfig cfg = make_config(100 * kBtc, 0);
  cfg.sim_chains[0].block_time = 1000;  // nothing is final before the restart
  {
    Rig r("tamper_state", cfg);
    SettlementCycle c;
    c.cycle_id = "c1";
    c.deadline = r.now + 3600;
    c.assets = {{"BTC", 8}};
    c.instructions = {ins("c1", "M1", "BTC", Leg::pay_in, 30 * kBtc), ins("c1", "M2", "BTC", Leg::pay_out, 30 * kBtc)};
    r.sched->receive(c, r.now);
    r.step();
    ASSERT_TRUE(check_scheduler_state(*r.db).ok());
    r.db->exec("UPDATE sched_instructions SET amount = 5400000000, settle = 5400000000 WHERE instruction_id = 'c1/M2/BTC/out'");
    r.db->exec("UPDATE sched_liquidity SET available = 1 WHERE asset = 'USDC'");
    const StateCheckReport rep = check_scheduler_state(*r.db);
    ASSERT_FALSE(rep.ok());
    std::string all;
    for (const auto& d : rep.differences) all += d + "\n";
    EXPECT_NE(all.find("sched_instructions 'c1/M2/BTC/out': amount is 5400000000 in the table, 3000000000 in the ledger"),
              std::string::npos) << all;
    EXPECT_NE(all.find("sched_liquidity 'USDC': available is 1 in the table, 0 in the ledger"), std::string::npos) << all;
  }
  // A scheduler refuses to start on it (nothing is paid), naming the row.
  const std::string m = message_of([&] { Rig again("tamper_state", cfg, false, false); });
  EXPECT_NE(m.find("disagree with its ledger"), std::string::npos) << m;
  EXPECT_NE(m.find("c1/M2/BTC/out"), std::string::npos) << m;
}
