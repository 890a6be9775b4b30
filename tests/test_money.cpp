// Exact decimal money (models/money.hpp): parsing into minor units, the rounding rules, 128-bit
// products, overflow and too-many-decimals rejection, formatting back to text.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

std::int64_t parse_ok(const std::string& text, int scale, Rounding r = Rounding::exact) {
  std::int64_t v = -777;
  const MoneyStatus s = parse_minor_units(text, scale, v, r);
  EXPECT_EQ(s, MoneyStatus::ok) << "'" << text << "' scale " << scale << ": " << money_status_text(s, scale);
  return v;
}

MoneyStatus parse_status(const std::string& text, int scale, Rounding r = Rounding::exact) {
  std::int64_t v = -777;
  const MoneyStatus s = parse_minor_units(text, scale, v, r);
  if (s != MoneyStatus::ok) {
    EXPECT_EQ(v, -777) << "output untouched on failure";
  }
  return s;
}

TEST(Money, ParsesDecimalTextIntoMinorUnits) {
  EXPECT_EQ(parse_ok("1.5", 8), 150000000);
  EXPECT_EQ(parse_ok("1", 8), 100000000);
  EXPECT_EQ(parse_ok("0.00000001", 8), 1);
  EXPECT_EQ(parse_ok("-0.01", 2), -1);
  EXPECT_EQ(parse_ok("+3", 2), 300);
  EXPECT_EQ(parse_ok("0", 6), 0);
  EXPECT_EQ(parse_ok("-0", 6), 0);
  EXPECT_EQ(parse_ok(".5", 1), 5);
  EXPECT_EQ(parse_ok("5.", 0), 5);
  EXPECT_EQ(parse_ok("000123.4500", 2), 12345);
  EXPECT_EQ(parse_ok("3000.123456", 6), 3000123456);
  EXPECT_EQ(parse_ok("7", 0), 7);
  EXPECT_EQ(parse_ok("1", 18), 1000000000000000000);
}

TEST(Money, ExtraZeroDecimalsAreExactButOtherDigitsAreRejected) {
  EXPECT_EQ(parse_ok("1.500000000000", 8), 150000000);
  EXPECT_EQ(parse_status("1.000000001", 8), MoneyStatus::too_many_decimals);
  EXPECT_EQ(parse_status("0.001", 2), MoneyStatus::too_many_decimals);
  EXPECT_EQ(parse_status("0.5", 0), MoneyStatus::too_many_decimals);
  EXPECT_NE(money_status_text(MoneyStatus::too_many_decimals, 2).find("2 decimal places"), std::string::npos);
}

TEST(Money, RejectsWhatIsNotADecimalNumber) {
  EXPECT_EQ(parse_status("", 2), MoneyStatus::empty);
  for (const char* bad : {"abc", "1e5", "1E-2", "1,000", "--1", "+-1", "1.2.3", " 1", "1 ", ".", "-", "+",
                          "0x10", "inf", "nan", "1_000", "١"})
    EXPECT_EQ(parse_status(bad, 2), MoneyStatus::syntax) << bad;
  EXPECT_EQ(parse_status("1", -1), MoneyStatus::bad_scale);
  EXPECT_EQ(parse_status("1", 19), MoneyStatus::bad_scale);
}

TEST(Money, Int64EdgeIsExactAndOneBeyondIsRejectedNotWrapped) {
  EXPECT_EQ(parse_ok("92233720368.54775807", 8), kMax);
  EXPECT_EQ(parse_ok("-92233720368.54775808", 8), kMin);
  EXPECT_EQ(parse_ok("9223372036854775807", 0), kMax);
  EXPECT_EQ(parse_status("92233720368.54775808", 8), MoneyStatus::overflow);
  EXPECT_EQ(parse_status("-92233720368.54775809", 8), MoneyStatus::overflow);
  EXPECT_EQ(parse_status("9223372036854775808", 0), MoneyStatus::overflow);
  EXPECT_EQ(parse_status("18446744073709551617", 0), MoneyStatus::overflow);  // 2^64 + 1 wraps to 1
  EXPECT_EQ(parse_status(std::string(400, '9'), 2), MoneyStatus::overflow);
  EXPECT_EQ(parse_status("10", 18), MoneyStatus::overflow);
  // Rounding up at the edge overflows too.
  EXPECT_EQ(parse_status("92233720368.547758071", 8, Rounding::ceiling), MoneyStatus::overflow);
}

