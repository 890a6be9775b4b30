#pragma once
// The end-of-day run across ranks (SPEC §12, docs/scale-out.md): rank 0 loads the book and
// splits its accounts into partitions balanced by positions; each rank computes its partitions
// (checkpointing each), and rank 0 gathers every account's result and returns them in account
// order. Which rank computed an account never shows in its result, so the output is the same
// bytes for any number of ranks or partitions, one process included.
//
// Failures: every step that can fail runs on each rank and the ranks agree on the outcome
// before the next collective call, so a bad file on one rank fails every rank with that
// rank's message (printed once, by rank 0) instead of leaving the others waiting.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "host/collateral.hpp"
#include "host/margin_engine.hpp"
#include "models/positions.hpp"
#include "service/scaleout/communicator.hpp"

namespace marginet::scaleout {

/// What a partition holds: its accounts' positions (in book order) and collateral.
struct Book {
  std::vector<Position> positions;
  std::vector<CollateralHolding> holdings;
};

/// One account's result, already encoded as the output needs it (opaque bytes here).
struct ResultRecord {
  std::string account;
  std::string bytes;
};

struct PartitionResult {
  std::vector<ResultRecord> records;  // any order
  StageTimes times;
};

struct PartitionedRunOptions {
  std::size_t partitions = 0;   // 0: one per rank
  std::string checkpoint_dir;   // empty: no checkpoints
  bool resume = false;          // use the checkpoints of finished partitions
  std::string run_identity;     // what the results depend on besides the book (inputs, model)
};

/// What one rank did, for the logs and bench/ (rank 0 has every rank's).
struct RankReport {
  int rank = 0;
  std::size_t partitions = 0, resumed = 0, accounts = 0, positions = 0;
  double compute_s = 0;   // computing its partitions (resumed ones cost their read)
  StageTimes times;       // summed over the partitions it computed
  CommStats comm;         // up to the gather (the result's broadcast not counted)
};

struct PartitionedRunResult {
  std::vector<ResultRecord> records;  // rank 0: every account's, by account; elsewhere empty
  std::vector<RankReport> ranks;      // rank 0: one per rank; elsewhere empty
  std::size_t partitions = 0, accounts = 0, positions = 0;
  const char* unit = "partition";     // what `partitions` counts: "partition" or "scenario block"
  double wall_s = 0;                  // rank 0: from the start to the gathered records
};

using LogLine = std::function<void(const std::string&)>;

/// Runs the partitioned EOD run. `prepare` runs on every rank first (load the reference data);
/// `load_book` on rank 0 only; `compute` once per partition on the rank that owns it. `log`
/// (may be empty) receives progress lines of this rank. Throws on every rank when any failed:
/// rank 0 the failing rank's error (the job's exit status is rank 0's), the others
/// reported_error with status 0, so that the launcher lets rank 0 print the error before it
/// ends the job.
PartitionedRunResult run_partitioned(Communicator& comm, const PartitionedRunOptions& options,
                                     const std::function<void()>& prepare, const std::function<Book()>& load_book,
                                     const std::function<PartitionResult(const Book&)>& compute,
                                     const LogLine& log = {});

/// One rank's share of a run split by scenarios: margin `book` over scenario block `block` of
/// `blocks` (MarginEngine::run_scenario_block with `exchange`): its stage times, and the result
/// of every account where the exchange filled in the whole P matrix (rank 0; no records elsewhere).
using BlockCompute = std::function<PartitionResult(const Book& book, std::size_t block, std::size_t blocks,
                                                   const MarginEngine::PnlExchange& exchange)>;

/// The run split by scenarios instead of accounts: rank 0 loads the book and broadcasts it,
/// every rank computes the risk arrays and P&L of all accounts over its block of scenarios,
/// rank 0 gathers the blocks into the whole P matrix, reduces it and returns every account's
/// result (the same bytes as one process). For a book whose accounts all hold most
/// instruments, where splitting accounts would revalue every instrument on every rank. Moves
/// the book to every rank and rows × scenarios doubles to rank 0; keeps no checkpoints.
PartitionedRunResult run_scenario_split(Communicator& comm, const std::function<void()>& prepare,
                                        const std::function<Book()>& load_book, const BlockCompute& compute,
                                        const LogLine& log = {});

/// Every account of `book` (positions or collateral) with its weight for balancing: its
/// positions + 1, in order of first appearance.
std::vector<std::pair<std::string, std::uint64_t>> account_weights(const Book& book);

}  // namespace marginet::scaleout
