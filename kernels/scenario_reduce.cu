#include "kernels/detail/backend.cuh"
#include "kernels/scenario_reduce.hpp"
#include "models/deribit_pm.hpp"
#include "models/scenario_math.hpp"

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {
struct WorstLossOfRow {
  const double* pnl;
  const double* weights;
  std::size_t scenarios;
  double* loss;
  std::int32_t* scenario;

  MARGINET_HD void operator()(std::size_t row) const {
    const WorstLoss w = worst_weighted_loss(pnl + row * scenarios, weights, scenarios);
    loss[row] = w.loss;
    scenario[row] = w.scenario;
  }
};
struct DeribitWorstOfRow {
  const double* pnl;
  std::size_t scenarios;
  const std::int32_t* row_group;
  const double* moves;
  const std::uint8_t* extended;
  const DeribitRowParams* params;
  double* worst_case;
  std::int32_t* scenario;

  MARGINET_HD void operator()(std::size_t row) const {
    const std::int32_t g = row_group[row];
    const DeribitWorst w = ::marginet::deribit_worst_case(
        pnl + row * scenarios, moves + static_cast<std::size_t>(g) * scenarios, extended, scenarios,
        params[g]);
    worst_case[row] = w.worst_case;
    scenario[row] = w.scenario;
  }
};

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
  const std::size_t stride = a.k_base > a.k_stress ? a.k_base : a.k_stress;
  detail::run_translating_errors("tail_risk", [&] {
    thrust::device_vector<double> heaps(a.rows * (stride ? stride : 1));
#if THRUST_DEVICE_SYSTEM != THRUST_DEVICE_SYSTEM_CUDA
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.rows,
                       TailOfRow{a.pnl, a.scenarios, a.base_count, a.k_base, a.k_stress, stride,
                                 thrust::raw_pointer_cast(heaps.data()), a.base, a.stress});
#else
    auto pnl = detail::to_device(a.pnl, a.rows * a.scenarios);
    thrust::device_vector<TailRisk> base(a.rows), stress(a.rows);
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.rows,
                       TailOfRow{thrust::raw_pointer_cast(pnl.data()), a.scenarios, a.base_count, a.k_base,
                                 a.k_stress, stride, thrust::raw_pointer_cast(heaps.data()),
                                 thrust::raw_pointer_cast(base.data()), thrust::raw_pointer_cast(stress.data())});
    thrust::copy(base.begin(), base.end(), a.base);
    if (a.base_count < a.scenarios) thrust::copy(stress.begin(), stress.end(), a.stress);
#endif
  });
}

void deribit_worst_case(const DeribitWorstArgs& a) {
  if (a.rows == 0) return;
  detail::run_translating_errors("deribit_worst_case", [&] {
#if THRUST_DEVICE_SYSTEM != THRUST_DEVICE_SYSTEM_CUDA
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.rows,
                       DeribitWorstOfRow{a.pnl, a.scenarios, a.row_group, a.moves, a.extended,
                                         a.params, a.worst_case, a.scenario});
#else
    auto pnl = detail::to_device(a.pnl, a.rows * a.scenarios);
    auto group = detail::to_device(a.row_group, a.rows);
    auto moves = detail::to_device(a.moves, a.groups * a.scenarios);
    auto extended = detail::to_device(a.extended, a.scenarios);
    auto params = detail::to_device(a.params, a.groups);
    thrust::device_vector<double> worst(a.rows);
    thrust::device_vector<std::int32_t> scenario(a.rows);
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.rows,
                       DeribitWorstOfRow{thrust::raw_pointer_cast(pnl.data()), a.scenarios,
                                         thrust::raw_pointer_cast(group.data()),
                                         thrust::raw_pointer_cast(moves.data()),
                                         thrust::raw_pointer_cast(extended.data()),
                                         thrust::raw_pointer_cast(params.data()),
                                         thrust::raw_pointer_cast(worst.data()),
                                         thrust::raw_pointer_cast(scenario.data())});
    thrust::copy(worst.begin(), worst.end(), a.worst_case);
    thrust::copy(scenario.begin(), scenario.end(), a.scenario);
#endif
  });
}

void weighted_worst_loss(const WorstLossArgs& a) {
  if (a.rows == 0) return;
  detail::run_translating_errors("weighted_worst_loss", [&] {
#if THRUST_DEVICE_SYSTEM != THRUST_DEVICE_SYSTEM_CUDA
    // Host memory is device memory here: work in place, no copies.
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.rows,
                       WorstLossOfRow{a.pnl, a.weights, a.scenarios, a.loss, a.scenario});
#else
    auto pnl = detail::to_device(a.pnl, a.rows * a.scenarios);
    auto weights = detail::to_device(a.weights, a.scenarios);
    thrust::device_vector<double> loss(a.rows);
    thrust::device_vector<std::int32_t> scenario(a.rows);
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), a.rows,
                       WorstLossOfRow{thrust::raw_pointer_cast(pnl.data()),
                                      thrust::raw_pointer_cast(weights.data()), a.scenarios,
                                      thrust::raw_pointer_cast(loss.data()),
                                      thrust::raw_pointer_cast(scenario.data())});
    thrust::copy(loss.begin(), loss.end(), a.loss);
    thrust::copy(scenario.begin(), scenario.end(), a.scenario);
#endif
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
