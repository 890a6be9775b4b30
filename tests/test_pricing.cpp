// Black-76 / BSM pricing and greeks (models/pricing.hpp): Haug's textbook values, put–call
// parity, finite-difference checks of every greek, the T → 0 and σ → 0 limits, the accurate
// normal distribution in the tails, inverse conversions and the non-option instruments.

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "models/pricing.hpp"
#include "tests/backends.hpp"

namespace marginet {
namespace {

using testing::near_relative;
constexpr auto C = OptionType::call;
constexpr auto P = OptionType::put;

bool finite(const Greeks& g) {
  for (double v : {g.price, g.delta, g.gamma, g.vega, g.theta, g.rho, g.vanna, g.volga})
    if (!std::isfinite(v)) return false;
  return true;
}

// E. G. Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed., chapters 1–2.
TEST(HaugValues, BlackScholesCall) {
  // S=60, K=65, T=0.25, r=0.08, σ=0.30, no dividend: call 2.1334.
  EXPECT_NEAR(bsm_greeks(C, 60, 65, 0.25, 0.30, 0.08, 0.0).price, 2.1334, 5e-5);
}
TEST(HaugValues, MertonPutWithDividendYield) {
  // S=100, K=95, T=0.5, r=0.10, q=0.05, σ=0.20: put 2.4648.
  EXPECT_NEAR(bsm_greeks(P, 100, 95, 0.5, 0.20, 0.10, 0.05).price, 2.4648, 5e-5);
}
TEST(HaugValues, Black76FuturesOption) {
  // F=19, K=19, T=0.75, r=0.10, σ=0.28: call = put = 1.7011.
  EXPECT_NEAR(black76_greeks(C, 19, 19, 0.75, 0.28, 0.10).price, 1.7011, 5e-5);
  EXPECT_NEAR(black76_greeks(P, 19, 19, 0.75, 0.28, 0.10).price, 1.7011, 5e-5);
}
TEST(HaugValues, DeltaOfFuturesOption) {
  // F=105, K=100, T=0.5, r=0.10, σ=0.36 (b = 0): call delta 0.5946, put delta −0.3566.
  EXPECT_NEAR(black76_greeks(C, 105, 100, 0.5, 0.36, 0.10).delta, 0.5946, 5e-5);
  EXPECT_NEAR(black76_greeks(P, 105, 100, 0.5, 0.36, 0.10).delta, -0.3566, 5e-5);
}
TEST(HaugValues, Gamma) {
  // S=55, K=60, T=0.75, r=b=0.10, σ=0.30: gamma 0.0278.
  EXPECT_NEAR(bsm_greeks(C, 55, 60, 0.75, 0.30, 0.10, 0.0).gamma, 0.0278, 5e-5);
}
TEST(HullValues, BlackScholesCallAndPut) {
  // J. Hull, "Options, Futures, and Other Derivatives": S=42, K=40, r=0.10, σ=0.20, T=0.5:
  // call 4.76, put 0.81.
  EXPECT_NEAR(bsm_greeks(C, 42, 40, 0.5, 0.20, 0.10, 0.0).price, 4.76, 5e-3);
  EXPECT_NEAR(bsm_greeks(P, 42, 40, 0.5, 0.20, 0.10, 0.0).price, 0.81, 5e-3);
}
TEST(HaugValues, Rho) {
  // S=72, K=75, T=1, r=b=0.09, σ=0.19: call rho 38.7325.
  EXPECT_NEAR(bsm_greeks(C, 72, 75, 1.0, 0.19, 0.09, 0.0).rho, 38.7325, 5e-4);
}
TEST(HaugValues, Theta) {
  // S=430, K=405, T=0.0833, r=0.07, b=0.02 (q = 0.05), σ=0.20: put theta −31.1924 per year.
  EXPECT_NEAR(bsm_greeks(P, 430, 405, 0.0833, 0.20, 0.07, 0.05).theta, -31.1924, 5e-4);
}

TEST(PutCallParity, Black76AndBsmOverRandomInputs) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < 2000; ++i) {
    const double F = 100, K = 100 * std::exp(std::log(5.0) * (2 * u(rng) - 1));
    const double T = std::exp(std::log(1e-4) + u(rng) * std::log(5e4));
    const double sigma = std::exp(std::log(0.01) + u(rng) * std::log(300.0));
    const double r = -0.02 + 0.22 * u(rng), q = -0.02 + 0.1 * u(rng);
    const Greeks c = black76_greeks(C, F, K, T, sigma, r), p = black76_greeks(P, F, K, T, sigma, r);
    const double D = std::exp(-r * T);
    // C − P = D(F − K); d(C − P)/dF = D; every second-order greek agrees.
    EXPECT_TRUE(near_relative(c.price - p.price, D * (F - K), 1e-12, 1e-12 * F)) << i;
    EXPECT_TRUE(near_relative(c.delta - p.delta, D, 1e-12, 1e-15)) << i;
    EXPECT_TRUE(near_relative(c.gamma, p.gamma, 1e-13)) << i;
    EXPECT_TRUE(near_relative(c.vega, p.vega, 1e-13)) << i;
    EXPECT_TRUE(near_relative(c.vanna, p.vanna, 1e-13)) << i;
    EXPECT_TRUE(near_relative(c.volga, p.volga, 1e-13)) << i;
    EXPECT_TRUE(near_relative(c.rho - p.rho, -T * D * (F - K), 1e-11, 1e-12 * F * T)) << i;
    const double S = 100;
    const Greeks cs = bsm_greeks(C, S, K, T, sigma, r, q), ps = bsm_greeks(P, S, K, T, sigma, r, q);
    EXPECT_TRUE(near_relative(cs.price - ps.price, S * std::exp(-q * T) - K * D, 1e-11, 1e-11 * S)) << i;
    EXPECT_TRUE(near_relative(cs.delta - ps.delta, std::exp(-q * T), 1e-12, 1e-15)) << i;
  }
}

