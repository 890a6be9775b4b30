#pragma once
// Scenario sets of the VaR-based methodologies (SPEC §5):
//  * hvar  — filtered historical simulation from a returns file (`date,underlying,return
//            [,vol_return]`): optional EWMA volatility scaling, h-day overlapping returns,
//            optional stressed-period scenarios appended after the base ones;
//  * mc-es — correlated lognormal moves over h days from vols and a correlation matrix
//            (Cholesky), N paths drawn with Philox4x32-10 (models/philox.hpp).

#include <map>
#include <cstdint>
#include <string>
#include <vector>

#include "models/methodology.hpp"
#include "models/scenario_set.hpp"

namespace marginet {

/// Daily returns per underlying on a common calendar.
struct ReturnHistory {
  std::vector<double> dates;                                 // Unix seconds, ascending
  std::map<std::string, std::vector<double>> returns;        // per underlying, per date
  std::map<std::string, std::vector<double>> vol_returns;    // relative IV changes, when given
};

/// Reads a returns file; each date must carry a return for every underlying it names.
ReturnHistory read_returns(const std::string& path);

/// EWMA-filtered returns: r̃_t = r_t · σ_now / σ_t with σ²_t = λσ²_{t−1} + (1−λ)r²_{t−1},
/// σ²_0 = mean of the first min(30, n) squared returns, σ_now the forecast after the last day.
std::vector<double> ewma_filter(const std::vector<double>& returns, double lambda);

/// h-day overlapping compounded returns: Π_{j<h}(1 + r_{t+j}) − 1 for t = 0 … n−h.
std::vector<double> overlapping_returns(const std::vector<double>& daily, int h);

/// hvar scenarios over `underlyings`; stressed scenarios (unfiltered) follow when configured,
/// from ScenarioSet::stress_offset on.
ScenarioSet historical_scenarios(const HvarConfig& c, const std::vector<std::string>& underlyings,
                                 const std::string& name);

/// Lower-triangular Cholesky factor of a symmetric matrix (row-major n×n); input_error naming
/// the pair when it is not positive definite.
std::vector<double> cholesky(const std::vector<double>& a, std::size_t n,
                             const std::vector<std::string>& names);

/// mc-es scenarios: `paths` joint lognormal moves of `underlyings`, drawn over `universe` (a
/// superset, sorted by name; empty = `underlyings`): the Cholesky factor of the universe's
/// correlations, and per underlying its own stream of normals, keyed by its name (stream_key).
/// So an underlying's moves are the same whichever other underlyings of the universe a run holds.
ScenarioSet monte_carlo_scenarios(const McEsConfig& c, const std::vector<std::string>& underlyings,
                                  const std::string& name, const std::vector<std::string>& universe = {});

/// The Philox stream of each name (32-bit FNV-1a of the name), distinct within `names` (sorted):
/// a collision takes the next free key, in name order.
std::vector<std::uint32_t> stream_keys(const std::vector<std::string>& names);

}  // namespace marginet
