#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_memory.cuh"
#include "kernels/detail/primitives.cuh"
#include "kernels/cpu_simd.hpp"
#include "kernels/risk_arrays.hpp"
#include "kernels/simd/risk_arrays_simd.hpp"

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {
struct RevalueCell {
  const InstrumentState* instruments;
  const ScenarioShock* shocks;
  std::size_t groups;
  const VolTermParams* vol_terms;
  std::size_t scenario_begin;
  std::size_t tile;
  PnlUnits units;
  double* risk;

  MARGINET_HD void operator()(std::size_t cell) const {
    const std::size_t i = cell / tile;
    const std::size_t s = scenario_begin + (cell - i * tile);
    const InstrumentState& st = instruments[i];
    const std::size_t g = static_cast<std::size_t>(st.group);
    risk[cell] = scenario_pnl(st, shocks[s * groups + g], vol_terms[g], units);
  }
};
}  // namespace

void risk_arrays(const RiskArrayArgs& a) {
  const std::size_t tile = a.scenario_end - a.scenario_begin;
  if (a.instrument_count == 0 || tile == 0) return;
  detail::run_translating_errors("risk_arrays", [&] {
    // The CPU's vector path (kernels/cpu_simd.hpp): the same cells to within a few ulp.
    if constexpr (detail::kHostIsDevice) {
      if (simd_level() == SimdLevel::avx2) {
        simd::risk_arrays_avx2(a);
        return;
      }
    }
    const buffers::Input<InstrumentState> instruments(a.instruments, a.instrument_count);
    const buffers::Input<ScenarioShock> shocks(a.shocks, a.scenario_end * a.groups);  // up to the tile's end
    const buffers::Input<VolTermParams> vol_terms(a.vol_terms, a.groups);
    buffers::Output<double> risk(a.risk, a.instrument_count * tile);
    primitives::for_each_index(a.instrument_count * tile,
                               RevalueCell{instruments.ptr, shocks.ptr, a.groups, vol_terms.ptr,
                                           a.scenario_begin, tile, a.units, risk.ptr});
    risk.to_host();
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
