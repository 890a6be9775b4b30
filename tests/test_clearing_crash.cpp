// The exactly-once hand-off under crashes (SPEC §9; docs/clearing.md "The outbox"): the real
// `marginet serve --store --scheduler` and `marginet scheduler --bind`, a workload of thousands
// of trades, deposits and call runs, and a killer thread that SIGKILLs the server and the
// scheduler in turn at random moments (at least 20 times each), restarting each at once. At the
// end every call of every run is settled exactly once, every balance equals the deposits plus the
// calls the scheduler settled, to the unit, positions match the journal and `ledger verify`
// passes.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "service/clearing/clearing_store.hpp"
#include "service/db/sqlite.hpp"
#include "service/margin/client.hpp"
#include "service/settlement/scheduler_config.hpp"
#include "tests/run_command.hpp"
#include "tests/server_process.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace marginet;
using json = nlohmann::ordered_json;

int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &n);
  close(s);
  return ntohs(a.sin_port);
}

std::string ex(const char* name) { return std::string(MARGINET_SOURCE_DIR) + "/examples/" + name; }

class ClearingCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "marginet_clearing_crash_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = dir_ + "/clearing.sqlite";
    ledger_ = dir_ + "/settle.sqlite";
    scheduler_endpoint_ = "tcp://127.0.0.1:" + std::to_string(free_port());
  }
  void TearDown() override {
    server_.reset();
    stop_scheduler(SIGKILL);
    if (HasFailure()) {  // what the processes said, for the failure's report
      for (const char* log : {"/server.log", "/scheduler.log"}) {
        std::ifstream in(dir_ + log);
        std::vector<std::string> lines;
        for (std::string l; std::getline(in, l);) lines.push_back(l);
        std::cout << "---- last lines of " << log + 1 << "\n";
        for (std::size_t i = lines.size() > 40 ? lines.size() - 40 : 0; i < lines.size(); ++i) std::cout << lines[i] << "\n";
      }
    }
    fs::remove_all(dir_);
  }

  void start_server() {
    server_ = std::make_unique<marginet::testing::ServerProcess>(
        "--instruments " + ex("instruments.csv") + " --market " + ex("market.csv") + " --marks " + ex("marks.csv") +
        " --store " + store_ + " --scheduler " + scheduler_endpoint_ + " --call-deadline-s 600 --quiet" + " 2>>" +
        dir_ + "/server.log");
    std::lock_guard<std::mutex> lk(mu_);
    endpoint_ = server_->endpoint();
  }
  void start_scheduler() {
    scheduler_ = marginet::testing::spawn_marginet({"scheduler", "--bind", scheduler_endpoint_, "--ledger", ledger_, "--chains",
                        ex("chains.json"), "--poll-ms", "5", "--quiet"},
                       dir_ + "/scheduler.log");
    if (scheduler_ < 0) throw std::runtime_error("cannot start marginet scheduler");
  }
  void stop_scheduler(int sig) {
    if (scheduler_ <= 0) return;
    kill(scheduler_, sig);
    int status = 0;
    waitpid(scheduler_, &status, 0);
    scheduler_ = -1;
  }
  std::string endpoint() {
    std::lock_guard<std::mutex> lk(mu_);
    return endpoint_;
  }

  /// Sends until the service answers (a killed server times out; the retry goes to the new one).
  json call(const json& request) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      try {
        ClientOptions co;
        co.endpoint = endpoint();
        co.timeout_ms = 1500;
        MarginClient client(co);
        json r = client.call(request);
        if (r.value("type", "") == "error" && r.value("code", "") == "busy") continue;  // shutting down
        return r;
      } catch (const client_error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    throw std::runtime_error("no answer to " + request.dump());
  }

  std::string dir_, store_, ledger_, scheduler_endpoint_, endpoint_;
  std::mutex mu_;
  std::unique_ptr<marginet::testing::ServerProcess> server_;
  pid_t scheduler_ = -1;
};

