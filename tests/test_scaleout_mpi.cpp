// The distributed EOD run end to end (SPEC §12, docs/scale-out.md): the real binary under
// `mpirun --oversubscribe -np 1, 2, 4` gives byte-identical output to one process for every
// methodology, on a generated book and on a skewed one (one account holding half the
// positions); a rank killed mid-run fails the job and `--resume` finishes it with the same bytes;
// bad input on the ranks fails the job once with exit 2. Without MPI in the build the tests that
// need mpirun skip, saying so; the partition tests run on one process everywhere.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "host/book_generator.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::run_marginet;

constexpr const char* kMpiexec = MARGINET_MPIEXEC;

// In the test's own body (GTEST_SKIP returns from the function it is written in).
#define SKIP_WITHOUT_MPI()                                                                   \
  if (std::string(kMpiexec).empty()) GTEST_SKIP() << "built without MPI (-DMARGINET_MPI): mpirun tests skipped"

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// mpirun as the tests run it: as root too, more ranks than cores, no core binding (each rank
/// keeps the machine's OpenMP threads).
std::string mpirun(int ranks) {
  return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " + std::string(kMpiexec) +
         " --oversubscribe --bind-to none -np " + std::to_string(ranks) + " " + MARGINET_EXE;
}

class ScaleOut : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = ::testing::TempDir() + "/marginet_scaleout_mpi_" + std::to_string(::getpid());
    fs::remove_all(dir_);
    BookSpec spec;
    spec.underlyings = 3;
    spec.instruments = 600;
    spec.accounts = 120;
    spec.positions = 6000;
    spec.seed = 11;
    const GeneratedBook book = generate_book(spec);
    write_book(book, dir_);
    write_returns_history(dir_ + "/returns.csv", book.underlyings, 260, spec.valuation_time, 3, false);
    write_returns_history(dir_ + "/stress_returns.csv", book.underlyings, 60, spec.valuation_time, 4, true);
    write_collateral(book, dir_ + "/collateral.csv", 5);
    // The skewed book: one account holds the first half of the positions.
    std::ofstream skew(dir_ + "/skewed.csv");
    skew << "account,instrument,quantity\n" << std::setprecision(17);
    for (std::size_t j = 0; j < book.positions.size(); ++j) {
      const Position& p = book.positions[j];
      skew << (j < book.positions.size() / 2 ? std::string("WHALE") : p.account) << ","
           << book.instruments[p.instrument].id << "," << p.quantity << "\n";
    }
  }
  static void TearDownTestSuite() {
    if (!std::getenv("MARGINET_KEEP_TEST_DIR")) fs::remove_all(dir_);
  }

  static std::string files(const std::string& positions = "positions.csv") {
    return " --instruments " + dir_ + "/instruments.csv --market " + dir_ + "/market.csv --marks " + dir_ +
           "/marks.csv --positions " + dir_ + "/" + positions + " --collateral " + dir_ + "/collateral.csv";
  }
  /// Every methodology, as command-line arguments.
  static std::vector<std::pair<std::string, std::string>> models() {
    return {{"span16", "--model span16"},
            {"deribit-pm", "--model deribit-pm"},
            {"hvar", "--model hvar --returns " + dir_ + "/returns.csv --stress-returns " + dir_ + "/stress_returns.csv"},
            {"mc-es", "--model mc-es --paths 2000 --seed 9"},
            {"stress", "--model " + std::string(MARGINET_SOURCE_DIR) + "/examples/models/stress.json"}};
  }
  /// One process's output, the reference of every distributed run.
  static std::string single(const std::string& model_args, const std::string& positions, const std::string& format) {
    const std::string out = dir_ + "/single.out";
    const auto r = run_marginet("margin" + files(positions) + " " + model_args + " --format " + format + " --quiet --out " + out);
    EXPECT_EQ(r.status, 0) << r.output;
    return read_file(out);
  }
  static std::string dir_;
};
std::string ScaleOut::dir_;

