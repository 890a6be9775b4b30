#pragma once
// The cancellation-free Black-76 value on AVX2 lanes, shared by the vector paths of the CPU
// backend (risk_arrays_avx2.cpp, greeks_avx2.cpp): pricing_detail::normalised_black_otm in its
// small-σ√T region (the Taylor series of the Mills ratio), kQueueCells lanes at a time. Include
// it only between the files' `target("avx2")` pragmas, after normal_avx2.hpp: every function
// here is then AVX2 code, and nothing compiled for baseline x86-64 can call it.

#include <cmath>

#include "models/pricing.hpp"

namespace marginet::kernels::simd::avx2 {

/// For a cancelling cell with x = ln(F'/K), h = −|x|/s, t = s/2: whether normalised_black_otm
/// takes its Taylor branch there (and the vector path can follow it: x ≠ 0, h ≥ −36, so that
/// e^{h²/2}·erfc stays in its direct region), and that branch's start n (0: forward recurrence)
/// and number of terms K, exactly as the scalar computes them.
inline bool taylor_terms(double x, double h, double t, int& n, int& K) {
  n = 0;
  K = 19;
  if (!(x != 0) || !(h >= -36.0) || !(h < 0) || !(t < 0.21) || !(t > 0)) return false;
  if (h >= -2.0) return true;
  const double per_term = std::log(-h / t);
  K = 1 + 2 * static_cast<int>(std::ceil(0.5 * 39.2 / per_term));
  if (K > 19) K = 19;
  n = K + 12 + static_cast<int>(350.0 / (h * h));
  return true;
}

/// e^{x²} of pricing_detail::exp_square on four lanes, x ≥ 0: e^{A}·e^{B} with B = 0 where the
/// scalar takes e^{x²} at once (x < 2), so those lanes round as it does.
inline __m256d exp_square4(__m256d x) {
  const __m256d head = _mm256_div_pd(_mm256_floor_pd(_mm256_mul_pd(x, splat(1024.0))), splat(1024.0));
  const __m256d tail = _mm256_sub_pd(x, head);
  const __m256d whole = _mm256_cmp_pd(x, splat(2.0), _CMP_LT_OQ);
  const __m256d a = _mm256_blendv_pd(_mm256_mul_pd(head, head), _mm256_mul_pd(x, x), whole);
  const __m256d b = _mm256_blendv_pd(_mm256_mul_pd(tail, _mm256_add_pd(x, head)), _mm256_setzero_pd(), whole);
  return _mm256_mul_pd(_ZGVdN4v_exp(a), _ZGVdN4v_exp(b));
}

/// pricing_detail::exp_neg_half_square on four lanes with |z| < 40.
inline __m256d exp_neg_half_square4(__m256d z) {
  z = _mm256_andnot_pd(splat(-0.0), z);
  const __m256d head = _mm256_div_pd(_mm256_floor_pd(_mm256_mul_pd(z, splat(1024.0))), splat(1024.0));
  const __m256d tail = _mm256_sub_pd(z, head);
  const __m256d whole = _mm256_cmp_pd(z, splat(2.5), _CMP_LT_OQ);
  const __m256d a = _mm256_blendv_pd(_mm256_mul_pd(_mm256_mul_pd(splat(-0.5), head), head),
                                     _mm256_mul_pd(_mm256_mul_pd(splat(-0.5), z), z), whole);
  const __m256d b = _mm256_blendv_pd(
      _mm256_mul_pd(_mm256_mul_pd(splat(-0.5), tail), _mm256_add_pd(z, head)), _mm256_setzero_pd(), whole);
  return _mm256_mul_pd(_ZGVdN4v_exp(a), _ZGVdN4v_exp(b));
}

constexpr int kTaylorTerms = 19;  // pricing_detail::normalised_black_otm's kMaxTerms
constexpr int kQueueVectors = 4;  // independent recurrences interleaved: the loop is latency bound
constexpr int kQueueCells = 4 * kQueueVectors;

/// pricing_detail::normalised_black_otm in its small-t region (t = s/2 < 0.21, −36 ≤ h = x/s <
/// 0) on kQueueCells lanes: b = (2/√2π)·e^{−h²/2}·e^{−t²/2}·Σ_{k odd ≤ K} Y⁽ᵏ⁾(h) tᵏ/k!. Each
/// lane runs the scalar's recurrence — forward from Y(h) for h ≥ −2, else Miller's backward
/// recurrence from its own start n — with the same operations in the same order; a lane whose
/// backward recurrence has not started yet is held at the starting values.
inline void normalised_black_taylor(const __m256d h[kQueueVectors], const __m256d t[kQueueVectors],
                             const int n[kQueueCells], const int K[kQueueCells], __m256d b[kQueueVectors]) {
  using namespace pricing_detail;
  constexpr int V = kQueueVectors;
  __m256d y[V][kTaylorTerms + 1];
  __m256d mills[V];
  for (int v = 0; v < V; ++v) {
    const __m256d z = _mm256_mul_pd(_mm256_sub_pd(_mm256_setzero_pd(), h[v]), splat(kInvSqrt2));
    mills[v] = _mm256_mul_pd(splat(kSqrtHalfPi), _mm256_mul_pd(exp_square4(z), _ZGVdN4v_erfc(z)));
    // Forward recurrence (lanes with h ≥ −2): Y' = 1 + hY, Y⁽ᵏ⁺¹⁾ = hY⁽ᵏ⁾ + kY⁽ᵏ⁻¹⁾.
    y[v][0] = mills[v];
    y[v][1] = _mm256_add_pd(splat(1.0), _mm256_mul_pd(h[v], y[v][0]));
    for (int k = 1; k < kTaylorTerms; ++k)
      y[v][k + 1] = _mm256_add_pd(_mm256_mul_pd(h[v], y[v][k]), _mm256_mul_pd(splat(static_cast<double>(k)), y[v][k - 1]));
  }
  int n_max = 0;
  for (int l = 0; l < kQueueCells; ++l) n_max = n[l] > n_max ? n[l] : n_max;
  if (n_max > 0) {
    // Miller's backward recurrence (lanes with h < −2; n = 0 marks a forward lane).
    __m256i lane_n[V];
    __m256d above[V], here[V], back[V][kTaylorTerms + 1];
    for (int v = 0; v < V; ++v) {
      lane_n[v] = _mm256_setr_epi64x(n[4 * v], n[4 * v + 1], n[4 * v + 2], n[4 * v + 3]);
      above[v] = _mm256_setzero_pd();
      here[v] = splat(1e-30);
    }
    for (int k = n_max; k >= 1; --k) {
      const __m256d inv_k = splat(1.0 / k);
      const __m256i k_minus_1 = _mm256_set1_epi64x(k - 1);
      for (int v = 0; v < V; ++v) {
        const __m256d below = _mm256_mul_pd(_mm256_sub_pd(above[v], _mm256_mul_pd(h[v], here[v])), inv_k);
        if (k <= kTaylorTerms) back[v][k] = here[v];
        const __m256d started = _mm256_castsi256_pd(_mm256_cmpgt_epi64(lane_n[v], k_minus_1));
        above[v] = _mm256_and_pd(here[v], started);
        here[v] = _mm256_blendv_pd(splat(1e-30), below, started);
      }
    }
    for (int v = 0; v < V; ++v) {
      const __m256d scale = _mm256_div_pd(mills[v], here[v]);
      const __m256d backward = _mm256_castsi256_pd(_mm256_cmpgt_epi64(lane_n[v], _mm256_setzero_si256()));
      for (int k = 1; k <= kTaylorTerms; ++k)
        y[v][k] = _mm256_blendv_pd(y[v][k], _mm256_mul_pd(back[v][k], scale), backward);
    }
  }
  for (int v = 0; v < V; ++v) {
    const __m256i lane_K = _mm256_setr_epi64x(K[4 * v], K[4 * v + 1], K[4 * v + 2], K[4 * v + 3]);
    const __m256d tt = _mm256_mul_pd(t[v], t[v]);
    __m256d sum = _mm256_setzero_pd(), tk = t[v];
    for (int k = 1; k <= kTaylorTerms; k += 2) {
      const __m256d in = _mm256_castsi256_pd(_mm256_cmpgt_epi64(lane_K, _mm256_set1_epi64x(k - 1)));
      sum = _mm256_add_pd(sum, _mm256_and_pd(_mm256_mul_pd(y[v][k], tk), in));
      tk = _mm256_mul_pd(tk, _mm256_div_pd(tt, splat((k + 1.0) * (k + 2.0))));
    }
    b[v] = _mm256_mul_pd(
        _mm256_mul_pd(_mm256_mul_pd(splat(2.0 * kInvSqrt2Pi), exp_neg_half_square4(h[v])),
                      _ZGVdN4v_exp(_mm256_mul_pd(_mm256_mul_pd(splat(-0.5), t[v]), t[v]))),
        sum);
  }
}

/// The queued lanes of a vector path (the risk arrays' cells, the greeks' options) whose value
/// cancels in the direct formula: x = ln(F/K) and s = σ√T per lane, lanes from `count` on
/// padding (copies of lane 0). b = normalised_black_otm(−|x|, s) through the Taylor series above
/// in the lanes where the scalar takes that series: taylor[l], for l < count; b of the other
/// lanes means nothing. False, with nothing computed, when no lane takes it.
inline bool normalised_black_queue(const double x[kQueueCells], const double s[kQueueCells], int count,
                                   bool taylor[kQueueCells], __m256d b[kQueueVectors]) {
  __m256d h[kQueueVectors], t[kQueueVectors];
  alignas(32) double h_[kQueueCells], t_[kQueueCells];
  for (int v = 0; v < kQueueVectors; ++v) {
    const __m256d sd = _mm256_loadu_pd(s + 4 * v), xv = _mm256_loadu_pd(x + 4 * v);
    h[v] = _mm256_div_pd(_mm256_sub_pd(_mm256_setzero_pd(), _mm256_andnot_pd(splat(-0.0), xv)), sd);
    t[v] = _mm256_mul_pd(splat(0.5), sd);
    _mm256_store_pd(h_ + 4 * v, h[v]);
    _mm256_store_pd(t_ + 4 * v, t[v]);
  }
  int n[kQueueCells], K[kQueueCells];
  bool any = false;
  for (int l = 0; l < kQueueCells; ++l) {
    const bool series = taylor_terms(x[l], h_[l], t_[l], n[l], K[l]);  // padding too: its n, K are lane 0's
    taylor[l] = series && l < count;
    any |= taylor[l];
  }
  if (!any) return false;
  normalised_black_taylor(h, t, n, K, b);
  return true;
}

}  // namespace marginet::kernels::simd::avx2
