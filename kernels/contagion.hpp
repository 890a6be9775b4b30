#pragma once
// Network clearing (SPEC §11; docs/contagion.md): Picard iteration of the clearing map on a
// backend. The network is in CSR form by creditor (models/contagion.hpp ClearingSystem): row i
// lists the debtors j of node i with their residual liabilities L[j,i] − M[j,i]. One iteration
// is one pass over the rows:
//   ratio_j   = p_j / l_j                                 (exactly 1 for a debtor paying in full)
//   inflow_i  = margin_received_i + Σ_row amount_ji · ratio_j    (a gather, row order fixed)
//   p_i      ← clearing_payment(e_i, inflow_i, l_i, α, β)         (models/contagion_math.hpp)
// then a max-reduction of |Δp|; it stops when that is ≤ tolerance or after max_iterations.
// Every node's sum runs in the same order on both backends, so CPU and GPU results differ only
// by the rounding of the division and products (the CUDA build turns off FMA contraction).
//
// With `rows` set, only those nodes are updated, each by the default branch α·e + β·inflow
// whatever it receives, and every other node keeps its payment: one round of the fictitious
// default algorithm (the linear system of the defaulted nodes, solved by the same iteration).
//
// CPU backend: one OpenMP region per call, rows split into shares of equal work (rows + links),
// one barrier per iteration; passes under 65,536 rows + links run on one thread. GPU: Thrust, a
// thread per node and a max-reduction per iteration.
//
// All pointers are host memory. No Thrust or CUDA type appears in this header. The GPU copy
// moves the network to the device on every call (an upload of ~12 bytes per link).

#include <cstddef>
#include <cstdint>

#include "kernels/api.hpp"

namespace marginet::kernels {

/// The network in CSR form by creditor; all arrays host memory.
struct ClearingNetworkView {
  std::int32_t nodes = 0;
  const std::int64_t* in_begin = nullptr;    // nodes + 1: row i is [in_begin[i], in_begin[i+1])
  const std::int32_t* in_debtor = nullptr;   // links
  const double* in_amount = nullptr;         // links: residual liability of the debtor to the row's node
  const double* external = nullptr;          // nodes: e_i
  const double* liability = nullptr;         // nodes: l_i, residual total liabilities
  const double* margin_received = nullptr;   // nodes: received whatever the debtors' state
};

struct ClearingIterationArgs {
  ClearingNetworkView network;
  double alpha = 1.0;  // (0, 1]
  double beta = 1.0;   // (0, 1]
  double tolerance = 0;
  std::int64_t max_iterations = 0;
  const std::int32_t* rows = nullptr;  // nullptr: every node by the clearing rule; else these nodes (ascending) in default
  std::size_t row_count = 0;
  double* payment = nullptr;           // in: the start (at or above the fixed point sought); out: the last iterate
  double* inflow = nullptr;            // out, optional: every node's inflow at the returned payments
};

struct ClearingIterationResult {
  std::int64_t iterations = 0;
  double last_change = 0;  // max |Δp| of the last iteration
  bool converged = false;  // last_change ≤ tolerance (false when no iteration ran)
};

MARGINET_KERNEL_API(
ClearingIterationResult clearing_iterate(const ClearingIterationArgs& args);
)

}  // namespace marginet::kernels
