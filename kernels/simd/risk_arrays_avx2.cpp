// AVX2 path of the risk_arrays stage (CPU backend). One option row at a time, four scenarios
// per vector, following models/pricing.hpp's black76_price step for step in the same order (no
// FMA contraction, so every product and sum rounds as in the scalar element), with glibc's
// libmvec for exp, log and erfc (≤ 4 ulp from the scalar libm):
//   1. the direct formula ω(F'Φ(ωd1) − KΦ(ωd2)) for four scenarios at a time;
//   2. lanes where it cancels (short-dated, out of the money) are queued and taken sixteen at
//      a time (four interleaved vectors) through the cancellation-free normalised value in its
//      small-σ√T region (Taylor series of the Mills ratio, forward or Miller's backward
//      recurrence per lane; kernels/simd/normalised_black_avx2.hpp, shared with the greeks) —
//      the costliest part of the scalar element, a serial recurrence of up to ~120 steps;
//   3. what is left (σ'√T' = 0, x = 0 exactly, invalid inputs, the rare other regions) runs the
//      scalar element.
//
// Only the functions between the target pragmas use AVX2 (with the two AVX2 headers included
// there); everything this file includes before them and instantiates is compiled for baseline
// x86-64, so no AVX2 copy of a shared inline function can reach a machine without it.

#include "kernels/simd/risk_arrays_simd.hpp"

#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstddef>

#include "models/pricing.hpp"
#include "models/revaluation.hpp"

namespace marginet::kernels::simd {

namespace {

std::atomic<std::uint64_t> g_vector_cells{0};
std::atomic<std::uint64_t> g_cancelling_cells{0};
std::atomic<std::uint64_t> g_scalar_cells{0};

/// The scalar element, compiled for baseline x86-64.
__attribute__((noinline)) double scalar_cell(const InstrumentState& st, const ScenarioShock& shock,
                                             const VolTermParams& vol_terms, PnlUnits units) {
  return scenario_pnl(st, shock, vol_terms, units);
}

/// σ' of the scalar element for each of four lanes: the lanes whose vol shocks the vector
/// code does not take (Deribit's term-scaled shocks, or kinds mixed within the block).
__attribute__((noinline)) void shocked_vols(const InstrumentState& st, const ScenarioShock* const lane[4],
                                            const VolTermParams& vol_terms, double v1[4]) {
  for (int l = 0; l < 4; ++l) v1[l] = shocked_vol(*lane[l], st.vol, st.years * 365.0, vol_terms);
}

}  // namespace

SimdCellCounts simd_cell_counts() {
  return {g_vector_cells.load(), g_cancelling_cells.load(), g_scalar_cells.load()};
}
void reset_simd_cell_counts() {
  g_vector_cells = 0;
  g_cancelling_cells = 0;
  g_scalar_cells = 0;
}

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

using namespace avx2;


namespace {

/// Cells of one row that the direct formula left, waiting to go kQueueCells at a time through
/// the normalised value, with what the direct pass already computed for them: F', the
/// discount e^{−rT'}, s = σ'√T' and x = ln(F'/K).
struct CancellingCells {
  std::size_t scenario[kQueueCells];
  alignas(32) double f1[kQueueCells], discount[kQueueCells], sd[kQueueCells], x[kQueueCells];
  int count = 0;
};

/// What one option row needs, in vectors.
struct OptionRow {
  const InstrumentState& st;
  const RiskArrayArgs& a;
  const VolTermParams& vt;
  std::size_t g;
  double w;
  double* risk;
  std::uint64_t vector_cells = 0;
  std::uint64_t cancelling_cells = 0;

  const ScenarioShock& shock(std::size_t s) const { return a.shocks[s * a.groups + g]; }

  /// P&L of the shocked values, in the row's units.
  __m256d pnl(__m256d value, __m256d f1) const {
    if (a.units == PnlUnits::coin)
      return _mm256_sub_pd(_mm256_div_pd(value, f1), splat(st.base_value / st.forward));
    return _mm256_sub_pd(value, splat(st.base_value));
  }

