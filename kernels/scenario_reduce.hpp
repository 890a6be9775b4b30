#pragma once
// Per-account reductions over scenarios (SPEC §5, stage 3).
//
// Input is a dense P&L matrix P[row, scenario], row-major (one row per account or per
// account×underlying), gains positive. Losses are reported positive.

#include <cstddef>
#include <cstdint>

#include "kernels/api.hpp"
#include "models/deribit_pm.hpp"
#include "models/tail_risk.hpp"

namespace marginet::kernels {

/// Weighted worst loss of each row: loss[r] = max_s (−P[r,s] · weight[s]) and the first
/// scenario (lowest index) attaining it. Rows of zero scenarios get loss 0 and scenario −1.
/// All pointers are host memory; outputs hold `rows` elements.
struct WorstLossArgs {
  const double* pnl;          // rows × scenarios
  std::size_t rows;
  std::size_t scenarios;
  const double* weights;      // scenarios
  double* loss;               // out: rows
  std::int32_t* scenario;     // out: rows
};

/// Deribit portfolio margin worst case of each row (models/deribit_pm.hpp): the extended
/// transform, dampener and pnl_offset applied per entry, then −min over the scenarios.
struct DeribitWorstArgs {
  const double* pnl;                 // rows × scenarios, in coin
  std::size_t rows;
  std::size_t scenarios;
  const std::int32_t* row_group;     // per row: its currency (index into moves/params)
  const double* moves;               // groups × scenarios: relative price move
  const std::uint8_t* extended;      // scenarios: 1 for extended-table entries
  const DeribitRowParams* params;    // per group
  std::size_t groups;
  double* worst_case;                // out: rows
  std::int32_t* scenario;            // out: rows
};

/// VaR and ES of each row by the k-largest rule (models/tail_risk.hpp), over the base
/// scenarios [0, base_count) and, when base_count < scenarios, the stressed ones after them.
struct TailRiskArgs {
  const double* pnl;        // rows × scenarios
  std::size_t rows;
  std::size_t scenarios;
  std::size_t base_count;
  std::size_t k_base;
  std::size_t k_stress;     // ignored without stressed scenarios
  TailRisk* base;           // out: rows
  TailRisk* stress;         // out: rows (left untouched without stressed scenarios)
};

/// On CUDA every reduction takes a warp per row (coalesced reads of the row; tail_risk by a
/// radix select of the k-th largest); on the CPU a thread per row (tail_risk with a heap of k).
MARGINET_KERNEL_API(
void weighted_worst_loss(const WorstLossArgs& args);
void deribit_worst_case(const DeribitWorstArgs& args);
void tail_risk(const TailRiskArgs& args);
)

}  // namespace marginet::kernels
