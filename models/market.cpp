#include "models/market.hpp"

#include "models/errors.hpp"

namespace marginet {

void MarketSnapshot::set_underlying(const std::string& underlying, UnderlyingMarket market) {
  underlyings_[underlying] = market;
}

bool MarketSnapshot::has_underlying(std::string_view underlying) const {
  return underlyings_.count(std::string(underlying)) != 0;
}

const UnderlyingMarket& MarketSnapshot::underlying(std::string_view underlying) const {
  const auto it = underlyings_.find(std::string(underlying));
  if (it == underlyings_.end())
    throw input_error("no market data for underlying '" + std::string(underlying) + "'");
  return it->second;
}

void MarketSnapshot::set_mark(const std::string& instrument, Mark mark) { marks_[instrument] = mark; }

const Mark* MarketSnapshot::find_mark(std::string_view instrument) const {
  const auto it = marks_.find(std::string(instrument));
  return it == marks_.end() ? nullptr : &it->second;
}

const Mark& MarketSnapshot::mark(std::string_view instrument) const {
  const Mark* m = find_mark(instrument);
  if (!m) throw input_error("no mark for instrument '" + std::string(instrument) + "'");
  return *m;
}

void MarketSnapshot::set_future_forward(const std::string& underlying, double expiry,
                                        double forward) {
  future_forwards_[{underlying, expiry}] = forward;
}

double MarketSnapshot::time_to_expiry(std::string_view underlying_name, double expiry) const {
  const UnderlyingMarket& u = underlying(underlying_name);
  const double seconds = expiry - u.valuation_time;
  return seconds > 0 ? year_fraction(seconds) : 0.0;
}

double MarketSnapshot::forward(std::string_view underlying_name, double expiry) const {
  const UnderlyingMarket& u = underlying(underlying_name);
  const auto it = future_forwards_.find({std::string(underlying_name), expiry});
  if (it != future_forwards_.end()) return it->second;
  return u.index_price * std::exp(u.rate * time_to_expiry(underlying_name, expiry));
}

bool MarketSnapshot::forward_from_future(std::string_view underlying_name, double expiry) const {
  return future_forwards_.count({std::string(underlying_name), expiry}) != 0;
}

}  // namespace marginet
