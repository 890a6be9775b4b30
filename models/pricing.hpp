#pragma once
// Option pricing and greeks (SPEC §4) as MARGINET_HD functions: the kernels and the host
// reference paths run the same maths.
//
// Conventions (docs/pricing.md):
//   Black-76 on the forward F with discount D = e^{-rT}; spot BSM with carry q (F = S e^{(r-q)T}).
//   price   V in the quote currency per unit of underlying
//   delta   dV/dF (Black-76) or dV/dS (BSM)
//   gamma   d²V/dF² (or d²V/dS²)
//   vega    dV/dσ per 1.00 of volatility (not per vol point)
//   theta   -dV/dT per year, calendar time passing with F fixed (Black-76) or S fixed (BSM)
//   rho     dV/dr with F fixed (Black-76: -T·V) or with S and q fixed (BSM)
//   vanna   d²V/dF dσ (or d²V/dS dσ);  volga  d²V/dσ²
// Limits: σ√T = 0 (expiry or zero volatility) gives the intrinsic value D·max(ω(F−K), 0), the
// digital delta (half at F = K), zero gamma, vanna and volga except the finite one-sided limits
// at F = K; never NaN for finite valid inputs. Invalid inputs (F ≤ 0, K ≤ 0, σ < 0, T < 0, NaN)
// give NaN.

#include <cmath>
#include <cstdint>

#include "models/hd.hpp"
#include "models/instrument.hpp"

