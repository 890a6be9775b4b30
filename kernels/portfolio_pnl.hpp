#pragma once
// Stage 2 of scenario margin (SPEC §5): portfolio P&L P[row, s] = Σ_j q_j · R[instrument_j, s]
// over the positions of each row, positions held as CSR (one row per account, or per
// account × underlying). The summation order is the CSR order on every backend.

#include <cstddef>
#include <cstdint>

#include "kernels/api.hpp"

namespace marginet::kernels {

struct PortfolioPnlArgs {
  const std::int64_t* row_offsets;  // rows + 1 entries into instrument/quantity
  std::size_t rows;
  const std::int32_t* instrument;   // per position: row of the risk-array matrix
  const double* quantity;           // per position, signed
  std::size_t positions;            // row_offsets[rows]
  const double* risk_arrays;        // instruments × scenarios, row-major
  std::size_t instruments;
  std::size_t scenarios;
  double* pnl;                      // out: rows × scenarios, row-major
};

MARGINET_KERNEL_API(
void portfolio_pnl(const PortfolioPnlArgs& args);
)

}  // namespace marginet::kernels
