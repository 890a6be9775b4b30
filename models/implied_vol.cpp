#include "models/implied_vol.hpp"

#include <cstdio>

#include "models/errors.hpp"

namespace marginet {

const char* describe(IvStatus status) {
  switch (status) {
    case IvStatus::ok: return "ok";
    case IvStatus::below_intrinsic: return "price below the discounted intrinsic value";
    case IvStatus::above_maximum:
      return "price at or above the discounted upper bound (forward for a call, strike for a put)";
    case IvStatus::invalid_input: return "invalid inputs (forward, strike, expiry or price)";
    case IvStatus::no_convergence: return "the solver did not converge";
  }
  return "?";
}

double implied_vol_black76_or_throw(OptionType type, double price, double F, double K, double T,
                                    double r) {
  const ImpliedVol iv = implied_vol_black76(type, price, F, K, T, r);
  if (iv.status == IvStatus::ok) return iv.sigma;
  char buf[256];
  std::snprintf(buf, sizeof buf, "no volatility fits: %s (%s price %.17g, F %.17g, K %.17g, T %.17g, r %.17g)",
                describe(iv.status), to_string(type), price, F, K, T, r);
  throw input_error(buf);
}

}  // namespace marginet
