// Crash tests: the real `marginet scheduler` binary killed with SIGKILL at random points, at
// least 20 times per test, and restarted each time on the same ledger.
//
// - KilledTwentyTimesSettlesEveryInstructionExactlyOnce (issue 8): a cycle of thousands of
//   instructions on sim chains with zero block time (and reorgs), restarted each time with the
//   same cycle file (a redelivery). At the end every instruction is final exactly once (state,
//   ledger and chain), the sim chains' balances match the obligations to the unit, and
//   `marginet ledger verify` passes.
// - The hardening paths (validation, rolling, default hand-over), each under kill -9 on a
//   virtual clock that every restart resumes at the ledger's last entry:
//   - ValidationUnderKill: two DEALER producers send valid and invalid cycles (unbalanced,
//     invalid UTF-8, amount above kMaxSettlementAmount, an instruction id of another cycle, a
//     liquidity draw from an unauthenticated peer) to --bind, each resent until acknowledged;
//   - RollingUnderKill / DefaultHandOverUnderKill: cycles with a member that cannot pay and
//     random transfer failures, on_missed_deadline "roll" / "default_management", a grace of
//     one tick (pay-outs released at the deadline expire and are watched to their end).
//   Each is first run once without kills (the calibration: how long the work takes, how many
//   ledger entries it writes), then killed at points spread over that work: after a random
//   growth of the ledger, after a random time (start-up, recovery), right after a deadline
//   was processed, or right after producers were acknowledged. At the end: every valid cycle
//   recorded once and settled, every invalid one rejected (each time, for its reason) and
//   absent; per instruction sent, final + defaulted + still carried = the amount sent; every
//   transfer paid at most once, balances to the unit; missed members' pay-outs never paid;
//   `ledger verify` exits 0, the state tables equal the ledger's replay and a restart succeeds.
// - SigtermWhileBusyExitsCleanly: SIGTERM landing anywhere in a busy daemon's loop stops it in
//   order, exit 0 (the runs above found it exiting 1 on an EINTR outside zmq::poll).

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "models/csv.hpp"
#include "models/settlement_cycle.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/scheduler.hpp"
#include "service/settlement/scheduler_config.hpp"
#include "service/settlement/state_check.hpp"
#include "service/settlement/wire.hpp"
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
    const pid_t pid = marginet::testing::spawn_marginet(args, log);
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

// ---------------------------------------------------------------------------------------------
// The hardening paths under kill -9: validation, rolling, default hand-over.

constexpr double kVirtualStart = 1893456000;  // 2030-01-01T00:00:00Z, the virtual clock's first start
constexpr double kFarDeadline = 4070908800;   // 2099-01-01: never reached by the virtual clock here
constexpr int kKills = 40;                    // per test (at most); at least 20 must land before the work is done
constexpr int kDeadlineKills = 48;            // the deadline tests' kills right after a deadline take more work each

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("marginet_crash_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string log_tail(const std::string& path, std::size_t bytes = 3000) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  return s.size() > bytes ? "..." + s.substr(s.size() - bytes) : s;
}

SqliteDb open_read_only(const std::string& path) { return SqliteDb(path, SqliteOptions{SqliteAccess::read_only}); }

// One integer from a database opened read-only (the daemon may be writing it); `fallback` while
// the file or its tables do not exist yet.
std::int64_t probe(const std::string& path, const std::string& sql, std::int64_t fallback = -1) {
  try {
    SqliteDb db(path, SqliteOptions{SqliteAccess::read_only});
    SqliteStatement q(db, sql);
    if (!q.step() || q.is_null(0)) return fallback;
    return q.int64(0);
  } catch (const std::exception&) {
    return fallback;
  }
}

std::int64_t ledger_entries(const std::string& ledger) {
  return probe(ledger, "SELECT COALESCE(MAX(seq), 0) FROM ledger_entries", 0);
}

// The virtual clock of a restart: where the ledger's last entry left it (a clock that goes on
// across the crash, as a wall clock would), or the first start.
std::string resume_clock(const std::string& ledger) {
  try {
    SqliteDb db(ledger, SqliteOptions{SqliteAccess::read_only});
    SqliteStatement q(db, "SELECT COALESCE(MAX(at), '') FROM ledger_entries");
    if (q.step() && !q.text(0).empty()) return q.text(0);
  } catch (const std::exception&) {
  }
  return format_iso8601_utc(kVirtualStart);
}

// Per asset, a seeded net position per member M1..Mn summing to zero (pay-ins = pay-outs; M1
// balances the others): ids "<cycle>/<member>/<asset>/<in|out>". `payer` (not M1, when set)
// always pays in `payer_asset`.
SettlementCycle netted_cycle(const std::string& id, double deadline, int members, std::mt19937_64& rng,
                             const std::map<std::string, std::pair<std::int64_t, std::int64_t>>& ranges,
                             const std::string& payer = "", const std::string& payer_asset = "") {
  SettlementCycle c;
  c.cycle_id = id;
  c.deadline = deadline;
  c.assets = {{"BTC", 8}, {"USDC", 6}};
  for (const auto& [asset, range] : ranges) {
    std::uniform_int_distribution<std::int64_t> amount(range.first, range.second);
    std::vector<std::int64_t> net(static_cast<std::size_t>(members));
    std::int64_t sum = 0;
    for (int m = 1; m < members; ++m) {
      const bool pays = (rng() & 1) || (payer == "M" + std::to_string(m + 1) && asset == payer_asset);
      net[static_cast<std::size_t>(m)] = (pays ? -1 : 1) * amount(rng);
      sum += net[static_cast<std::size_t>(m)];
    }
    net.front() = -sum;
    for (int m = 0; m < members; ++m) {
      const std::int64_t v = net[static_cast<std::size_t>(m)];
      if (v == 0) continue;
      SettlementInstruction i;
      i.member = "M" + std::to_string(m + 1);
      i.asset = asset;
      i.leg = v < 0 ? Leg::pay_in : Leg::pay_out;
      i.amount = v < 0 ? -v : v;
      i.instruction_id = id + "/" + i.member + "/" + asset + (v < 0 ? "/in" : "/out");
      c.instructions.push_back(i);
    }
  }
  return c;
}

