#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_memory.cuh"
#include "kernels/detail/primitives.cuh"
#include "kernels/scenario_reduce.hpp"
#include "models/deribit_pm.hpp"
#include "models/scenario_math.hpp"

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {

/// −P[r, s] · weight[s] (models/scenario_math.hpp worst_weighted_loss, one entry).
struct WeightedLoss {
  const double* pnl;
  const double* weights;
  std::size_t scenarios;
  MARGINET_HD double operator()(std::size_t row, std::size_t s) const { return -pnl[row * scenarios + s] * weights[s]; }
};

/// −deribit_entry of P[r, s] (models/deribit_pm.hpp deribit_worst_case, one entry).
struct DeribitLoss {
  const double* pnl;
  std::size_t scenarios;
  const std::int32_t* row_group;
  const double* moves;
  const std::uint8_t* extended;
  const DeribitRowParams* params;
  MARGINET_HD double operator()(std::size_t row, std::size_t s) const {
    const auto g = static_cast<std::size_t>(row_group[row]);
    return -deribit_entry(pnl[row * scenarios + s], moves[g * scenarios + s], extended[s] != 0, params[g]);
  }
};

/// The CPU: a thread per row, the k largest in a heap of k per row (models/tail_risk.hpp).
struct TailOfRow {
  const double* pnl;
  std::size_t scenarios, base_count, k_base, k_stress, heap_stride;
  double* heaps;
  TailRisk* base;
  TailRisk* stress;

  MARGINET_HD void operator()(std::size_t row) const {
    const double* p = pnl + row * scenarios;
    double* heap = heaps + row * heap_stride;
    base[row] = ::marginet::tail_risk(p, base_count, k_base, heap);
    if (base_count < scenarios)
      stress[row] = ::marginet::tail_risk(p + base_count, scenarios - base_count, k_stress, heap);
  }
};

}  // namespace

void tail_risk(const TailRiskArgs& a) {
  if (a.rows == 0) return;
  detail::run_translating_errors("tail_risk", [&] {
    const buffers::Input<double> pnl(a.pnl, a.rows * a.scenarios);
    const bool stressed = a.base_count < a.scenarios;
    buffers::Output<TailRisk> base(a.base, a.rows), stress(a.stress, stressed ? a.rows : 0);
    if (detail::host_decompositions()) {
      // A row per thread, one pass with a heap of k.
      const std::size_t stride = a.k_base > a.k_stress ? a.k_base : a.k_stress;
      buffers::Buffer<double> heaps(a.rows * (stride ? stride : 1));
      primitives::for_each_index(a.rows, TailOfRow{pnl.ptr, a.scenarios, a.base_count, a.k_base, a.k_stress, stride,
                                                   heaps.data(), base.ptr, stress.ptr});
    } else {
      // A warp per row, by radix select (no per-thread heap in global memory).
      primitives::row_tail_risk_by_select(pnl.ptr, a.rows, a.scenarios, 0, a.base_count, a.k_base, base.ptr);
      if (stressed)
        primitives::row_tail_risk_by_select(pnl.ptr, a.rows, a.scenarios, a.base_count, a.scenarios - a.base_count,
                                            a.k_stress, stress.ptr);
    }
    base.to_host();
    stress.to_host();
  });
}

void deribit_worst_case(const DeribitWorstArgs& a) {
  if (a.rows == 0) return;
  detail::run_translating_errors("deribit_worst_case", [&] {
    const buffers::Input<double> pnl(a.pnl, a.rows * a.scenarios);
    const buffers::Input<std::int32_t> group(a.row_group, a.rows);
    const buffers::Input<double> moves(a.moves, a.groups * a.scenarios);
    const buffers::Input<std::uint8_t> extended(a.extended, a.scenarios);
    const buffers::Input<DeribitRowParams> params(a.params, a.groups);
    buffers::Output<double> worst(a.worst_case, a.rows);
    buffers::Output<std::int32_t> scenario(a.scenario, a.rows);
    primitives::row_argmax(a.rows, a.scenarios,
                           DeribitLoss{pnl.ptr, a.scenarios, group.ptr, moves.ptr, extended.ptr, params.ptr},
                           worst.ptr, scenario.ptr);
    worst.to_host();
    scenario.to_host();
  });
}

void weighted_worst_loss(const WorstLossArgs& a) {
  if (a.rows == 0) return;
  detail::run_translating_errors("weighted_worst_loss", [&] {
    const buffers::Input<double> pnl(a.pnl, a.rows * a.scenarios);
    const buffers::Input<double> weights(a.weights, a.scenarios);
    buffers::Output<double> loss(a.loss, a.rows);
    buffers::Output<std::int32_t> scenario(a.scenario, a.rows);
    primitives::row_argmax(a.rows, a.scenarios, WeightedLoss{pnl.ptr, weights.ptr, a.scenarios}, loss.ptr,
                           scenario.ptr);
    loss.to_host();
    scenario.to_host();
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
