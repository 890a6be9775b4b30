// AVX2 path of the price_greeks stage (CPU backend): four options per vector, the operations
// of models/pricing.hpp's black76_greeks in the same order (no FMA contraction: every product
// and sum rounds as in the scalar element), glibc's libmvec for exp, log and erfc. Where only
// the value cancels in the direct formula (deep out of the money, short dated), the lane is
// queued and its value taken sixteen at a time through the vector Taylor series of the
// cancellation-free value (normalised_black_avx2.hpp), or the scalar's where the series does
// not apply. Other lanes the vector formula does not cover are computed again by the scalar
// element and overwrite it.
//
// Only the functions between the target pragmas use AVX2; everything included before them is
// compiled for baseline x86-64.

#include "kernels/simd/greeks_simd.hpp"

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

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

/// The undiscounted value of element j by the scalar element's cancellation-free evaluation,
/// compiled for baseline x86-64: the cancelling lanes outside the vector Taylor region.
__attribute__((noinline)) double accurate_value(const GreeksInputs& in, std::size_t j, double s) {
  return pricing_detail::black76_undiscounted_accurate(static_cast<OptionType>(in.put_call[j]), in.forward[j],
                                                       in.strike[j], s);
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
#include "kernels/simd/normalised_black_avx2.hpp"

namespace marginet::kernels::simd {

namespace {

using namespace avx2;

/// All-ones in the lanes l = 0..3 where bytes[l] == value.
inline __m256d byte_lanes_equal(const std::uint8_t* bytes, std::uint8_t value) {
  std::int32_t four;
  std::memcpy(&four, bytes, sizeof four);
  const __m256i lanes = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
  return _mm256_castsi256_pd(_mm256_cmpeq_epi64(lanes, _mm256_set1_epi64x(value)));
}

/// Lanes of elements [i, i + 4) that the vector formula may take: options whose inputs pass
/// pricing_detail::valid_black_inputs (F > 0, K > 0, T ≥ 0, σ ≥ 0, all finite; NaN fails).
inline int option_lanes(const GreeksInputs& in, std::size_t i) {
  const __m256d option = byte_lanes_equal(in.kind + i, static_cast<std::uint8_t>(InstrumentKind::option));
  const __m256d zero = _mm256_setzero_pd(), inf = splat(HUGE_VAL);
  const __m256d F = _mm256_loadu_pd(in.forward + i), K = _mm256_loadu_pd(in.strike + i);
  const __m256d T = _mm256_loadu_pd(in.expiry_years + i), sigma = _mm256_loadu_pd(in.sigma + i);
  __m256d ok = _mm256_and_pd(option, _mm256_cmp_pd(F, zero, _CMP_GT_OQ));
  ok = _mm256_and_pd(ok, _mm256_cmp_pd(K, zero, _CMP_GT_OQ));
  ok = _mm256_and_pd(ok, _mm256_cmp_pd(T, zero, _CMP_GE_OQ));
  ok = _mm256_and_pd(ok, _mm256_cmp_pd(sigma, zero, _CMP_GE_OQ));
  ok = _mm256_and_pd(ok, _mm256_cmp_pd(F, inf, _CMP_LT_OQ));
  ok = _mm256_and_pd(ok, _mm256_cmp_pd(K, inf, _CMP_LT_OQ));
  ok = _mm256_and_pd(ok, _mm256_cmp_pd(T, inf, _CMP_LT_OQ));
  ok = _mm256_and_pd(ok, _mm256_cmp_pd(sigma, inf, _CMP_LT_OQ));
  return _mm256_movemask_pd(ok);
}

/// Elements whose value cancels in the direct formula, waiting to go kQueueCells at a time
/// through the cancellation-free value; the vector pass stored every other column already. Their
/// value, and the columns made from it (θ, ρ, the coin price and the coin delta), are patched
/// in by flush() with black76_greeks' operations in its order.
struct CancellingLanes {
  const GreeksInputs& in;
  const GreeksOutputs& out;
  std::size_t element[kQueueCells];
  alignas(32) double s[kQueueCells], x[kQueueCells], discount[kQueueCells], theta_time[kQueueCells];
  int count = 0;

  CancellingLanes(const GreeksInputs& in_, const GreeksOutputs& out_) : in(in_), out(out_) {}

  void push(std::size_t j, double s_, double x_, double d_, double theta_) {
    element[count] = j;
    s[count] = s_;
    x[count] = x_;
    discount[count] = d_;
    theta_time[count] = theta_;
    if (++count == kQueueCells) flush();
  }

  /// The queued lanes: the vector Taylor series where the scalar takes it, else the scalar's
  /// cancellation-free value; padding lanes repeat lane 0.
  void flush() {
    if (count == 0) return;
    for (int l = count; l < kQueueCells; ++l) {
      s[l] = s[0];
      x[l] = x[0];
    }
    __m256d b[kQueueVectors];
    bool taylor[kQueueCells];
    alignas(32) double b_[kQueueCells];
    if (normalised_black_queue(x, s, count, taylor, b))
      for (int v = 0; v < kQueueVectors; ++v) _mm256_store_pd(b_ + 4 * v, b[v]);
    for (int l = 0; l < count; ++l) {
      const std::size_t j = element[l];
      const double F = in.forward[j], Kst = in.strike[j];
      double undiscounted;
      if (taylor[l]) {
        const double intrinsic = static_cast<OptionType>(in.put_call[j]) == OptionType::call ? std::fmax(F - Kst, 0.0)
                                                                                              : std::fmax(Kst - F, 0.0);
        undiscounted = intrinsic + std::sqrt(F) * std::sqrt(Kst) * b_[l];
      } else {
        undiscounted = accurate_value(in, j, s[l]);
      }
      const double price = discount[l] * undiscounted;
      out.price[j] = price;
      out.theta[j] = theta_time[l] + in.rate[j] * price;
      out.rho[j] = -in.expiry_years[j] * price;
      const double price_coin = price / F;
      out.price_coin[j] = price_coin;
      if (static_cast<Settlement>(in.settlement[j]) == Settlement::inverse) out.delta_coin[j] = out.delta[j] - price_coin;
    }
    count = 0;
  }
};

/// Elements [i, i + 4): the vector formula, stored for every lane; returns the lanes it got
/// right (the others are left to the scalar element): options with valid inputs, σ√T > 0 and a
/// density that does not underflow.
int four_options(const GreeksInputs& in, const GreeksOutputs& out, std::size_t i, int lanes, CancellingLanes& queue) {
  const __m256d use = _mm256_castsi256_pd(_mm256_set_epi64x(lanes & 8 ? -1 : 0, lanes & 4 ? -1 : 0,
                                                            lanes & 2 ? -1 : 0, lanes & 1 ? -1 : 0));
  const __m256d one = splat(1.0);
  // Lanes not taken compute on harmless inputs (F = K = T = σ = 1), and are overwritten.
  const __m256d F = _mm256_blendv_pd(one, _mm256_loadu_pd(in.forward + i), use);
  const __m256d K = _mm256_blendv_pd(one, _mm256_loadu_pd(in.strike + i), use);
  const __m256d T = _mm256_blendv_pd(one, _mm256_loadu_pd(in.expiry_years + i), use);
  const __m256d sigma = _mm256_blendv_pd(one, _mm256_loadu_pd(in.sigma + i), use);
  const __m256d r = _mm256_blendv_pd(_mm256_setzero_pd(), _mm256_loadu_pd(in.rate + i), use);
  // ω = +1 for a call, −1 for a put, from the four type bytes (in vectors: four scalar stores
  // read back as one vector would stall on store forwarding).
  const __m256d call = byte_lanes_equal(in.put_call + i, static_cast<std::uint8_t>(OptionType::call));
  const __m256d w = _mm256_blendv_pd(splat(-1.0), splat(1.0), call);
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
  // Lanes where only the value cancels take the cancellation-free value later (queued: the
  // price and the columns made from it are patched then), and the vector formula for everything
  // else (the greeks do not cancel), as black76_greeks does.
  const __m256d rest_ok = _mm256_and_pd(_mm256_and_pd(use, positive_s), density_ok);
  const int cancelling = _mm256_movemask_pd(_mm256_andnot_pd(direct_ok, rest_ok));
  const __m256d price = _mm256_mul_pd(D, direct);
  const __m256d delta = _mm256_mul_pd(_mm256_mul_pd(D, w), Nd1);
  const __m256d DF = _mm256_mul_pd(D, F);
  const __m256d gamma = _mm256_div_pd(_mm256_mul_pd(D, n1), _mm256_mul_pd(F, s));
  const __m256d vega = _mm256_mul_pd(_mm256_mul_pd(DF, n1), sqrtT);
  const __m256d theta_time = _mm256_div_pd(
      _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(splat(-0.5), D), F), n1), sigma), sqrtT);
  const __m256d theta = _mm256_add_pd(theta_time, _mm256_mul_pd(r, price));
  const __m256d vanna = _mm256_div_pd(_mm256_mul_pd(_mm256_mul_pd(_mm256_xor_pd(D, neg), n1), d2), sigma);
  const __m256d volga = _mm256_div_pd(_mm256_mul_pd(_mm256_mul_pd(vega, d1), d2), sigma);
  const __m256d rho = _mm256_mul_pd(_mm256_xor_pd(T, neg), price);
  const __m256d price_coin = _mm256_div_pd(price, F);
  const __m256d inverse = byte_lanes_equal(in.settlement + i, static_cast<std::uint8_t>(Settlement::inverse));
  const __m256d delta_coin = _mm256_blendv_pd(delta, _mm256_sub_pd(delta, price_coin), inverse);

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
  if (cancelling) {
    alignas(32) double s_[4], x_[4], D_[4], theta_[4];
    _mm256_store_pd(s_, s);
    _mm256_store_pd(x_, x);
    _mm256_store_pd(D_, D);
    _mm256_store_pd(theta_, theta_time);
    for (int l = 0; l < 4; ++l)
      if (cancelling & (1 << l)) queue.push(i + static_cast<std::size_t>(l), s_[l], x_[l], D_[l], theta_[l]);
  }
  return _mm256_movemask_pd(rest_ok);
}

}  // namespace

void price_greeks_avx2(const GreeksInputs& in, const GreeksOutputs& out) {
  const std::size_t n = in.count, blocks = n / 4;
#pragma omp parallel
  {
    CancellingLanes queue(in, out);
#pragma omp for schedule(static, 1024) nowait
    for (std::size_t k = 0; k < blocks; ++k) {
      const std::size_t i = 4 * k;
      const int lanes = option_lanes(in, i);
      const int good = lanes ? four_options(in, out, i, lanes, queue) : 0;
      for (int l = 0; l < 4; ++l)
        if (!(good & (1 << l))) scalar_element(in, out, i + static_cast<std::size_t>(l));
    }
    queue.flush();
  }
  for (std::size_t i = 4 * blocks; i < n; ++i) scalar_element(in, out, i);
}

}  // namespace marginet::kernels::simd

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
