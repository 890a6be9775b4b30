#include "host/collateral.hpp"

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

std::vector<CollateralHolding> read_collateral(const std::string& path) {
  CsvReader csv(path, {"account", "asset", "amount"});
  std::vector<CollateralHolding> out;
  while (csv.next()) {
    CollateralHolding h{csv.required_text("account"), csv.required_text("asset"), csv.number("amount")};
    if (h.amount < 0) csv.fail("amount", "must be >= 0");
    out.push_back(std::move(h));
  }
  return out;
}

double collateral_price(const std::string& asset, const MarketSnapshot& market) {
  if (asset == "USD" || asset == "USDC" || asset == "USDT") return 1.0;
  if (market.has_underlying(asset)) return market.underlying(asset).index_price;
  throw input_error("collateral: no price for asset '" + asset + "' (not USD, USDC, USDT or an underlying in market.csv)");
}

std::map<std::string, double> collateral_values(const std::vector<CollateralHolding>& holdings,
                                                const MarketSnapshot& market, const Methodology& m) {
  std::map<std::string, double> value;
  for (const CollateralHolding& h : holdings) {
    const auto it = m.haircuts.find(h.asset);
    const double haircut = it == m.haircuts.end() ? m.default_haircut : it->second;
    value[h.account] += h.amount * collateral_price(h.asset, market) * (1.0 - haircut);
  }
  return value;
}

void apply_collateral(MarginRun& run, const std::vector<CollateralHolding>& holdings, const MarketSnapshot& market,
                      const Methodology& m) {
  const std::map<std::string, double> value = collateral_values(holdings, market, m);
  for (AccountMargin& a : run.accounts) {
    const auto it = value.find(a.account);
    a.collateral_value = it == value.end() ? 0.0 : it->second;
    const double shortfall = a.im > a.collateral_value ? a.im - a.collateral_value : 0.0;
    std::int64_t call = 0;
    if (margin_call_minor_units(shortfall, m.settlement_scale, call) != MoneyStatus::ok)
      throw input_error("", 0, "account",
                        "'" + a.account + "': the margin call (IM " + std::to_string(a.im) + " " + m.settlement_asset +
                            ") is not an amount of money (int64 minor units); check the positions and market data");
    a.call_minor = call;
  }
}

}  // namespace marginet