// A scheduler daemon that is SIGKILLed when it goes out of scope (a failed assertion).
struct Daemon {
  pid_t pid = -1;
  ~Daemon() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// The daemon run to the end of its work under kill -9: started, killed when the trigger of that
// kill fires, restarted on the same ledger, ... until `max_kills` kills; the last run goes on
// until `done` (and is killed then). A run that ends by itself is a failure (a crash, or a
// restart the state check refused).
struct KillRun {
  std::string name, log;
  std::function<std::vector<std::string>()> args;           // each start's arguments (the clock resumed)
  std::function<bool()> done;                               // the work is complete (read from the databases)
  std::function<std::int64_t()> progress;                   // grows with the work (ledger entries)
  std::function<std::function<bool()>(int kill)> trigger;   // when to kill, for kill number n (polled each ms)
  int max_kills = 0;
  double run_timeout_ms = 30000;
  // What happened.
  int kills = 0, runs = 0, kills_mid_work = 0;
  int kills_on_event = 0;        // fired by the trigger's event (acks, a deadline), not its fallback
  double ms = 0;                 // wall time, restarts included
  double first_progress_ms = -1; // first run: from the start to the first ledger growth (start-up)
};

// Whether process `pid` has a handler for SIGTERM (/proc/PID/status, SigCgt).
bool catches_sigterm(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("SigCgt:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1)) & 1;
  return false;
}

void run_under_kills(KillRun& k) {
  const auto t0 = Clock::now();
  while (true) {
    const bool last = k.kills >= k.max_kills;
    const std::function<bool()> fire = last ? std::function<bool()>([] { return false; }) : k.trigger(k.kills);
    const std::int64_t before = k.progress();
    Daemon d;
    d.pid = marginet::testing::spawn_marginet(k.args(), k.log);
    ASSERT_GT(d.pid, 0) << k.name;
    ++k.runs;
    const auto started = Clock::now();
    bool killed = false;
    for (int polls = 0;; ++polls) {
      int status = 0;
      if (waitpid(d.pid, &status, WNOHANG) == d.pid) {
        d.pid = -1;
        FAIL() << k.name << ": the scheduler exited by itself in run " << k.runs << " after " << k.kills
               << " kills (" << (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                                   : "signal " + std::to_string(WTERMSIG(status)))
               << "); log:\n" << log_tail(k.log);
      }
      if (k.first_progress_ms < 0 && k.progress() > before) k.first_progress_ms = ms_since(started);
      if (fire()) {
        killed = true;
        break;
      }
      if (polls % 8 == 7 && k.done()) break;
      if (ms_since(started) > k.run_timeout_ms)
        FAIL() << k.name << ": run " << k.runs << " made no end in " << k.run_timeout_ms << " ms; log:\n"
               << log_tail(k.log);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    int status = 0;
    if (killed) {
      kill(d.pid, SIGKILL);
      ASSERT_EQ(waitpid(d.pid, &status, 0), d.pid);
      d.pid = -1;
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << k.name << ": " << log_tail(k.log);
      ++k.kills;
      if (!k.done()) ++k.kills_mid_work;
      continue;
    }
    // The work is done: this run is killed too (not counted). The orderly start and stop on the
    // ledger is expect_ledger_sound's (--max-runtime); SIGTERM is SigtermWhileBusyExitsCleanly's.
    kill(d.pid, SIGKILL);
    ASSERT_EQ(waitpid(d.pid, &status, 0), d.pid);
    d.pid = -1;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << k.name << ": " << log_tail(k.log);
    break;
  }
  k.ms = ms_since(t0);
}

// The calibration run (the same work without kills) measures the work: N ledger entries in T
// ms, after a start-up of S ms. Kill n of K is sized on what is left of it, so that the kills
// spread over the whole work rather than bunch at its start or miss its end: a progress kill
// after 1..2R/(K-n) more entries (R: entries left of 0.8 N), a timed kill after
// 0..S + 2T(R/N)/(K-n) ms.
struct Calibration {
  std::int64_t entries = 0;
  double work_ms = 0, startup_ms = 0;
};

struct KillSpread {
  std::string ledger;
  Calibration cal;
  int max_kills = 1;
  std::int64_t left(int n) const {
    const std::int64_t rest = cal.entries * 8 / 10 - ledger_entries(ledger);
    return std::max<std::int64_t>(2, 2 * rest / std::max(1, max_kills - n));
  }
  std::int64_t step(int n, std::mt19937& rng) const {
    return std::uniform_int_distribution<std::int64_t>(1, left(n))(rng);
  }
  double delay_ms(int n, std::mt19937& rng) const {
    const double share = cal.entries > 0 ? static_cast<double>(left(n)) / static_cast<double>(cal.entries) : 0;
    return std::uniform_real_distribution<double>(0, cal.startup_ms + cal.work_ms * share)(rng);
  }
};

std::function<bool()> progress_kill(const std::string& ledger, std::int64_t step) {
  const std::int64_t target = ledger_entries(ledger) + step;
  return [ledger, target] { return ledger_entries(ledger) >= target; };
}

std::function<bool()> timed_kill(double after_ms) {
  const auto at = Clock::now() + std::chrono::microseconds(static_cast<std::int64_t>(after_ms * 1000));
  return [at] { return Clock::now() >= at; };
}

// The scheduler's status (`marginet scheduler status --format json`): (section, key) -> value text.
std::map<std::pair<std::string, std::string>, std::string> status_json(const std::string& ledger) {
  const auto r = marginet::testing::run_marginet("scheduler status --format json --ledger " + ledger, false);
  EXPECT_EQ(r.status, 0) << r.output;
  std::map<std::pair<std::string, std::string>, std::string> out;
  const json rows = json::parse(r.output, nullptr, false);
  EXPECT_TRUE(rows.is_array()) << r.output;
  if (!rows.is_array()) return out;
  for (const auto& row : rows)
    out[{row.at("section").get<std::string>(), row.at("key").get<std::string>()}] =
        row.at("value").is_string() ? row.at("value").get<std::string>() : row.at("value").dump();
  return out;
}

// After the last run: the ledger verifies, the state tables equal the ledger's replay, and the
// daemon starts again on them (it refuses to when they differ).
void expect_ledger_sound(const std::string& ledger, const std::string& chains, const std::string& what) {
  const auto v = marginet::testing::run_marginet("ledger verify --ledger " + ledger);
  EXPECT_EQ(v.status, 0) << what << ": " << v.output;
  {
    SqliteDb db = open_read_only(ledger);
    const StateCheckReport check = check_scheduler_state(db);
    EXPECT_TRUE(check.checked) << what;
    std::string diffs;
    for (const auto& d : check.differences) diffs += "\n  " + d;
    EXPECT_TRUE(check.ok()) << what << ": state tables differ from the ledger's replay:" << diffs;
  }
  const auto r = marginet::testing::run_marginet("scheduler --ledger " + ledger + " --chains " + chains +
                                                 " --bind 'tcp://127.0.0.1:*' --clock virtual --start " +
                                                 resume_clock(ledger) + " --max-runtime 0.3 --quiet");
  EXPECT_EQ(r.status, 0) << what << ": the scheduler does not start again on the ledger: " << r.output;
}

// One included (paid) sim-chain transfer.
struct Paid {
  std::string key, id, from, to, asset;
  std::int64_t amount = 0;
  int attempt = 0;
};

std::vector<Paid> included_transfers(const std::string& chain_state) {
  std::vector<Paid> out;
  SqliteDb db = open_read_only(chain_state);
  SqliteStatement q(db, "SELECT key, from_addr, to_addr, asset, amount FROM sim_transfers WHERE state = 'included'");
  while (q.step()) {
    Paid p;
    p.key = q.text(0);
    const auto hash = p.key.rfind('#');
    p.id = p.key.substr(0, hash);
    p.attempt = hash == std::string::npos ? -1 : std::stoi(p.key.substr(hash + 1));
    p.from = q.text(1);
    p.to = q.text(2);
    p.asset = q.text(3);
    p.amount = q.int64(4);
    out.push_back(p);
  }
  return out;
}

// (address, asset) -> balance on the sim chains.
std::map<std::pair<std::string, std::string>, std::int64_t> chain_balances(const std::string& chain_state) {
  std::map<std::pair<std::string, std::string>, std::int64_t> out;
  SqliteDb db = open_read_only(chain_state);
  SqliteStatement q(db, "SELECT address, asset, amount FROM sim_balances");
  while (q.step()) out[{q.text(0), q.text(1)}] = q.int64(2);
  return out;
}

// The scheduler's instructions as the state tables hold them.
struct Instr {
  std::string id, cycle, member, asset, leg, kind, state, origin;
  std::int64_t amount = 0, settle = 0;
  int attempt = 0;
};

std::map<std::string, Instr> read_instructions(SqliteDb& db) {
  std::map<std::string, Instr> out;
  SqliteStatement q(db,
                    "SELECT instruction_id, cycle_id, member, asset, leg, kind, state, origin, amount, settle, attempt"
                    " FROM sched_instructions");
  while (q.step()) {
    Instr in;
    in.id = q.text(0);
    in.cycle = q.text(1);
    in.member = q.text(2);
    in.asset = q.text(3);
    in.leg = q.text(4);
    in.kind = q.text(5);
    in.state = q.text(6);
    in.origin = q.text(7);
    in.amount = q.int64(8);
    in.settle = q.int64(9);
    in.attempt = static_cast<int>(q.int64(10));
    out[in.id] = in;
  }
  return out;
}

// Ledger bodies of one kind, in order.
std::vector<json> ledger_bodies(SqliteDb& db, const std::string& kind, std::vector<std::string>* cycles = nullptr) {
  std::vector<json> out;
  SqliteStatement q(db, "SELECT body, cycle_id FROM ledger_entries WHERE kind = ? ORDER BY seq");
  q.bind(1, kind);
  while (q.step()) {
    out.push_back(json::parse(q.text(0)));
    if (cycles) cycles->push_back(q.text(1));
  }
  return out;
}

// Every chain transfer paid exactly once and the balances to the unit:
// - an instruction has at most one included transfer (over all its attempts);
// - every final instruction's transfer (key "<id>#<attempt>", amount = settle, the right way)
//   is included; every included transfer is a final instruction's or a late pay-in's (a watched
//   pay-in that landed after its member was rolled or defaulted: transfer.late_final);
// - each member's balance = funding − final pay-ins + final pay-outs − late pay-ins, the CCP's =
//   its opening liquidity + pay-ins − pay-outs (+ late pay-ins), and the scheduler's liquidity
//   equals the CCP's wallet (no margin calls here).
void expect_paid_exactly_once(SqliteDb& db, const std::string& chain_state, const std::map<std::string, Instr>& ins,
                              const std::map<std::string, std::int64_t>& funding,
                              const std::map<std::string, std::int64_t>& ccp_opening, int* late_pay_ins = nullptr) {
  const std::vector<Paid> paid = included_transfers(chain_state);
  std::map<std::string, int> per_instruction;
  std::map<std::string, const Paid*> by_key;
  for (const Paid& p : paid) {
    ++per_instruction[p.id];
    by_key[p.key] = &p;
  }
  for (const auto& [id, n] : per_instruction) EXPECT_EQ(n, 1) << "paid " << n << " times: " << id;
  std::set<std::string> late;  // keys of pay-ins that landed after they were watched
  for (const json& b : ledger_bodies(db, "transfer.late_final"))
    if (b.at("leg") == "pay_in") late.insert(b.at("key").get<std::string>());
  if (late_pay_ins) *late_pay_ins = static_cast<int>(late.size());
  std::map<std::pair<std::string, std::string>, std::int64_t> expect;
  auto add = [&](const std::string& who, const std::string& asset, std::int64_t v) {
    const std::int64_t opening = who == "CCP" ? ccp_opening.at(asset) : funding.at(asset);
    expect.emplace(std::make_pair(who, asset), opening).first->second += v;
  };
  std::size_t finals = 0;
  for (const auto& [id, in] : ins) {
    if (in.state != "final") continue;
    ++finals;
    const std::string key = id + "#" + std::to_string(in.attempt);
    const auto it = by_key.find(key);
    ASSERT_NE(it, by_key.end()) << "final but not paid on its chain: " << key;
    EXPECT_EQ(it->second->amount, in.settle) << key;
    EXPECT_EQ(it->second->from, in.leg == "pay_in" ? in.member : "CCP") << key;
    EXPECT_EQ(it->second->to, in.leg == "pay_in" ? "CCP" : in.member) << key;
    const std::int64_t v = in.leg == "pay_in" ? -in.settle : in.settle;
    add(in.member, in.asset, v);
    add("CCP", in.asset, -v);
  }
  for (const Paid& p : paid) {
    const auto in = ins.find(p.id);
    ASSERT_NE(in, ins.end()) << "a transfer no instruction made: " << p.key;
    const bool final_key = in->second.state == "final" && in->second.attempt == p.attempt;
    EXPECT_TRUE(final_key || late.count(p.key)) << "paid but neither final nor a late pay-in: " << p.key << " ("
                                                << in->second.state << ", attempt " << in->second.attempt << ")";
    if (!final_key && late.count(p.key)) {
      add(p.from, p.asset, -p.amount);
      add("CCP", p.asset, p.amount);
    }
  }
  EXPECT_EQ(paid.size(), finals + late.size());
  const auto balances = chain_balances(chain_state);
  for (const auto& [who_asset, v] : balances) {
    const auto it = expect.find(who_asset);
    const std::int64_t want = it != expect.end() ? it->second
                              : who_asset.first == "CCP" ? ccp_opening.at(who_asset.second)
                                                         : funding.at(who_asset.second);
    EXPECT_EQ(v, want) << "balance of " << who_asset.first << " in " << who_asset.second;
  }
  for (const auto& [who_asset, v] : expect)
    EXPECT_TRUE(balances.count(who_asset)) << who_asset.first << " " << who_asset.second << " has no balance";
  SqliteStatement q(db, "SELECT asset, available FROM sched_liquidity");
  std::size_t assets = 0;
  while (q.step()) {
    ++assets;
    const auto it = balances.find({"CCP", q.text(0)});
    ASSERT_NE(it, balances.end()) << q.text(0);
    EXPECT_EQ(q.int64(1), it->second) << "the scheduler's liquidity in " << q.text(0) << " is not the CCP's wallet";
  }
  EXPECT_EQ(assets, ccp_opening.size());
}

// ---------------------------------------------------------------------------------------------
// 1. Validation under kill

// One cycle a producer sends, and every reply it got.
struct Sent {
  SettlementCycle cycle;
  std::string frame;
  std::string invalid;  // "": valid; else what its rejection must say
  bool decodes = true;  // false: the frame itself is bad (the ack names no cycle)
  std::vector<SettlementAck> acks;
  std::vector<std::string> undecodable;  // replies that were not acks
  int attempts = 0;
};

// A producer: each cycle in turn, resent until acknowledged (recorded, duplicate or rejected).
// A request unanswered within 100 ms is resent on a fresh DEALER (the scheduler may be dead or
// restarting), so that a late reply to an old request is never taken for the new one's.
void produce(const std::string& endpoint, std::vector<Sent>& cycles, std::atomic<int>& acks,
             const std::atomic<bool>& stop) {
  zmq::context_t ctx(1);
  auto open = [&] {
    auto s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::reconnect_ivl, 5);
    s->connect(endpoint);
    return s;
  };
  auto sock = open();
  for (Sent& c : cycles) {
    bool acked = false;
    while (!acked && !stop) {
      ++c.attempts;
      (void)sock->send(zmq::buffer(c.frame), zmq::send_flags::none);
      zmq::pollitem_t item{sock->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) {
        sock = open();
        continue;
      }
      zmq::message_t m;
      (void)sock->recv(m, zmq::recv_flags::none);
      try {
        c.acks.push_back(decode_settlement_ack(m.to_string_view()));
        acked = true;
        ++acks;
      } catch (const std::exception& e) {
        c.undecodable.push_back(e.what());
        sock = open();
      }
    }
  }
}

// Producer p's cycles: every third one invalid, the five kinds in turn.
std::vector<Sent> producer_cycles(int p, int count) {
  std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(p));
  const std::map<std::string, std::pair<std::int64_t, std::int64_t>> ranges = {{"BTC", {1000000, 500000000}},
                                                                               {"USDC", {1000000, 1000000000}}};
  std::vector<Sent> out;
  std::string last_valid_instruction;
  int invalid = 0;
  for (int i = 0; i < count; ++i) {
    Sent s;
    const std::string id = "p" + std::to_string(p) + "-c" + std::to_string(i);
    s.cycle = netted_cycle(id, kFarDeadline, 4, rng, ranges);
    if (i % 3 == 2) {
      switch (invalid++ % 5) {
        case 0:  // pay-outs not funded by pay-ins, without liquidity_draw
          s.cycle.instructions.back().amount += 1;
          s.invalid = "must say liquidity_draw";
          break;
        case 1:  // a member that is not UTF-8: the frame does not decode
          s.cycle.instructions.front().member = "M\xff\xfe";
          s.invalid = "not valid UTF-8";
          s.decodes = false;
          break;
        case 2:  // above kMaxSettlementAmount (balanced)
          s.cycle.instructions = {
              {id + "/M1/BTC/in", "M1", "BTC", Leg::pay_in, ObligationKind::net, kMaxSettlementAmount + 1},
              {id + "/M2/BTC/out", "M2", "BTC", Leg::pay_out, ObligationKind::net, kMaxSettlementAmount + 1}};
          s.invalid = "an instruction may move";
          break;
        case 3:  // an instruction id this producer's previous valid cycle holds (recorded: acked)
          s.cycle.instructions.front().instruction_id = last_valid_instruction;
          s.invalid = "unique across cycles";
          break;
        case 4:  // a liquidity draw (a pay-out and no pay-in) from an unauthenticated peer
          s.cycle.liquidity_draw = true;
          s.cycle.instructions = {{id + "/M3/USDC/out", "M3", "USDC", Leg::pay_out, ObligationKind::net, 5000000}};
          s.invalid = "not authorised to draw";
          break;
      }
    } else {
      last_valid_instruction = s.cycle.instructions.front().instruction_id;
    }
    s.frame = encode_settlement_cycle(s.cycle);
    out.push_back(std::move(s));
  }
  return out;
}

struct ValidationRun {
  fs::path dir;
  std::string ledger, chains, endpoint;
  std::vector<std::vector<Sent>> producers;
  KillRun k;
  std::atomic<int> acks{0};
  std::atomic<int> producers_done{0};
  int kills_while_receiving = 0;
};

constexpr int kProducers = 2;
constexpr int kCyclesPerProducer = 24;

int free_port() {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  const std::string ep = s.get(zmq::sockopt::last_endpoint);
  return std::stoi(ep.substr(ep.rfind(':') + 1));
}

void write_validation_chains(const fs::path& path) {
  std::ofstream out(path);
  out << R"({"ccp_address": "CCP", "assets": {"BTC": {"scale": 8}, "USDC": {"scale": 6}},
    "chains": [{"name": "vchain", "adapter": "sim", "assets": ["BTC", "USDC"], "block_time": 0, "finality_depth": 2,
                "seed": 21, "reorg_probability": 0.1, "reorg_depth": 1,
                "member_funding": {"BTC": "1000", "USDC": "100000000"}}]})";
}

