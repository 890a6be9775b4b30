#pragma once
// AVX2 pieces shared by the vector paths of the CPU backend (risk_arrays_avx2.cpp,
// greeks_avx2.cpp): glibc's libmvec entry points and models/pricing.hpp's normal_cdf on four
// lanes. Include it only between the files' `target("avx2")` pragmas, after <immintrin.h>:
// every function here is then AVX2 code, and nothing compiled for baseline x86-64 can call it.

#include "models/pricing.hpp"

extern "C" {
__m256d _ZGVdN4v_erfc(__m256d);  // glibc libmvec, AVX2 variants
__m256d _ZGVdN4v_exp(__m256d);
__m256d _ZGVdN4v_log(__m256d);
}

namespace marginet::kernels::simd::avx2 {

// Dekker's split of 1/√2 (see normal_cdf in models/pricing.hpp).
constexpr double kCdfHi = pricing_detail::kInvSqrt2;
constexpr double kCdfLo = -4.8336466567264567e-17;
constexpr double kSplit = 134217729.0;  // 2^27 + 1
constexpr double kCdfTimesSplit = kSplit * kCdfHi;
constexpr double kCdfHead = kCdfTimesSplit - (kCdfTimesSplit - kCdfHi);
constexpr double kCdfTail = kCdfHi - kCdfHead;

inline __m256d splat(double x) { return _mm256_set1_pd(x); }

/// normal_cdf of models/pricing.hpp on four lanes: 0.5·erfc(−z/√2), with the left-tail
/// correction of the rounding of −z/√2 below z = −1 and 0 below z = −38.5.
inline __m256d normal_cdf4(__m256d z) {
  const __m256d m = _mm256_sub_pd(_mm256_setzero_pd(), z);
  const __m256d a = _mm256_mul_pd(m, splat(kCdfHi));
  const __m256d half_erfc = _mm256_mul_pd(splat(0.5), _ZGVdN4v_erfc(a));
  const __m256d central = _mm256_cmp_pd(z, splat(-1.0), _CMP_GE_OQ);
  if (_mm256_movemask_pd(central) == 0xF) return half_erfc;
  // Left tail: e = m·c_hi − a exactly (Dekker), δ = e + m·c_lo.
  const __m256d mt = _mm256_mul_pd(splat(kSplit), m);
  const __m256d mh = _mm256_sub_pd(mt, _mm256_sub_pd(mt, m));
  const __m256d ml = _mm256_sub_pd(m, mh);
  const __m256d e = _mm256_add_pd(
      _mm256_add_pd(_mm256_add_pd(_mm256_sub_pd(_mm256_mul_pd(mh, splat(kCdfHead)), a),
                                  _mm256_mul_pd(mh, splat(kCdfTail))),
                    _mm256_mul_pd(ml, splat(kCdfHead))),
      _mm256_mul_pd(ml, splat(kCdfTail)));
  const __m256d delta = _mm256_add_pd(e, _mm256_mul_pd(m, splat(kCdfLo)));
  const __m256d two_a_delta = _mm256_mul_pd(_mm256_mul_pd(splat(2.0), a), delta);
  const __m256d inv = _mm256_add_pd(splat(1.0), _mm256_div_pd(splat(0.5), _mm256_mul_pd(a, a)));
  const __m256d corrected =
      _mm256_mul_pd(half_erfc, _mm256_sub_pd(splat(1.0), _mm256_mul_pd(two_a_delta, inv)));
  const __m256d tail = _mm256_blendv_pd(corrected, _mm256_setzero_pd(), _mm256_cmp_pd(z, splat(-38.5), _CMP_LT_OQ));
  return _mm256_blendv_pd(tail, half_erfc, central);
}

}  // namespace marginet::kernels::simd::avx2