TEST_F(ScaleOut, PartitionsOnOneProcessGiveTheSameBytes) {
  for (const auto& [name, args] : models()) {
    const std::string want = single(args, "positions.csv", "csv");
    ASSERT_GT(std::count(want.begin(), want.end(), '\n'), 100) << name;
    const std::string out = dir_ + "/parts.out";
    const auto r = run_marginet("margin" + files() + " " + args + " --format csv --partitions 7 --out " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(read_file(out), want) << name;
    EXPECT_NE(r.output.find("in 7 partitions over 1 rank"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out + ".parts")) << "checkpoints are removed once the output is written";
    const auto s = run_marginet("margin" + files() + " " + args + " --format csv --split scenarios --quiet --out " + out);
    ASSERT_EQ(s.status, 0) << s.output;
    EXPECT_EQ(read_file(out), want) << name << ", split by scenarios on one process";
  }
}

TEST_F(ScaleOut, OneTwoAndFourRanksGiveTheBytesOfOneProcessForEveryMethodology) {
  SKIP_WITHOUT_MPI();
  struct Case {
    const char* format;
    const char* split;
    int ranks;
  };
  const Case cases[] = {{"csv", "accounts", 1}, {"csv", "accounts", 2}, {"csv", "accounts", 4},
                        {"json", "accounts", 3}, {"csv", "scenarios", 2}, {"json", "scenarios", 4}};
  for (const auto& [name, args] : models()) {
    for (const Case& c : cases) {
      const int ranks = c.ranks;
      const std::string format = c.format;
      const std::string want = single(args, "positions.csv", format);
      {
        const std::string out = dir_ + "/mpi.out";
        fs::remove(out);
        const auto r = run_command(mpirun(ranks) + " margin" + files() + " " + args + " --format " + format +
                                   " --split " + c.split + " --out " + out + " --stats " + dir_ + "/stats.json");
        ASSERT_EQ(r.status, 0) << r.output;
        EXPECT_EQ(read_file(out), want) << name << " " << format << " split by " << c.split << " on " << ranks << " ranks";
        const std::string stats = read_file(dir_ + "/stats.json");
        EXPECT_NE(stats.find("\"ranks\": " + std::to_string(ranks)), std::string::npos) << stats;
      }
    }
  }
}

TEST_F(ScaleOut, ASkewedBookGivesTheSameBytesAndBalancedPartitions) {
  SKIP_WITHOUT_MPI();
  const auto hvar = models()[2].second;
  for (const std::string& args : {std::string("--model span16"), hvar}) {
    const std::string want = single(args, "skewed.csv", "csv");
    ASSERT_NE(want.find("WHALE"), std::string::npos);
    for (int ranks : {2, 4}) {
      const std::string out = dir_ + "/skew.out";
      const auto r = run_command(mpirun(ranks) + " margin" + files("skewed.csv") + " " + args +
                                 " --format csv --out " + out);
      ASSERT_EQ(r.status, 0) << r.output;
      EXPECT_EQ(read_file(out), want) << args << " on " << ranks << " ranks";
      // 3,000 of 6,000 positions in one account: its partition takes few others, and the two
      // partitions' loads (positions, plus one per account) differ by at most one.
      const auto at = r.output.find("partition loads (positions, plus one per account) from ");
      ASSERT_NE(at, std::string::npos) << r.output;
      long lo = 0, hi = 0;
      ASSERT_EQ(std::sscanf(r.output.c_str() + at, "partition loads (positions, plus one per account) from %ld to %ld",
                            &lo, &hi), 2);
      if (ranks == 2) {
        EXPECT_LE(hi - lo, 1) << r.output;
      }
      EXPECT_LE(hi - lo, 3000) << r.output;
    }
  }
}

TEST_F(ScaleOut, BadInputFailsEveryRankOnceWithExit2) {
  SKIP_WITHOUT_MPI();
  const auto r = run_command(mpirun(3) + " margin" + files("no-such-positions.csv") + " --model span16");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no-such-positions.csv"), std::string::npos) << r.output;
  std::size_t said = 0;
  for (std::size_t at = r.output.find("bad input"); at != std::string::npos; at = r.output.find("bad input", at + 1)) ++said;
  EXPECT_EQ(said, 1u) << "rank 0 reports it once: " << r.output;
  EXPECT_NE(r.output.find("Exit code:    2"), std::string::npos) << r.output;
  // A rank that cannot read what every rank reads (here: all of them) is the same failure.
  const auto m = run_command(mpirun(2) + " margin" + files() + " --model no-such-model.json");
  EXPECT_NE(m.output.find("no-such-model.json"), std::string::npos) << m.output;
  EXPECT_NE(m.output.find("Exit code:    2"), std::string::npos) << m.output;
  // Split by scenarios: a position in an unknown instrument, named by file and line.
  std::ofstream(dir_ + "/unknown.csv") << "account,instrument,quantity\nA,NO-SUCH-OPTION,1\n";
  const auto s = run_command(mpirun(2) + " margin" + files("unknown.csv") + " --model span16 --split scenarios");
  EXPECT_NE(s.status, 0);
  EXPECT_NE(s.output.find("unknown.csv:2"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find("Exit code:    2"), std::string::npos) << s.output;
}

TEST_F(ScaleOut, TheBookOfAClearingStoreIsReadByRankZeroAndGivesTheSameBytes) {
  SKIP_WITHOUT_MPI();
  const std::string store = dir_ + "/clearing.sqlite", src = MARGINET_SOURCE_DIR;
  const std::string ref = " --instruments " + src + "/examples/instruments.csv --market " + src +
                          "/examples/market.csv --marks " + src + "/examples/marks.csv";
  const auto imported = run_marginet("trades import " + src + "/examples/captured_trades.csv --store " + store +
                                     " --instruments " + src + "/examples/instruments.csv --quiet");
  ASSERT_EQ(imported.status, 0) << imported.output;
  const std::string one = dir_ + "/store-one.csv", many = dir_ + "/store-many.csv";
  const auto a = run_marginet("margin" + ref + " --store " + store + " --model span16 --format csv --quiet --out " + one);
  ASSERT_EQ(a.status, 0) << a.output;
  const auto b = run_command(mpirun(2) + " margin" + ref + " --store " + store + " --model span16 --format csv --out " + many);
  ASSERT_EQ(b.status, 0) << b.output;
  ASSERT_GT(read_file(one).size(), 100u);
  EXPECT_EQ(read_file(many), read_file(one));
}

TEST_F(ScaleOut, OtherSubcommandsRefuseToRunOncePerRank) {
  SKIP_WITHOUT_MPI();
  // A call run or a recorded default fund started once per rank would settle or record twice.
  const std::string src = MARGINET_SOURCE_DIR;
  const auto r = run_command(mpirun(2) + " default-fund" + files() + " --config " + src + "/examples/default_fund.json");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("default-fund: started as one of 2 ranks; only `marginet margin` runs under mpirun/srun"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("contribution_USD"), std::string::npos) << "nothing ran: " << r.output;
  // One rank is one process: allowed.
  const auto one = run_command(mpirun(1) + " greeks --instruments " + src + "/examples/instruments.csv --market " + src +
                               "/examples/market.csv --marks " + src + "/examples/marks.csv --format csv --quiet");
  EXPECT_EQ(one.status, 0) << one.output;
}

/// The pids of the processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

/// The MPI rank of a process, from its environment; -1 when it has none.
int rank_of(pid_t pid) {
  const std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = std::string("OMPI_COMM_WORLD_RANK=");
  for (std::size_t at = 0; at < env.size(); at = env.find('\0', at) + 1) {
    if (env.compare(at, key.size(), key) == 0) return std::atoi(env.c_str() + at + key.size());
    if (env.find('\0', at) == std::string::npos) break;
  }
  return -1;
}

TEST_F(ScaleOut, ARankKilledMidRunFailsTheJobAndResumeGivesTheSameBytes) {
  SKIP_WITHOUT_MPI();
  // mc-es with many paths: a few seconds of work in 16 partitions, time to kill a rank mid-run.
  const std::string args = "--model mc-es --paths 50000 --seed 9";
  const std::string want = single(args, "positions.csv", "csv");
  const std::string out = dir_ + "/killed.out", parts = out + ".parts", log = dir_ + "/killed.log";
  fs::remove(out);
  fs::remove_all(parts);
  const std::string cmd = "exec " + mpirun(2) + " margin" + files() + " " + args + " --format csv --partitions 16 --out " + out +
                          " > " + log + " 2>&1";
  const pid_t job = fork();
  ASSERT_GE(job, 0);
  if (job == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // As soon as one partition is checkpointed, kill rank 1 (with SIGKILL: no clean-up).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool killed = false, ended = false;
  int status = 0;
  while (!killed && !ended && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    bool any = false;
    for (const auto& e : fs::directory_iterator(parts, ec)) any = any || e.path().extension() == ".bin";
    if (any)
      for (pid_t child : children_of(job))
        if (rank_of(child) == 1) killed = ::kill(child, SIGKILL) == 0;
    if (!killed) {
      ended = ::waitpid(job, &status, WNOHANG) == job;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  if (!ended) ::waitpid(job, &status, 0);
  ASSERT_TRUE(killed) << read_file(log);
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a dead rank fails the job: " << read_file(log);
  EXPECT_FALSE(fs::exists(out)) << "the job finished before the kill: make the book bigger";
  std::size_t kept = 0;
  for (const auto& e : fs::directory_iterator(parts)) kept += e.path().extension() == ".bin";
  ASSERT_GE(kept, 1u);
  ASSERT_LT(kept, 16u);

  const auto again = run_command(mpirun(2) + " margin" + files() + " " + args + " --format csv --partitions 16 --resume --out " + out);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_EQ(read_file(out), want);
  std::size_t resumed = 0;
  for (std::size_t at = again.output.find("from its checkpoint"); at != std::string::npos;
       at = again.output.find("from its checkpoint", at + 1))
    ++resumed;
  EXPECT_EQ(resumed, kept) << again.output;
  EXPECT_FALSE(fs::exists(parts));
}

}  // namespace
}  // namespace marginet
