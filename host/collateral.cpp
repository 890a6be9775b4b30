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

namespace {

std::int64_t call_of(const std::string& account, double im, double collateral, int scale, const std::string& asset) {
  const double shortfall = im > collateral ? im - collateral : 0.0;
  std::int64_t call = 0;
  if (margin_call_minor_units(shortfall, scale, call) != MoneyStatus::ok)
    throw input_error("", 0, "account",
                      "'" + account + "': the margin call (IM " + std::to_string(im) + " " + asset +
                          ") is not an amount of money (int64 minor units); check the positions and market data");
  return call;
}

/// deribit-pm in coin: one row per coin of the account's positions, then per other asset held.
void fill_currencies(AccountMargin& a, const std::vector<CollateralHolding>& holdings, const Methodology& m) {
  std::map<std::string, double> held;
  for (const CollateralHolding& h : holdings)
    if (h.account == a.account) held[h.asset] += h.amount;
  for (const UnderlyingMargin& u : a.underlyings) {
    CurrencyMargin c;
    c.currency = u.units;
    c.im = u.im;
    c.mm = u.mm;
    c.worst_scenario = u.worst_scenario;
    c.scale = m.deribit.currency(u.underlying).scale;
    const auto it = held.find(c.currency);
    if (it != held.end()) {
      c.collateral_value = it->second;
      held.erase(it);
    }
    c.call_minor = call_of(a.account, c.im, c.collateral_value, c.scale, c.currency);
    a.currencies.push_back(std::move(c));
  }
  for (const auto& [asset, amount] : held) {
    CurrencyMargin c;
    c.currency = asset;
    c.collateral_value = amount;
    c.scale = m.deribit.currencies.count(asset) ? m.deribit.currency(asset).scale : m.settlement_scale;
    a.currencies.push_back(std::move(c));
  }
}

}  // namespace

void apply_collateral(MarginRun& run, const std::vector<CollateralHolding>& holdings, const MarketSnapshot& market,
                      const Methodology& m) {
  const std::map<std::string, double> value = collateral_values(holdings, market, m);
  for (AccountMargin& a : run.accounts) {
    const auto it = value.find(a.account);
    a.collateral_value = it == value.end() ? 0.0 : it->second;
    a.call_minor = call_of(a.account, a.im, a.collateral_value, m.settlement_scale, m.settlement_asset);
    a.currencies.clear();
    if (margins_in_coin(m)) fill_currencies(a, holdings, m);
  }
}

}  // namespace marginet
