#include "kernels/detail/backend.cuh"
#include "kernels/risk_arrays.hpp"

#if THRUST_DEVICE_SYSTEM != THRUST_DEVICE_SYSTEM_CUDA
#include "kernels/cpu_simd.hpp"
#include "kernels/simd/risk_arrays_simd.hpp"
#endif

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

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
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
    auto instruments = detail::to_device(a.instruments, a.instrument_count);
    auto shocks = detail::to_device(a.shocks, a.scenario_end * a.groups);  // up to the tile's end
    auto vol_terms = detail::to_device(a.vol_terms, a.groups);
    thrust::device_vector<double> risk(a.instrument_count * tile);
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.instrument_count * tile,
                       RevalueCell{thrust::raw_pointer_cast(instruments.data()),
                                   thrust::raw_pointer_cast(shocks.data()), a.groups,
                                   thrust::raw_pointer_cast(vol_terms.data()), a.scenario_begin, tile,
                                   a.units, thrust::raw_pointer_cast(risk.data())});
    thrust::copy(risk.begin(), risk.end(), a.risk);
#else
    if (simd_level() == SimdLevel::avx2) {
      simd::risk_arrays_avx2(a);
      return;
    }
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.instrument_count * tile,
                       RevalueCell{a.instruments, a.shocks, a.groups, a.vol_terms, a.scenario_begin,
                                   tile, a.units, a.risk});
#endif
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
