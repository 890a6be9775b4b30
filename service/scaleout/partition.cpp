#include "service/scaleout/partition.hpp"

#include <algorithm>
#include <numeric>

#include "models/errors.hpp"

namespace marginet::scaleout {

namespace {

/// bin[i] for each weight, longest processing time first over `bins` bins.
std::vector<std::size_t> lpt(const std::vector<std::uint64_t>& weights, std::size_t bins,
                             std::vector<std::uint64_t>& load) {
  std::vector<std::size_t> order(weights.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return weights[a] > weights[b]; });
  load.assign(bins, 0);
  std::vector<std::size_t> bin(weights.size(), 0);
  for (std::size_t i : order) {
    const auto least = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    bin[i] = least;
    load[least] += weights[i];
  }
  return bin;
}

}  // namespace

std::vector<std::size_t> PartitionPlan::of_rank(int r) const {
  std::vector<std::size_t> out;
  for (std::size_t p = 0; p < rank.size(); ++p)
    if (rank[p] == r) out.push_back(p);
  return out;
}

PartitionPlan plan_partitions(const std::vector<std::uint64_t>& weights, std::size_t partitions, int ranks) {
  MARGINET_EXPECTS(partitions >= 1 && ranks >= 1, "at least one partition and one rank");
  PartitionPlan plan;
  const std::vector<std::size_t> bin = lpt(weights, partitions, plan.load);
  plan.items.assign(partitions, {});
  for (std::size_t i = 0; i < weights.size(); ++i) plan.items[bin[i]].push_back(i);
  std::vector<std::uint64_t> rank_load;
  const std::vector<std::size_t> r = lpt(plan.load, static_cast<std::size_t>(ranks), rank_load);
  plan.rank.assign(r.begin(), r.end());
  return plan;
}

}  // namespace marginet::scaleout