// Runs the validation scenario once: producers and the daemon, killed `max_kills` times with
// kill sizes from `cal` (max_kills 0: the calibration).
void run_validation(ValidationRun& v, const std::string& name, int max_kills, const Calibration& cal) {
  v.dir = fresh_dir(name);
  v.ledger = (v.dir / "ledger.sqlite").string();
  v.chains = (v.dir / "chains.json").string();
  write_validation_chains(v.chains);
  v.endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  for (int p = 0; p < kProducers; ++p) v.producers.push_back(producer_cycles(p, kCyclesPerProducer));
  int valid = 0;
  for (const auto& cs : v.producers)
    for (const auto& s : cs) valid += s.invalid.empty();
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  struct Join {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Join() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } join{stop, threads};
  for (int p = 0; p < kProducers; ++p)
    threads.emplace_back([&v, &stop, p] {
      produce(v.endpoint, v.producers[static_cast<std::size_t>(p)], v.acks, stop);
      ++v.producers_done;
    });

  std::mt19937 rng(77);
  const KillSpread spread{v.ledger, cal, max_kills};
  KillRun& k = v.k;
  k.name = name;
  k.log = (v.dir / "scheduler.log").string();
  k.max_kills = max_kills;
  k.args = [&v] {
    return std::vector<std::string>{"scheduler", "--bind", v.endpoint, "--ledger", v.ledger, "--chains", v.chains,
                                    "--clock", "virtual", "--start", resume_clock(v.ledger), "--tick-seconds", "1",
                                    "--poll-ms", "0", "--quiet"};
  };
  const std::string ledger = v.ledger;
  k.progress = [ledger] { return ledger_entries(ledger); };
  k.done = [&v, ledger, valid] {
    return v.producers_done == kProducers &&
           probe(ledger, "SELECT COUNT(*) FROM sched_cycles WHERE state = 'closed'") == valid &&
           probe(ledger, "SELECT COUNT(*) FROM sched_cycles WHERE state != 'closed'") == 0;
  };
  // Kills while the producers still send count as kills during validation.
  auto counted = [&v](std::function<bool()> fire) -> std::function<bool()> {
    return [&v, fire] {
      if (!fire()) return false;
      v.kills_while_receiving += v.producers_done < kProducers;
      return true;
    };
  };
  k.trigger = [&v, &k, &rng, ledger, spread, counted](int n) -> std::function<bool()> {
    if (n % 4 == 3) return counted(timed_kill(spread.delay_ms(n, rng)));
    if (n % 4 == 1 && v.producers_done < kProducers) {  // right after 1..3 more cycles were acknowledged
      const int target = v.acks + std::uniform_int_distribution<int>(1, 3)(rng);
      auto fallback = progress_kill(ledger, spread.step(n, rng));
      return counted([&v, &k, target, fallback] {
        if (v.acks < target) return fallback();
        ++k.kills_on_event;
        return true;
      });
    }
    return counted(progress_kill(ledger, spread.step(n, rng)));
  };
  run_under_kills(k);
}

