#pragma once
// Run-time SIMD dispatch of the CPU backend. The default build targets baseline x86-64 (no
// -march=native); where a stage pays for vector code, it is compiled for that instruction set
// alone (function target attributes) and chosen here at run time from what the CPU reports.
//
// The level starts as the best the CPU supports, or as the environment variable MARGINET_SIMD
// says (`scalar` or `avx2`; a level the CPU lacks falls back to the best it has). Tests set it
// to run every path on the same inputs.
//
// Stages with a vector path today: risk_arrays (options: Black-76 four scenarios at a time
// with glibc's libmvec exp/log/erfc) and price_greeks (price and greeks of four options at a
// time, the same functions). Everything else runs the Thrust kernels as written.

#include <cstdint>

namespace marginet::kernels {

enum class SimdLevel : std::uint8_t { scalar, avx2 };

const char* simd_name(SimdLevel level);

/// The best level this CPU runs (cpuid: AVX2 and the OS saving the YMM state).
SimdLevel simd_supported();

/// The level the CPU backend uses now.
SimdLevel simd_level();

/// Use `level`, or the best supported level below it. Returns the level now in use.
SimdLevel set_simd_level(SimdLevel level);

}  // namespace marginet::kernels
