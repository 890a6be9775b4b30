// One writer per settlement ledger and `marginet ledger backup` (docs/settlement.md), through the
// real binary: a second scheduler on a ledger in use is refused (exit 2) and changes nothing; a
// backup taken while the scheduler runs is a consistent copy that verifies; a backup never
// overwrites a file.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/run_command.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using marginet::testing::run_marginet;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class LedgerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "marginet_ledger_cli_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ledger_ = dir_ + "/settle.sqlite";
    ex_ = std::string(MARGINET_SOURCE_DIR) + "/examples";
    // A ledger with one settled cycle: the netting of examples/trades.csv.
    const auto net = run_marginet("net --quiet --trades " + ex_ + "/trades.csv --assets " + ex_ +
                                  "/assets.csv --cycle-id c1 --cycle-out " + dir_ + "/c1.json");
    ASSERT_EQ(net.status, 0) << net.output;
    const auto settle = run_marginet("scheduler --quiet --ledger " + ledger_ + " --chains " + ex_ +
                                     "/chains.json --cycle-file " + dir_ + "/c1.json");
    ASSERT_EQ(settle.status, 0) << settle.output;
  }
  void TearDown() override {
    if (daemon_ > 0) {
      kill(daemon_, SIGKILL);
      waitpid(daemon_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }
  /// The scheduler as a daemon on the ledger (ROUTER on a free port), until TearDown.
  void start_daemon() {
    const std::string exe = MARGINET_EXE, log = dir_ + "/daemon.log";
    std::vector<std::string> args = {exe, "scheduler", "--bind", "tcp://127.0.0.1:*", "--ledger", ledger_,
                                     "--chains", ex_ + "/chains.json"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    ASSERT_EQ(posix_spawn(&daemon_, exe.c_str(), &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    // Running once it says where it listens.
    for (int i = 0; i < 1000; ++i) {
      std::ifstream in(log);
      std::stringstream ss;
      ss << in.rdbuf();
      if (contains(ss.str(), "listening on")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "the scheduler did not start";
  }

  std::string dir_, ledger_, ex_;
  pid_t daemon_ = -1;
};

TEST_F(LedgerCli, ASecondSchedulerOnALedgerInUseIsRefused) {
  start_daemon();
  const auto before = run_marginet("ledger verify --ledger " + ledger_);
  ASSERT_EQ(before.status, 0) << before.output;
  const auto second = run_marginet("scheduler --bind tcp://127.0.0.1:* --ledger " + ledger_ + " --chains " + ex_ +
                                   "/chains.json --until-idle --max-runtime 5");
  EXPECT_EQ(second.status, 2) << second.output;
  EXPECT_TRUE(contains(second.output, "settlement ledger " + ledger_ + " is locked by another writer (pid " +
                                          std::to_string(daemon_) + ")"))
      << second.output;
  EXPECT_EQ(run_marginet("ledger verify --ledger " + ledger_).output, before.output);
  // Once the daemon is gone (even by SIGKILL), the ledger is free again.
  kill(daemon_, SIGKILL);
  waitpid(daemon_, nullptr, 0);
  daemon_ = -1;
  const auto after = run_marginet("scheduler --quiet --ledger " + ledger_ + " --chains " + ex_ + "/chains.json --cycle-file " +
                                  dir_ + "/c1.json");
  EXPECT_EQ(after.status, 0) << after.output;  // the cycle again: a duplicate
}

TEST_F(LedgerCli, BackupOfALiveLedgerIsAVerifiedCopy) {
  start_daemon();
  const std::string copy = dir_ + "/backup.sqlite";
  const auto r = run_marginet("ledger backup " + copy + " --ledger " + ledger_, false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "backup of " + ledger_ + " in " + copy)) << r.output;
  // The copy holds what the ledger holds, and verifies on its own.
  const auto original = run_marginet("ledger show --ledger " + ledger_, false);
  const auto copied = run_marginet("ledger show --ledger " + copy, false);
  ASSERT_EQ(copied.status, 0) << copied.output;
  EXPECT_EQ(copied.output, original.output);
  EXPECT_GT(std::count(copied.output.begin(), copied.output.end(), '\n'), 10);
  EXPECT_EQ(run_marginet("ledger verify --ledger " + copy).status, 0);
  // Never over a file.
  const auto again = run_marginet("ledger backup " + copy + " --ledger " + ledger_);
  EXPECT_EQ(again.status, 2) << again.output;
  EXPECT_TRUE(contains(again.output, "exists already")) << again.output;
  EXPECT_NE(run_marginet("ledger backup " + dir_ + "/b2.sqlite --ledger " + dir_ + "/none.sqlite").status, 0);
}

}  // namespace
