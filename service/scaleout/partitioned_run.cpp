#include "service/scaleout/partitioned_run.hpp"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_map>

#include "models/errors.hpp"
#include "service/scaleout/bytes.hpp"
#include "service/scaleout/checkpoint.hpp"
#include "service/scaleout/partition.hpp"

namespace marginet::scaleout {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kRoot = 0;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---------------------------------------------------------------------------------------------
// Agreement on failures

enum class Kind : std::uint32_t { ok = 0, input = 1, usage = 2, internal = 3 };

struct Outcome {
  Kind kind = Kind::ok;
  std::string message;
  std::int32_t rank = 0;

  void write(ByteWriter& w) const {
    w.u32(static_cast<std::uint32_t>(kind));
    w.u32(static_cast<std::uint32_t>(rank));
    w.str(message);
  }
  std::string encode() const {
    ByteWriter w;
    write(w);
    return std::move(w.bytes());
  }
  static Outcome decode(ByteReader& r) {
    Outcome o;
    o.kind = static_cast<Kind>(r.u32());
    o.rank = static_cast<std::int32_t>(r.u32());
    o.message = r.str();
    return o;
  }
};

/// Thrown at rank 0 from inside a step when another rank's part of it failed: that rank's outcome.
class other_rank_failed : public std::runtime_error {
 public:
  explicit other_rank_failed(Outcome o) : std::runtime_error(o.message), outcome(std::move(o)) {}
  Outcome outcome;
};

template <class F>
Outcome capture(int rank, F&& step) {
  Outcome o;
  o.rank = rank;
  try {
    step();
  } catch (const other_rank_failed& e) {
    o = e.outcome;
  } catch (const input_error& e) {
    o = {Kind::input, e.what(), rank};
  } catch (const usage_error& e) {
    o = {Kind::usage, e.what(), rank};
  } catch (const std::exception& e) {
    o = {Kind::internal, e.what(), rank};
  }
  return o;
}

/// The first failure among the ranks' outcomes (lowest rank), or ok.
Outcome first_failure(const std::vector<Outcome>& all) {
  for (const Outcome& o : all)
    if (o.kind != Kind::ok) return o;
  return {};
}

/// Every rank learns root's verdict; on a failure each throws (rank 0 the error, others quietly).
void settle(Communicator& comm, const Outcome& verdict_at_root) {
  const std::string bytes = comm.broadcast(comm.rank() == kRoot ? verdict_at_root.encode() : std::string(), kRoot);
  ByteReader r(bytes, "a rank's verdict");
  const Outcome v = Outcome::decode(r);
  if (v.kind == Kind::ok) return;
  comm.collectives_done();
  // The other ranks end quietly with status 0: a launcher stops the whole job at the first
  // non-zero status, which could kill rank 0 before it prints the error. The job's status is
  // rank 0's.
  if (comm.rank() != kRoot) throw reported_error(0);
  const std::string where = comm.size() > 1 && v.rank != kRoot ? "rank " + std::to_string(v.rank) + ": " : "";
  switch (v.kind) {
    case Kind::input: throw input_error(where + v.message);
    case Kind::usage: throw usage_error(where + v.message);
    default: throw std::runtime_error(where + v.message);
  }
}

/// Runs `step` on every rank and agrees on its outcome before anything else happens.
template <class F>
void agreed(Communicator& comm, F&& step) {
  const Outcome mine = capture(comm.rank(), std::forward<F>(step));
  std::vector<Outcome> all;
  for (const std::string& b : comm.gather(mine.encode(), kRoot)) {
    ByteReader r(b, "a rank's outcome");
    all.push_back(Outcome::decode(r));
  }
  settle(comm, first_failure(all));
}

// ---------------------------------------------------------------------------------------------
// Partition payloads: a book as bytes (accounts named once)

void encode_book(ByteWriter& w, const Book& book) {
  std::unordered_map<std::string_view, std::uint32_t> index;
  std::vector<std::string_view> names;
  auto id = [&](const std::string& name) {
    const auto [it, added] = index.emplace(name, static_cast<std::uint32_t>(names.size()));
    if (added) names.push_back(name);
    return it->second;
  };
  std::vector<std::uint32_t> position_account, holding_account;
  for (const Position& p : book.positions) position_account.push_back(id(p.account));
  for (const CollateralHolding& h : book.holdings) holding_account.push_back(id(h.account));
  w.u64(names.size());
  for (std::string_view n : names) w.str(n);
  w.u64(book.positions.size());
  for (std::size_t j = 0; j < book.positions.size(); ++j) {
    w.u32(position_account[j]);
    w.u64(book.positions[j].instrument);
    w.f64(book.positions[j].quantity);
  }
  w.u64(book.holdings.size());
  for (std::size_t j = 0; j < book.holdings.size(); ++j) {
    w.u32(holding_account[j]);
    w.str(book.holdings[j].asset);
    w.f64(book.holdings[j].amount);
  }
}

Book decode_book(ByteReader& r) {
  std::vector<std::string> names(r.count(8));
  for (std::string& n : names) n = r.str();
  auto name = [&](std::uint32_t i) -> const std::string& {
    if (i >= names.size()) throw input_error("a partition's payload: account index out of range");
    return names[i];
  };
  Book book;
  book.positions.resize(r.count(20));
  for (Position& p : book.positions) {
    p.account = name(r.u32());
    p.instrument = r.u64();
    p.quantity = r.f64();
  }
  book.holdings.resize(r.count(20));
  for (CollateralHolding& h : book.holdings) {
    h.account = name(r.u32());
    h.asset = r.str();
    h.amount = r.f64();
  }
  return book;
}

std::string encode_records(const std::vector<ResultRecord>& records) {
  ByteWriter w;
  w.u64(records.size());
  for (const ResultRecord& rec : records) {
    w.str(rec.account);
    w.str(rec.bytes);
  }
  return std::move(w.bytes());
}

void decode_records(const std::string& bytes, std::vector<ResultRecord>& into, const std::string& what) {
  ByteReader r(bytes, what);
  const std::uint64_t n = r.count(16);
  for (std::uint64_t k = 0; k < n; ++k) {
    ResultRecord rec;
    rec.account = r.str();
    rec.bytes = r.str();
    into.push_back(std::move(rec));
  }
  if (!r.done()) throw input_error(what + ": trailing bytes");
}

/// The key that binds a partition's checkpoint to its inputs: BLAKE2b of the run's identity,
/// the partition count and index, and the partition's book.
std::string checkpoint_key(const std::string& identity, std::size_t p, std::size_t partitions, const Book& book) {
  ByteWriter w;
  w.str(identity);
  w.u64(p);
  w.u64(partitions);
  encode_book(w, book);
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(w.bytes().data()), w.bytes().size(),
                     nullptr, 0);
  static const char* hex = "0123456789abcdef";
  std::string key;
  for (unsigned char c : h) {
    key += hex[c >> 4];
    key += hex[c & 15];
  }
  return key;
}

