#pragma once
// Per-element maths of the scenario reductions (SPEC §5, stage 3), shared by the kernels and
// by the host reference path.

#include <cstddef>
#include <cstdint>

#include "models/hd.hpp"

namespace marginet {

struct WorstLoss {
  double loss;             // positive = loss
  std::int32_t scenario;   // index of the first scenario attaining it; -1 when there are none
};

/// max over s of (−pnl[s]·weight[s]); ties go to the lowest scenario index.
MARGINET_HD WorstLoss worst_weighted_loss(const double* pnl, const double* weight,
                                          std::size_t scenarios) {
  WorstLoss w{0.0, -1};
  for (std::size_t s = 0; s < scenarios; ++s) {
    const double loss = -pnl[s] * weight[s];
    if (w.scenario < 0 || loss > w.loss) {
      w.loss = loss;
      w.scenario = static_cast<std::int32_t>(s);
    }
  }
  return w;
}

}  // namespace marginet
