// Crash test (issue 8): the real `marginet scheduler` binary settles a cycle of thousands of
// instructions on sim chains with zero block time (and reorgs), and is killed with SIGKILL at
// random points at least 20 times, restarted each time with the same cycle file (a redelivery).
// At the end every instruction is final exactly once (state, ledger and chain), the sim
// chains' balances match the obligations to the unit, and `marginet ledger verify` passes.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "models/settlement_cycle.hpp"
#include "service/settlement/ledger.hpp"
#include "tests/run_command.hpp"

extern char** environ;

namespace {

using namespace marginet;
namespace fs = std::filesystem;
using json = nlohmann::json;

// Members M0..M(n-1); per asset, a seeded net position per member summing to zero.
SettlementCycle big_cycle(int members) {
  SettlementCycle c;
  c.cycle_id = "crash-1";
  c.deadline = 4070908800;  // 2099-01-01
  c.assets = {{"BTC", 8}, {"USDC", 6}};
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<std::int64_t> amount(1, 500000000);
  for (const char* asset : {"BTC", "USDC"}) {
    std::vector<std::int64_t> net(static_cast<std::size_t>(members));
    std::int64_t sum = 0;
    for (int m = 0; m + 1 < members; ++m) {
      net[static_cast<std::size_t>(m)] = (rng() & 1 ? 1 : -1) * amount(rng);
      sum += net[static_cast<std::size_t>(m)];
    }
    net.back() = -sum;
    for (int m = 0; m < members; ++m) {
      const std::int64_t v = net[static_cast<std::size_t>(m)];
      if (v == 0) continue;
      SettlementInstruction i;
      i.member = "M" + std::to_string(m);
      i.asset = asset;
      i.leg = v < 0 ? Leg::pay_in : Leg::pay_out;
      i.amount = v < 0 ? -v : v;
      i.instruction_id = c.cycle_id + "/" + i.member + "/" + asset + (v < 0 ? "/in" : "/out");
      c.instructions.push_back(i);
    }
  }
  return c;
}

// The ledger's last sequence number (-1 while the file or its tables do not exist yet).
std::int64_t ledger_head(const std::string& path) {
  try {
    SqliteDb db(path, false);
    SqliteStatement q(db, "SELECT COALESCE(MAX(seq), 0) FROM ledger_entries");
    q.step();
    return q.int64(0);
  } catch (const std::exception&) {
    return -1;
  }
}

pid_t spawn_scheduler(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  std::string exe = MARGINET_EXE;
  argv.push_back(exe.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

TEST(SchedulerCrash, KilledTwentyTimesSettlesEveryInstructionExactlyOnce) {
  const fs::path dir = fs::temp_directory_path() / ("marginet_crash_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const SettlementCycle cycle = big_cycle(1500);
  ASSERT_GT(cycle.instructions.size(), 2900u);
  {
    std::ofstream out(dir / "cycle.json");
    write_cycle_json(out, cycle);
  }
  {
    std::ofstream out(dir / "chains.json");
    out << R"({"ccp_address": "CCP", "assets": {"BTC": {"scale": 8}, "USDC": {"scale": 6}},
      "chains": [
        {"name": "btc", "adapter": "sim", "assets": ["BTC"], "block_time": 0, "finality_depth": 3, "seed": 11,
         "reorg_probability": 0.15, "reorg_depth": 2, "max_transfers_per_block": 60,
         "member_funding": {"BTC": "10000"}},
        {"name": "eth", "adapter": "sim", "assets": ["USDC"], "block_time": 0, "finality_depth": 2, "seed": 12,
         "reorg_probability": 0.1, "reorg_depth": 1, "max_transfers_per_block": 80,
         "member_funding": {"USDC": "1000000"}}]})";
  }
  const std::string ledger = (dir / "ledger.sqlite").string();
  const std::string log = (dir / "scheduler.log").string();
  const std::vector<std::string> args = {"scheduler", "--ledger", ledger, "--chains", (dir / "chains.json").string(),
                                         "--cycle-file", (dir / "cycle.json").string(), "--poll-ms", "0", "--quiet"};

  // Kill points: mostly when the ledger has grown by a random number of entries since the
  // last restart (so every kill lands mid-work, anywhere in the cycle), every fifth one after a
  // random 0-80 ms (during start-up and recovery).
  std::mt19937 rng(8);
  std::uniform_int_distribution<std::int64_t> grow(60, 400);
  std::uniform_int_distribution<int> early_ms(0, 80);
  int kills = 0, runs = 0, kills_mid_work = 0;
  std::vector<std::int64_t> progress;
  bool finished = false;
  const auto t0 = std::chrono::steady_clock::now();
  while (!finished && runs < 200) {
    const std::int64_t before = ledger_head(ledger);
    const pid_t pid = spawn_scheduler(args, log);
    ASSERT_GT(pid, 0);
    ++runs;
    const bool by_time = kills % 5 == 4;
    const std::int64_t target = before + grow(rng);
    const auto deadline = std::chrono::steady_clock::now() +
                          (kills >= 30 ? std::chrono::milliseconds(60000)
                                       : by_time ? std::chrono::milliseconds(early_ms(rng))
                                                 : std::chrono::milliseconds(20000));
    int status = 0;
    bool exited = false;
    while (!exited && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      exited = waitpid(pid, &status, WNOHANG) == pid;
      if (!exited && !by_time && kills < 30 && ledger_head(ledger) >= target) break;
    }
    if (exited) {
      ASSERT_TRUE(WIFEXITED(status)) << "scheduler died by signal " << WTERMSIG(status);
      ASSERT_EQ(WEXITSTATUS(status), 0) << "see " << log;
      finished = true;
      break;
    }
    kill(pid, SIGKILL);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    ++kills;
    // Where it was: instructions final so far (the kill interrupted work when some are not).
    std::int64_t done = -1;
    try {
      SqliteDb db(ledger, false);
      SqliteStatement q(db, "SELECT COUNT(*) FROM sched_instructions WHERE state = 'final'");
      q.step();
      done = q.int64(0);
    } catch (const std::exception&) {
    }
    progress.push_back(done);
    if (done < static_cast<std::int64_t>(cycle.instructions.size())) ++kills_mid_work;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(finished) << runs << " runs";
  EXPECT_GE(kills_mid_work, 20) << "the scheduler finished too early to be killed 20 times";
  EXPECT_GT(progress.back(), 0) << "no kill landed after instructions became final";
  std::string trail;
  for (auto p : progress) trail += std::to_string(p) + " ";
  std::printf("final instructions after each kill: %s\n", trail.c_str());
  RecordProperty("kills", kills);
  std::printf("killed %d times in %d runs, %.1f s\n", kills, runs, secs);

  // Every instruction final, once.
  SqliteDb db(ledger);
  std::map<std::string, std::string> state;
  {
    SqliteStatement q(db, "SELECT instruction_id, state, attempt FROM sched_instructions");
    while (q.step()) {
      state[q.text(0)] = q.text(1);
      EXPECT_EQ(q.int64(2), 1) << q.text(0);  // no failures here: one transfer attempt each
    }
  }
  ASSERT_EQ(state.size(), cycle.instructions.size());
  for (const auto& i : cycle.instructions) EXPECT_EQ(state[i.instruction_id], "final") << i.instruction_id;
  std::map<std::string, int> finals;
  {
    SqliteStatement q(db, "SELECT body FROM ledger_entries WHERE kind = 'instruction.state'");
    while (q.step()) {
      const json b = json::parse(q.text(0));
      if (b["to"] == "final") ++finals[b["instruction"].get<std::string>()];
    }
  }
  EXPECT_EQ(finals.size(), cycle.instructions.size());
  for (const auto& [id, n] : finals) EXPECT_EQ(n, 1) << id;
  {
    SqliteStatement q(db, "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'cycle.received'");
    q.step();
    EXPECT_EQ(q.int64(0), 1);  // redelivered on every restart, recorded once
  }

  // The chains: one included transfer per instruction, and balances to the unit.
  SqliteDb chains((dir / "ledger.chains.sqlite").string());
  {
    SqliteStatement q(chains, "SELECT COUNT(*), SUM(state = 'included') FROM sim_transfers");
    q.step();
    EXPECT_EQ(q.int64(0), static_cast<std::int64_t>(cycle.instructions.size()));
    EXPECT_EQ(q.int64(1), static_cast<std::int64_t>(cycle.instructions.size()));
  }
  std::map<std::pair<std::string, std::string>, std::int64_t> expect;
  for (const auto& i : cycle.instructions) {
    const std::int64_t funding = i.asset == "BTC" ? 10000LL * 100000000 : 1000000LL * 1000000;
    expect.emplace(std::make_pair(i.member, i.asset), funding);
    expect[{i.member, i.asset}] += i.leg == Leg::pay_out ? i.amount : -i.amount;
    expect[{"CCP", i.asset}] += i.leg == Leg::pay_in ? i.amount : -i.amount;
  }
  std::size_t seen = 0;
  {
    SqliteStatement q(chains, "SELECT address, asset, amount FROM sim_balances");
    while (q.step()) {
      auto it = expect.find({q.text(0), q.text(1)});
      ASSERT_NE(it, expect.end()) << q.text(0) << " " << q.text(1);
      EXPECT_EQ(q.int64(2), it->second) << q.text(0) << " " << q.text(1);
      ++seen;
    }
  }
  EXPECT_EQ(seen, expect.size());

  const auto v = marginet::testing::run_marginet("ledger verify --ledger " + ledger);
  EXPECT_EQ(v.status, 0) << v.output;
  EXPECT_NE(v.output.find("1 cycle roots"), std::string::npos) << v.output;
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