TEST(SchedulerCrash, ValidationUnderKill) {
  // Calibration: the same work, no kills.
  Calibration cal;
  {
    ValidationRun c;
    ASSERT_NO_FATAL_FAILURE(run_validation(c, "validation_cal", 0, cal));
    cal.entries = ledger_entries(c.ledger);
    cal.work_ms = c.k.ms;
    cal.startup_ms = c.k.first_progress_ms;
    fs::remove_all(c.dir);
  }
  ASSERT_GT(cal.entries, 0);

  ValidationRun v;
  ASSERT_NO_FATAL_FAILURE(run_validation(v, "validation", kKills, cal));
  const KillRun& k = v.k;
  EXPECT_GE(k.kills_mid_work, 20) << "kills landed after the work was done";
  EXPECT_GE(v.kills_while_receiving, 5) << "too few kills while the cycles were being sent and validated";

  // The acks: every valid cycle recorded (or duplicate: recorded by a run killed before its
  // reply), never rejected; every invalid one rejected, each time, for its reason.
  SqliteDb db = open_read_only(v.ledger);
  const auto ins = read_instructions(db);
  std::size_t valid = 0, invalid = 0, duplicates = 0, resent = 0, reused = 0;
  std::set<std::string> valid_ids;
  std::map<std::string, int> received;
  {
    SqliteStatement q(db, "SELECT cycle_id, COUNT(*) FROM ledger_entries WHERE kind = 'cycle.received' GROUP BY cycle_id");
    while (q.step()) received[q.text(0)] = static_cast<int>(q.int64(1));
  }
  for (const auto& cycles : v.producers) {
    for (const Sent& s : cycles) {
      const std::string& id = s.cycle.cycle_id;
      resent += static_cast<std::size_t>(s.attempts - 1);
      EXPECT_TRUE(s.undecodable.empty()) << id << ": " << s.undecodable.front();
      ASSERT_FALSE(s.acks.empty()) << id << " was never acknowledged (" << s.attempts << " attempts)";
      EXPECT_EQ(s.acks.size(), 1u) << id;  // one request in flight per socket: one ack ends it
      const SettlementAck& a = s.acks.back();
      if (s.invalid.empty()) {
        ++valid;
        valid_ids.insert(id);
        EXPECT_TRUE(a.status == "recorded" || a.status == "duplicate") << id << ": " << a.status << " " << a.message;
        duplicates += a.status == "duplicate";
        EXPECT_EQ(a.cycle_id, id);
        EXPECT_EQ(received[id], 1) << id << " recorded " << received[id] << " times";
        // Settled: every instruction final, and the report says so.
        const SettlementReport rep = read_settlement_report(db, id);
        EXPECT_EQ(rep.cycle_state, "closed") << id;
        EXPECT_TRUE(rep.complete) << id;
        ASSERT_EQ(rep.instructions.size(), s.cycle.instructions.size()) << id;
        for (std::size_t i = 0; i < s.cycle.instructions.size(); ++i) {
          const auto& want = s.cycle.instructions[i];
          EXPECT_EQ(rep.instructions[i].instruction_id, want.instruction_id);
          EXPECT_EQ(rep.instructions[i].amount, want.amount) << want.instruction_id;
          EXPECT_EQ(rep.instructions[i].settled, want.amount) << want.instruction_id;
          EXPECT_EQ(rep.instructions[i].state, "final") << want.instruction_id;
          const auto it = ins.find(want.instruction_id);
          ASSERT_NE(it, ins.end()) << want.instruction_id;
          EXPECT_EQ(it->second.cycle, id);
          EXPECT_EQ(it->second.state, "final") << want.instruction_id;
          EXPECT_EQ(it->second.settle, want.amount) << want.instruction_id;
        }
      } else {
        ++invalid;
        EXPECT_EQ(a.status, "rejected") << id << " (" << s.invalid << "): " << a.message;
        EXPECT_NE(a.message.find(s.invalid), std::string::npos) << id << ": rejected for another reason: " << a.message;
        EXPECT_EQ(a.cycle_id, s.decodes ? id : std::string()) << a.message;
        EXPECT_EQ(received.count(id), 0u) << id << " is in the ledger";
        EXPECT_EQ(probe(v.ledger, "SELECT COUNT(*) FROM ledger_entries WHERE cycle_id = '" + id + "'"), 0) << id;
        EXPECT_EQ(probe(v.ledger, "SELECT COUNT(*) FROM sched_cycles WHERE cycle_id = '" + id + "'"), 0) << id;
        EXPECT_EQ(read_settlement_report(db, id).cycle_state, "unknown") << id;
        for (const auto& i : s.cycle.instructions) {  // its own ids are nowhere; a reused one is its owner's
          const bool own = i.instruction_id.rfind(id + "/", 0) == 0;
          reused += !own;
          const auto it = ins.find(i.instruction_id);
          EXPECT_EQ(it != ins.end(), !own) << i.instruction_id;
          EXPECT_NE(it == ins.end() ? id : it->second.cycle, own ? "" : id) << i.instruction_id;
        }
      }
    }
  }
  EXPECT_EQ(valid + invalid, static_cast<std::size_t>(kProducers * kCyclesPerProducer));
  EXPECT_EQ(invalid, static_cast<std::size_t>(kProducers * (kCyclesPerProducer / 3)));
  EXPECT_GE(reused, 2u);  // the reused-id cycles were checked against their owners
  // Nothing but the valid cycles in the ledger, and their instructions only.
  EXPECT_EQ(received.size(), valid_ids.size());
  for (const auto& [id, n] : received) EXPECT_TRUE(valid_ids.count(id)) << "unexpected cycle " << id;
  std::size_t sent_instructions = 0;
  for (const auto& cycles : v.producers)
    for (const Sent& s : cycles)
      if (s.invalid.empty()) sent_instructions += s.cycle.instructions.size();
  EXPECT_EQ(ins.size(), sent_instructions);
  std::map<std::string, int> finals;
  for (const json& b : ledger_bodies(db, "instruction.state"))
    if (b.at("to") == "final") ++finals[b.at("instruction").get<std::string>()];
  EXPECT_EQ(finals.size(), sent_instructions);
  for (const auto& [id, n] : finals) EXPECT_EQ(n, 1) << id << " final " << n << " times";

  const auto st = status_json(v.ledger);
  EXPECT_EQ(st.at({"cycles", "closed"}), std::to_string(valid));
  EXPECT_EQ(st.at({"cycles", "open"}), "0");
  EXPECT_EQ(st.at({"cycles", "queued"}), "0");
  EXPECT_EQ(st.at({"instructions", "final"}), std::to_string(sent_instructions));

  ASSERT_NO_FATAL_FAILURE(expect_paid_exactly_once(db, (v.dir / "ledger.chains.sqlite").string(), ins,
                                                   {{"BTC", 1000LL * 100000000}, {"USDC", 100000000LL * 1000000}},
                                                   {{"BTC", 0}, {"USDC", 0}}));
  expect_ledger_sound(v.ledger, v.chains, "validation");
  std::printf("ValidationUnderKill: %d kills (%d mid-work, %d while cycles were being sent, %d right after acks) in %d "
              "runs, %zu cycles (%zu valid, %zu rejected), %zu resends, %zu duplicate acks, %.0f ms (calibration "
              "without kills: %.0f ms, %lld entries)\n",
              k.kills, k.kills_mid_work, v.kills_while_receiving, k.kills_on_event, k.runs, valid + invalid, valid,
              invalid, resent, duplicates, k.ms, cal.work_ms, static_cast<long long>(cal.entries));
  if (!HasFailure()) fs::remove_all(v.dir);
}