// Five-point central differences f'(x) ≈ (−f(x+2h) + 8f(x+h) − 8f(x−h) + f(x−2h)) / 12h.
template <class F>
double derivative(F&& f, double x, double h) {
  return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h);
}

// Every analytic greek against differences of the analytic value (or of a first-order greek).
TEST(FiniteDifferences, EveryGreekOfBlack76) {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < 500; ++i) {
    const OptionType type = i % 2 ? C : P;
    const double F = 100, K = 100 * std::exp(0.8 * (2 * u(rng) - 1));
    const double T = 0.02 + 3 * u(rng), sigma = 0.05 + 1.5 * u(rng), r = -0.02 + 0.2 * u(rng);
    const double s = sigma * std::sqrt(T);
    const Greeks g = black76_greeks(type, F, K, T, sigma, r);
    auto at = [&](double f, double t, double v, double rr) { return black76_greeks(type, f, K, t, v, rr); };
    const double hF = 1e-3 * F * s, hs = 1e-3 * sigma, hT = 1e-3 * T, hr = 1e-3;
    // Absolute floors at 1e-8 of each greek's natural size.
    const double e = 1e-8;
    EXPECT_TRUE(near_relative(g.delta, derivative([&](double x) { return at(x, T, sigma, r).price; }, F, hF), 1e-7, e)) << i;
    EXPECT_TRUE(near_relative(g.gamma, derivative([&](double x) { return at(x, T, sigma, r).delta; }, F, hF), 1e-7, e / (F * s))) << i;
    EXPECT_TRUE(near_relative(g.vega, derivative([&](double x) { return at(F, T, x, r).price; }, sigma, hs), 1e-7, e * F * std::sqrt(T))) << i;
    EXPECT_TRUE(near_relative(g.vanna, derivative([&](double x) { return at(F, T, x, r).delta; }, sigma, hs), 1e-7, e / sigma)) << i;
    EXPECT_TRUE(near_relative(g.vanna, derivative([&](double x) { return at(x, T, sigma, r).vega; }, F, hF), 1e-7, e / sigma)) << i;
    EXPECT_TRUE(near_relative(g.volga, derivative([&](double x) { return at(F, T, x, r).vega; }, sigma, hs), 1e-7, e * F * std::sqrt(T) / sigma)) << i;
    EXPECT_TRUE(near_relative(g.theta, -derivative([&](double x) { return at(F, x, sigma, r).price; }, T, hT), 1e-7, e * F * (sigma / std::sqrt(T) + std::fabs(r)))) << i;
    EXPECT_TRUE(near_relative(g.rho, derivative([&](double x) { return at(F, T, sigma, x).price; }, r, hr), 1e-7, e * F * T)) << i;
  }
}