  /// F', T' and σ' of the scalar element for four scenarios, in vectors, with the scalar's
  /// operations in its order: F·(1 + move), max(T − days/365, 0) (a NaN stays NaN), and σ
  /// shifted or scaled and floored at kMinShockedVol (a NaN becomes the floor).
  void shocked_inputs(const ScenarioShock* const lane[4], __m256d& f1, __m256d& t1, __m256d& v1) const {
    const __m256d move = _mm256_setr_pd(lane[0]->price_move, lane[1]->price_move, lane[2]->price_move, lane[3]->price_move);
    const __m256d days = _mm256_setr_pd(lane[0]->days, lane[1]->days, lane[2]->days, lane[3]->days);
    f1 = _mm256_mul_pd(splat(st.forward), _mm256_add_pd(splat(1.0), move));
    const __m256d t = _mm256_sub_pd(splat(st.years), _mm256_div_pd(days, splat(365.0)));
    t1 = _mm256_blendv_pd(t, _mm256_setzero_pd(), _mm256_cmp_pd(t, _mm256_setzero_pd(), _CMP_LT_OQ));
    const VolShock kind = lane[0]->vol_kind;
    const bool same = lane[1]->vol_kind == kind && lane[2]->vol_kind == kind && lane[3]->vol_kind == kind;
    if (same && kind == VolShock::none) {
      v1 = splat(st.vol);
      return;
    }
    if (same && (kind == VolShock::absolute || kind == VolShock::relative)) {
      const __m256d shift = _mm256_setr_pd(lane[0]->vol_shift, lane[1]->vol_shift, lane[2]->vol_shift, lane[3]->vol_shift);
      const __m256d v = kind == VolShock::absolute ? _mm256_add_pd(splat(st.vol), shift)
                                                   : _mm256_mul_pd(splat(st.vol), _mm256_add_pd(splat(1.0), shift));
      v1 = _mm256_blendv_pd(splat(kMinShockedVol), v, _mm256_cmp_pd(v, splat(kMinShockedVol), _CMP_GT_OQ));
      return;
    }
    alignas(32) double v1_[4];
    shocked_vols(st, lane, vt, v1_);
    v1 = _mm256_load_pd(v1_);
  }

  void scalar(std::size_t s) { risk[s - a.scenario_begin] = scalar_cell(st, shock(s), vt, a.units); }

  /// The queued cells through the normalised value (step 2); padding lanes repeat lane 0.
  void flush(CancellingCells& q) {
    if (q.count == 0) return;
    for (int l = q.count; l < kQueueCells; ++l) {
      q.f1[l] = q.f1[0];
      q.discount[l] = q.discount[0];
      q.sd[l] = q.sd[0];
      q.x[l] = q.x[0];
    }
    constexpr int V = kQueueVectors;
    const __m256d strike = splat(st.strike);
    __m256d b[V];
    bool taylor[kQueueCells];
    if (!normalised_black_queue(q.x, q.sd, q.count, taylor, b)) {
      for (int l = 0; l < q.count; ++l) scalar(q.scenario[l]);
      q.count = 0;
      return;
    }
    alignas(32) double out[kQueueCells];
    for (int v = 0; v < V; ++v) {
      const __m256d f1 = _mm256_load_pd(q.f1 + 4 * v);
      const __m256d intrinsic = w > 0 ? _mm256_max_pd(_mm256_sub_pd(f1, strike), _mm256_setzero_pd())
                                      : _mm256_max_pd(_mm256_sub_pd(strike, f1), _mm256_setzero_pd());
      const __m256d undiscounted = _mm256_add_pd(
          intrinsic, _mm256_mul_pd(_mm256_mul_pd(_mm256_sqrt_pd(f1), _mm256_sqrt_pd(strike)), b[v]));
      const __m256d discount = _mm256_load_pd(q.discount + 4 * v);
      const __m256d value = _mm256_mul_pd(splat(st.contract_size), _mm256_mul_pd(discount, undiscounted));
      _mm256_store_pd(out + 4 * v, pnl(value, f1));
    }
    for (int l = 0; l < q.count; ++l) {
      if (taylor[l]) {
        risk[q.scenario[l] - a.scenario_begin] = out[l];
        ++vector_cells;
        ++cancelling_cells;
      } else {
        scalar(q.scenario[l]);
      }
    }
    q.count = 0;
  }