// ---------------------------------------------------------------------------------------------
// 2. and 3. Rolling and default hand-over under kill

constexpr int kDeadlineCycles = 12;
constexpr double kCycleSpacing = 30;  // virtual seconds between deadlines: pay-ins final long before
constexpr int kDeadlineMembers = 8;
const std::string kCannotPay = "M6";  // every transfer from it fails (failing_members); a payer in every cycle

struct DeadlineRun {
  fs::path dir;
  std::string ledger, chains, chain_state;
  std::vector<SettlementCycle> cycles;
  std::vector<std::string> cycle_files;
  KillRun k;
};

const std::map<std::string, std::int64_t> kDeadlineFunding = {{"BTC", 100LL * 100000000},
                                                              {"USDC", 10000000LL * 1000000}};
const std::map<std::string, std::int64_t> kDeadlineLiquidity = {{"BTC", 50000000}, {"USDC", 20000LL * 1000000}};

// The deadline scenario: cycles d1..d12 (8 members, BTC and USDC) with deadlines 30 s apart on
// the virtual clock; M6 pays BTC in each and cannot pay; 8% of all transfers fail at random
// (pay-ins: their member misses the deadline; pay-outs: retried once, then carried); little
// BTC liquidity, so the pay-outs wait for the deadline and are paid pro rata (the rest held);
// a grace of one tick, so those pay-outs are still in flight at the deadline + grace (expired,
// watched to their end).
void run_deadline(DeadlineRun& r, const std::string& name, const std::string& action, int max_kills,
                  const Calibration& cal) {
  r.dir = fresh_dir(name);
  r.ledger = (r.dir / "ledger.sqlite").string();
  r.chains = (r.dir / "chains.json").string();
  r.chain_state = (r.dir / "ledger.chains.sqlite").string();
  {
    std::ofstream out(r.chains);
    out << R"({"ccp_address": "CCP", "on_missed_deadline": ")" << action << R"(", "grace_seconds": 1,
      "max_payout_attempts": 2,
      "assets": {"BTC": {"scale": 8, "ccp_liquidity": "0.5"}, "USDC": {"scale": 6, "ccp_liquidity": "20000"}},
      "chains": [
        {"name": "btc", "adapter": "sim", "assets": ["BTC"], "block_time": 0, "finality_depth": 3, "seed": 31,
         "failure_rate": 0.08, "reorg_probability": 0.1, "reorg_depth": 1,
         "member_funding": {"BTC": "100"}, "failing_members": [")" << kCannotPay << R"("]},
        {"name": "usdc", "adapter": "sim", "assets": ["USDC"], "block_time": 0, "finality_depth": 2, "seed": 32,
         "failure_rate": 0.08, "member_funding": {"USDC": "10000000"}, "failing_members": [")" << kCannotPay << R"("]}]})";
  }
  std::mt19937_64 rng(4242);
  const std::map<std::string, std::pair<std::int64_t, std::int64_t>> ranges = {{"BTC", {10000000, 300000000}},
                                                                               {"USDC", {100000000, 50000000000}}};
  for (int c = 1; c <= kDeadlineCycles; ++c) {
    const std::string id = "d" + std::to_string(c);
    r.cycles.push_back(netted_cycle(id, kVirtualStart + kCycleSpacing * c, kDeadlineMembers, rng, ranges, kCannotPay, "BTC"));
    r.cycle_files.push_back((r.dir / (id + ".json")).string());
    std::ofstream out(r.cycle_files.back());
    write_cycle_json(out, r.cycles.back());
  }
  std::mt19937 krng(action == "roll" ? 5 : 6);
  const KillSpread spread{r.ledger, cal, max_kills};
  KillRun& k = r.k;
  k.name = name;
  k.log = (r.dir / "scheduler.log").string();
  k.max_kills = max_kills;
  // --bind keeps the daemon running after the last cycle closed, until the watched transfers end
  // (with only --cycle-file it would exit when no cycle is open).
  k.args = [&r] {
    std::vector<std::string> a = {"scheduler", "--bind", "tcp://127.0.0.1:*", "--ledger", r.ledger, "--chains", r.chains,
                                  "--clock", "virtual", "--start", resume_clock(r.ledger), "--tick-seconds", "1",
                                  "--poll-ms", "0", "--quiet"};
    for (const auto& f : r.cycle_files) a.insert(a.end(), {"--cycle-file", f});
    return a;
  };
  const std::string ledger = r.ledger;
  k.progress = [ledger] { return ledger_entries(ledger); };
  k.done = [ledger] {
    return probe(ledger, "SELECT COUNT(*) FROM sched_cycles WHERE state = 'closed'") == kDeadlineCycles &&
           probe(ledger, "SELECT COUNT(*) FROM sched_watch") == 0;
  };
  k.trigger = [&krng, &k, ledger, spread](int n) -> std::function<bool()> {
    if (n % 4 == 3) return timed_kill(spread.delay_ms(n, krng));
    if (n % 4 == 1) {  // right after the next deadline: while pay-outs are released, expire, roll or default
      const std::int64_t deadlines = probe(ledger, "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'cycle.deadline'", 0);
      const double delay_ms = std::uniform_real_distribution<double>(0, 3)(krng);
      auto fallback = progress_kill(ledger, 4 * spread.step(n, krng));  // a deadline is ~1/12 of the work away
      auto seen = std::make_shared<std::optional<Clock::time_point>>();
      return [&k, ledger, deadlines, delay_ms, fallback, seen] {
        if (!*seen &&
            probe(ledger, "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'cycle.deadline'", 0) > deadlines)
          *seen = Clock::now();
        if (!*seen || ms_since(**seen) < delay_ms) return fallback();
        ++k.kills_on_event;
        return true;
      };
    }
    return progress_kill(ledger, spread.step(n, krng));
  };
  run_under_kills(k);
}