TEST(FiniteDifferences, BsmSpotGreeksAndDividendRho) {
  const double S = 100, K = 110, T = 0.7, sigma = 0.45, r = 0.05, q = 0.02;
  for (OptionType type : {C, P}) {
    const Greeks g = bsm_greeks(type, S, K, T, sigma, r, q);
    const double h = 1e-3, hr = 1e-5, hT = 1e-5;
    auto price = [&](double s, double t, double rr, double qq) { return bsm_price(type, s, K, t, sigma, rr, qq); };
    EXPECT_NEAR(g.delta, (price(S + h, T, r, q) - price(S - h, T, r, q)) / (2 * h), 1e-7);
    EXPECT_NEAR(g.gamma, (bsm_greeks(type, S + h, K, T, sigma, r, q).delta -
                          bsm_greeks(type, S - h, K, T, sigma, r, q).delta) / (2 * h), 1e-8);
    EXPECT_NEAR(g.theta, -(price(S, T + hT, r, q) - price(S, T - hT, r, q)) / (2 * hT), 1e-5);
    EXPECT_NEAR(g.rho, (price(S, T, r + hr, q) - price(S, T, r - hr, q)) / (2 * hr), 1e-5);
    EXPECT_NEAR(bsm_dividend_rho(type, S, K, T, sigma, r, q),
                (price(S, T, r, q + hr) - price(S, T, r, q - hr)) / (2 * hr), 1e-5);
    EXPECT_NEAR(g.vanna, (bsm_greeks(type, S + h, K, T, sigma, r, q).vega -
                          bsm_greeks(type, S - h, K, T, sigma, r, q).vega) / (2 * h), 1e-6);
  }
}

TEST(Limits, ExpiryAndZeroVolatilityGiveIntrinsicValueNeverNaN) {
  for (double T : {0.0, 1e-300, 1e-12}) {
    for (double sigma : {0.0, 1e-300, 0.5}) {
      for (double K : {90.0, 100.0, 110.0}) {
        for (OptionType type : {C, P}) {
          const Greeks g = black76_greeks(type, 100, K, T, sigma, 0.05);
          ASSERT_TRUE(finite(g)) << T << " " << sigma << " " << K;
          const double intrinsic = type == C ? std::max(100 - K, 0.0) : std::max(K - 100, 0.0);
          // within the time value F·σ√T/√2π of the at-the-money option
          EXPECT_NEAR(g.price, std::exp(-0.05 * T) * intrinsic, 0.4 * 100 * sigma * std::sqrt(T) + 1e-13);
        }
      }
    }
  }
  // At exactly σ√T = 0: digital delta (half at the money), zero gamma and volga.
  const Greeks itm = black76_greeks(C, 100, 90, 0.0, 0.3, 0.05);
  EXPECT_EQ(itm.price, 10.0);
  EXPECT_EQ(itm.delta, 1.0);
  EXPECT_EQ(itm.gamma, 0.0);
  EXPECT_EQ(itm.vega, 0.0);
  const Greeks atm = black76_greeks(P, 100, 100, 1.0, 0.0, 0.0);
  EXPECT_EQ(atm.price, 0.0);
  EXPECT_EQ(atm.delta, -0.5);
  // σ → 0 at the money with T > 0: vega → F√T/√2π and vanna → √T/(2√2π), the right limits.
  const Greeks near0 = black76_greeks(C, 100, 100, 1.0, 1e-9, 0.0);
  EXPECT_TRUE(near_relative(atm.vega, near0.vega, 1e-6));
  EXPECT_TRUE(near_relative(atm.vanna, near0.vanna, 1e-6));
  const Greeks otm = black76_greeks(C, 100, 200, 1e-6, 1e-3, 0.0);  // far from the money
  EXPECT_TRUE(finite(otm));
  EXPECT_EQ(otm.price, 0.0);
  EXPECT_EQ(otm.gamma, 0.0);
}

TEST(Limits, InvalidInputsGiveNaN) {
  EXPECT_TRUE(std::isnan(black76_price(C, -1, 100, 1, 0.2, 0)));
  EXPECT_TRUE(std::isnan(black76_price(C, 100, 0, 1, 0.2, 0)));
  EXPECT_TRUE(std::isnan(black76_price(C, 100, 100, -1, 0.2, 0)));
  EXPECT_TRUE(std::isnan(black76_greeks(C, 100, 100, 1, -0.2, 0).delta));
  EXPECT_TRUE(std::isnan(black76_greeks(C, NAN, 100, 1, 0.2, 0).price));
}