  /// risk[s − s0] for s in [s0, s1).
  void run() {
    const __m256d wv = splat(w), strike = splat(st.strike), neg_rate = splat(-st.rate);
    const __m256d size = splat(st.contract_size);
    CancellingCells queue;
    __m256d last_t1 = splat(-1.0), discount = _mm256_setzero_pd(), root_t1 = _mm256_setzero_pd();
    std::size_t s = a.scenario_begin;
    const bool strike_ok = st.strike > 0 && st.strike < HUGE_VAL;
    for (; strike_ok && s < a.scenario_end; s += 4) {
      // A short last block repeats its last scenario in the spare lanes (not stored), so that a
      // cell's result never depends on where a tile of scenarios begins or ends.
      const int count = a.scenario_end - s < 4 ? static_cast<int>(a.scenario_end - s) : 4;
      const ScenarioShock* lane[4];
      for (int l = 0; l < 4; ++l) lane[l] = &shock(s + static_cast<std::size_t>(l < count ? l : count - 1));
      __m256d f1, t1, v1;
      shocked_inputs(lane, f1, t1, v1);
      // e^{−rT'} and √T' depend on the scenario only through T', which is the same for every
      // scenario of most sets (one horizon): computed again only when a lane's T' changed.
      if (_mm256_movemask_pd(_mm256_cmp_pd(t1, last_t1, _CMP_EQ_OQ)) != 0xF) {
        discount = _ZGVdN4v_exp(_mm256_mul_pd(neg_rate, t1));
        root_t1 = _mm256_sqrt_pd(t1);
        last_t1 = t1;
      }
      const __m256d sd = _mm256_mul_pd(v1, root_t1);
      const __m256d x = _ZGVdN4v_log(_mm256_div_pd(f1, strike));
      const __m256d d1 = _mm256_add_pd(_mm256_div_pd(x, sd), _mm256_mul_pd(splat(0.5), sd));
      const __m256d d2 = _mm256_sub_pd(d1, sd);
      const __m256d pa = _mm256_mul_pd(f1, normal_cdf4(_mm256_mul_pd(wv, d1)));
      const __m256d pb = _mm256_mul_pd(strike, normal_cdf4(_mm256_mul_pd(wv, d2)));
      const __m256d direct = _mm256_mul_pd(wv, _mm256_sub_pd(pa, pb));
      const __m256d floor = _mm256_mul_pd(splat(pricing_detail::kDirectFormulaFloor), w > 0 ? pa : pb);
      // Valid lanes: F' > 0 and σ'√T' > 0, both finite. The direct formula serves those where
      // it keeps its digits.
      __m256d valid = _mm256_cmp_pd(f1, _mm256_setzero_pd(), _CMP_GT_OQ);
      valid = _mm256_and_pd(valid, _mm256_cmp_pd(f1, splat(HUGE_VAL), _CMP_LT_OQ));
      valid = _mm256_and_pd(valid, _mm256_cmp_pd(sd, _mm256_setzero_pd(), _CMP_GT_OQ));
      valid = _mm256_and_pd(valid, _mm256_cmp_pd(sd, splat(HUGE_VAL), _CMP_LT_OQ));
      const __m256d ok = _mm256_and_pd(valid, _mm256_cmp_pd(direct, floor, _CMP_GT_OQ));
      const __m256d value = _mm256_mul_pd(size, _mm256_mul_pd(discount, direct));
      double* out = risk + (s - a.scenario_begin);
      const int lanes_ok = _mm256_movemask_pd(ok);
      if (count == 4) {
        _mm256_storeu_pd(out, pnl(value, f1));
        if (lanes_ok == 0xF) {
          vector_cells += 4;
          continue;
        }
      } else {
        alignas(32) double part[4];
        _mm256_store_pd(part, pnl(value, f1));
        for (int l = 0; l < count; ++l) out[l] = part[l];
      }
      const int lanes_valid = _mm256_movemask_pd(valid);
      alignas(32) double f1_[4], discount_[4], sd_[4], x_[4];
      _mm256_store_pd(f1_, f1);
      _mm256_store_pd(discount_, discount);
      _mm256_store_pd(sd_, sd);
      _mm256_store_pd(x_, x);
      for (int l = 0; l < count; ++l) {
        if (lanes_ok & (1 << l)) {
          ++vector_cells;
        } else if (lanes_valid & (1 << l)) {
          queue.scenario[queue.count] = s + static_cast<std::size_t>(l);
          queue.f1[queue.count] = f1_[l];
          queue.discount[queue.count] = discount_[l];
          queue.sd[queue.count] = sd_[l];
          queue.x[queue.count] = x_[l];
          if (++queue.count == kQueueCells) flush(queue);
        } else {
          scalar(s + static_cast<std::size_t>(l));
        }
      }
    }
    flush(queue);
    for (; s < a.scenario_end; ++s) scalar(s);
  }
};

}  // namespace

void risk_arrays_avx2(const RiskArrayArgs& a) {
  const std::size_t tile = a.scenario_end - a.scenario_begin;
  if (a.instrument_count == 0 || tile == 0) return;
  const auto rows = static_cast<std::ptrdiff_t>(a.instrument_count);
  std::uint64_t vector_cells = 0, cancelling_cells = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : vector_cells, cancelling_cells)
  for (std::ptrdiff_t i = 0; i < rows; ++i) {
    const InstrumentState& st = a.instruments[i];
    double* risk = a.risk + static_cast<std::size_t>(i) * tile;
    if (st.kind == InstrumentKind::option) {
      const std::size_t g = static_cast<std::size_t>(st.group);
      OptionRow row{st, a, a.vol_terms[g], g, st.put_call == OptionType::call ? 1.0 : -1.0, risk};
      row.run();
      vector_cells += row.vector_cells;
      cancelling_cells += row.cancelling_cells;
    } else {
      const std::size_t g = static_cast<std::size_t>(st.group);
      for (std::size_t s = a.scenario_begin; s < a.scenario_end; ++s)
        risk[s - a.scenario_begin] = scalar_cell(st, a.shocks[s * a.groups + g], a.vol_terms[g], a.units);
    }
  }
  const std::uint64_t cells = static_cast<std::uint64_t>(a.instrument_count) * tile;
  g_vector_cells.fetch_add(vector_cells, std::memory_order_relaxed);
  g_cancelling_cells.fetch_add(cancelling_cells, std::memory_order_relaxed);
  g_scalar_cells.fetch_add(cells - vector_cells, std::memory_order_relaxed);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

}  // namespace marginet::kernels::simd
