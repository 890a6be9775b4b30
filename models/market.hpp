#pragma once
// The market snapshot (SPEC §3–4): per underlying the index price, the continuously compounded
// rate and the valuation time; per instrument the mark (price and implied volatility); and the
// forward per (underlying, expiry), taken from a marked future of that expiry when there is one,
// else index · e^{rT}. Year fraction = seconds / (365 · 86400).

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace marginet {

inline constexpr double kSecondsPerYear = 365.0 * 86400.0;

/// Seconds → years (SPEC §3).
inline double year_fraction(double seconds) { return seconds / kSecondsPerYear; }

struct UnderlyingMarket {
  double index_price = 0;     // quote currency per unit of underlying
  double rate = 0;            // continuously compounded, per year
  double valuation_time = 0;  // Unix seconds UTC
};

/// A mark from marks.csv. Either field may be absent (NaN).
/// mark_price: options in their settlement currency (coin for inverse, quote for linear — as
/// Deribit quotes them); futures, perpetuals and spot in the quote currency per unit.
/// mark_iv: decimal (0.55 = 55 %).
struct Mark {
  double mark_price = std::numeric_limits<double>::quiet_NaN();
  double mark_iv = std::numeric_limits<double>::quiet_NaN();
  bool has_price() const { return !std::isnan(mark_price); }
  bool has_iv() const { return !std::isnan(mark_iv); }
};

class MarketSnapshot {
 public:
  /// Adds or replaces an underlying.
  void set_underlying(const std::string& underlying, UnderlyingMarket market);
  bool has_underlying(std::string_view underlying) const;
  /// input_error "no market data for underlying 'X'" when absent.
  const UnderlyingMarket& underlying(std::string_view underlying) const;
  std::size_t underlying_count() const { return underlyings_.size(); }

  void set_mark(const std::string& instrument, Mark mark);
  /// nullptr when the instrument has no mark.
  const Mark* find_mark(std::string_view instrument) const;
  /// input_error "no mark for instrument 'X'" when absent.
  const Mark& mark(std::string_view instrument) const;
  std::size_t mark_count() const { return marks_.size(); }

  /// Declares the mark price of a future expiring at `expiry` as the forward for that expiry.
  void set_future_forward(const std::string& underlying, double expiry, double forward);

  /// Years from the underlying's valuation time to `expiry`, never negative (0 once expired).
  double time_to_expiry(std::string_view underlying, double expiry) const;

  /// Forward for (underlying, expiry): a marked future of exactly that expiry when present, else
  /// index · e^{r·T}. input_error when the underlying is unknown.
  double forward(std::string_view underlying, double expiry) const;
  /// True when forward(underlying, expiry) comes from a marked future.
  bool forward_from_future(std::string_view underlying, double expiry) const;

 private:
  std::unordered_map<std::string, UnderlyingMarket> underlyings_;
  std::unordered_map<std::string, Mark> marks_;
  std::map<std::pair<std::string, double>, double> future_forwards_;
};

}  // namespace marginet
