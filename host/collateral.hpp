#pragma once
// Collateral and margin calls (SPEC §3, §5 stage 4): collateral.csv (`account,asset,amount`)
// valued in the settlement currency at the market snapshot's index prices (USD, USDC, USDT at
// 1), less the methodology's haircut per asset; call = max(0, IM − collateral value) rounded up
// to the settlement asset's minor unit — an exact int64 amount. deribit-pm in coin also gets the
// same per coin, in the coin (apply_collateral below).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/margin_engine.hpp"

namespace marginet {

struct CollateralHolding {
  std::string account;
  std::string asset;
  double amount = 0;  // in units of the asset
};

std::vector<CollateralHolding> read_collateral(const std::string& path);

/// Price of one unit of `asset` in the settlement currency; input_error for an unknown asset.
double collateral_price(const std::string& asset, const MarketSnapshot& market);

/// Collateral value after haircuts per account, in the settlement currency.
std::map<std::string, double> collateral_values(const std::vector<CollateralHolding>& holdings,
                                                const MarketSnapshot& market, const Methodology& methodology);

/// Fills collateral_value and call_minor of every account in `run`. deribit-pm margined in coin
/// also fills each account's `currencies`: per coin, the IM and MM of its underlying in the coin,
/// the holdings of that coin as its collateral (same currency, no haircut; another asset does not
/// count toward a coin's margin) and the call in the coin's minor units; a collateral asset with
/// no position gets a row of its own (IM 0).
void apply_collateral(MarginRun& run, const std::vector<CollateralHolding>& holdings,
                      const MarketSnapshot& market, const Methodology& methodology);

}  // namespace marginet