void encode_report(ByteWriter& w, const RankReport& r) {
  w.u32(static_cast<std::uint32_t>(r.rank));
  w.u64(r.partitions);
  w.u64(r.resumed);
  w.u64(r.accounts);
  w.u64(r.positions);
  w.f64(r.compute_s);
  w.f64(r.times.prepare_s);
  w.f64(r.times.risk_arrays_s);
  w.f64(r.times.aggregation_s);
  w.f64(r.times.reduction_s);
  w.f64(r.times.total_s);
  w.u64(r.times.revaluations);
}

RankReport decode_report(ByteReader& rd) {
  RankReport r;
  r.rank = static_cast<int>(rd.u32());
  r.partitions = rd.u64();
  r.resumed = rd.u64();
  r.accounts = rd.u64();
  r.positions = rd.u64();
  r.compute_s = rd.f64();
  r.times.prepare_s = rd.f64();
  r.times.risk_arrays_s = rd.f64();
  r.times.aggregation_s = rd.f64();
  r.times.reduction_s = rd.f64();
  r.times.total_s = rd.f64();
  r.times.revaluations = rd.u64();
  return r;
}

/// Every rank's communication figures into rank 0's reports: the run's last collective call
/// (its own cost is not counted).
void gather_comm_stats(Communicator& comm, PartitionedRunResult& result) {
  ByteWriter s;
  s.u64(comm.stats().bytes_sent);
  s.u64(comm.stats().bytes_received);
  s.f64(comm.stats().seconds);
  s.u64(comm.stats().calls);
  const std::vector<std::string> stats = comm.gather(s.bytes(), kRoot);
  comm.collectives_done();
  for (std::size_t r = 0; r < stats.size() && r < result.ranks.size(); ++r) {
    ByteReader rd(stats[r], "communication figures");
    CommStats& c = result.ranks[r].comm;
    c.bytes_sent = rd.u64();
    c.bytes_received = rd.u64();
    c.seconds = rd.f64();
    c.calls = rd.u64();
  }
}

