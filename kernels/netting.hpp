#pragma once
// Multilateral netting (SPEC §6): trades novated to the CCP become, per (member, asset), one net
// obligation = receipts − deliveries, exact in int64 minor units.
//
// Each trade t (buyer b, seller s, base x, quote y, quantity q, notional v) contributes
//   net[x, b] += q    net[x, s] −= q    net[y, b] −= v    net[y, s] += v.
// Member and asset ids are dense (host/netting_engine maps names to them), so the result is a
// dense table, asset-major: net[a · members + m]; positive = the member receives.
//
// Two algorithms, the same result to the unit:
//   net_obligations              — direct accumulation into the dense table (CPU: one private
//                                  table per worker thread, then summed; GPU: 64-bit atomics).
//                                  The default: 68x faster than sorting on a 2-core CPU (bench/RESULTS.md).
//   net_obligations_sort_reduce  — sort + reduce-by-key over (asset, member) keys, then scatter.
//                                  Kept as the measured alternative and as a cross-check.
// Overflow: the caller guarantees that every asset's gross deliveries fit int64 (TradeSet keeps
// that invariant), which bounds every partial sum here, so no addition can wrap.
//
// All pointers are host memory. No Thrust or CUDA type appears in this header.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/api.hpp"

namespace marginet::kernels {

/// Columnar trades with dense ids (see models/trade.hpp TradeSet).
struct TradeColumns {
  std::size_t trades = 0;
  const std::int32_t* buyer = nullptr;
  const std::int32_t* seller = nullptr;
  const std::int32_t* base_asset = nullptr;
  const std::int32_t* quote_asset = nullptr;
  const std::int64_t* quantity = nullptr;  // base minor units, > 0
  const std::int64_t* notional = nullptr;  // quote minor units, > 0
};

struct NetObligationsArgs {
  TradeColumns trades;
  std::int32_t members = 0;
  std::int32_t assets = 0;
  std::int64_t* net = nullptr;       // out: assets × members, asset-major; positive = receives
  std::int64_t* pay_ins = nullptr;   // out: assets: Σ_m max(0, −net)  (members pay the CCP)
  std::int64_t* pay_outs = nullptr;  // out: assets: Σ_m max(0, net)   (the CCP pays members)
  std::int32_t* payers = nullptr;    // out: assets: members with net < 0
  std::int32_t* receivers = nullptr; // out: assets: members with net > 0
};

/// One bilateral net: between member_a < member_b in one asset; positive = a receives from b.
struct BilateralNet {
  std::int32_t member_a = 0;
  std::int32_t member_b = 0;
  std::int32_t asset = 0;
  std::int64_t net = 0;
};

/// Limits of the bilateral key packing (24 + 24 + 16 bits).
constexpr std::int32_t kBilateralMaxMembers = 1 << 24;
constexpr std::int32_t kBilateralMaxAssets = 1 << 16;

MARGINET_KERNEL_API(
void net_obligations(const NetObligationsArgs& args);
void net_obligations_sort_reduce(const NetObligationsArgs& args);
/// Per member pair and asset, sorted by (member_a, member_b, asset); pairs netting to zero are
/// left out. Requires members < kBilateralMaxMembers and assets < kBilateralMaxAssets.
std::vector<BilateralNet> bilateral_obligations(const TradeColumns& trades, std::int32_t members,
                                                std::int32_t assets);
)

}  // namespace marginet::kernels