TEST(Money, HalfEvenRounding) {
  const Rounding he = Rounding::half_even;
  EXPECT_EQ(parse_ok("0.125", 2, he), 12);   // tie -> even
  EXPECT_EQ(parse_ok("0.135", 2, he), 14);   // tie -> even
  EXPECT_EQ(parse_ok("0.1250000001", 2, he), 13);  // above the tie
  EXPECT_EQ(parse_ok("0.1249999999", 2, he), 12);
  EXPECT_EQ(parse_ok("-0.125", 2, he), -12);
  EXPECT_EQ(parse_ok("-0.135", 2, he), -14);
  EXPECT_EQ(parse_ok("2.5", 0, he), 2);
  EXPECT_EQ(parse_ok("3.5", 0, he), 4);
  EXPECT_EQ(parse_ok("0.5", 0, he), 0);
}

TEST(Money, CeilingAndFloorRounding) {
  EXPECT_EQ(parse_ok("0.121", 2, Rounding::ceiling), 13);
  EXPECT_EQ(parse_ok("0.12", 2, Rounding::ceiling), 12);
  EXPECT_EQ(parse_ok("-0.129", 2, Rounding::ceiling), -12);
  EXPECT_EQ(parse_ok("0.129", 2, Rounding::floor), 12);
  EXPECT_EQ(parse_ok("-0.121", 2, Rounding::floor), -13);
  EXPECT_EQ(parse_ok("0.000000000000000000001", 2, Rounding::ceiling), 1);
}

