// The pieces of the distributed EOD run that need no second process (service/scaleout/): the
// partition plan, the byte codec, checkpoints, and the partitioned run on one process, whose
// output must not depend on how the book is split. tests/test_scaleout_mpi.cpp runs the real
// binary under mpirun.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>

#include "models/errors.hpp"
#include "service/scaleout/bytes.hpp"
#include "service/scaleout/checkpoint.hpp"
#include "service/scaleout/communicator.hpp"
#include "service/scaleout/partition.hpp"
#include "service/scaleout/partitioned_run.hpp"

namespace marginet::scaleout {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/marginet_scaleout_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(dir);
  return dir;
}

TEST(PartitionPlan, EveryItemOnceAndNoPartitionHeavierThanTheLightestPlusTheHeaviestItem) {
  std::mt19937_64 rng(7);
  for (std::size_t parts : {1, 2, 3, 8, 17}) {
    std::vector<std::uint64_t> w(500);
    for (auto& x : w) x = 1 + static_cast<std::uint64_t>(1000.0 / (1 + static_cast<double>(rng() % 1000)));
    const PartitionPlan plan = plan_partitions(w, parts, 3);
    ASSERT_EQ(plan.partitions(), parts);
    std::vector<int> seen(w.size(), 0);
    for (std::size_t p = 0; p < parts; ++p) {
      std::uint64_t load = 0;
      for (std::size_t i : plan.items[p]) {
        ++seen[i];
        load += w[i];
      }
      EXPECT_EQ(load, plan.load[p]);
      EXPECT_TRUE(std::is_sorted(plan.items[p].begin(), plan.items[p].end()));
    }
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
    const auto [lo, hi] = std::minmax_element(plan.load.begin(), plan.load.end());
    EXPECT_LE(*hi, *lo + *std::max_element(w.begin(), w.end())) << parts << " partitions";
    // The same weights give the same plan (every rank computes it alike).
    const PartitionPlan again = plan_partitions(w, parts, 3);
    EXPECT_EQ(again.items, plan.items);
    EXPECT_EQ(again.rank, plan.rank);
  }
}

TEST(PartitionPlan, OneAccountWithHalfThePositionsGetsAPartitionToItself) {
  std::vector<std::uint64_t> w(101, 1);
  w[40] = 100;  // the whale: as many positions as the hundred others together
  const PartitionPlan plan = plan_partitions(w, 2, 2);
  const std::size_t whale = plan.items[0] == std::vector<std::size_t>{40} ? 0 : 1;
  EXPECT_EQ(plan.items[whale], std::vector<std::size_t>{40});
  EXPECT_EQ(plan.items[1 - whale].size(), 100u);
  EXPECT_EQ(plan.load[0], 100u);
  EXPECT_EQ(plan.load[1], 100u);
  EXPECT_NE(plan.rank[0], plan.rank[1]);
}

TEST(PartitionPlan, PartitionsSpreadEvenlyOverRanks) {
  const PartitionPlan plan = plan_partitions(std::vector<std::uint64_t>(64, 5), 8, 2);
  EXPECT_EQ(plan.of_rank(0).size(), 4u);
  EXPECT_EQ(plan.of_rank(1).size(), 4u);
}

TEST(Bytes, ACutOrInflatedPayloadIsRefusedNotRead) {
  ByteWriter w;
  w.u64(3);
  w.str("abc");
  w.f64(0.1);
  const std::string bytes = w.bytes();
  ByteReader ok(bytes, "payload");
  EXPECT_EQ(ok.u64(), 3u);
  EXPECT_EQ(ok.str(), "abc");
  EXPECT_EQ(ok.f64(), 0.1);
  EXPECT_TRUE(ok.done());
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    ByteReader r(std::string_view(bytes).substr(0, cut), "payload");
    EXPECT_THROW({
      r.u64();
      r.str();
      r.f64();
    }, input_error) << cut;
  }
  ByteWriter huge;
  huge.u64(std::uint64_t{1} << 60);  // a count far beyond what follows
  ByteReader r(huge.bytes(), "payload");
  EXPECT_THROW(r.count(8), input_error);
}

TEST(Checkpoint, KeptWholeBoundToItsKeyAndRefusedWhenDamaged) {
  const std::string dir = temp_dir("checkpoint");
  const CheckpointDir c(dir);
  const std::string key(64, 'a'), other(64, 'b');
  std::string why;
  EXPECT_FALSE(c.read(2, 5, key, why).has_value());
  EXPECT_EQ(why, "no checkpoint");
  const std::string records("some\0records", 12);
  c.write(2, 5, key, records);
  ASSERT_EQ(c.read(2, 5, key, why).value_or(""), records);
  EXPECT_FALSE(c.read(2, 5, other, why).has_value());
  EXPECT_EQ(why, "checkpoint of other inputs");
  EXPECT_FALSE(c.read(2, 4, key, why).has_value()) << "another partition count";
  // Any flipped byte is seen.
  const std::string file = dir + "/part-2-of-5.bin";
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (std::size_t at : {std::size_t{0}, bytes.size() / 2, bytes.size() - 1}) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x20);
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bad;
    EXPECT_FALSE(c.read(2, 5, key, why).has_value()) << at;
  }
  c.remove_all();
  EXPECT_FALSE(fs::exists(dir));
}

// A book of `accounts` accounts with uneven position counts, and collateral-only accounts.
Book make_book(std::size_t accounts) {
  Book b;
  std::mt19937_64 rng(3);
  for (std::size_t a = 0; a < accounts; ++a)
    for (std::size_t k = 0; k < 1 + (a * a) % 37; ++k)
      b.positions.push_back(Position{"ACC" + std::to_string(a), static_cast<std::size_t>(rng() % 50),
                                     static_cast<double>(rng() % 1000) / 7.0 - 70.0});
  std::shuffle(b.positions.begin(), b.positions.end(), rng);
  b.holdings.push_back(CollateralHolding{"ACC3", "USDC", 1000});
  b.holdings.push_back(CollateralHolding{"ONLY-CASH", "USDC", 5});
  return b;
}

