// AVX2 path of the price_greeks stage (CPU backend): four options per vector, the operations
// of models/pricing.hpp's black76_greeks in the same order (no FMA contraction: every product
// and sum rounds as in the scalar element), glibc's libmvec for exp, log and erfc. Lanes the
// vector formula does not cover are computed again by the scalar element and overwrite it.
//
// Only the functions between the target pragmas use AVX2; everything included before them is
// compiled for baseline x86-64.

#include "kernels/simd/greeks_simd.hpp"

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "models/instrument.hpp"
#include "models/pricing.hpp"

namespace marginet::kernels::simd {

namespace {

/// The scalar element (kernels/greeks.cu's), compiled for baseline x86-64.
__attribute__((noinline)) void scalar_element(const GreeksInputs& in, const GreeksOutputs& out, std::size_t i) {
  const InstrumentRisk r = instrument_risk(static_cast<InstrumentKind>(in.kind[i]), static_cast<OptionType>(in.put_call[i]),
                                           static_cast<Settlement>(in.settlement[i]), in.forward[i], in.strike[i],
                                           in.expiry_years[i], in.sigma[i], in.rate[i]);
  out.price[i] = r.price;
  out.price_coin[i] = r.price_coin;
  out.delta[i] = r.delta;
  out.delta_coin[i] = r.delta_coin;
  out.gamma[i] = r.gamma;
  out.vega[i] = r.vega;
  out.theta[i] = r.theta;
  out.rho[i] = r.rho;
  out.vanna[i] = r.vanna;
  out.volga[i] = r.volga;
}

/// Lanes of elements [i, i + 4) that the vector formula may take: options with valid inputs.
__attribute__((noinline)) int option_lanes(const GreeksInputs& in, std::size_t i) {
  int mask = 0;
  for (int l = 0; l < 4; ++l) {
    const std::size_t j = i + static_cast<std::size_t>(l);
    if (static_cast<InstrumentKind>(in.kind[j]) == InstrumentKind::option &&
        pricing_detail::valid_black_inputs(in.forward[j], in.strike[j], in.expiry_years[j], in.sigma[j]))
      mask |= 1 << l;
  }
  return mask;
}

}  // namespace

}  // namespace marginet::kernels::simd

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

#include "kernels/simd/normal_avx2.hpp"  // inside the AVX2 region: its functions are AVX2 code