TEST(Money, ParseMoneyNamesFileLineAndField) {
  try {
    parse_money("1.234", 2, "calls.csv", 7, "amount");
    FAIL() << "expected input_error";
  } catch (const input_error& e) {
    EXPECT_EQ(e.file(), "calls.csv");
    EXPECT_EQ(e.line(), 7);
    EXPECT_EQ(e.field(), "amount");
    EXPECT_NE(std::string(e.what()).find("calls.csv:7: field 'amount'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("too many decimals"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_money("1.234", 2, "f", 1, "x", Rounding::ceiling), 124);
}

TEST(Money, Formats) {
  EXPECT_EQ(format_money(150000000, 8), "1.50000000");
  EXPECT_EQ(format_money(-1, 2), "-0.01");
  EXPECT_EQ(format_money(0, 2), "0.00");
  EXPECT_EQ(format_money(5, 0), "5");
  EXPECT_EQ(format_money(-5, 0), "-5");
  EXPECT_EQ(format_money(123456789, 9), "0.123456789");
  EXPECT_EQ(format_money(kMax, 8), "92233720368.54775807");
  EXPECT_EQ(format_money(kMin, 8), "-92233720368.54775808");
  EXPECT_EQ(format_money(kMin, 0), "-9223372036854775808");
  EXPECT_EQ(format_money(1, 18), "0.000000000000000001");
}

TEST(Money, FormatThenParseRoundTrips) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const auto v = static_cast<std::int64_t>(rng()) >> (rng() % 64);
    const int scale = static_cast<int>(rng() % 19);
    ASSERT_EQ(parse_ok(format_money(v, scale), scale), v) << v << " scale " << scale;
  }
}

TEST(Money, ParseDecimalKeepsTheDigits) {
  Decimal d;
  ASSERT_EQ(parse_decimal("60000.25", d), MoneyStatus::ok);
  EXPECT_EQ(d.mantissa, 6000025);
  EXPECT_EQ(d.decimals, 2);
  ASSERT_EQ(parse_decimal("0.050000", d), MoneyStatus::ok);  // trailing zeros dropped
  EXPECT_EQ(d.mantissa, 5);
  EXPECT_EQ(d.decimals, 2);
  ASSERT_EQ(parse_decimal("-3", d), MoneyStatus::ok);
  EXPECT_EQ(d.mantissa, -3);
  EXPECT_EQ(d.decimals, 0);
  EXPECT_EQ(parse_decimal("0.0000000000000000001", d), MoneyStatus::too_many_decimals);  // 19 places
  EXPECT_EQ(parse_decimal("9223372036854775808", d), MoneyStatus::overflow);
  EXPECT_EQ(parse_decimal("1e3", d), MoneyStatus::syntax);
}

TEST(Money, ProductsAreExactIn128BitsAndRoundedHalfEvenOnce) {
  std::int64_t v = 0;
  // 1.5 BTC × 60000.25 USD = 90000.375 USD -> 90000.38 (tie, 37.5 cents -> even 38).
  ASSERT_EQ(multiply_money(150000000, 8, Decimal{6000025, 2}, 2, v), MoneyStatus::ok);
  EXPECT_EQ(v, 9000038);
  // 0.5 × 0.25 = 0.125 -> 0.12 (tie -> even).
  ASSERT_EQ(multiply_money(50, 2, Decimal{25, 2}, 2, v), MoneyStatus::ok);
  EXPECT_EQ(v, 12);
  // 0.5 × 0.35 = 0.175 -> 0.18.
  ASSERT_EQ(multiply_money(50, 2, Decimal{35, 2}, 2, v), MoneyStatus::ok);
  EXPECT_EQ(v, 18);
  // 92233720368.54775807 × 0.00000001 = 922.3372036854775807 -> 922.33720369 at scale 8.
  ASSERT_EQ(multiply_money(kMax, 8, Decimal{1, 8}, 8, v), MoneyStatus::ok);
  EXPECT_EQ(v, 92233720369);
  // A product far beyond int64 (~8.5e37) divided back inside it, exactly.
  ASSERT_EQ(multiply_money(kMax, 18, Decimal{kMax, 18}, 0, v), MoneyStatus::ok);
  EXPECT_EQ(v, 85);  // 9.223372036854775807² = 85.07...
  // Scale up (quote has more decimals than base × price).
  ASSERT_EQ(multiply_money(3, 0, Decimal{2, 0}, 18, v), MoneyStatus::ok);
  EXPECT_EQ(v, 6000000000000000000);
  // The same in exact mode is rejected when digits would be lost.
  EXPECT_EQ(multiply_money(50, 2, Decimal{25, 2}, 2, v, Rounding::exact), MoneyStatus::too_many_decimals);
  // Overflow, not wrap.
  EXPECT_EQ(multiply_money(kMax, 0, Decimal{2, 0}, 0, v), MoneyStatus::overflow);
  EXPECT_EQ(multiply_money(kMax, 0, Decimal{kMax, 0}, 0, v), MoneyStatus::overflow);
  EXPECT_EQ(multiply_money(10, 0, Decimal{1, 0}, 18, v), MoneyStatus::overflow);
  EXPECT_EQ(multiply_money(4, 0, Decimal{1, 0}, 18, v), MoneyStatus::ok);
}

TEST(Money, DivideRoundedHandlesSignsAndTies) {
  std::int64_t v = 0;
  ASSERT_EQ(divide_rounded(-25, 10, Rounding::half_even, v), MoneyStatus::ok);
  EXPECT_EQ(v, -2);
  ASSERT_EQ(divide_rounded(-35, 10, Rounding::half_even, v), MoneyStatus::ok);
  EXPECT_EQ(v, -4);
  ASSERT_EQ(divide_rounded(-21, 10, Rounding::ceiling, v), MoneyStatus::ok);
  EXPECT_EQ(v, -2);
  ASSERT_EQ(divide_rounded(-21, 10, Rounding::floor, v), MoneyStatus::ok);
  EXPECT_EQ(v, -3);
  ASSERT_EQ(divide_rounded(21, 10, Rounding::ceiling, v), MoneyStatus::ok);
  EXPECT_EQ(v, 3);
  EXPECT_EQ(divide_rounded(static_cast<__int128>(kMax) * 4, 2, Rounding::half_even, v), MoneyStatus::overflow);
}

TEST(Money, MarginCallsRoundUpToTheMinorUnit) {
  std::int64_t v = 0;
  ASSERT_EQ(margin_call_minor_units(1.5, 8, v), MoneyStatus::ok);
  EXPECT_EQ(v, 150000000);  // exactly, not 150000001
  ASSERT_EQ(margin_call_minor_units(0.1, 2, v), MoneyStatus::ok);
  EXPECT_EQ(v, 10);  // the shortest text of 0.1 is "0.1": no spurious extra cent
  ASSERT_EQ(margin_call_minor_units(100.001, 2, v), MoneyStatus::ok);
  EXPECT_EQ(v, 10001);
  ASSERT_EQ(margin_call_minor_units(1234.5678912, 6, v), MoneyStatus::ok);
  EXPECT_EQ(v, 1234567892);
  ASSERT_EQ(margin_call_minor_units(1e-300, 8, v), MoneyStatus::ok);
  EXPECT_EQ(v, 1);
  ASSERT_EQ(margin_call_minor_units(-0.5, 2, v), MoneyStatus::ok);
  EXPECT_EQ(v, -50);
  EXPECT_EQ(margin_call_minor_units(std::numeric_limits<double>::quiet_NaN(), 2, v), MoneyStatus::overflow);
  EXPECT_EQ(margin_call_minor_units(std::numeric_limits<double>::infinity(), 2, v), MoneyStatus::overflow);
  EXPECT_EQ(margin_call_minor_units(1e300, 2, v), MoneyStatus::overflow);
  EXPECT_EQ(margin_call_minor_units(1e17, 2, v), MoneyStatus::overflow);
}

TEST(Money, CheckedArithmetic) {
  std::int64_t v = 0;
  EXPECT_TRUE(checked_add(kMax - 1, 1, v));
  EXPECT_EQ(v, kMax);
  EXPECT_FALSE(checked_add(kMax, 1, v));
  EXPECT_FALSE(checked_sub(kMin, 1, v));
  EXPECT_TRUE(checked_sub(0, kMax, v));
  EXPECT_EQ(v, -kMax);
}

}  // namespace
}  // namespace marginet
