#pragma once
// How a book is split for a distributed run: accounts into partitions balanced by their
// positions (not by their count), partitions onto ranks. A partition is the unit of work and
// of checkpointing; its accounts are whole (an account's scenarios stay together, so its tail
// statistics need no merge). Deterministic: the same weights give the same plan on every rank.

#include <cstdint>
#include <vector>

namespace marginet::scaleout {

struct PartitionPlan {
  std::vector<std::vector<std::size_t>> items;  // per partition: the items' indices, ascending
  std::vector<std::uint64_t> load;              // per partition: the sum of its items' weights
  std::vector<int> rank;                        // per partition: the rank that computes it

  std::size_t partitions() const { return items.size(); }
  /// The partitions of `r`, ascending.
  std::vector<std::size_t> of_rank(int r) const;
};

/// Longest processing time first: items by weight, heaviest first (ties by index), each to the
/// partition with the least load so far (ties: the lowest partition); then partitions the same
/// way onto `ranks` ranks. No partition is heavier than the lightest plus the heaviest item, so
/// one account with half the positions gets a partition to itself and the rest share the others.
PartitionPlan plan_partitions(const std::vector<std::uint64_t>& weights, std::size_t partitions, int ranks);

}  // namespace marginet::scaleout
