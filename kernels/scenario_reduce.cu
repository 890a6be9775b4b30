#include "kernels/detail/backend.cuh"
#include "kernels/scenario_reduce.hpp"
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
}  // namespace

void weighted_worst_loss(const WorstLossArgs& a) {
  if (a.rows == 0) return;
  detail::guarded("weighted_worst_loss", [&] {
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
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
