#pragma once
// Implied volatility from a Black-76 price, to machine precision over the whole domain (deep in
// and out of the money, minutes to expiry, prices next to the arbitrage bounds). The reference
// is Jäckel's "Let's Be Rational": the problem is reduced to the out-of-the-money normalised
// price β = b(x, s), x = −|ln(F/K)| ≤ 0, s = σ√T, and solved for s with Halley steps on
// objectives that are nearly linear where they are used:
//   below the inflection point s_c = √(2|x|):  ln b(s) − ln β
//   above it, up to β = b_max/2:               b(s) − β
//   beyond:                                    ln(b_max − b(s)) − ln(b_max − β),  b_max = e^{x/2}
// kept inside a bracket that shrinks on every evaluation (bisection when a step leaves it), so
// it always terminates. b(x, s) is evaluated without cancellation (pricing_detail).
//
// No volatility fits a price below the intrinsic value or at/above the upper bound (F·D for a
// call, K·D for a put): the status says which, and sigma is NaN.

#include <cmath>
#include <cstdint>
#include <string>

#include "models/hd.hpp"
#include "models/instrument.hpp"
#include "models/pricing.hpp"

namespace marginet {

enum class IvStatus : std::uint8_t {
  ok,
  below_intrinsic,     // price < discounted intrinsic value
  above_maximum,       // price ≥ discounted upper bound (F for a call, K for a put)
  invalid_input,       // F, K ≤ 0, T ≤ 0 with a price above intrinsic, NaN, ...
  no_convergence,      // not expected; reported rather than returning a wrong number
};

struct ImpliedVol {
  double sigma;    // NaN unless status == ok
  IvStatus status;
  int iterations;  // objective evaluations after the initial guess
};

namespace implied_vol_detail {

constexpr double kEpsilon = 2.220446049250313e-16;

/// b_max − b(x, s) for x ≤ 0 as a sum of positive terms: e^{x/2}Φ(−h−t) + e^{−x/2}Φ(h−t).
MARGINET_HD double normalised_black_complement(double x, double s) {
  if (!(s > 0)) return exp(0.5 * x);
  if (x == 0) return erfc(0.5 * s * pricing_detail::kInvSqrt2);
  const double h = x / s, t = 0.5 * s;
  return exp(0.5 * x) * normal_cdf(-h - t) + exp(-0.5 * x) * normal_cdf(h - t);
}

/// Solves b(x, s) = beta for s, x ≤ 0, 0 < beta < e^{x/2}.
MARGINET_HD ImpliedVol normalised_implied_vol(double x, double beta) {
  using pricing_detail::normalised_black_otm;
  using pricing_detail::normalised_vega;
  const double b_max = exp(0.5 * x);
  const double s_c = sqrt(-2.0 * x);  // inflection point of b(s): b'' = b'·(x²/s³ − s/4)
  const double b_c = normalised_black_otm(x, s_c);
  const bool lower = beta < b_c;

  // Three branches: lower (β < b_c), middle (b_c ≤ β ≤ b_max/2: b itself is well scaled) and
  // upper (β > b_max/2: the complement b_max − β carries the digits).
  const int branch = lower ? 0 : (beta <= 0.5 * b_max ? 1 : 2);

  // Bracket [lo, hi] and initial guess.
  double lo, hi, s;
  if (lower) {
    lo = 0.0;
    hi = s_c;
    // b ≈ s³ e^{−x²/(2s²)} / (x²√2π) for small s: a few fixed-point steps on it.
    const double log_beta = log(beta);
    const double c = log(x * x * 2.5066282746310002);
    s = -x / sqrt(-2.0 * log_beta);
    for (int i = 0; i < 3; ++i) {
      const double arg = 2.0 * (3.0 * log(s) - c - log_beta);
      if (!(arg > 0)) break;
      s = -x / sqrt(arg);
    }
    // Near the money (|x| well below s) b ≈ s/√2π instead.
    const double s_atm = beta * 2.5066282746310002;
    if (s_atm < hi && -x < s_atm) s = s_atm;
    if (!(s > lo && s < hi)) s = 0.5 * hi;
  } else {
    lo = s_c;
    if (branch == 1) {
      // b ≈ b_c + b'(s_c)(s − s_c) near the inflection point (b'(s) ≤ b'(s_c) beyond it, so
      // this guess is at or below the root), and b ≈ s/√2π near the money for small s.
      const double v_c = normalised_vega(x, s_c);
      s = s_c + (beta - b_c) / v_c;
    } else {
      // b_max − b ≈ 2 e^{x/2} Φ(−s/2) for large s; Φ(−z) ≈ φ(z)/z: fixed point in z = s/2.
      const double p = (b_max - beta) / (2.0 * b_max);
      double z = sqrt(fmax(-2.0 * log(p), 1e-4));
      for (int i = 0; i < 3; ++i) {
        const double arg = -2.0 * log(p * z * 2.5066282746310002);
        if (!(arg > 0)) break;
        z = sqrt(arg);
      }
      s = 2.0 * z;
    }
    hi = fmax(2.0 * s, 2.0 * s_c + 1e-300);
    int guard = 0;
    while (normalised_black_otm(x, hi) < beta && guard++ < 2100) {
      lo = hi;
      hi *= 2.0;
    }
    if (!(s > lo && s < hi)) s = 0.5 * (lo + hi);
  }

  const double target = branch == 0 ? log(beta) : branch == 1 ? beta : log(b_max - beta);
  int it = 0;
  for (; it < 100; ++it) {
    const double b = normalised_black_otm(x, s);
    const double v = normalised_vega(x, s);  // b'
    const double curvature = x * x / (s * s * s) - 0.25 * s;  // b''/b'
    double g, g1, g2;  // objective and its first two derivatives in s
    if (branch == 0) {
      g = log(b) - target;
      const double q = v / b;
      g1 = q;
      g2 = q * curvature - q * q;
    } else if (branch == 1) {
      g = b - target;
      g1 = v;
      g2 = v * curvature;
    } else {
      const double c = normalised_black_complement(x, s);
      g = target - log(c);  // increasing in s, like b
      const double q = v / c;
      g1 = q;
      g2 = q * curvature + q * q;
    }
    if (g == 0) break;
    if (g < 0) lo = fmax(lo, s); else hi = fmin(hi, s);
    // Halley step, falling back to Newton then bisection.
    double step = -g / g1;
    const double halley = 1.0 + 0.5 * step * g2 / g1;  // 1 − g·g''/(2g'²)
    if (halley > 0.5) step /= halley;
    // A Halley step of relative size ≤ 1e-9 leaves an error of order 1e-27 (cubic convergence):
    // what is left is the rounding of the objective itself.
    if (g1 > 0 && fabs(step) <= 1e-9 * s) {
      s += step;
      break;
    }
    double next = s + step;
    if (!(next > lo && next < hi) || !(g1 > 0)) next = lo > 0 ? 0.5 * (lo + hi) : 0.5 * hi;
    s = next;
    if (hi - lo <= 4.0 * kEpsilon * hi) break;
  }
  if (it == 100) return ImpliedVol{NAN, IvStatus::no_convergence, it};
  return ImpliedVol{s, IvStatus::ok, it + 1};
}

}  // namespace implied_vol_detail

/// Implied Black-76 volatility of an option worth `price` (quote currency, discounted) with
/// forward F, strike K, T years to expiry and rate r.
MARGINET_HD ImpliedVol implied_vol_black76(OptionType type, double price, double F, double K,
                                           double T, double r) {
  if (!(F > 0 && K > 0 && T >= 0 && price >= 0) || !(F < HUGE_VAL && K < HUGE_VAL) ||
      !(price < HUGE_VAL) || !(fabs(r) < HUGE_VAL))
    return ImpliedVol{NAN, IvStatus::invalid_input, 0};
  const double D = exp(-r * T);
  const double undiscounted = price / D;
  const double intrinsic = type == OptionType::call ? fmax(F - K, 0.0) : fmax(K - F, 0.0);
  const double upper = type == OptionType::call ? F : K;
  if (undiscounted < intrinsic) return ImpliedVol{NAN, IvStatus::below_intrinsic, 0};
  if (undiscounted >= upper) return ImpliedVol{NAN, IvStatus::above_maximum, 0};
  const double beta = (undiscounted - intrinsic) / (sqrt(F) * sqrt(K));  // out-of-the-money part
  if (beta == 0) return ImpliedVol{0.0, IvStatus::ok, 0};
  if (!(T > 0)) return ImpliedVol{NAN, IvStatus::invalid_input, 0};
  const double x = -fabs(log(F / K));
  if (!(beta < exp(0.5 * x))) return ImpliedVol{NAN, IvStatus::above_maximum, 0};
  ImpliedVol iv = implied_vol_detail::normalised_implied_vol(x, beta);
  if (iv.status == IvStatus::ok) iv.sigma /= sqrt(T);
  return iv;
}

/// Implied spot-BSM volatility (carry q): the Black-76 one on F = S e^{(r−q)T}.
MARGINET_HD ImpliedVol implied_vol_bsm(OptionType type, double price, double S, double K, double T,
                                       double r, double q) {
  return implied_vol_black76(type, price, S * exp((r - q) * T), K, T, r);
}

/// "ok", "price below intrinsic value", ...
const char* describe(IvStatus status);

/// implied_vol_black76 that throws input_error("no volatility fits: <reason> ...") on failure.
double implied_vol_black76_or_throw(OptionType type, double price, double F, double K, double T,
                                    double r);

}  // namespace marginet
