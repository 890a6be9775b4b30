// The per-account worst-loss reduction (SPEC §5 stage 3) on every backend, against the plain
// reference loop; sizes around warp boundaries and large enough for many blocks.

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "host/dispatch.hpp"
#include "kernels/scenario_reduce.hpp"
#include "models/scenario_math.hpp"
#include "models/tail_risk.hpp"
#include "tests/backends.hpp"

namespace marginet {
namespace {

struct Result {
  std::vector<double> loss;
  std::vector<std::int32_t> scenario;
};

Result run(Backend backend, const std::vector<double>& pnl, std::size_t rows, std::size_t scenarios,
           const std::vector<double>& weights) {
  Result r{std::vector<double>(rows, -7.0), std::vector<std::int32_t>(rows, -7)};
  MARGINET_DISPATCH(backend, weighted_worst_loss,
                    kernels::WorstLossArgs{pnl.data(), rows, scenarios, weights.data(),
                                           r.loss.data(), r.scenario.data()});
  return r;
}

Result reference(const std::vector<double>& pnl, std::size_t rows, std::size_t scenarios,
                 const std::vector<double>& weights) {
  Result r;
  for (std::size_t a = 0; a < rows; ++a) {
    double worst = 0;
    std::int32_t at = -1;
    for (std::size_t s = 0; s < scenarios; ++s) {
      const double loss = -pnl[a * scenarios + s] * weights[s];
      if (at < 0 || loss > worst) worst = loss, at = static_cast<std::int32_t>(s);
    }
    r.loss.push_back(worst);
    r.scenario.push_back(at);
  }
  return r;
}

class WorstLoss : public testing::BackendTest {};

TEST_P(WorstLoss, HandCase) {
  // Row 0: worst is scenario 2 (loss 5). Row 1: scenario 3 has pnl -10 but weight 0.35 -> 3.5,
  // less than scenario 0's 4. Row 2: all gains, worst loss is the smallest gain, negated.
  const std::vector<double> pnl{1, -2, -5, 3,   -4, 0, 2, -10,   3, 1, 2, 5};
  const std::vector<double> w{1, 1, 1, 0.35};
  const Result r = run(backend(), pnl, 3, 4, w);
  EXPECT_DOUBLE_EQ(r.loss[0], 5.0);
  EXPECT_EQ(r.scenario[0], 2);
  EXPECT_DOUBLE_EQ(r.loss[1], 4.0);
  EXPECT_EQ(r.scenario[1], 0);
  EXPECT_DOUBLE_EQ(r.loss[2], -1.0);
  EXPECT_EQ(r.scenario[2], 1);
}

TEST_P(WorstLoss, TieGoesToTheFirstScenario) {
  const std::vector<double> pnl{-3, 1, -3, -3};
  const std::vector<double> w(4, 1.0);
  const Result r = run(backend(), pnl, 1, 4, w);
  EXPECT_EQ(r.scenario[0], 0);
  EXPECT_DOUBLE_EQ(r.loss[0], 3.0);
}

TEST_P(WorstLoss, EmptyInputs) {
  const std::vector<double> none;
  EXPECT_TRUE(run(backend(), none, 0, 16, std::vector<double>(16, 1.0)).loss.empty());
  const Result r = run(backend(), none, 2, 0, none);
  EXPECT_EQ(r.scenario, (std::vector<std::int32_t>{-1, -1}));
  EXPECT_EQ(r.loss, (std::vector<double>{0.0, 0.0}));
}

TEST_P(WorstLoss, MatchesReferenceAcrossSizes) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  for (std::size_t rows : {1u, 31u, 32u, 33u, 63u, 64u, 65u, 5000u}) {
    for (std::size_t scenarios : {1u, 16u, 35u, 257u}) {
      std::vector<double> pnl(rows * scenarios), w(scenarios);
      for (auto& x : pnl) x = normal(rng) * 1e6;
      for (auto& x : w) x = std::abs(normal(rng));
      const Result got = run(backend(), pnl, rows, scenarios, w);
      const Result want = reference(pnl, rows, scenarios, w);
      ASSERT_EQ(got.loss, want.loss) << rows << "x" << scenarios;
      ASSERT_EQ(got.scenario, want.scenario) << rows << "x" << scenarios;
    }
  }
}

MARGINET_INSTANTIATE_BACKENDS(WorstLoss);

class WorstLossCrossBackend : public testing::CrossBackendTest {};

TEST_F(WorstLossCrossBackend, CpuAndCudaAgreeBitwise) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  const std::size_t rows = 20000, scenarios = 1250;
  std::vector<double> pnl(rows * scenarios), w(scenarios, 1.0);
  for (auto& x : pnl) x = normal(rng);
  const Result cpu = run(Backend::cpu, pnl, rows, scenarios, w);
  const Result gpu = run(Backend::cuda, pnl, rows, scenarios, w);
  EXPECT_EQ(cpu.loss, gpu.loss);
  EXPECT_EQ(cpu.scenario, gpu.scenario);
}

// The tail reduction (hvar, mc-es) on every backend against the per-row heap of
// models/tail_risk.hpp: the base scenarios and the stressed ones after them, row and scenario
// counts around a warp's 32 (CUDA takes a warp per row, by radix select), ties across the k-th
// place. VaR and the worst loss exactly; ES to the cross-backend tolerance (the select sums the
// same k losses in another order).
class TailReduction : public testing::BackendTest {};

TEST_P(TailReduction, MatchesTheHeapOnBaseAndStressedScenarios) {
  std::mt19937_64 rng(13);
  std::student_t_distribution<double> fat(3.0);
  std::uniform_int_distribution<int> coarse(-3, 3);
  int rows_checked = 0;
  for (std::size_t rows : {1u, 31u, 33u, 700u}) {
    for (std::size_t base : {1u, 32u, 100u, 1250u}) {
      const std::size_t stressed = base / 4 + 1, scenarios = base + stressed;
      const std::size_t k_base = tail_count(0.99, base), k_stress = tail_count(0.975, stressed);
      std::vector<double> pnl(rows * scenarios);
      for (std::size_t i = 0; i < pnl.size(); ++i) pnl[i] = (i / scenarios) % 3 == 0 ? 1e3 * coarse(rng) : 1e5 * fat(rng);
      std::vector<TailRisk> got_base(rows), got_stress(rows);
      MARGINET_DISPATCH(backend(), tail_risk,
                        kernels::TailRiskArgs{pnl.data(), rows, scenarios, base, k_base, k_stress, got_base.data(),
                                              got_stress.data()});
      std::vector<double> heap(std::max(k_base, k_stress));
      for (std::size_t r = 0; r < rows; ++r, ++rows_checked) {
        const double* row = pnl.data() + r * scenarios;
        const TailRisk want_base = tail_risk(row, base, k_base, heap.data());
        const TailRisk want_stress = tail_risk(row + base, stressed, k_stress, heap.data());
        for (const auto& [got, want] : {std::pair{got_base[r], want_base}, std::pair{got_stress[r], want_stress}}) {
          ASSERT_EQ(got.var, want.var) << rows << " rows, " << base << " base, row " << r;
          ASSERT_EQ(got.worst, want.worst);
          ASSERT_EQ(got.worst_scenario, want.worst_scenario);
          ASSERT_TRUE(testing::within_backend_tolerance(got.es, want.es, std::fabs(want.worst) + 1.0))
              << got.es << " vs " << want.es;
        }
      }
    }
  }
  EXPECT_EQ(rows_checked, 4 * (1 + 31 + 33 + 700));
}

MARGINET_INSTANTIATE_BACKENDS(TailReduction);

}  // namespace
}  // namespace marginet
