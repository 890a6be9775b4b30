#pragma once
// Stage 1 of scenario margin (SPEC §5): risk arrays R[i, s] — the P&L of one unit of
// instrument i in scenario s — by full revaluation (models/revaluation.hpp), one element per
// (instrument, scenario). Computed for a tile of scenarios [scenario_begin, scenario_end) so
// that a book larger than device memory runs tile by tile.

#include <cstddef>

#include "kernels/api.hpp"
#include "models/revaluation.hpp"
#include "models/scenario_set.hpp"

namespace marginet::kernels {

struct RiskArrayArgs {
  const InstrumentState* instruments;
  std::size_t instrument_count;
  const ScenarioShock* shocks;      // scenarios × groups (ScenarioSet::shocks)
  std::size_t groups;               // underlyings in the scenario set
  const VolTermParams* vol_terms;   // per group
  std::size_t scenario_begin;
  std::size_t scenario_end;
  PnlUnits units;
  double* risk;                     // out: instrument_count × (scenario_end − scenario_begin)
};

MARGINET_KERNEL_API(
void risk_arrays(const RiskArrayArgs& args);
)

}  // namespace marginet::kernels