/// Records in account order: the output's order, whichever rank computed them.
void sort_by_account(std::vector<ResultRecord>& records) {
  std::sort(records.begin(), records.end(),
            [](const ResultRecord& a, const ResultRecord& b) { return a.account < b.account; });
}

std::string count_text(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::vector<std::pair<std::string, std::uint64_t>> account_weights(const Book& book) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  std::unordered_map<std::string_view, std::size_t> at;
  auto add = [&](const std::string& account, std::uint64_t w) {
    const auto [it, added] = at.emplace(account, out.size());
    if (added) out.emplace_back(account, 1);
    out[it->second].second += w;
  };
  for (const Position& p : book.positions) add(p.account, 1);
  for (const CollateralHolding& h : book.holdings) add(h.account, 0);
  return out;
}

PartitionedRunResult run_partitioned(Communicator& comm, const PartitionedRunOptions& options,
                                     const std::function<void()>& prepare, const std::function<Book()>& load_book,
                                     const std::function<PartitionResult(const Book&)>& compute,
                                     const LogLine& log) {
  const auto t_start = Clock::now();
  const int rank = comm.rank(), ranks = comm.size();
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  if (options.resume && options.checkpoint_dir.empty())
    throw usage_error("--resume needs checkpoints: give --out FILE (they are kept in FILE.parts/)");

  // 1. What every rank needs (reference data), then the book at rank 0, split.
  agreed(comm, prepare);
  PartitionedRunResult result;
  std::vector<std::pair<std::size_t, Book>> mine;  // (partition, book) this rank computes
  std::vector<std::string> payloads;               // rank 0: one per rank
  std::size_t partitions = 0;
  agreed(comm, [&] {
    if (rank != kRoot) return;
    Book book = load_book();
    const auto weights = account_weights(book);
    partitions = options.partitions ? options.partitions : static_cast<std::size_t>(ranks);
    result.partitions = partitions;
    result.accounts = weights.size();
    result.positions = book.positions.size();
    std::vector<std::uint64_t> w;
    for (const auto& [name, weight] : weights) w.push_back(weight);
    const PartitionPlan plan = plan_partitions(w, partitions, ranks);
    if (!options.checkpoint_dir.empty() && !options.resume) CheckpointDir(options.checkpoint_dir).remove_all();
    const auto [lightest, heaviest] = std::minmax_element(plan.load.begin(), plan.load.end());
    say(count_text(weights.size(), "account", "accounts") + ", " +
        count_text(book.positions.size(), "position", "positions") + " in " +
        count_text(partitions, "partition", "partitions") + " over " + count_text(ranks, "rank", "ranks") + " (" +
        comm.describe() + "); partition loads (positions, plus one per account) from " + std::to_string(*lightest) +
        " to " + std::to_string(*heaviest));

    std::vector<Book> books(partitions);
    if (partitions == 1) {
      books[0] = std::move(book);
    } else {
      std::vector<std::uint32_t> part_of(weights.size());
      std::unordered_map<std::string_view, std::uint32_t> account_index;
      for (std::size_t i = 0; i < weights.size(); ++i) account_index.emplace(weights[i].first, static_cast<std::uint32_t>(i));
      for (std::size_t p = 0; p < partitions; ++p)
        for (std::size_t i : plan.items[p]) part_of[i] = static_cast<std::uint32_t>(p);
      for (const Position& pos : book.positions) books[part_of[account_index.at(pos.account)]].positions.push_back(pos);
      for (const CollateralHolding& h : book.holdings) books[part_of[account_index.at(h.account)]].holdings.push_back(h);
    }
    std::vector<ByteWriter> writers(static_cast<std::size_t>(ranks));
    for (int r = 0; r < ranks; ++r) {
      const std::vector<std::size_t> of = plan.of_rank(r);
      writers[static_cast<std::size_t>(r)].u64(partitions);
      writers[static_cast<std::size_t>(r)].u64(of.size());
    }
    for (std::size_t p = 0; p < partitions; ++p) {
      const int r = plan.rank[p];
      if (r == kRoot) {
        mine.emplace_back(p, std::move(books[p]));
        continue;
      }
      ByteWriter& w = writers[static_cast<std::size_t>(r)];
      w.u64(p);
      encode_book(w, books[p]);
      books[p] = Book{};
    }
    for (ByteWriter& w : writers) payloads.push_back(std::move(w.bytes()));
  });

  // 2. Each rank its partitions.
  const std::string payload = comm.scatter(payloads, kRoot);
  payloads.clear();
  RankReport report;
  report.rank = rank;
  std::vector<ResultRecord> records;
  std::string records_bytes;
  const Outcome computed = capture(rank, [&] {
    if (rank != kRoot) {
      ByteReader r(payload, "the partitions sent to rank " + std::to_string(rank));
      partitions = r.u64();
      const std::uint64_t n = r.count(8);
      for (std::uint64_t k = 0; k < n; ++k) {
        const std::size_t p = r.u64();
        mine.emplace_back(p, decode_book(r));
      }
    }
    std::unique_ptr<CheckpointDir> checkpoints;
    if (!options.checkpoint_dir.empty()) checkpoints = std::make_unique<CheckpointDir>(options.checkpoint_dir);
    const auto t_compute = Clock::now();
    for (auto& [p, book] : mine) {
      const auto t_part = Clock::now();
      const std::string part_name = "partition " + std::to_string(p + 1) + " of " + std::to_string(partitions);
      std::string key;
      if (checkpoints) key = checkpoint_key(options.run_identity, p, partitions, book);
      report.positions += book.positions.size();
      ++report.partitions;
      if (checkpoints && options.resume) {
        std::string why;
        if (const std::optional<std::string> kept = checkpoints->read(p, partitions, key, why)) {
          const std::size_t before = records.size();
          decode_records(*kept, records, checkpoints->path() + " " + part_name);
          const std::size_t accounts = records.size() - before;  // one record per account
          report.accounts += accounts;
          ++report.resumed;
          say(part_name + ": " + count_text(accounts, "account", "accounts") + " from its checkpoint");
          continue;
        }
        say(part_name + ": " + why + ", computing it");
      }
      PartitionResult part = compute(book);
      const std::size_t accounts = part.records.size();  // one record per account
      report.accounts += accounts;
      report.times += part.times;
      if (checkpoints) checkpoints->write(p, partitions, key, encode_records(part.records));
      say(part_name + ": " + count_text(accounts, "account", "accounts") + ", " +
          count_text(book.positions.size(), "position", "positions") + " in " +
          std::to_string(seconds_since(t_part)).substr(0, 5) + " s");
      for (ResultRecord& rec : part.records) records.push_back(std::move(rec));
      book = Book{};
    }
    report.compute_s = seconds_since(t_compute);
    records_bytes = encode_records(records);
    records.clear();
  });

  // 3. Every rank's records at rank 0, and the verdict.
  ByteWriter w;
  computed.write(w);
  encode_report(w, report);
  w.str(computed.kind == Kind::ok ? records_bytes : std::string());
  records_bytes.clear();
  const std::vector<std::string> all = comm.gather(w.bytes(), kRoot);
  Outcome verdict;
  if (rank == kRoot) {
    std::vector<Outcome> outcomes;
    verdict = capture(rank, [&] {
      for (std::size_t r = 0; r < all.size(); ++r) {
        ByteReader rd(all[r], "the results of rank " + std::to_string(r));
        outcomes.push_back(Outcome::decode(rd));
        result.ranks.push_back(decode_report(rd));
        if (outcomes.back().kind == Kind::ok) decode_records(rd.str(), result.records, "the records of rank " + std::to_string(r));
      }
      sort_by_account(result.records);
      for (std::size_t i = 1; i < result.records.size(); ++i)
        if (result.records[i].account == result.records[i - 1].account)
          throw logic_error("account '" + result.records[i].account + "' computed twice");
      if (result.records.size() != result.accounts)
        throw logic_error(std::to_string(result.records.size()) + " results for " + std::to_string(result.accounts) +
                          " accounts");
    });
    const Outcome failed = first_failure(outcomes);
    if (failed.kind != Kind::ok) verdict = failed;
    result.wall_s = seconds_since(t_start);
  }
  settle(comm, verdict);

  // 4. What each rank spent communicating, now that the gather is done.
  gather_comm_stats(comm, result);
  return result;
}