TEST_F(ClearingCrash, CallsSettleExactlyOnceWhileServerAndSchedulerAreKilled) {
  start_scheduler();
  start_server();
  std::atomic<bool> workload_done{false};
  std::atomic<int> server_kills{0}, scheduler_kills{0}, kills_mid_handoff{0};
  std::mutex proc_mu;
  std::thread killer([&] {
    std::mt19937 rng(20261202);
    std::uniform_int_distribution<int> pause_ms(150, 900);
    bool server_turn = true;
    while (!workload_done || server_kills < 20 || scheduler_kills < 20) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
      std::lock_guard<std::mutex> lk(proc_mu);
      try {  // was a cycle between the two processes at this kill?
        const OutboxStats o = open_clearing_store(store_, OpenMode::reader)->outbox_stats();
        if (o.unacked + o.unsettled > 0) ++kills_mid_handoff;
      } catch (const std::exception&) {
      }
      if (server_turn) {
        server_->stop(SIGKILL);
        ++server_kills;
        start_server();
      } else {
        stop_scheduler(SIGKILL);
        ++scheduler_kills;
        start_scheduler();
      }
      server_turn = !server_turn;
    }
  });

  const std::vector<std::string> accounts = {"A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7"};
  const std::vector<std::string> instruments = {"BTC-PERPETUAL", "BTC-28JUN24", "BTC-27SEP24"};
  std::map<std::string, std::int64_t> deposited;  // account -> USD cents
  std::mt19937 rng(7);
  int trades = 0, runs = 0;
  try {
    for (int round = 0; round < 30 || server_kills < 20 || scheduler_kills < 20; ++round) {
      for (int i = 0; i < 70; ++i) {
        const json leg = {{"source", "crash"},
                          {"trade_id", "T-" + std::to_string(round) + "-" + std::to_string(i)},
                          {"account", accounts[rng() % accounts.size()]},
                          {"instrument", instruments[rng() % instruments.size()]},
                          {"quantity", std::string(rng() % 2 ? "-" : "") + std::to_string(1 + rng() % 4)},
                          {"price", "60000"},
                          {"time", "2024-06-28T08:00:00Z"}};
        const json r = call({{"type", "trade.submit"}, {"trade", leg}});
        ASSERT_EQ(r.value("type", ""), "trade.submit.result") << r.dump();
        ++trades;
      }
      if (round % 3 == 0) {
        const std::string account = accounts[round % accounts.size()];
        const json r = call({{"type", "collateral.deposit"}, {"account", account}, {"asset", "USD"},
                             {"amount", "2500.25"}, {"reference", "dep-" + std::to_string(round)}});
        ASSERT_EQ(r.value("type", ""), "collateral.deposit.result") << r.dump();
        deposited[account] += 2500'25;
      }
      const json r = call({{"type", "calls.run"}, {"run_id", "run-" + std::to_string(round)}});
      ASSERT_EQ(r.value("type", ""), "calls.run.result") << r.dump();
      ++runs;
    }
  } catch (...) {
    workload_done = true;
    killer.join();
    throw;
  }
  workload_done = true;
  killer.join();
  // The server the killer thread started gets SIGKILL with that thread's end (ServerProcess sets
  // PR_SET_PDEATHSIG, which follows the thread that forked): one more restart, from this thread.
  server_->stop(SIGKILL);
  ++server_kills;
  start_server();
  EXPECT_GE(server_kills, 20);
  EXPECT_GE(scheduler_kills, 20);
  EXPECT_GE(trades, 2000);
  EXPECT_GE(kills_mid_handoff, 10) << "the kills should land while cycles are in flight";

  // Everything sent settles: wait until the outbox is empty of unsettled cycles.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  OutboxStats st;
  while (std::chrono::steady_clock::now() < deadline) {
    st = open_clearing_store(store_, OpenMode::reader)->outbox_stats();
    if (st.unacked == 0 && st.unsettled == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(st.unacked, 0);
  EXPECT_EQ(st.unsettled, 0);
  if (st.unacked + st.unsettled > 0) {  // say where each stuck cycle is, on both sides
    auto reader = open_clearing_store(store_, OpenMode::reader);
    SqliteDb db(ledger_, false);
    for (const OutboxEntry& e : reader->outbox_due(4e9, 100)) {
      const SettlementReport r = read_settlement_report(db, e.cycle_id);
      std::cout << "stuck " << e.cycle_id << ": outbox " << e.state << ", attempts " << e.attempts << ", next in "
                << e.next_attempt_at - std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()
                << " s; scheduler " << r.cycle_state << (r.complete ? " complete" : " not complete") << "\n";
    }
    std::cout << "server pid " << server_->pid() << (kill(server_->pid(), 0) == 0 ? " alive" : " gone") << "\n";
    try {
      ClientOptions co;
      co.endpoint = endpoint();
      co.timeout_ms = 3000;
      std::cout << "status.outbox " << MarginClient(co).status()["outbox"].dump() << "\n";
    } catch (const std::exception& e) {
      std::cout << "no status: " << e.what() << "\n";
    }
  }
  EXPECT_EQ(st.rejected, 0);
  server_->stop(SIGTERM);
  stop_scheduler(SIGTERM);

  auto store = open_clearing_store(store_, OpenMode::reader);
  const JournalVerifyReport jv = store->verify_journal();
  EXPECT_TRUE(jv.ok) << jv.summary();
  EXPECT_EQ(jv.journal_entries, trades);
  EXPECT_TRUE(store->verify_collateral().ok) << store->verify_collateral().summary();

  // Every call of every run: final, settled in full, credited once.
  std::int64_t calls = 0;
  EXPECT_EQ(static_cast<int>(store->call_run_ids().size()), runs);
  for (const std::string& id : store->call_run_ids()) {
    const auto run = store->call_run(id);
    ASSERT_TRUE(run);
    for (const CallRecord& c : run->calls) {
      if (c.call_minor == 0) continue;
      ++calls;
      EXPECT_EQ(c.state, "final") << id << " " << c.account;
      EXPECT_EQ(c.settled_minor, c.call_minor) << id << " " << c.account;
    }
  }
  EXPECT_GT(calls, 10);
  std::cout << "trades " << trades << ", call runs " << runs << ", calls " << calls << ", server kills " << server_kills
            << ", scheduler kills " << scheduler_kills << ", kills with cycles in flight " << kills_mid_handoff << "\n";
  std::map<std::string, std::int64_t> credited;
  for (const Movement& m : store->movements())
    if (m.kind == MovementKind::call_settled) credited[m.account] += m.amount_minor;
  std::int64_t credits = 0;
  for (const Movement& m : store->movements()) credits += m.kind == MovementKind::call_settled;
  EXPECT_EQ(credits, calls);

  // The scheduler's own record: what it settled final per member, margin-call pay-ins.
  std::map<std::string, std::int64_t> settled;
  {
    SqliteDb db(ledger_, false);
    SqliteStatement q(db,
                      "SELECT member, SUM(settle) FROM sched_instructions WHERE kind = 'margin_call'"
                      " AND leg = 'pay_in' AND state = 'final' GROUP BY member");
    while (q.step()) settled[q.text(0)] = q.int64(1);
  }
  for (const std::string& a : accounts) {
    std::int64_t balance = 0;
    for (const BalanceRow& b : store->balances(a))
      if (b.asset == "USD") balance = b.amount_minor;
    EXPECT_EQ(balance, deposited[a] + settled[a]) << a;
    EXPECT_EQ(credited[a], settled[a]) << a;
  }
  const auto verify = marginet::testing::run_command(std::string(MARGINET_EXE) + " ledger verify --ledger " + ledger_);
  EXPECT_EQ(verify.status, 0) << verify.output;
}

}  // namespace
