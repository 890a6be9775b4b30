#pragma once
// The plain, obviously-correct netting path (after CUTLASS's host references): one trade at a
// time into std::map, every addition checked. The kernels (kernels/netting.hpp) are tested and
// benchmarked against it; it shares no code with them beyond the TradeSet.

#include <cstdint>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "models/trade.hpp"

namespace marginet {

struct ReferenceNetting {
  /// (asset, member) -> net; every pair a trade touched, zeros included. Positive = receives.
  std::map<std::pair<std::int32_t, std::int32_t>, std::int64_t> net;
  /// (lower member, higher member, asset) -> net, positive = the lower member receives; zeros
  /// left out.
  std::map<std::tuple<std::int32_t, std::int32_t, std::int32_t>, std::int64_t> bilateral;
  /// Per asset.
  std::vector<std::int64_t> gross_deliveries, pay_ins, pay_outs;
};

/// Nets `trades`; throws marginet::logic_error if any sum would leave int64 (it cannot for a
/// TradeSet, whose per-asset gross fits int64). `bilateral` = also fill the bilateral map.
ReferenceNetting reference_netting(const TradeSet& trades, bool bilateral = true);

}  // namespace marginet