struct DeadlineOutcome {
  int rolled = 0, defaulted = 0, carried_in = 0, still_carried = 0, expired = 0, shortfalls = 0, late_pay_ins = 0;
};

// What both deadline tests assert, for on_missed_deadline `action`.
void expect_deadline_outcome(const DeadlineRun& r, const std::string& action, DeadlineOutcome& o) {
  const bool roll = action == "roll";
  SqliteDb db = open_read_only(r.ledger);
  const auto ins = read_instructions(db);
  std::map<std::string, std::vector<std::string>> children;  // origin -> instructions carried from it
  for (const auto& [id, in] : ins)
    if (!in.origin.empty()) children[in.origin].push_back(id);
  std::map<std::string, std::int64_t> carried;  // origin -> amount waiting for a cycle
  {
    SqliteStatement q(db, "SELECT origin, amount FROM sched_carried");
    while (q.step()) {
      carried[q.text(0)] += q.int64(1);
      ++o.still_carried;
    }
  }
  // Every instruction terminal; in roll mode none defaulted.
  for (const auto& [id, in] : ins) {
    EXPECT_TRUE(in.state == "final" || in.state == "rolled" || (!roll && in.state == "defaulted"))
        << id << " is " << in.state;
    o.rolled += in.state == "rolled";
    o.defaulted += in.state == "defaulted";
    if (!in.origin.empty()) {
      ++o.carried_in;
      EXPECT_TRUE(ins.count(in.origin)) << id << " carried from an unknown " << in.origin;
    }
  }
  for (const auto& [origin, amount] : carried) EXPECT_TRUE(ins.count(origin)) << "carried from unknown " << origin;

  // Conservation: per instruction sent, what settled final over it and its carried successors,
  // plus what was handed to default management, plus what is still carried = the amount sent.
  std::set<std::string> covered;
  std::size_t sent = 0;
  for (const SettlementCycle& c : r.cycles) {
    const SettlementReport rep = read_settlement_report(db, c.cycle_id);
    EXPECT_EQ(rep.cycle_state, "closed") << c.cycle_id;
    ASSERT_EQ(rep.instructions.size(), c.instructions.size()) << c.cycle_id;
    bool any_pending = false;
    for (std::size_t i = 0; i < c.instructions.size(); ++i) {
      const SettlementInstruction& x = c.instructions[i];
      ++sent;
      ASSERT_TRUE(ins.count(x.instruction_id)) << x.instruction_id;
      EXPECT_EQ(ins.at(x.instruction_id).origin, "") << x.instruction_id;
      std::int64_t final_sum = 0, defaulted_sum = 0, carried_sum = 0;
      std::vector<std::string> todo = {x.instruction_id};
      while (!todo.empty()) {
        const std::string id = todo.back();
        todo.pop_back();
        EXPECT_TRUE(covered.insert(id).second) << id << " is in two chains";
        const Instr& in = ins.at(id);
        EXPECT_EQ(in.member, x.member) << id;
        EXPECT_EQ(in.asset, x.asset) << id;
        EXPECT_EQ(in.leg, leg_name(x.leg)) << id;
        if (in.state == "final") final_sum += in.settle;
        if (in.state == "defaulted") defaulted_sum += in.amount;
        if (carried.count(id)) carried_sum += carried.at(id);
        for (const auto& child : children[id]) todo.push_back(child);
      }
      EXPECT_EQ(final_sum + defaulted_sum + carried_sum, x.amount)
          << x.instruction_id << ": final " << final_sum << " + defaulted " << defaulted_sum << " + carried "
          << carried_sum << " != sent " << x.amount;
      const InstructionOutcome& out = rep.instructions[i];
      EXPECT_EQ(out.instruction_id, x.instruction_id);
      EXPECT_EQ(out.amount, x.amount) << x.instruction_id;
      EXPECT_EQ(out.settled, final_sum) << x.instruction_id;
      const std::string state = carried_sum > 0 ? "pending" : defaulted_sum > 0 ? "defaulted" : "final";
      EXPECT_EQ(out.state, state) << x.instruction_id;
      any_pending = any_pending || state == "pending";
      EXPECT_TRUE(!roll || defaulted_sum == 0) << x.instruction_id << " defaulted under roll";
    }
    EXPECT_EQ(rep.complete, !any_pending) << c.cycle_id;
  }
  EXPECT_EQ(covered.size(), ins.size()) << "instructions outside every chain";

  // The deadline: processed exactly once per cycle, M6 among those who missed it each time; the
  // missed members' pay-outs of that cycle withheld (rolled or defaulted, never paid).
  std::vector<std::string> deadline_cycles;
  const auto deadlines = ledger_bodies(db, "cycle.deadline", &deadline_cycles);
  ASSERT_EQ(deadlines.size(), static_cast<std::size_t>(kDeadlineCycles));
  const std::vector<Paid> paid = included_transfers(r.chain_state);
  std::set<std::string> paid_ids;
  for (const Paid& p : paid) paid_ids.insert(p.id);
  std::set<std::string> seen_cycles;
  for (std::size_t d = 0; d < deadlines.size(); ++d) {
    const std::string& cycle = deadline_cycles[d];
    EXPECT_TRUE(seen_cycles.insert(cycle).second) << "deadline of " << cycle << " processed twice";
    EXPECT_EQ(deadlines[d].at("action"), action);
    const auto missed = deadlines[d].at("members_missed").get<std::vector<std::string>>();
    EXPECT_NE(std::find(missed.begin(), missed.end(), kCannotPay), missed.end()) << cycle;
    for (const auto& [id, in] : ins) {
      if (in.cycle != cycle || in.leg != "pay_out" ||
          std::find(missed.begin(), missed.end(), in.member) == missed.end())
        continue;
      EXPECT_EQ(in.state, roll ? "rolled" : "defaulted") << id << " of " << in.member << ", who missed " << cycle;
      EXPECT_EQ(paid_ids.count(id), 0u) << id << " was paid to " << in.member << ", who missed " << cycle;
    }
  }
  // Handed over (or rolled) exactly once: one ledger entry per defaulted / rolled instruction,
  // and nothing carried from a defaulted one.
  std::map<std::string, int> to_defaulted, to_rolled;
  for (const json& b : ledger_bodies(db, "instruction.state")) {
    if (b.at("to") == "defaulted") ++to_defaulted[b.at("instruction").get<std::string>()];
    if (b.at("to") == "rolled") ++to_rolled[b.at("instruction").get<std::string>()];
  }
  EXPECT_EQ(to_defaulted.size(), static_cast<std::size_t>(o.defaulted));
  for (const auto& [id, in] : ins) {
    EXPECT_EQ(to_defaulted[id], in.state == "defaulted" ? 1 : 0) << id << " is " << in.state;
    EXPECT_LE(to_rolled[id], 1) << id;  // an expired pay-out that fails late is rolled by transfer.late_failed
    EXPECT_TRUE(in.state != "defaulted" || (children[id].empty() && carried.count(id) == 0))
        << id << " defaulted and carried";
  }
  // M6 never paid and never got paid: its balance is its funding.
  const auto balances = chain_balances(r.chain_state);
  EXPECT_EQ(balances.at({kCannotPay, "BTC"}), kDeadlineFunding.at("BTC"));
  const auto usdc = balances.find({kCannotPay, "USDC"});  // absent: never touched, still its funding
  EXPECT_EQ(usdc == balances.end() ? kDeadlineFunding.at("USDC") : usdc->second, kDeadlineFunding.at("USDC"));

  o.expired = static_cast<int>(ledger_bodies(db, "transfer.watched").size());
  o.shortfalls = static_cast<int>(ledger_bodies(db, "payout.shortfall").size());
  ASSERT_NO_FATAL_FAILURE(
      expect_paid_exactly_once(db, r.chain_state, ins, kDeadlineFunding, kDeadlineLiquidity, &o.late_pay_ins));

  const auto st = status_json(r.ledger);
  EXPECT_EQ(st.at({"cycles", "closed"}), std::to_string(kDeadlineCycles));
  EXPECT_EQ(st.at({"cycles", "open"}), "0");
  EXPECT_EQ(st.at({"cycles", "queued"}), "0");
  EXPECT_EQ(st.at({"transfers", "watched"}), "0");
  expect_ledger_sound(r.ledger, r.chains, action);
}

