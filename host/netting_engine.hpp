#pragma once
// The netting pipeline (SPEC §6): trades with dense ids (models/trade.hpp) → kernels on the chosen
// backend → per (member, asset) nets, checked for conservation on every run → per-asset figures,
// the bilateral view, transfer plans and the settlement cycle handed to the scheduler.
//
//   TradeSet trades = read_trades_csv("trades.csv", read_assets_csv("assets.csv"));
//   NettingResult r = net_trades(trades, {Backend::cpu});
//   SettlementCycle cycle = build_settlement_cycle(trades, r, calls, "2024-06-28/1", deadline);
//
// Sign convention everywhere: net > 0 = the member receives from the CCP (a pay-out),
// net < 0 = the member pays the CCP (a pay-in).

#include <cstdint>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "kernels/netting.hpp"
#include "models/settlement_cycle.hpp"
#include "models/trade.hpp"

namespace marginet {

enum class NettingAlgorithm : std::uint8_t {
  dense,        // direct accumulation into the member × asset table (the default; fastest)
  sort_reduce,  // sort + reduce-by-key over (asset, member) keys (the measured alternative)
};

struct NettingOptions {
  Backend backend = Backend::cpu;
  NettingAlgorithm algorithm = NettingAlgorithm::dense;
  bool bilateral = false;  // also compute the bilateral view (a sort over 2 × trades)
};

/// Per asset figures. Compression (after D'Errico & Roukny, "Compressing over-the-counter
/// markets"): `gross_deliveries` is what moves without netting; `bilateral_gross` what moves
/// after netting each member pair; `net_minimal` (= pay_ins = pay_outs) the least gross any
/// payment network with the same nets can have; `excess` = gross − net_minimal.
struct AssetNetting {
  std::int32_t asset = 0;
  std::int64_t gross_deliveries = 0;
  std::int64_t pay_ins = 0;
  std::int64_t pay_outs = 0;
  std::int32_t payers = 0;
  std::int32_t receivers = 0;
  double efficiency = 0;             // 1 − pay_ins / gross_deliveries; 0 when nothing trades
  std::int64_t bilateral_gross = -1; // Σ |bilateral nets|; −1 when not computed
  std::int64_t net_minimal = 0;
  std::int64_t excess = 0;
};

struct NettingResult {
  std::int32_t members = 0;
  std::int32_t assets = 0;
  std::vector<std::int64_t> net;  // assets × members, asset-major
  std::vector<AssetNetting> by_asset;
  std::vector<kernels::BilateralNet> bilateral;  // when asked; sorted by (a, b, asset); no zeros

  std::int64_t net_of(std::int32_t member, std::int32_t asset) const {
    return net[static_cast<std::size_t>(asset) * static_cast<std::size_t>(members) +
               static_cast<std::size_t>(member)];
  }
};

/// Nets `trades` on options.backend and checks conservation (MARGINET_FAIL on a violation).
NettingResult net_trades(const TradeSet& trades, const NettingOptions& options = {});

/// The conservation check of every run: for each asset the nets sum to exactly zero, pay-ins
/// equal pay-outs and neither exceeds the gross deliveries; the table has the right shape.
/// A violation is an internal error (MARGINET_FAIL), never a silent result.
void check_conservation(const TradeSet& trades, const NettingResult& result);

/// One payment of a transfer plan; kCcp stands for the central counterparty.
constexpr std::int32_t kCcp = -1;
struct Transfer {
  std::int32_t asset = 0;
  std::int32_t from = kCcp;  // member id or kCcp
  std::int32_t to = kCcp;
  std::int64_t amount = 0;   // minor units, > 0
};

/// With a hub (the CCP): every payer pays the CCP, the CCP pays every receiver. Ordered by
/// asset, then member name.
std::vector<Transfer> hub_plan(const TradeSet& trades, const NettingResult& result);

/// Without a hub: per asset, the largest debtor pays the largest creditor the smaller of the
/// two amounts, until all nets are settled. Each payment settles at least one member, so an
/// asset with n members of non-zero net needs at most n − 1 payments. Ties go to the member
/// name that sorts first, so the plan does not depend on the order of the input.
std::vector<Transfer> p2p_plan(const TradeSet& trades, const NettingResult& result);

/// A margin call from the margin engine: `account` pays `amount` (minor units, > 0) of `asset`.
struct MarginCall {
  std::string account;
  std::string asset;
  std::int64_t amount = 0;
};

/// Reads `account,asset,amount` (the collateral-calls file): amounts are decimal text in the
/// asset's scale, rounded UP to the minor unit; zero calls are skipped, negative ones rejected;
/// rows for the same (account, asset) are summed. Errors name file, line and field.
std::vector<MarginCall> read_margin_calls_csv(const std::string& path, const AssetTable& assets);

/// The settlement cycle: one pay-in (net < 0) or pay-out (net > 0) instruction per member and
/// asset, plus one margin-call pay-in per call. Instruction ids are stable for the same cycle id
/// and inputs: "<cycle>/<member>/<asset>/in", "<cycle>/<member>/<asset>/out",
/// "<cycle>/<account>/<asset>/in/margin_call". Ordered by member name, asset, leg.
SettlementCycle build_settlement_cycle(const TradeSet& trades, const NettingResult& result,
                                       const std::vector<MarginCall>& calls,
                                       const std::string& cycle_id, double deadline);

const char* netting_algorithm_name(NettingAlgorithm algorithm);  // "dense" | "sort_reduce"

}  // namespace marginet
