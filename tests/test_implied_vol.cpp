// Implied volatility (models/implied_vol.hpp): round trips to 1e-12 where vega is not negligible,
// over the whole domain (deep in/out of the money, minutes to expiry, near the arbitrage bounds),
// and clear errors where no volatility fits.

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "models/errors.hpp"
#include "models/implied_vol.hpp"
#include "models/pricing.hpp"

namespace marginet {
namespace {

constexpr auto C = OptionType::call;
constexpr auto P = OptionType::put;

struct Stats {
  int cases = 0, conditioned = 0, max_iterations = 0;
  double worst = 0;
};

// Price with σ, invert, compare. Where vega is not negligible — price/(σ·vega) < 1000, so the
// price determines σ to ~1e-13, and the price is a normal double well above the underflow
// threshold (below ~1e-290 it keeps only a few significant bits) — σ must come back to 1e-12
// relative; elsewhere the recovered σ must reprice the option to within rounding.
void round_trip(OptionType type, double F, double K, double T, double sigma, double r, Stats& st) {
  const Greeks g = black76_greeks(type, F, K, T, sigma, r);
  const double D = std::exp(-r * T);
  const double intrinsic = D * std::max(type == C ? F - K : K - F, 0.0);
  if (!(g.price > intrinsic)) return;  // no time value left in double precision
  if (!(g.price < D * (type == C ? F : K))) return;  // rounds to the upper bound: nothing fits
  ++st.cases;
  const ImpliedVol iv = implied_vol_black76(type, g.price, F, K, T, r);
  ASSERT_EQ(iv.status, IvStatus::ok) << F << " " << K << " " << T << " " << sigma;
  st.max_iterations = std::max(st.max_iterations, iv.iterations);
  const double cond = g.price / (sigma * g.vega);
  if (cond < 1e3 && g.price > 1e-250 * F) {
    ++st.conditioned;
    const double rel = std::fabs(iv.sigma - sigma) / sigma;
    st.worst = std::max(st.worst, rel);
    EXPECT_LE(rel, 1e-12) << (type == C ? "call" : "put") << " F=" << F << " K=" << K
                          << " T=" << T << " sigma=" << sigma << " got " << iv.sigma;
  } else {
    const double repriced = black76_price(type, F, K, T, iv.sigma, r);
    EXPECT_NEAR(repriced, g.price, 1e-14 * std::max(F, K)) << F << " " << K << " " << T << " " << sigma;
  }
}

TEST(ImpliedVol, RoundTripsOverTheWholeDomain) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0, 1);
  Stats st;
  const double minute = 60.0 / (365.0 * 86400.0);
  for (int i = 0; i < 20000; ++i) {
    const OptionType type = u(rng) < 0.5 ? C : P;
    const double F = 100, K = F / std::exp(std::log(0.2) + u(rng) * std::log(25.0));
    const double T = std::exp(std::log(minute) + u(rng) * std::log(5.0 / minute));  // 1 min .. 5 y
    const double sigma = std::exp(std::log(0.01) + u(rng) * std::log(500.0));       // 1 % .. 500 %
    const double r = -0.02 + 0.22 * u(rng);
    round_trip(type, F, K, T, sigma, r, st);
  }
  EXPECT_GT(st.conditioned, 5000);
  EXPECT_LE(st.max_iterations, 12);
  RecordProperty("worst_relative_error", std::to_string(st.worst));
}

TEST(ImpliedVol, MinutesToExpiryAndTinyVolatility) {
  Stats st;
  const double minute = 60.0 / (365.0 * 86400.0);
  for (double T : {minute, 5 * minute, 60 * minute})
    for (double sigma : {0.005, 0.01, 0.05, 0.3, 1.0, 3.0})
      for (double K : {99.0, 99.9, 99.99, 100.0, 100.01, 100.1, 101.0})
        for (OptionType type : {C, P}) round_trip(type, 100, K, T, sigma, 0.05, st);
  EXPECT_GT(st.conditioned, 100);
}