void deadline_test(const std::string& name, const std::string& action) {
  Calibration cal;
  DeadlineOutcome cal_outcome;
  {
    DeadlineRun c;
    ASSERT_NO_FATAL_FAILURE(run_deadline(c, name + "_cal", action, 0, cal));
    cal.entries = ledger_entries(c.ledger);
    cal.work_ms = c.k.ms;
    cal.startup_ms = c.k.first_progress_ms;
    ASSERT_NO_FATAL_FAILURE(expect_deadline_outcome(c, action, cal_outcome));
    if (!::testing::Test::HasFailure()) fs::remove_all(c.dir);
  }
  ASSERT_GT(cal.entries, 0);
  DeadlineRun r;
  ASSERT_NO_FATAL_FAILURE(run_deadline(r, name, action, kDeadlineKills, cal));
  EXPECT_GE(r.k.kills_mid_work, 20) << "kills landed after the work was done";
  EXPECT_GE(r.k.kills_on_event, 1) << "no kill landed right after a deadline";
  DeadlineOutcome o;
  ASSERT_NO_FATAL_FAILURE(expect_deadline_outcome(r, action, o));
  // The paths under test ran: deadlines missed, obligations carried into later cycles (roll)
  // or handed over (default), pay-outs expired at the deadline + grace and watched, shortfalls.
  if (action == "roll") {
    EXPECT_GT(o.carried_in, 0);
    EXPECT_GT(o.still_carried, 0);
    EXPECT_EQ(o.defaulted, 0);
  } else {
    EXPECT_GT(o.defaulted, 0);
  }
  EXPECT_GT(o.rolled + o.defaulted, 0);
  EXPECT_GT(o.expired, 0);
  EXPECT_GT(o.shortfalls, 0);
  std::printf("%s: %d kills (%d mid-work, %d right after a deadline) in %d runs, %d cycles, %zu instructions (%d carried in, %d rolled, %d "
              "defaulted, %d still carried, %d expired and watched, %d shortfalls, %d late pay-ins), %.0f ms "
              "(calibration without kills: %.0f ms, %lld entries, %d carried in, %d expired)\n",
              name.c_str(), r.k.kills, r.k.kills_mid_work, r.k.kills_on_event, r.k.runs, kDeadlineCycles,
              static_cast<std::size_t>(probe(r.ledger, "SELECT COUNT(*) FROM sched_instructions", 0)), o.carried_in,
              o.rolled, o.defaulted, o.still_carried, o.expired, o.shortfalls, o.late_pay_ins, r.k.ms, cal.work_ms,
              static_cast<long long>(cal.entries), cal_outcome.carried_in, cal_outcome.expired);
  if (!::testing::Test::HasFailure()) fs::remove_all(r.dir);
}

