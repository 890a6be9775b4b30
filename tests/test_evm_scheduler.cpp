// The settlement scheduler on the evm chain adapter, end to end: the real `marginet scheduler`
// binary settling cycles on a real anvil (tests/evm_local_chain.hpp).
//
// - a cycle settles on chain to the unit, each batch carries the ledger's tree head as it was
//   sent and the closed cycle's root is anchored: both equal what the ledger computes;
// - a member short of funds reverts its own batch whole; the scheduler rolls it at the
//   deadline, everyone else settles; on-chain balances are what the ledger says is final;
// - kill -9 of the scheduler between sending a batch and its confirmation, several times:
//   nothing is paid twice (each batch id settles once) and nothing is lost;
// - `marginet demo --evm-rpc` settles the day's ETH and USDC on the node.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "models/settlement_cycle.hpp"
#include "service/db/sqlite.hpp"
#include "service/settlement/evm/abi.hpp"
#include "service/settlement/evm/keccak.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/merkle.hpp"
#include "tests/evm_local_chain.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

namespace fs = std::filesystem;
using testing::LocalChain;
using testing::run_marginet;

struct Dir {
  Dir() : path(fs::temp_directory_path() / ("marginet_evm_" + std::to_string(getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
  fs::path path;
};

void write_chains(const LocalChain& lc, const std::string& file, const std::string& liquidity_usdc = "0",
                  const std::string& extra = "") {
  nlohmann::json e = {{"name", lc.cfg.name}, {"adapter", "evm"}, {"assets", {"ETH", "USDC"}}, {"rpc_url", lc.cfg.rpc_url},
                      {"finality_depth", lc.cfg.finality_depth}, {"ccp_account", lc.dep.ccp}, {"dvp_contract", lc.dep.dvp},
                      {"tokens", lc.dep.tokens}, {"members", lc.dep.members}, {"dev_mine", lc.cfg.dev_mine},
                      {"contracts", testing::evm_contracts_file()}};
  if (!extra.empty()) e.update(nlohmann::json::parse(extra));
  const nlohmann::json cfg = {{"ccp_address", "CCP"},
                              {"grace_seconds", 30},
                              {"assets", {{"ETH", {{"scale", 9}}}, {"USDC", {{"scale", 6}, {"ccp_liquidity", liquidity_usdc}}}}},
                              {"chains", {e}}};
  std::ofstream(file) << cfg.dump(1);
}

SettlementInstruction ins(const std::string& cycle, const std::string& member, const std::string& asset, Leg leg,
                          std::int64_t amount) {
  SettlementInstruction i;
  i.instruction_id = cycle + "/" + member + "/" + asset + (leg == Leg::pay_in ? "/in" : "/out");
  i.member = member;
  i.asset = asset;
  i.leg = leg;
  i.amount = amount;
  return i;
}

void write_cycle(const SettlementCycle& c, const std::string& file) {
  std::ofstream out(file);
  write_cycle_json(out, c);
}

SettlementCycle day_cycle(const std::string& id, double deadline) {
  SettlementCycle c;
  c.cycle_id = id;
  c.deadline = deadline;
  c.assets = {{"ETH", 9}, {"USDC", 6}};
  c.instructions = {ins(id, "M1", "USDC", Leg::pay_in, 250'500'000), ins(id, "M2", "USDC", Leg::pay_out, 200'250'000),
                    ins(id, "M3", "USDC", Leg::pay_out, 50'250'000),  ins(id, "M2", "ETH", Leg::pay_in, 1'500'000'001),
                    ins(id, "M1", "ETH", Leg::pay_out, 1'000'000'000), ins(id, "M3", "ETH", Leg::pay_out, 500'000'001)};
  return c;
}

using Balances = std::map<std::pair<std::string, std::string>, std::int64_t>;

Balances balances(LocalChain& lc) {
  Balances b;
  for (const char* who : {"CCP", "M1", "M2", "M3"})
    for (const char* asset : {"ETH", "USDC"}) b[{who, asset}] = lc.bal(who, asset);
  return b;
}

// What the ledger's scheduler tables say moved: per (member, asset), + pay-outs − pay-ins that
// are final, and the opposite for the CCP.
Balances final_moves(const std::string& ledger) {
  SqliteDb db(ledger, false);
  SqliteStatement q(db, "SELECT member, asset, leg, settle FROM sched_instructions WHERE state='final'");
  Balances m;
  while (q.step()) {
    const std::int64_t v = q.text(2) == "pay_out" ? q.int64(3) : -q.int64(3);
    m[{q.text(0), q.text(1)}] += v;
    m[{"CCP", q.text(1)}] -= v;
  }
  return m;
}

void expect_chain_matches_ledger(LocalChain& lc, const Balances& before, const std::string& ledger) {
  const Balances moves = final_moves(ledger);
  const Balances after = balances(lc);
  for (const auto& [k, v] : after) {
    const auto it = moves.find(k);
    EXPECT_EQ(v - before.at(k), it == moves.end() ? 0 : it->second) << k.first << " " << k.second;
  }
}

std::map<std::string, std::string> instruction_states(const std::string& ledger) {
  SqliteDb db(ledger, false);
  SqliteStatement q(db, "SELECT instruction_id, state FROM sched_instructions");
  std::map<std::string, std::string> out;
  while (q.step()) out[q.text(0)] = q.text(1);
  return out;
}

// The RFC 6962 root over the ledger's first `size` entries, hex.
std::string ledger_root_at(const std::string& ledger_path, std::uint64_t size) {
  SqliteDb db(ledger_path, false);
  Ledger ledger(db);
  std::vector<merkle::Hash> leaves;
  for (const auto& e : ledger.entries(1, static_cast<std::int64_t>(size))) leaves.push_back(merkle::leaf_hash(ledger_entry_bytes(e)));
  EXPECT_EQ(leaves.size(), size);
  return merkle::to_hex(merkle::tree_root(leaves));
}

struct SettledEvent {
  std::string batch_id, ledger_root;
  std::uint64_t ledger_size = 0, legs = 0;
};

std::vector<SettledEvent> settled_events(LocalChain& lc) {
  std::vector<SettledEvent> out;
  for (const auto& l : lc.node.logs(lc.dep.dvp, evm::abi_event_topic("BatchSettled(bytes32,uint64,bytes32,uint256)"), 0)) {
    SettledEvent e;
    e.batch_id = l.topics.at(1);
    e.ledger_size = static_cast<std::uint64_t>(evm::abi_to_int64(evm::abi_word(l.data, 0), "size"));
    e.ledger_root = evm::abi_to_bytes32_hex(evm::abi_word(l.data, 1));
    e.legs = static_cast<std::uint64_t>(evm::abi_to_int64(evm::abi_word(l.data, 2), "legs"));
    out.push_back(e);
  }
  return out;
}

TEST(EvmScheduler, ACycleSettlesOnChainToTheUnitWithTheLedgerRootsOnChain) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  Dir dir;
  write_chains(lc, dir / "chains.json");
  write_cycle(day_cycle("c1", 4070908800), dir / "cycle.json");
  const Balances before = balances(lc);
  const auto r = run_marginet("scheduler --ledger " + (dir / "l.sqlite") + " --chains " + (dir / "chains.json") +
                              " --cycle-file " + (dir / "cycle.json") + " --poll-ms 5 --quiet");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const auto& [id, state] : instruction_states(dir / "l.sqlite")) EXPECT_EQ(state, "final") << id;
  expect_chain_matches_ledger(lc, before, dir / "l.sqlite");
  EXPECT_EQ(lc.bal("M3", "ETH") - before.at({"M3", "ETH"}), 500'000'001);  // to the unit (1e-9 ETH)
  // Each batch on chain carries the ledger's tree head as it was sent: recomputed from the ledger.
  const auto events = settled_events(lc);
  ASSERT_GE(events.size(), 3u);  // M1's and M2's pay-ins, then the CCP's pay-outs
  std::uint64_t legs = 0;
  for (const auto& e : events) {
    EXPECT_GT(e.ledger_size, 0u);
    EXPECT_EQ(e.ledger_root, "0x" + ledger_root_at(dir / "l.sqlite", e.ledger_size)) << e.batch_id;
    legs += e.legs;
  }
  EXPECT_EQ(legs, 6u);
  // The closed cycle's root is anchored: the event and the contract's mapping equal the ledger's.
  SqliteDb db(dir / "l.sqlite", false);
  const auto root = Ledger(db).cycle_root("c1");
  ASSERT_TRUE(root.has_value());
  const auto anchored = lc.node.logs(lc.dep.dvp, evm::abi_event_topic("CycleAnchored(bytes32,string,bytes32)"), 0);
  ASSERT_EQ(anchored.size(), 1u);
  EXPECT_EQ(evm::abi_to_string(anchored[0].data, 0), "c1");
  EXPECT_EQ(evm::abi_to_bytes32_hex(evm::abi_word(anchored[0].data, 1)), "0x" + *root);
  const std::string on_chain = lc.node.eth_call(lc.dep.dvp, evm::AbiCall("cycleRoot(bytes32)").bytes32(evm::keccak256_hex("c1")).bytes());
  EXPECT_EQ(evm::abi_to_bytes32_hex(evm::abi_word(on_chain, 0)), "0x" + *root);
  // The root `marginet ledger show` prints for the cycle is that one too.
  const auto show = run_marginet("ledger show --ledger " + (dir / "l.sqlite") + " --format csv", false);
  EXPECT_NE(show.output.find(*root), std::string::npos);
  EXPECT_EQ(run_marginet("ledger verify --ledger " + (dir / "l.sqlite")).status, 0);
}

TEST(EvmScheduler, AShortMemberRevertsItsOwnBatchAndIsRolledWhileOthersSettle) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  Dir dir;
  // M2 holds 1,000 USDC and owes 1,500; M1's pay-in and the pay-outs it funds settle.
  write_chains(lc, dir / "chains.json", "0");
  SettlementCycle c;
  c.cycle_id = "short";
  c.deadline = 1893456600;  // 2030-01-01T00:10:00Z, on the virtual clock below
  c.assets = {{"ETH", 9}, {"USDC", 6}};
  c.instructions = {ins("short", "M1", "USDC", Leg::pay_in, 300'000'000), ins("short", "M2", "USDC", Leg::pay_in, 1'500'000'000),
                    ins("short", "M2", "ETH", Leg::pay_in, 1'000'000'000), ins("short", "M3", "USDC", Leg::pay_out, 1'800'000'000),
                    ins("short", "M3", "ETH", Leg::pay_out, 1'000'000'000)};
  write_cycle(c, dir / "cycle.json");
  const Balances before = balances(lc);
  const auto r = run_marginet("scheduler --ledger " + (dir / "l.sqlite") + " --chains " + (dir / "chains.json") +
                              " --cycle-file " + (dir / "cycle.json") +
                              " --clock virtual --start 2030-01-01T00:00:00Z --tick-seconds 5 --poll-ms 5 --quiet");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto states = instruction_states(dir / "l.sqlite");
  EXPECT_EQ(states.at("short/M1/USDC/in"), "final");
  // M2's batch held both its legs: the ETH leg it could pay did not move either.
  EXPECT_EQ(states.at("short/M2/USDC/in"), "rolled");
  EXPECT_EQ(states.at("short/M2/ETH/in"), "rolled");
  EXPECT_EQ(lc.bal("M2", "ETH"), before.at({"M2", "ETH"}));
  EXPECT_EQ(lc.bal("M2", "USDC"), before.at({"M2", "USDC"}));
  {
    SqliteDb db(dir / "l.sqlite", false);
    SqliteStatement q(db, "SELECT COUNT(*) FROM ledger_entries WHERE body LIKE '%LegFailed(index=0%'");
    q.step();
    EXPECT_GE(q.int64(0), 1) << "the revert's reason is in the ledger";
  }
  expect_chain_matches_ledger(lc, before, dir / "l.sqlite");
  EXPECT_EQ(run_marginet("ledger verify --ledger " + (dir / "l.sqlite")).status, 0);
}

// Batches sent and not yet final, as the adapter's state file says ("" when none or unreadable).
std::string unconfirmed_batches(const std::string& chain_state) {
  try {
    SqliteDb db(chain_state, false);
    SqliteStatement q(db, "SELECT batch_id || ':' || state FROM evm_batches WHERE tx_hash != '' AND state IN ('sent','included') ORDER BY seq");
    std::string out;
    while (q.step()) out += q.text(0) + " ";
    return out;
  } catch (const std::exception&) {
    return "";
  }
}

TEST(EvmScheduler, KilledBetweenSendingABatchAndItsConfirmationPaysOnceAndLosesNothing) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  Dir dir;
  // Blocks every second from now on: a batch sent waits for its block and then for 3
  // confirmations, the window in which the scheduler is killed.
  lc.node.set_automine(false);
  lc.node.call("evm_setIntervalMining", {1});
  lc.cfg.dev_mine = false;
  write_chains(lc, dir / "chains.json");
  write_cycle(day_cycle("k1", 4070908800), dir / "cycle.json");
  const Balances before = balances(lc);
  const std::string ledger = dir / "l.sqlite", log = dir / "scheduler.log";
  const std::vector<std::string> args = {"scheduler", "--ledger", ledger, "--chains", dir / "chains.json",
                                         "--cycle-file", dir / "cycle.json", "--poll-ms", "20", "--quiet"};
  int kills = 0;
  std::set<std::string> killed_at;
  bool finished = false;
  for (int run = 0; run < 30 && !finished; ++run) {
    const pid_t pid = marginet::testing::spawn_marginet(args, log);
    ASSERT_GT(pid, 0);
    int status = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool exited = false;
    while (!exited && std::chrono::steady_clock::now() < until) {
      exited = waitpid(pid, &status, WNOHANG) == pid;
      if (exited || kills >= 4) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      // Kill when a batch is sent and not final, once per distinct situation.
      const std::string pending = unconfirmed_batches(dir / "l.chains.sqlite");
      if (!pending.empty() && killed_at.insert(pending).second) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (exited) {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "see " << log;
      finished = true;
      break;
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    waitpid(pid, &status, 0);
    ++kills;
  }
  ASSERT_TRUE(finished);
  EXPECT_GE(kills, 3) << "the kills landed between a batch's sending and its finality";
  for (const auto& [id, state] : instruction_states(ledger)) EXPECT_EQ(state, "final") << id;
  // Paid once: balances are the obligations to the unit, and every batch id settled once.
  expect_chain_matches_ledger(lc, before, ledger);
  EXPECT_EQ(lc.bal("M1", "USDC") - before.at({"M1", "USDC"}), -250'500'000);
  std::set<std::string> ids;
  for (const auto& e : settled_events(lc)) EXPECT_TRUE(ids.insert(e.batch_id).second) << "settled twice: " << e.batch_id;
  SqliteDb cs(dir / "l.chains.sqlite", false);
  SqliteStatement q(cs, "SELECT COUNT(*) FROM evm_batches WHERE state='final'");
  q.step();
  EXPECT_EQ(static_cast<std::size_t>(q.int64(0)), ids.size());
  EXPECT_EQ(run_marginet("ledger verify --ledger " + ledger).status, 0);
}

TEST(EvmScheduler, TheDemoSettlesEthAndUsdcOnTheNode) {
  SKIP_WITHOUT_ANVIL();
  testing::AnvilProcess anvil;
  Dir dir;
  const auto r = run_marginet("demo --workdir " + (dir / "day") + " --evm-rpc " + anvil.url() + " --evm-contracts " +
                              testing::evm_contracts_file() + " --format csv");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ETH and USDC on the EVM node " + anvil.url()), std::string::npos) << r.output;
  // Every ETH and USDC instruction final, through batches that are final on the node, and each
  // cycle's root anchored.
  SqliteDb ledger(dir / "day/ledger.sqlite", false);
  SqliteStatement q(ledger, "SELECT state, COUNT(*) FROM sched_instructions WHERE asset IN ('ETH','USDC') GROUP BY state");
  std::map<std::string, std::int64_t> states;
  while (q.step()) states[q.text(0)] = q.int64(1);
  EXPECT_GT(states["final"], 0);
  EXPECT_EQ(states.size(), 1u) << "only final";
  SqliteDb chain(dir / "day/ledger.chains.sqlite", false);
  SqliteStatement b(chain, "SELECT state, COUNT(*) FROM evm_batches GROUP BY state");
  std::map<std::string, std::int64_t> batches;
  while (b.step()) batches[b.text(0)] = b.int64(1);
  EXPECT_GT(batches["final"], 0);
  EXPECT_EQ(batches.size(), 1u) << "only final";
  SqliteStatement a(chain, "SELECT COUNT(*) FROM evm_anchors WHERE done = 1");
  a.step();
  SqliteStatement cycles(ledger, "SELECT COUNT(*) FROM ledger_cycle_roots");
  cycles.step();
  EXPECT_EQ(a.int64(0), cycles.int64(0));
  EXPECT_GE(a.int64(0), 3);
}

}  // namespace
}  // namespace marginet