TEST(ImpliedVol, DeepInAndOutOfTheMoneyAndHugeVolatility) {
  Stats st;
  for (double m : {0.05, 0.2, 0.5, 2.0, 5.0, 20.0})
    for (double sigma : {0.05, 0.2, 1.0, 3.0, 8.0})
      for (double T : {0.01, 0.25, 1.0, 5.0})
        for (OptionType type : {C, P}) round_trip(type, 100, 100 / m, T, sigma, 0.02, st);
  EXPECT_GT(st.conditioned, 100);
}

TEST(ImpliedVol, NearTheUpperBound) {
  // A call worth almost the discounted forward: σ√T large; b_max − β carries the digits. The
  // price itself keeps only ε·F/(F − price) relative digits of that complement, which bounds
  // how well σ is determined: at σ√T = 15 the complement is 6e-12 of F.
  for (double s : {6.0, 10.0, 15.0}) {
    const double T = 1.0, sigma = s;
    const double price = black76_price(C, 100, 100, T, sigma, 0.0);
    ASSERT_LT(price, 100.0);
    const ImpliedVol iv = implied_vol_black76(C, price, 100, 100, T, 0.0);
    ASSERT_EQ(iv.status, IvStatus::ok);
    EXPECT_NEAR(black76_price(C, 100, 100, T, iv.sigma, 0.0), price, 2e-14 * 100) << s;
    if (s <= 10) {
      EXPECT_NEAR(iv.sigma, sigma, 1e-9 * sigma) << s;
    }
  }
}

TEST(ImpliedVol, ExactlyIntrinsicIsZeroVolatility) {
  const double D = std::exp(-0.01 * 0.5);
  const ImpliedVol iv = implied_vol_black76(C, D * 10.0, 110, 100, 0.5, 0.01);
  ASSERT_EQ(iv.status, IvStatus::ok);
  EXPECT_EQ(iv.sigma, 0.0);
}

TEST(ImpliedVol, NoVolatilityFitsBelowIntrinsicOrAboveTheBound) {
  EXPECT_EQ(implied_vol_black76(C, 9.0, 110, 100, 0.5, 0.0).status, IvStatus::below_intrinsic);
  EXPECT_EQ(implied_vol_black76(P, 9.0, 90, 100, 0.5, 0.0).status, IvStatus::below_intrinsic);
  EXPECT_EQ(implied_vol_black76(C, 110.0, 110, 100, 0.5, 0.0).status, IvStatus::above_maximum);
  EXPECT_EQ(implied_vol_black76(P, 100.0, 110, 100, 0.5, 0.0).status, IvStatus::above_maximum);
  EXPECT_EQ(implied_vol_black76(C, -1.0, 100, 100, 0.5, 0.0).status, IvStatus::invalid_input);
  EXPECT_EQ(implied_vol_black76(C, 1.0, 0, 100, 0.5, 0.0).status, IvStatus::invalid_input);
  EXPECT_EQ(implied_vol_black76(C, NAN, 100, 100, 0.5, 0.0).status, IvStatus::invalid_input);
  // Expired with time value left: nothing fits.
  EXPECT_EQ(implied_vol_black76(C, 1.0, 100, 100, 0.0, 0.0).status, IvStatus::invalid_input);
  EXPECT_TRUE(std::isnan(implied_vol_black76(C, 9.0, 110, 100, 0.5, 0.0).sigma));
}

TEST(ImpliedVol, ThrowingWrapperNamesTheReason) {
  EXPECT_NEAR(implied_vol_black76_or_throw(C, black76_price(C, 100, 120, 0.3, 0.45, 0.0), 100, 120, 0.3, 0.0),
              0.45, 1e-14);
  try {
    implied_vol_black76_or_throw(P, 0.5, 90, 100, 0.5, 0.0);
    FAIL() << "expected input_error";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("no volatility fits"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("below the discounted intrinsic"), std::string::npos) << e.what();
  }
}

TEST(ImpliedVol, SpotBsmWithCarry) {
  const double price = bsm_price(P, 95, 100, 0.75, 0.35, 0.04, 0.01);
  const ImpliedVol iv = implied_vol_bsm(P, price, 95, 100, 0.75, 0.04, 0.01);
  ASSERT_EQ(iv.status, IvStatus::ok);
  EXPECT_NEAR(iv.sigma, 0.35, 1e-14);
}

}  // namespace
}  // namespace marginet