TEST(SchedulerCrash, RollingUnderKill) { deadline_test("RollingUnderKill", "roll"); }

TEST(SchedulerCrash, DefaultHandOverUnderKill) { deadline_test("DefaultHandOverUnderKill", "default_management"); }


// ---------------------------------------------------------------------------------------------
// Found by the crash tests above: SIGTERM (or SIGINT) landing while the daemon's loop was
// inside a non-blocking ZeroMQ recv made it exit 1 with "Interrupted system call" instead of
// stopping in order (EINTR was caught only around zmq::poll; about 1 stop in 20 of a busy
// daemon). This stops a fresh busy daemon 100 times; every stop must be exit 0.
TEST(SchedulerCrash, SigtermWhileBusyExitsCleanly) {
  const fs::path dir = fresh_dir("sigterm");
  {
    std::ofstream out(dir / "chains.json");
    out << R"({"assets": {"BTC": {"scale": 8}}, "chains": [{"name": "b", "assets": ["BTC"]}]})";
  }
  const std::string log = (dir / "scheduler.log").string();
  std::mt19937 rng(3);
  int stops = 0;
  for (; stops < 100; ++stops) {
    Daemon d;
    d.pid = marginet::testing::spawn_marginet({"scheduler", "--bind", "tcp://127.0.0.1:*", "--ledger", (dir / "l.sqlite").string(),
                             "--chains", (dir / "chains.json").string(), "--poll-ms", "0", "--quiet"},
                            log);
    ASSERT_GT(d.pid, 0);
    const auto started = Clock::now();
    while (!catches_sigterm(d.pid)) {  // in its loop (a SIGTERM before the handler is set kills it)
      ASSERT_LT(ms_since(started), 30000) << "never set its SIGTERM handler: " << log_tail(log);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 5000)(rng)));
    kill(d.pid, SIGTERM);
    int status = 0;
    ASSERT_EQ(waitpid(d.pid, &status, 0), d.pid);
    d.pid = -1;
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "stop " << stops + 1 << ": SIGTERM ended the scheduler with "
        << (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                              : "signal " + std::to_string(WTERMSIG(status)))
        << " instead of exit 0; log:\n" << log_tail(log, 600);
  }
  std::printf("SigtermWhileBusyExitsCleanly: %d stops, all exit 0\n", stops);
  fs::remove_all(dir);
}


}  // namespace