namespace marginet {

struct Greeks {
  double price, delta, gamma, vega, theta, rho, vanna, volga;
};

namespace pricing_detail {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kInvSqrtPi = 0.56418958354775628695;
constexpr double kSqrtHalfPi = 1.25331413731550025121;

/// e^{-z²/2} without the rounding error of z² (z split into a 16-bit head and a tail).
MARGINET_HD double exp_neg_half_square(double z) {
  z = fabs(z);
  if (z < 2.5) return exp(-0.5 * z * z);     // rounding of z² costs ≤ 3 ulp here
  if (!(z < 40.0)) return z == z ? 0.0 : z;  // underflows; NaN stays NaN
  const double zh = floor(z * 1024.0) / 1024.0;
  const double zl = z - zh;
  return exp(-0.5 * zh * zh) * exp(-0.5 * zl * (z + zh));
}

/// e^{x²} for 0 ≤ x < 26.6, without the rounding error of x².
MARGINET_HD double exp_square(double x) {
  if (x < 2.0) return exp(x * x);  // rounding of x² costs ≤ 4 ulp here
  const double xh = floor(x * 1024.0) / 1024.0;
  const double xl = x - xh;
  return exp(xh * xh) * exp(xl * (x + xh));
}

/// Scaled complementary error function e^{x²}·erfc(x) for x ≥ 0.
MARGINET_HD double erfcx_nonnegative(double x) {
  if (x < 26.0) return exp_square(x) * erfc(x);
  // Asymptotic series 1/(x√π) Σ (−1)^n (2n−1)!! / (2x²)^n: at x ≥ 26 the terms fall by ≥ 1/90.
  const double w = 1.0 / (2.0 * x * x);
  double term = 1.0, sum = 1.0;
  for (int n = 1; n <= 10; ++n) {
    term *= -(2.0 * n - 1.0) * w;
    sum += term;
  }
  return kInvSqrtPi / x * sum;
}

/// e^{x²}·erfc(x) for any x (overflows to +inf below about −26.6).
MARGINET_HD double erfcx(double x) {
  if (x >= 0) return erfcx_nonnegative(x);
  if (x < -26.6) return HUGE_VAL;
  return 2.0 * exp_square(-x) - erfcx_nonnegative(-x);
}

}  // namespace pricing_detail

/// Standard normal density.
MARGINET_HD double normal_pdf(double z) { return pricing_detail::kInvSqrt2Pi * exp(-0.5 * z * z); }

/// Standard normal distribution function, accurate to a few ulp relative in both tails.
/// Φ(z) = erfc(a)/2 with a = −z/√2; in the left tail the rounding δ of a (exact by Dekker's
/// product) would cost 2a²ε relative, so it is corrected: erfc(a + δ) ≈ erfc(a)·(1 − 2aδ(1 + 1/2a²)).
MARGINET_HD double normal_cdf(double z) {
  using namespace pricing_detail;
  if (z >= -1.0) return 0.5 * erfc(-z * kInvSqrt2);
  if (z < -38.5) return 0.0;  // Φ(−38.5) < 1e-324
  constexpr double c_hi = kInvSqrt2;
  constexpr double c_lo = -4.8336466567264567e-17;  // 1/√2 − c_hi
  const double m = -z;
  const double a = m * c_hi;
  // Dekker: m·c_hi = a + e exactly (split into 26-bit halves).
  constexpr double split = 134217729.0;  // 2^27 + 1
  const double mt = split * m, mh = mt - (mt - m), ml = m - mh;
  const double ct = split * c_hi, ch = ct - (ct - c_hi), cl = c_hi - ch;
  const double e = ((mh * ch - a) + mh * cl + ml * ch) + ml * cl;
  const double delta = e + m * c_lo;
  return 0.5 * erfc(a) * (1.0 - 2.0 * a * delta * (1.0 + 0.5 / (a * a)));
}

namespace pricing_detail {

/// Y(h) = Φ(h)/φ(h) for h ≤ 0 (Mills ratio of the left tail).
MARGINET_HD double mills_ratio(double h) { return kSqrtHalfPi * erfcx_nonnegative(-h * kInvSqrt2); }

/// Normalised Black value of the out-of-the-money option, x = ln(F/K) ≤ 0, s = σ√T ≥ 0:
///   b(x, s) = e^{x/2} Φ(x/s + s/2) − e^{−x/2} Φ(x/s − s/2)
/// computed without cancellation in every region (after Jäckel, "Let's Be Rational"):
///   b = (1/√2π) e^{−(h²+t²)/2} [Y(h+t) − Y(h−t)],  h = x/s, t = s/2, Y = Φ/φ,
/// for small t as the odd Taylor series 2 Σ Y⁽ᵏ⁾(h) tᵏ/k! (Y' = 1 + hY, Y⁽ᵏ⁺¹⁾ = hY⁽ᵏ⁾ + kY⁽ᵏ⁻¹⁾;
/// forward recurrence near h = 0, Miller's backward recurrence below h = −2 where Y⁽ᵏ⁾ is the
/// minimal solution), else with erfcx when h + t ≤ 0, else with Φ directly.
MARGINET_HD double normalised_black_otm(double x, double s) {
  if (!(s > 0)) return 0.0;
  if (x == 0) return erf(0.5 * s * kInvSqrt2);
  const double h = x / s, t = 0.5 * s;
  if (h < -38.7) return 0.0;  // e^{−h²/2} underflows: b < 1e-325
  if (t < 0.21) {
    constexpr int kMaxTerms = 19;  // odd terms up to t^19/19!: ample for t < 0.21
    double y[kMaxTerms + 1];
    const double mills = mills_ratio(h);
    int K = kMaxTerms;
    if (h >= -2.0) {
      y[0] = mills;
      y[1] = 1.0 + h * y[0];
      for (int k = 1; k < K; ++k) y[k + 1] = h * y[k] + k * y[k - 1];
    } else {
      // Terms fall by about (t/h)² each: stop once (t/h)^(K−1) < 1e-17.
      const double per_term = log(-h / t);  // ≥ ln(2/0.21)
      K = 1 + 2 * static_cast<int>(ceil(0.5 * 39.2 / per_term));
      if (K > kMaxTerms) K = kMaxTerms;
      const int n = K + 12 + static_cast<int>(350.0 / (h * h));
      double above = 0.0, here = 1e-30;  // y_{n+1}, y_n of an unnormalised minimal solution
      for (int k = n; k >= 1; --k) {
        const double inv_k = 1.0 / k;  // off the recurrence's critical path
        const double below = (above - h * here) * inv_k;  // y_{k−1} = (y_{k+1} − h y_k)/k
        if (k <= K) y[k] = here;
        above = here;
        here = below;
      }
      y[0] = here;
      const double scale = mills / y[0];
      for (int k = 0; k <= K; ++k) y[k] *= scale;
    }
    double sum = 0.0, tk = t;  // tk = t^k / k!
    for (int k = 1; k <= K; k += 2) {
      sum += y[k] * tk;
      tk *= t * t / ((k + 1.0) * (k + 2.0));
    }
    return 2.0 * kInvSqrt2Pi * exp_neg_half_square(h) * exp(-0.5 * t * t) * sum;
  }
  if (h + t <= 0) {
    const double a = erfcx_nonnegative(-(h + t) * kInvSqrt2);
    const double b = erfcx_nonnegative(-(h - t) * kInvSqrt2);
    return 0.5 * exp_neg_half_square(h) * exp(-0.5 * t * t) * (a - b);
  }
  return exp(0.5 * x) * normal_cdf(h + t) - exp(-0.5 * x) * normal_cdf(h - t);
}

/// ∂b/∂s of the normalised Black function: (1/√2π) e^{−(h²+t²)/2}.
MARGINET_HD double normalised_vega(double x, double s) {
  if (!(s > 0)) return x == 0 ? kInvSqrt2Pi : 0.0;
  const double h = x / s, t = 0.5 * s;
  return kInvSqrt2Pi * exp_neg_half_square(h) * exp(-0.5 * t * t);
}

/// Undiscounted Black-76 value from the accurate normalised function.
MARGINET_HD double black76_undiscounted_accurate(OptionType type, double F, double K, double s) {
  const double x = log(F / K);
  const double intrinsic = type == OptionType::call ? fmax(F - K, 0.0) : fmax(K - F, 0.0);
  return intrinsic + sqrt(F) * sqrt(K) * normalised_black_otm(-fabs(x), s);
}

/// The direct formula ω(F·Φ(ωd1) − K·Φ(ωd2)) is used while the result keeps at least 1/8 of
/// its larger term (≤ 3 bits lost to cancellation); below, the normalised evaluation takes over.
/// (A looser floor costs implied-volatility round trips of slightly in-the-money options at
/// small σ√T their last digits.)
constexpr double kDirectFormulaFloor = 0.125;

MARGINET_HD bool valid_black_inputs(double F, double K, double T, double sigma) {
  return F > 0 && K > 0 && T >= 0 && sigma >= 0 && F < HUGE_VAL && K < HUGE_VAL &&
         T < HUGE_VAL && sigma < HUGE_VAL;
}

}  // namespace pricing_detail

/// Black-76 value: D·(ωF Φ(ωd1) − ωK Φ(ωd2)). The direct formula where it keeps its digits,
/// the normalised (cancellation-free) evaluation where the two terms nearly cancel.
MARGINET_HD double black76_price(OptionType type, double F, double K, double T, double sigma,
                                 double r) {
  using namespace pricing_detail;
  if (!valid_black_inputs(F, K, T, sigma)) return NAN;
  const double D = exp(-r * T);
  const double s = sigma * sqrt(T);
  const double w = type == OptionType::call ? 1.0 : -1.0;
  if (!(s > 0)) return D * fmax(w * (F - K), 0.0);
  const double x = log(F / K);
  const double d1 = x / s + 0.5 * s, d2 = d1 - s;
  const double a = F * normal_cdf(w * d1), b = K * normal_cdf(w * d2);
  const double direct = w * (a - b);
  if (direct > kDirectFormulaFloor * (w > 0 ? a : b)) return D * direct;
  return D * black76_undiscounted_accurate(type, F, K, s);
}

/// Black-76 value and greeks (see the conventions above).
MARGINET_HD Greeks black76_greeks(OptionType type, double F, double K, double T, double sigma,
                                  double r) {
  using namespace pricing_detail;
  Greeks g;
  if (!valid_black_inputs(F, K, T, sigma)) {
    g.price = g.delta = g.gamma = g.vega = g.theta = g.rho = g.vanna = g.volga = NAN;
    return g;
  }
  const double w = type == OptionType::call ? 1.0 : -1.0;
  const double D = exp(-r * T);
  const double sqrtT = sqrt(T);
  const double s = sigma * sqrtT;
  if (!(s > 0)) {
    // Expiry (T = 0) or zero volatility: intrinsic value and its one-sided limits.
    const double moneyness = w * (F - K);
    g.price = D * fmax(moneyness, 0.0);
    g.delta = D * w * (moneyness > 0 ? 1.0 : (F == K ? 0.5 : 0.0));
    g.gamma = 0.0;
    const bool at_the_money = F == K && T > 0;
    g.vega = at_the_money ? D * F * sqrtT * kInvSqrt2Pi : 0.0;
    g.vanna = at_the_money ? 0.5 * D * sqrtT * kInvSqrt2Pi : 0.0;
    g.volga = 0.0;
    g.theta = r * g.price;
    g.rho = -T * g.price;
    return g;
  }
  const double x = log(F / K);
  const double d1 = x / s + 0.5 * s, d2 = d1 - s;
  const double Nd1 = normal_cdf(w * d1);
  const double a = F * Nd1, b = K * normal_cdf(w * d2);
  const double direct = w * (a - b);
  const double undiscounted = direct > kDirectFormulaFloor * (w > 0 ? a : b)
                                  ? direct
                                  : black76_undiscounted_accurate(type, F, K, s);
  const double n1 = normal_pdf(d1);
  g.price = D * undiscounted;
  g.delta = D * w * Nd1;
  if (n1 == 0) {  // far from the money at tiny σ√T: every second-order greek underflows
    g.gamma = g.vega = g.vanna = g.volga = 0.0;
    g.theta = r * g.price;
  } else {
    g.gamma = D * n1 / (F * s);
    g.vega = D * F * n1 * sqrtT;
    g.theta = -0.5 * D * F * n1 * sigma / sqrtT + r * g.price;
    g.vanna = -D * n1 * d2 / sigma;
    g.volga = g.vega * d1 * d2 / sigma;
  }
  g.rho = -T * g.price;
  return g;
}

/// Spot Black–Scholes–Merton with continuous carry q: F = S e^{(r−q)T}, discount e^{−rT}.
/// delta, gamma, vanna are with respect to S; theta with S fixed; rho with S and q fixed.
MARGINET_HD Greeks bsm_greeks(OptionType type, double S, double K, double T, double sigma,
                              double r, double q) {
  const double growth = exp((r - q) * T);  // F / S
  const double F = S * growth;
  const Greeks f = black76_greeks(type, F, K, T, sigma, r);
  Greeks g;
  g.price = f.price;
  g.delta = f.delta * growth;
  g.gamma = f.gamma * growth * growth;
  g.vega = f.vega;
  g.theta = f.theta - (r - q) * F * f.delta;
  g.rho = f.rho + T * F * f.delta;
  g.vanna = f.vanna * growth;
  g.volga = f.volga;
  return g;
}

/// Spot BSM value.
MARGINET_HD double bsm_price(OptionType type, double S, double K, double T, double sigma, double r,
                             double q) {
  return black76_price(type, S * exp((r - q) * T), K, T, sigma, r);
}

/// ∂V/∂q of the spot BSM value (S and r fixed): −T·S·e^{−qT}·ωΦ(ωd1).
MARGINET_HD double bsm_dividend_rho(OptionType type, double S, double K, double T, double sigma,
                                    double r, double q) {
  const double F = S * exp((r - q) * T);
  return -T * F * black76_greeks(type, F, K, T, sigma, r).delta;
}

// ---- Inverse (coin-settled) conversions and linear products (SPEC §4) ----------------------

/// Value in coin of an inverse option worth `value_quote` (quote currency) at forward F.
MARGINET_HD double inverse_price_coin(double value_quote, double forward) {
  return value_quote / forward;
}
/// Deribit's displayed delta of an inverse option: delta − price_coin (= F·∂V_coin/∂F).
MARGINET_HD double inverse_delta_coin(double delta, double price_coin) { return delta - price_coin; }
/// P&L in coin of an inverse future/perpetual of coin-equivalent size q for relative move m.
MARGINET_HD double inverse_future_pnl_coin(double q, double m) { return q * m / (1.0 + m); }
/// P&L in the quote currency of a linear future/perpetual: q · contract_size · ΔF.
MARGINET_HD double linear_future_pnl(double q, double contract_size, double dF) {
  return q * contract_size * dF;
}

/// One row of the greeks table: per unit of underlying (multiply by quantity × contract_size
/// for a position). See docs/pricing.md for what each column means per kind and settlement.
struct InstrumentRisk {
  double price, price_coin, delta, delta_coin, gamma, vega, theta, rho, vanna, volga;
};

/// Price and greeks of one instrument. `forward` is the forward of the option's expiry for
/// options, the mark (futures, perpetuals) or index (spot) otherwise; sigma and rate are used
/// by options only.
MARGINET_HD InstrumentRisk instrument_risk(InstrumentKind kind, OptionType type,
                                           Settlement settlement, double forward, double strike,
                                           double T, double sigma, double rate) {
  InstrumentRisk out;
  const bool inverse = settlement == Settlement::inverse;
  if (kind == InstrumentKind::option) {
    const Greeks g = black76_greeks(type, forward, strike, T, sigma, rate);
    out.price = g.price;
    out.price_coin = inverse_price_coin(g.price, forward);
    out.delta = g.delta;
    out.delta_coin = inverse ? inverse_delta_coin(g.delta, out.price_coin) : g.delta;
    out.gamma = g.gamma;
    out.vega = g.vega;
    out.theta = g.theta;
    out.rho = g.rho;
    out.vanna = g.vanna;
    out.volga = g.volga;
    return out;
  }
  // Futures, perpetuals (marked to market: value 0 at the mark, P&L linear in F for linear
  // settlement, q·m/(1+m) in coin for inverse) and spot (one unit of the underlying).
  out.price = forward;
  out.price_coin = 1.0;
  out.delta = 1.0;
  // Coin exposure d(P&L in settlement currency)/dm at m = 0, in coin: inverse futures q, spot
  // held in a coin account 0, linear instruments their delta.
  out.delta_coin = (inverse && kind == InstrumentKind::spot) ? 0.0 : 1.0;
  out.gamma = out.vega = out.theta = out.rho = out.vanna = out.volga = 0.0;
  return out;
}

}  // namespace marginet
