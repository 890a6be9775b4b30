#pragma once
// Sample data, not part of the netting pipeline: a seeded generator of trade sets for the tests
// and the benchmarks. Many members, a few assets, skewed activity (a few members and assets
// carry most of the trades, as on a real venue).
//
//   TradeGeneratorConfig cfg;  cfg.trades = 1'000'000;  cfg.members = 5000;  cfg.assets = 10;
//   TradeSet trades = generate_trades(cfg);                  // columnar, ready for netting
//   write_generated_trades_csv(out, cfg);                    // the same trades as trades.csv text
//
// The same config and seed always give the same trades, on every platform (the random stream is
// std::mt19937_64 and the distributions are implemented here, not taken from the library).
// Trade sizes are lognormal around 2,000 USD (1 USD .. 1 million USD); with the 10 built-in assets
// the per-asset gross stays within int64 minor units up to ~25 million trades (beyond that
// TradeSet::add rejects the trade that would overflow, as for any input).

#include <cstdint>
#include <iosfwd>
#include <string>

#include "models/asset.hpp"
#include "models/trade.hpp"

namespace marginet {

struct TradeGeneratorConfig {
  std::size_t trades = 10000;
  std::size_t members = 100;     // ≥ 2
  std::size_t assets = 10;       // 2..10: BTC, ETH, USD, USDC, USDT, SOL, XRP, DOGE, ADA, LTC
  double member_skew = 3.0;      // member = floor(members · u^skew): 1 uniform, larger = more skewed
  std::uint64_t seed = 1;
};

/// The first `n` built-in assets with their scales (BTC 8, ETH 9, USD 2, USDC 6, ...).
AssetTable generator_assets(std::size_t n);

/// Generates the trades straight into a TradeSet (members named M0000, M0001, ...).
TradeSet generate_trades(const TradeGeneratorConfig& config);

/// The same trades as trades.csv text (trade ids T1, T2, ...), and the assets as assets.csv.
void write_generated_trades_csv(std::ostream& out, const TradeGeneratorConfig& config);
void write_assets_csv(std::ostream& out, const AssetTable& assets);

}  // namespace marginet
