#pragma once
// Per-element maths of network clearing (SPEC §11), shared by the kernel (kernels/contagion.cu)
// and the plain reference paths (models/contagion.cpp), so every path applies the same rule.
//
// One node's payment given what it receives (Rogers–Veraart; α = β = 1 is Eisenberg–Noe):
//   pays its liability l in full      when e + inflow ≥ l
//   pays α·e + β·inflow (≤ l, ≥ 0)     otherwise (it defaults)
// With α = β = 1 the default branch is e + inflow, so the rule is min(l, max(0, e + inflow)).

#include "models/hd.hpp"

namespace marginet {

/// α·e + β·inflow, clipped to [0, l]: the payment of a node in default. On valid input the clips
/// never act (e ≥ 0, inflow ≥ 0, and a node defaults only when e + inflow < l, so
/// α·e + β·inflow ≤ e + inflow < l); they keep every payment inside [0, l] whatever comes in.
MARGINET_HD double defaulted_payment(double external, double inflow, double liability, double alpha,
                                     double beta) {
  const double p = alpha * external + beta * inflow;
  if (p < 0) return 0;
  return p < liability ? p : liability;
}

/// The payment of one node: the clearing map Φ_i. The fictitious default algorithm instead
/// applies defaulted_payment to the nodes it has declared defaulted and keeps the others at l.
MARGINET_HD double clearing_payment(double external, double inflow, double liability, double alpha,
                                    double beta) {
  if (external + inflow >= liability) return liability;
  return defaulted_payment(external, inflow, liability, alpha, beta);
}

/// The share of its liabilities a node pays. Exactly 1 when it pays in full (x / x is exact),
/// so the creditors of a solvent debtor receive the nominal amounts bit for bit; 1 for a node
/// that owes nothing (it has no creditors to read it).
MARGINET_HD double paid_ratio(double payment, double liability) {
  return liability > 0 ? payment / liability : 1.0;
}

}  // namespace marginet
