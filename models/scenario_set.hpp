#pragma once
// Scenario sets as data (SPEC §5): per scenario and underlying, a relative price move, a vol
// shock, days elapsed; per scenario a weight. The generators for `span16` and `deribit-pm`
// live in models/methodology.hpp; user stress sets come from JSON (read_stress_scenarios).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/hd.hpp"

namespace marginet {

enum class VolShock : std::uint8_t {
  none,          // σ' = σ
  absolute,      // σ' = σ + vol_shift
  relative,      // σ' = σ · (1 + vol_shift)
  deribit_up,    // σ' = max(σ·(1 + range_up·(30/max(1,DTE))^p), min_vol_for_shock_up)
  deribit_down,  // σ' = σ·(1 − range_down·(30/max(1,DTE))^p)
};

/// One scenario applied to one underlying.
struct ScenarioShock {
  double price_move = 0;   // relative: F' = F·(1 + price_move)
  double vol_shift = 0;    // see VolShock
  double days = 0;         // time elapsed: T' = max(0, T − days/365)
  VolShock vol_kind = VolShock::none;
};

/// Deribit's term scaling of vol shocks, per underlying (currency pair).
struct VolTermParams {
  double range_up = 0;
  double range_down = 0;
  double short_term_vega_power = 0;
  double long_term_vega_power = 0;
  double min_vol_for_shock_up = 0;
};

/// Smallest volatility a down shock may leave (keeps the pricer away from σ = 0 artefacts
/// while staying far below any traded vol).
constexpr double kMinShockedVol = 1e-4;

/// The shocked volatility of an instrument with `dte_days` days to expiry.
MARGINET_HD double shocked_vol(const ScenarioShock& s, double sigma, double dte_days,
                               const VolTermParams& p) {
  switch (s.vol_kind) {
    case VolShock::none:
      return sigma;
    case VolShock::absolute: {
      const double v = sigma + s.vol_shift;
      return v > kMinShockedVol ? v : kMinShockedVol;
    }
    case VolShock::relative: {
      const double v = sigma * (1.0 + s.vol_shift);
      return v > kMinShockedVol ? v : kMinShockedVol;
    }
    case VolShock::deribit_up:
    case VolShock::deribit_down: {
      const double power = dte_days < 30.0 ? p.short_term_vega_power : p.long_term_vega_power;
      const double scale = pow(30.0 / (dte_days > 1.0 ? dte_days : 1.0), power);
      if (s.vol_kind == VolShock::deribit_up) {
        const double v = sigma * (1.0 + p.range_up * scale);
        return v > p.min_vol_for_shock_up ? v : p.min_vol_for_shock_up;
      }
      const double v = sigma * (1.0 - p.range_down * scale);
      return v > kMinShockedVol ? v : kMinShockedVol;
    }
  }
  return sigma;
}

/// A set of scenarios over a list of underlyings.
struct ScenarioSet {
  std::string name;
  std::vector<std::string> underlyings;   // column order of `shocks`
  std::size_t count = 0;                  // number of scenarios
  std::vector<ScenarioShock> shocks;      // [scenario * underlyings.size() + underlying]
  std::vector<double> weights;            // per scenario (SPAN cover fraction; 1 otherwise)
  std::vector<std::string> labels;        // per scenario, for reports
  std::vector<VolTermParams> vol_terms;   // per underlying (used by deribit_* shocks)
  std::size_t stress_offset = 0;          // hvar: stressed-period scenarios are [stress_offset, count); 0 = none

  const ScenarioShock& shock(std::size_t scenario, std::size_t underlying) const {
    return shocks[scenario * underlyings.size() + underlying];
  }
  /// Index of an underlying, or −1.
  int underlying_index(const std::string& underlying) const;
};

/// User stress set from JSON:
///   {"scenarios": [{"name": "crash", "weight": 1,
///                   "shocks": {"BTC": {"move": -0.3, "vol_shift": 0.2, "vol_kind": "absolute",
///                                      "days": 1}, "*": {...default for other underlyings}}}]}
/// `vol_kind` is none|absolute|relative (default absolute when vol_shift is given).
ScenarioSet read_stress_scenarios(const std::string& path, const std::vector<std::string>& underlyings);
ScenarioSet parse_stress_scenarios(const std::string& json_text, const std::string& source,
                                   const std::vector<std::string>& underlyings);

}  // namespace marginet