PartitionedRunResult run_scenario_split(Communicator& comm, const std::function<void()>& prepare,
                                        const std::function<Book()>& load_book, const BlockCompute& compute,
                                        const LogLine& log) {
  const auto t_start = Clock::now();
  const int rank = comm.rank(), ranks = comm.size();
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  agreed(comm, prepare);
  PartitionedRunResult result;
  result.partitions = static_cast<std::size_t>(ranks);
  result.unit = "scenario block";
  std::string book_bytes;
  Book book;
  agreed(comm, [&] {
    if (rank != kRoot) return;
    book = load_book();
    result.accounts = account_weights(book).size();
    result.positions = book.positions.size();
    say(count_text(result.accounts, "account", "accounts") + ", " +
        count_text(result.positions, "position", "positions") + ", the scenarios split over " +
        count_text(ranks, "rank", "ranks") + " (" + comm.describe() + ")");
    if (ranks > 1) {
      ByteWriter w;
      encode_book(w, book);
      book_bytes = std::move(w.bytes());
    }
  });
  if (ranks > 1) book_bytes = comm.broadcast(book_bytes, kRoot);

  RankReport report;
  report.rank = rank;
  report.partitions = 1;
  bool exchanged = false;
  PartitionResult finished;
  // Each rank sends its block's columns of P; rank 0 writes the others' into its own P.
  const MarginEngine::PnlExchange exchange = [&](double* pnl, std::size_t rows, std::size_t scenarios, std::size_t s0,
                                                 std::size_t s1) {
    exchanged = true;
    ByteWriter w;
    Outcome{Kind::ok, "", rank}.write(w);
    w.u64(rows);
    w.u64(scenarios);
    if (rank != kRoot) {
      w.u64(s0);
      w.u64(s1);
      w.bytes().reserve(w.bytes().size() + rows * (s1 - s0) * sizeof(double));
      for (std::size_t row = 0; row < rows; ++row)
        w.bytes().append(reinterpret_cast<const char*>(pnl + row * scenarios + s0), (s1 - s0) * sizeof(double));
    }
    const std::vector<std::string> all = comm.gather(w.bytes(), kRoot);
    if (rank != kRoot) return false;
    for (std::size_t r = 0; r < all.size(); ++r) {
      ByteReader rd(all[r], "the P&L block of rank " + std::to_string(r));
      const Outcome theirs = Outcome::decode(rd);
      if (theirs.kind != Kind::ok) throw other_rank_failed(theirs);
      if (rd.u64() != rows || rd.u64() != scenarios)
        throw logic_error("rank " + std::to_string(r) + " computed P for another book");
      if (r == static_cast<std::size_t>(kRoot)) continue;
      const std::size_t b0 = rd.u64(), b1 = rd.u64();
      const auto expected = MarginEngine::scenario_block(scenarios, r, all.size());
      if (b0 != expected.first || b1 != expected.second) throw logic_error("a P&L block of other scenarios");
      const std::size_t width = b1 - b0;
      const std::string_view cells = std::string_view(all[r]).substr(all[r].size() - rows * width * sizeof(double));
      if (cells.size() != rows * width * sizeof(double)) throw logic_error("a P&L block of the wrong size");
      for (std::size_t row = 0; row < rows; ++row)
        std::memcpy(pnl + row * scenarios + b0, cells.data() + row * width * sizeof(double), width * sizeof(double));
    }
    return true;
  };
  const auto t_compute = Clock::now();
  Outcome computed = capture(rank, [&] {
    if (rank != kRoot) {
      ByteReader r(book_bytes, "the book sent to rank " + std::to_string(rank));
      book = decode_book(r);
    }
    book_bytes = std::string();
    report.positions = book.positions.size();
    finished = compute(book, static_cast<std::size_t>(rank), static_cast<std::size_t>(ranks), exchange);
    report.accounts = finished.records.size();  // rank 0 assembles every account; the others none
    if (rank == kRoot && finished.records.size() != result.accounts)
      throw logic_error(std::to_string(finished.records.size()) + " results for " + std::to_string(result.accounts) +
                        " accounts");
  });
  report.compute_s = seconds_since(t_compute);
  if (!exchanged) {  // failed before its block was done: the others still wait for it
    ByteWriter w;
    (computed.kind == Kind::ok ? Outcome{Kind::internal, "no P&L block computed", rank} : computed).write(w);
    comm.gather(w.bytes(), kRoot);
    if (computed.kind == Kind::ok) computed = {Kind::internal, "no P&L block computed", rank};
  }
  report.times = finished.times;
  if (rank == kRoot) {
    result.records = std::move(finished.records);
    sort_by_account(result.records);
  }
  // Every rank's report, then the verdict (rank 0 knows every failure by now).
  ByteWriter w;
  encode_report(w, report);
  const std::vector<std::string> reports = comm.gather(w.bytes(), kRoot);
  for (const std::string& b : reports) {
    ByteReader rd(b, "a rank's report");
    result.ranks.push_back(decode_report(rd));
  }
  result.wall_s = seconds_since(t_start);
  settle(comm, computed);

  gather_comm_stats(comm, result);
  return result;
}

}  // namespace marginet::scaleout
