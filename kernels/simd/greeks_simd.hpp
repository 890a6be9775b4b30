#pragma once
// Vector path of the CPU backend's price_greeks stage (see kernels/cpu_simd.hpp for the
// dispatch). Same arguments and columns as kernels::cpu::price_greeks, within the last few ulp
// of libmvec's exp, log and erfc (the tolerance of docs/pricing.md between backends).

#include <cstddef>

#include "kernels/greeks.hpp"

namespace marginet::kernels::simd {

/// Price and greeks of every element, options four at a time (AVX2) following models/pricing.hpp's
/// black76_greeks step for step, on all cores (OpenMP). Lanes that are not options, have
/// invalid inputs or σ√T = 0, whose direct formula cancels (deep out of the money, short
/// dated: the scalar's accurate branch) or whose density underflows run the scalar element,
/// instrument_risk. Call only where simd_supported() ≥ avx2.
void price_greeks_avx2(const GreeksInputs& in, const GreeksOutputs& out);

}  // namespace marginet::kernels::simd
