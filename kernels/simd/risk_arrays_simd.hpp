#pragma once
// Vector paths of the CPU backend's risk_arrays stage (see kernels/cpu_simd.hpp for the
// dispatch). Same arguments and results as kernels::cpu::risk_arrays, to within the last few
// ulp of libmvec's exp, log and erfc.

#include <cstdint>

#include "kernels/risk_arrays.hpp"

namespace marginet::kernels::simd {

/// Risk arrays with options revalued four scenarios at a time (AVX2). Lanes where the direct
/// Black-76 formula cancels go through a vector copy of the scalar's cancellation-free Taylor
/// branch; lanes outside both (expired within the horizon, σ√T = 0, x = 0, invalid inputs, the
/// rare other regions) and non-option rows run the scalar element, models/revaluation.hpp's
/// scenario_pnl. Call only where simd_supported() ≥ avx2.
void risk_arrays_avx2(const RiskArrayArgs& args);

/// Cells computed by the vector path and by the scalar element since the last reset
/// (for tests and benchmarks: a vector path that silently falls back is a slow path).
struct SimdCellCounts {
  std::uint64_t vector_cells = 0;      // all cells the vector path computed, of which
  std::uint64_t cancelling_cells = 0;  //   through the normalised value (step 2)
  std::uint64_t scalar_cells = 0;
};
SimdCellCounts simd_cell_counts();
void reset_simd_cell_counts();

}  // namespace marginet::kernels::simd