namespace marginet::kernels::simd {

namespace {

using namespace avx2;

/// Elements [i, i + 4): the vector formula, stored for every lane; returns the lanes it got
/// right (the others are left to the scalar element).
int four_options(const GreeksInputs& in, const GreeksOutputs& out, std::size_t i, int lanes) {
  const __m256d use = _mm256_castsi256_pd(_mm256_set_epi64x(lanes & 8 ? -1 : 0, lanes & 4 ? -1 : 0,
                                                            lanes & 2 ? -1 : 0, lanes & 1 ? -1 : 0));
  const __m256d one = splat(1.0);
  // Lanes not taken compute on harmless inputs (F = K = T = σ = 1), and are overwritten.
  const __m256d F = _mm256_blendv_pd(one, _mm256_loadu_pd(in.forward + i), use);
  const __m256d K = _mm256_blendv_pd(one, _mm256_loadu_pd(in.strike + i), use);
  const __m256d T = _mm256_blendv_pd(one, _mm256_loadu_pd(in.expiry_years + i), use);
  const __m256d sigma = _mm256_blendv_pd(one, _mm256_loadu_pd(in.sigma + i), use);
  const __m256d r = _mm256_blendv_pd(_mm256_setzero_pd(), _mm256_loadu_pd(in.rate + i), use);
  alignas(32) double wl[4];
  for (int l = 0; l < 4; ++l)
    wl[l] = static_cast<OptionType>(in.put_call[i + static_cast<std::size_t>(l)]) == OptionType::call ? 1.0 : -1.0;
  const __m256d w = _mm256_load_pd(wl);
  const __m256d call = _mm256_cmp_pd(w, _mm256_setzero_pd(), _CMP_GT_OQ);
  const __m256d zero = _mm256_setzero_pd();
  const __m256d neg = splat(-0.0);

  const __m256d D = _ZGVdN4v_exp(_mm256_mul_pd(_mm256_xor_pd(r, neg), T));  // exp(−r·T)
  const __m256d sqrtT = _mm256_sqrt_pd(T);
  const __m256d s = _mm256_mul_pd(sigma, sqrtT);
  const __m256d positive_s = _mm256_cmp_pd(s, zero, _CMP_GT_OQ);
  const __m256d x = _ZGVdN4v_log(_mm256_div_pd(F, K));
  const __m256d d1 = _mm256_add_pd(_mm256_div_pd(x, s), _mm256_mul_pd(splat(0.5), s));
  const __m256d d2 = _mm256_sub_pd(d1, s);
  const __m256d Nd1 = normal_cdf4(_mm256_mul_pd(w, d1));
  const __m256d a = _mm256_mul_pd(F, Nd1);
  const __m256d b = _mm256_mul_pd(K, normal_cdf4(_mm256_mul_pd(w, d2)));
  const __m256d direct = _mm256_mul_pd(w, _mm256_sub_pd(a, b));
  const __m256d direct_ok =
      _mm256_cmp_pd(direct, _mm256_mul_pd(splat(pricing_detail::kDirectFormulaFloor), _mm256_blendv_pd(b, a, call)),
                    _CMP_GT_OQ);
  const __m256d n1 = _mm256_mul_pd(splat(pricing_detail::kInvSqrt2Pi),
                                   _ZGVdN4v_exp(_mm256_mul_pd(_mm256_mul_pd(splat(-0.5), d1), d1)));
  const __m256d density_ok = _mm256_cmp_pd(n1, zero, _CMP_NEQ_OQ);

  const __m256d price = _mm256_mul_pd(D, direct);
  const __m256d delta = _mm256_mul_pd(_mm256_mul_pd(D, w), Nd1);
  const __m256d DF = _mm256_mul_pd(D, F);
  const __m256d gamma = _mm256_div_pd(_mm256_mul_pd(D, n1), _mm256_mul_pd(F, s));
  const __m256d vega = _mm256_mul_pd(_mm256_mul_pd(DF, n1), sqrtT);
  const __m256d theta = _mm256_add_pd(
      _mm256_div_pd(_mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(splat(-0.5), D), F), n1), sigma), sqrtT),
      _mm256_mul_pd(r, price));
  const __m256d vanna = _mm256_div_pd(_mm256_mul_pd(_mm256_mul_pd(_mm256_xor_pd(D, neg), n1), d2), sigma);
  const __m256d volga = _mm256_div_pd(_mm256_mul_pd(_mm256_mul_pd(vega, d1), d2), sigma);
  const __m256d rho = _mm256_mul_pd(_mm256_xor_pd(T, neg), price);
  const __m256d price_coin = _mm256_div_pd(price, F);
  alignas(32) double inverse[4];
  for (int l = 0; l < 4; ++l)
    inverse[l] = static_cast<Settlement>(in.settlement[i + static_cast<std::size_t>(l)]) == Settlement::inverse ? 1.0 : 0.0;
  const __m256d delta_coin =
      _mm256_blendv_pd(delta, _mm256_sub_pd(delta, price_coin), _mm256_cmp_pd(_mm256_load_pd(inverse), zero, _CMP_GT_OQ));

  _mm256_storeu_pd(out.price + i, price);
  _mm256_storeu_pd(out.price_coin + i, price_coin);
  _mm256_storeu_pd(out.delta + i, delta);
  _mm256_storeu_pd(out.delta_coin + i, delta_coin);
  _mm256_storeu_pd(out.gamma + i, gamma);
  _mm256_storeu_pd(out.vega + i, vega);
  _mm256_storeu_pd(out.theta + i, theta);
  _mm256_storeu_pd(out.rho + i, rho);
  _mm256_storeu_pd(out.vanna + i, vanna);
  _mm256_storeu_pd(out.volga + i, volga);
  const __m256d good = _mm256_and_pd(_mm256_and_pd(use, positive_s), _mm256_and_pd(direct_ok, density_ok));
  return _mm256_movemask_pd(good);
}

}  // namespace

void price_greeks_avx2(const GreeksInputs& in, const GreeksOutputs& out) {
  const std::size_t n = in.count, blocks = n / 4;
#pragma omp parallel for schedule(static, 1024)
  for (std::size_t k = 0; k < blocks; ++k) {
    const std::size_t i = 4 * k;
    const int lanes = option_lanes(in, i);
    const int good = lanes ? four_options(in, out, i, lanes) : 0;
    for (int l = 0; l < 4; ++l)
      if (!(good & (1 << l))) scalar_element(in, out, i + static_cast<std::size_t>(l));
  }
  for (std::size_t i = 4 * blocks; i < n; ++i) scalar_element(in, out, i);
}

}  // namespace marginet::kernels::simd

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