// A stand-in for the margin of a partition whose result depends on the order of an account's
// positions (as floating-point sums do): the running sum of quantity × (position index + 1).
PartitionResult fake_margin(const Book& book) {
  std::map<std::string, double> sum;
  std::map<std::string, int> n;
  for (const Position& p : book.positions) sum[p.account] = sum[p.account] * 1.0000001 + p.quantity * (++n[p.account]);
  for (const CollateralHolding& h : book.holdings) sum[h.account] += h.amount;
  PartitionResult r;
  for (const auto& [account, v] : sum) {
    ByteWriter w;
    w.f64(v);
    r.records.push_back({account, w.bytes()});
  }
  return r;
}

PartitionedRunResult run_on_one_process(const Book& book, PartitionedRunOptions options, int* computed = nullptr) {
  auto comm = make_single_process();
  return run_partitioned(
      *comm, options, [] {}, [&] { return book; },
      [&](const Book& part) {
        if (computed) ++*computed;
        return fake_margin(part);
      });
}

TEST(PartitionedRun, TheSameRecordsWhateverThePartitionCount) {
  const Book book = make_book(60);
  const PartitionedRunResult one = run_on_one_process(book, {});
  ASSERT_EQ(one.records.size(), 61u);  // 60 with positions + one with collateral only
  EXPECT_TRUE(std::is_sorted(one.records.begin(), one.records.end(),
                             [](const ResultRecord& a, const ResultRecord& b) { return a.account < b.account; }));
  for (std::size_t parts : {2, 3, 7, 64}) {
    PartitionedRunOptions o;
    o.partitions = parts;
    const PartitionedRunResult r = run_on_one_process(book, o);
    ASSERT_EQ(r.records.size(), one.records.size()) << parts;
    for (std::size_t i = 0; i < r.records.size(); ++i) {
      EXPECT_EQ(r.records[i].account, one.records[i].account);
      EXPECT_EQ(r.records[i].bytes, one.records[i].bytes) << r.records[i].account << ", " << parts << " partitions";
    }
    EXPECT_EQ(r.partitions, parts);
    EXPECT_EQ(r.ranks.at(0).partitions, parts);
  }
}

TEST(PartitionedRun, AResumedRunComputesOnlyThePartitionsWhoseInputsChanged) {
  const std::string dir = temp_dir("resume");
  Book book = make_book(40);
  PartitionedRunOptions o;
  o.partitions = 5;
  o.checkpoint_dir = dir;
  o.run_identity = "test";
  int computed = 0;
  const PartitionedRunResult first = run_on_one_process(book, o, &computed);
  EXPECT_EQ(computed, 5);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 5);

  o.resume = true;
  computed = 0;
  const PartitionedRunResult again = run_on_one_process(book, o, &computed);
  EXPECT_EQ(computed, 0);
  EXPECT_EQ(again.ranks.at(0).resumed, 5u);
  ASSERT_EQ(again.records.size(), first.records.size());
  for (std::size_t i = 0; i < first.records.size(); ++i) EXPECT_EQ(again.records[i].bytes, first.records[i].bytes);

  book.positions[0].quantity += 1;  // one account's book changed: its partition only
  computed = 0;
  const PartitionedRunResult changed = run_on_one_process(book, o, &computed);
  EXPECT_EQ(computed, 1);
  int differing = 0;
  for (std::size_t i = 0; i < first.records.size(); ++i) differing += changed.records[i].bytes != first.records[i].bytes;
  EXPECT_EQ(differing, 1);

  o.run_identity = "other market";  // everything depends on the reference data
  computed = 0;
  run_on_one_process(book, o, &computed);
  EXPECT_EQ(computed, 5);
}

TEST(PartitionedRun, AFailureOfAnyStepIsThrownWithItsKindAndMessage) {
  auto comm = make_single_process();
  const Book book = make_book(5);
  auto ok_compute = [](const Book& b) { return fake_margin(b); };
  EXPECT_THROW(run_partitioned(*comm, {}, [] { throw input_error("market.csv", 3, "price", "not a number"); },
                               [&] { return book; }, ok_compute),
               input_error);
  try {
    run_partitioned(*make_single_process(), {}, [] {}, []() -> Book { throw usage_error("no positions"); }, ok_compute);
    ADD_FAILURE() << "no throw";
  } catch (const usage_error& e) {
    EXPECT_STREQ(e.what(), "no positions");
  }
  PartitionedRunOptions o;
  o.partitions = 3;
  EXPECT_THROW(run_partitioned(*make_single_process(), o, [] {}, [&] { return book; },
                               [](const Book&) -> PartitionResult { throw std::runtime_error("kernel failed"); }),
               std::runtime_error);
  // A result missing for an account is a bug, never a shorter output.
  EXPECT_THROW(run_partitioned(*make_single_process(), o, [] {}, [&] { return book; },
                               [](const Book& b) {
                                 PartitionResult r = fake_margin(b);
                                 r.records.pop_back();
                                 return r;
                               }),
               std::runtime_error);
}

TEST(Communicator, WithoutALauncherItIsOneProcess) {
  if (launched_as_rank()) GTEST_SKIP() << "this test runs under an MPI launcher";
  const auto comm = make_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->gather("x", 0), std::vector<std::string>{"x"});
}

}  // namespace
}  // namespace marginet::scaleout
