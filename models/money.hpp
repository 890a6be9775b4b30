#pragma once
// Exact decimal money (SPEC §3): amounts that settle are int64 counts of an asset's minor unit
// (scale = decimal places: BTC 8, ETH 9, USD 2, USDC 6). Decimal text is parsed digit by digit,
// never through floating point; products are formed in 128 bits; every rounding is explicit.
//
//   std::int64_t m = parse_money("1.5", 8, "trades.csv", 12, "quantity");   // 150000000
//   format_money(m, 8)                                                       // "1.50000000"
//
// Rules:
//   * text: optional sign, digits, optional '.' and digits (at least one digit); no exponent,
//     no thousands separators, no spaces (the CSV reader trims the field).
//   * more decimals than the scale: accepted only when the extra digits are all zero (the value
//     is then exact); otherwise "too many decimals" — unless the caller asks for a rounding.
//   * an amount whose minor-unit count does not fit int64 is rejected ("overflow"), never
//     wrapped.
//   * products (quantity × price) are exact in 128 bits and rounded once, half-even, to the
//     minor unit of the result.
//   * margin calls are rounded up (toward +infinity) to the minor unit.

#include <cstdint>
#include <string>
#include <string_view>

#include "models/hd.hpp"

namespace marginet {

/// Largest scale an asset may have: 10^18 still fits int64.
constexpr int kMaxMoneyScale = 18;

/// How to treat digits below the minor unit.
enum class Rounding : std::uint8_t {
  exact,      // reject non-zero digits below the minor unit ("too many decimals")
  half_even,  // to nearest, ties to the even minor unit (banker's rounding)
  ceiling,    // toward +infinity (margin calls)
  floor,      // toward −infinity
};

enum class MoneyStatus : std::uint8_t { ok, empty, syntax, too_many_decimals, overflow, bad_scale };

/// A human phrase for a non-ok status ("too many decimals for scale 8", ...).
std::string money_status_text(MoneyStatus status, int scale);

/// 10^e for 0 ≤ e ≤ 18.
MARGINET_HD std::int64_t pow10_i64(int e) {
  std::int64_t p = 1;
  for (int i = 0; i < e; ++i) p *= 10;
  return p;
}

/// Parse decimal text into minor units of `scale`. noexcept; the hot path of the loaders.
MoneyStatus parse_minor_units(std::string_view text, int scale, std::int64_t& out,
                              Rounding rounding = Rounding::exact) noexcept;

/// The same, throwing marginet::input_error(file, line, field, ...) naming the text.
std::int64_t parse_money(std::string_view text, int scale, const std::string& file, long line,
                         const std::string& field, Rounding rounding = Rounding::exact);

/// A decimal number as an exact mantissa and its count of decimals: value = mantissa / 10^decimals.
/// Used for prices, which may carry more decimals than any asset.
struct Decimal {
  std::int64_t mantissa = 0;
  int decimals = 0;  // 0..18
};
MoneyStatus parse_decimal(std::string_view text, Decimal& out) noexcept;

/// Minor units as decimal text with exactly `scale` decimals: (150000000, 8) -> "1.50000000",
/// (-1, 2) -> "-0.01", (5, 0) -> "5".
std::string format_money(std::int64_t minor, int scale);

/// round(numerator / denominator) with the given rule (denominator > 0); `exact` demands a zero
/// remainder and reports too_many_decimals otherwise. Result must fit int64.
MoneyStatus divide_rounded(__int128 numerator, __int128 denominator, Rounding rounding,
                           std::int64_t& out) noexcept;

/// quantity (minor units of a base asset with `base_scale`) × price (quote per one base unit)
/// in minor units of a quote asset with `quote_scale`, formed exactly in 128 bits and rounded
/// once with `rounding` (half-even by default):
///   notional = quantity · price.mantissa · 10^(quote_scale − base_scale − price.decimals)
MoneyStatus multiply_money(std::int64_t quantity, int base_scale, Decimal price, int quote_scale,
                           std::int64_t& out, Rounding rounding = Rounding::half_even) noexcept;

/// A risk figure (floating point, in major units) as a margin call in minor units, rounded up to
/// the minor unit. The double is taken at its shortest round-trip decimal text, so 1.5 becomes
/// exactly 1.5 (not 1.50000000000000001...). Non-finite or out-of-range values: overflow.
MoneyStatus margin_call_minor_units(double amount, int scale, std::int64_t& out) noexcept;

/// Checked int64 arithmetic: false when the exact result does not fit.
inline bool checked_add(std::int64_t a, std::int64_t b, std::int64_t& out) noexcept {
  return !__builtin_add_overflow(a, b, &out);
}
inline bool checked_sub(std::int64_t a, std::int64_t b, std::int64_t& out) noexcept {
  return !__builtin_sub_overflow(a, b, &out);
}

}  // namespace marginet