TEST(Accuracy, DeepOutOfTheMoneyPricesKeepTheirDigits) {
  // x = ln(F/K) = −1, s = 0.1 (a 10 % vol option struck 2.7× the forward, one year): the
  // normalised value b = e^{x/2}Φ(x/s+s/2) − e^{−x/2}Φ(x/s−s/2) = 7.4653976115685746e-26 (mpmath,
  // 50 digits); V = √(FK)·b.
  const double F = 1.0, K = std::exp(1.0);
  const double v = black76_price(C, F, K, 1.0, 0.1, 0.0);
  EXPECT_TRUE(near_relative(v, std::sqrt(F * K) * 7.4653976115685746e-26, 1e-13)) << v;
  // The direct formula F·Φ(d1) − K·Φ(d2) loses every digit here; ours agrees with the normalised one.
  EXPECT_TRUE(near_relative(black76_greeks(C, F, K, 1.0, 0.1, 0.0).price, v, 1e-15));
}

TEST(Accuracy, NormalDistributionTails) {
  // Φ(−10) = 7.619853024160526e-24, Φ(−30) = 4.906713927148187e-198 (reference values).
  EXPECT_TRUE(near_relative(normal_cdf(-10), 7.619853024160526e-24, 1e-14));
  EXPECT_TRUE(near_relative(normal_cdf(-30), 4.906713927148187e-198, 1e-13));
  EXPECT_TRUE(near_relative(normal_cdf(1.5) + normal_cdf(-1.5), 1.0, 1e-16));
  EXPECT_EQ(normal_cdf(0), 0.5);
}

TEST(Inverse, CoinPriceAndDeribitDelta) {
  const Greeks g = black76_greeks(C, 60000, 65000, 0.1, 0.6, 0.0);
  const double coin = inverse_price_coin(g.price, 60000);
  EXPECT_DOUBLE_EQ(coin * 60000, g.price);
  EXPECT_DOUBLE_EQ(inverse_delta_coin(g.delta, coin), g.delta - coin);
  // delta_coin = F·∂(V/F)/∂F.
  const double h = 1.0;
  const double dcoin = 60000 * (black76_price(C, 60000 + h, 65000, 0.1, 0.6, 0) / (60000 + h) -
                                black76_price(C, 60000 - h, 65000, 0.1, 0.6, 0) / (60000 - h)) / (2 * h);
  EXPECT_NEAR(inverse_delta_coin(g.delta, coin), dcoin, 1e-8);
}

TEST(Inverse, FuturePnlInCoinAndLinearPnl) {
  EXPECT_DOUBLE_EQ(inverse_future_pnl_coin(2.0, 0.25), 2.0 * 0.25 / 1.25);
  EXPECT_DOUBLE_EQ(inverse_future_pnl_coin(2.0, -0.5), -2.0);
  // Inverse future bought at F with USD notional N: P&L in coin N(1/F − 1/F'), q = N/F.
  const double F = 50000, N = 100000, Fp = 56000;
  EXPECT_NEAR(inverse_future_pnl_coin(N / F, Fp / F - 1), N * (1 / F - 1 / Fp), 1e-15);
  EXPECT_DOUBLE_EQ(linear_future_pnl(-3, 0.1, 250), -75.0);
}

TEST(InstrumentRisk, OptionsFuturesPerpetualsSpot) {
  const Greeks g = black76_greeks(P, 3000, 2800, 0.2, 0.7, 0.01);
  const InstrumentRisk inv = instrument_risk(InstrumentKind::option, P, Settlement::inverse, 3000, 2800, 0.2, 0.7, 0.01);
  EXPECT_EQ(inv.price, g.price);
  EXPECT_EQ(inv.price_coin, g.price / 3000);
  EXPECT_EQ(inv.delta_coin, g.delta - g.price / 3000);
  EXPECT_EQ(inv.vanna, g.vanna);
  const InstrumentRisk lin = instrument_risk(InstrumentKind::option, P, Settlement::linear, 3000, 2800, 0.2, 0.7, 0.01);
  EXPECT_EQ(lin.delta_coin, g.delta);
  for (auto kind : {InstrumentKind::future, InstrumentKind::perpetual}) {
    for (auto st : {Settlement::linear, Settlement::inverse}) {
      const InstrumentRisk f = instrument_risk(kind, C, st, 3010, 0, 0.1, 0, 0.01);
      EXPECT_EQ(f.price, 3010);
      EXPECT_EQ(f.delta, 1.0);
      EXPECT_EQ(f.delta_coin, 1.0);
      EXPECT_EQ(f.gamma, 0.0);
      EXPECT_EQ(f.vega, 0.0);
    }
  }
  EXPECT_EQ(instrument_risk(InstrumentKind::spot, C, Settlement::inverse, 3000, 0, 0, 0, 0).delta_coin, 0.0);
  EXPECT_EQ(instrument_risk(InstrumentKind::spot, C, Settlement::linear, 3000, 0, 0, 0, 0).delta_coin, 1.0);
}

}  // namespace
}  // namespace marginet
