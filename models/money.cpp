#include "models/money.hpp"

#include <charconv>
#include <cmath>
#include <limits>

#include "models/errors.hpp"

namespace marginet {

namespace {

constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();

__int128 pow10_i128(int e) {
  __int128 p = 1;
  for (int i = 0; i < e; ++i) p *= 10;
  return p;
}

bool fits_i64(__int128 v) { return v >= kI64Min && v <= kI64Max; }

/// The pieces of a decimal text: sign, integer digits, fraction digits.
struct Lexed {
  bool negative = false;
  std::string_view integer, fraction;
};

MoneyStatus lex(std::string_view t, Lexed& out) noexcept {
  if (t.empty()) return MoneyStatus::empty;
  std::size_t i = 0;
  if (t[0] == '+' || t[0] == '-') {
    out.negative = t[0] == '-';
    ++i;
  }
  const std::size_t int_begin = i;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  out.integer = t.substr(int_begin, i - int_begin);
  if (i < t.size() && t[i] == '.') {
    const std::size_t frac_begin = ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    out.fraction = t.substr(frac_begin, i - frac_begin);
  }
  if (i != t.size() || (out.integer.empty() && out.fraction.empty())) return MoneyStatus::syntax;
  return MoneyStatus::ok;
}

}  // namespace

std::string money_status_text(MoneyStatus status, int scale) {
  switch (status) {
    case MoneyStatus::ok:
      return "ok";
    case MoneyStatus::empty:
      return "empty";
    case MoneyStatus::syntax:
      return "not a decimal number (digits with an optional sign and '.'; no exponent)";
    case MoneyStatus::too_many_decimals:
      return "too many decimals: the asset's minor unit has " + std::to_string(scale) +
             " decimal places";
    case MoneyStatus::overflow:
      return "out of range: the amount in minor units does not fit a signed 64-bit integer";
    case MoneyStatus::bad_scale:
      return "asset scale must be 0.." + std::to_string(kMaxMoneyScale) + " (got " +
             std::to_string(scale) + ")";
  }
  return "unknown";
}

MoneyStatus divide_rounded(__int128 num, __int128 den, Rounding rounding,
                           std::int64_t& out) noexcept {
  if (den <= 0) return MoneyStatus::syntax;
  __int128 q = num / den;  // truncates toward zero
  const __int128 r = num % den;  // same sign as num
  if (r != 0) {
    switch (rounding) {
      case Rounding::exact:
        return MoneyStatus::too_many_decimals;
      case Rounding::ceiling:
        if (r > 0) ++q;
        break;
      case Rounding::floor:
        if (r < 0) --q;
        break;
      case Rounding::half_even: {
        const __int128 twice = (r < 0 ? -r : r) * 2;  // |r| < den, so no overflow for den < 2^126
        const bool away = twice > den || (twice == den && (q % 2 != 0));
        if (away) q += r > 0 ? 1 : -1;
        break;
      }
    }
  }
  if (!fits_i64(q)) return MoneyStatus::overflow;
  out = static_cast<std::int64_t>(q);
  return MoneyStatus::ok;
}

MoneyStatus parse_minor_units(std::string_view text, int scale, std::int64_t& out,
                              Rounding rounding) noexcept {
  if (scale < 0 || scale > kMaxMoneyScale) return MoneyStatus::bad_scale;
  Lexed lx;
  if (const MoneyStatus s = lex(text, lx); s != MoneyStatus::ok) return s;
  // Integer part × 10^scale + the first `scale` fraction digits, accumulated in 128 bits with a
  // ceiling far above int64 so that no intermediate wraps.
  constexpr __int128 kCeiling = static_cast<__int128>(1) << 100;
  __int128 v = 0;
  for (char c : lx.integer) {
    v = v * 10 + (c - '0');
    if (v > kCeiling) return MoneyStatus::overflow;
  }
  for (int d = 0; d < scale; ++d) {
    const char c = d < static_cast<int>(lx.fraction.size()) ? lx.fraction[d] : '0';
    v = v * 10 + (c - '0');
    if (v > kCeiling) return MoneyStatus::overflow;
  }
  // Digits below the minor unit: zero -> exact; else the rounding rule decides.
  std::string_view rest =
      static_cast<int>(lx.fraction.size()) > scale ? lx.fraction.substr(scale) : std::string_view{};
  bool below_zero = true;
  for (char c : rest) below_zero = below_zero && c == '0';
  if (!below_zero) {
    // Compare the remainder 0.rest with one half: first digit > 5, or == 5 with any non-zero after.
    const int first = rest[0] - '0';
    bool beyond_first = false;
    for (std::size_t i = 1; i < rest.size(); ++i) beyond_first = beyond_first || rest[i] != '0';
    const int vs_half = first > 5 || (first == 5 && beyond_first) ? 1 : (first == 5 ? 0 : -1);
    bool up = false;  // away from zero in magnitude
    switch (rounding) {
      case Rounding::exact:
        return MoneyStatus::too_many_decimals;
      case Rounding::half_even:
        up = vs_half > 0 || (vs_half == 0 && (v % 2 != 0));
        break;
      case Rounding::ceiling:
        up = !lx.negative;
        break;
      case Rounding::floor:
        up = lx.negative;
        break;
    }
    if (up) ++v;
  }
  if (lx.negative) v = -v;
  if (!fits_i64(v)) return MoneyStatus::overflow;
  out = static_cast<std::int64_t>(v);
  return MoneyStatus::ok;
}

std::int64_t parse_money(std::string_view text, int scale, const std::string& file, long line,
                         const std::string& field, Rounding rounding) {
  std::int64_t v = 0;
  const MoneyStatus s = parse_minor_units(text, scale, v, rounding);
  if (s != MoneyStatus::ok)
    throw input_error(file, line, field, "'" + std::string(text) + "': " + money_status_text(s, scale));
  return v;
}

MoneyStatus parse_decimal(std::string_view text, Decimal& out) noexcept {
  Lexed lx;
  if (const MoneyStatus s = lex(text, lx); s != MoneyStatus::ok) return s;
  // Drop trailing zeros of the fraction: they change nothing and would waste decimals.
  std::string_view frac = lx.fraction;
  while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
  if (frac.size() > static_cast<std::size_t>(kMaxMoneyScale)) return MoneyStatus::too_many_decimals;
  __int128 v = 0;
  for (char c : lx.integer) {
    v = v * 10 + (c - '0');
    if (v > kI64Max) return MoneyStatus::overflow;
  }
  for (char c : frac) {
    v = v * 10 + (c - '0');
    if (v > kI64Max) return MoneyStatus::overflow;
  }
  out.mantissa = static_cast<std::int64_t>(lx.negative ? -v : v);
  out.decimals = static_cast<int>(frac.size());
  return MoneyStatus::ok;
}

std::string format_money(std::int64_t minor, int scale) {
  const bool negative = minor < 0;
  // Magnitude as unsigned so that INT64_MIN formats correctly.
  std::uint64_t mag = negative ? 0 - static_cast<std::uint64_t>(minor) : static_cast<std::uint64_t>(minor);
  char digits[24];
  const auto res = std::to_chars(digits, digits + sizeof digits, mag);
  std::string d(digits, res.ptr);
  if (scale > 0) {
    if (d.size() <= static_cast<std::size_t>(scale)) d.insert(0, static_cast<std::size_t>(scale) + 1 - d.size(), '0');
    d.insert(d.size() - static_cast<std::size_t>(scale), 1, '.');
  }
  return negative ? "-" + d : d;
}

MoneyStatus multiply_money(std::int64_t quantity, int base_scale, Decimal price, int quote_scale,
                           std::int64_t& out, Rounding rounding) noexcept {
  if (base_scale < 0 || base_scale > kMaxMoneyScale || quote_scale < 0 ||
      quote_scale > kMaxMoneyScale || price.decimals < 0 || price.decimals > kMaxMoneyScale)
    return MoneyStatus::bad_scale;
  // |quantity·mantissa| < 2^126: exact in 128 bits.
  const __int128 product = static_cast<__int128>(quantity) * price.mantissa;
  const int e = quote_scale - base_scale - price.decimals;  // −36 .. 18
  if (e >= 0) {
    const __int128 p = pow10_i128(e);
    // Overflow check before multiplying: |product|·10^e must fit int64 anyway.
    const __int128 mag = product < 0 ? -product : product;
    if (mag > kI64Max / p + 1) return MoneyStatus::overflow;
    const __int128 v = product * p;
    if (!fits_i64(v)) return MoneyStatus::overflow;
    out = static_cast<std::int64_t>(v);
    return MoneyStatus::ok;
  }
  return divide_rounded(product, pow10_i128(-e), rounding, out);  // 10^36 < 2^120
}

MoneyStatus margin_call_minor_units(double amount, int scale, std::int64_t& out) noexcept {
  if (!std::isfinite(amount)) return MoneyStatus::overflow;
  if (scale < 0 || scale > kMaxMoneyScale) return MoneyStatus::bad_scale;
  // Shortest round-trip text in fixed notation: exact decimal digits of what the figure means.
  if (std::fabs(amount) >= 1e19) return MoneyStatus::overflow;
  char buf[512];
  const auto res = std::to_chars(buf, buf + sizeof buf, amount, std::chars_format::fixed);
  if (res.ec != std::errc()) return MoneyStatus::overflow;
  return parse_minor_units(std::string_view(buf, static_cast<std::size_t>(res.ptr - buf)), scale,
                           out, Rounding::ceiling);
}

}  // namespace marginet
