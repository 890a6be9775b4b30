#pragma once
// Deribit portfolio margin (SPEC §5 `deribit-pm`), per account and currency, in coin.
//
// Stage 3 reduces each row of the P&L matrix (one account × one currency, 27 standard then 8
// extended scenarios) to worst_case; the add-ons (roll shock, delta shock) come from the
// row's deltas. Everything here is per element and runs in kernels and in the reference path.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "models/hd.hpp"

namespace marginet {

/// What the aggregation of one row needs to know about its currency.
struct DeribitRowParams {
  double price_range = 0.16;          // R
  double extended_table_factor = 1.0;
  double extended_dampener = 100000;  // in quote currency (USD)
  double index_price = 0;             // USD per coin
  double pnl_offset = 0;              // gains count × pnl_offset
};

/// One entry of the aggregated risk vector: the extended transform and dampener for extended
/// scenarios, then gains × pnl_offset. `move` is the scenario's relative price move.
///   ext(m)  = factor · (R/|m|) · PnL(m) · (1+m) / (1 + sign(m)·R)
///   damp(m) = (|m|/R − 1) · dampener / ((1 + sign(m)·R) · index)  — shrinks |ext|, never past 0
MARGINET_HD double deribit_entry(double pnl, double move, bool extended, const DeribitRowParams& p) {
  double v = pnl;
  if (extended) {
    const double R = p.price_range;
    const double am = move < 0 ? -move : move;
    const double sg = move < 0 ? -1.0 : 1.0;
    v = p.extended_table_factor * (R / am) * pnl * (1.0 + move) / (1.0 + sg * R);
    const double damp = (am / R - 1.0) * p.extended_dampener / ((1.0 + sg * R) * p.index_price);
    if (v > 0)
      v = v > damp ? v - damp : 0.0;
    else
      v = -v > damp ? v + damp : 0.0;
  }
  if (v > 0) v *= p.pnl_offset;
  return v;
}

struct DeribitWorst {
  double worst_case;       // −min over all entries (positive = loss)
  std::int32_t scenario;   // first scenario attaining it
};

/// worst_case of one row: −min over s of deribit_entry(pnl[s], move[s], extended[s]).
MARGINET_HD DeribitWorst deribit_worst_case(const double* pnl, const double* moves,
                                            const std::uint8_t* extended, std::size_t scenarios,
                                            const DeribitRowParams& p) {
  DeribitWorst w{0.0, -1};
  for (std::size_t s = 0; s < scenarios; ++s) {
    const double loss = -deribit_entry(pnl[s], moves[s], extended[s] != 0, p);
    if (w.scenario < 0 || loss > w.worst_case) {
      w.worst_case = loss;
      w.scenario = static_cast<std::int32_t>(s);
    }
  }
  return w;
}

/// Deribit's totals (private/pme/simulate) carry the worst case rounded to 9 decimals (half away
/// from zero) before the add-ons: 0.05968587238095239 → 0.059685872, + roll shock 0.00315725898
/// = 0.06284313098, the published risk_matrix_margin of the API example.
inline double deribit_round_worst_case(double worst_case) {
  return std::round(worst_case * 1e9) / 1e9;
}

/// Roll shock of one expiry: |net coin delta| · max(min_annualised_move, annualised_move_risk·T).
inline double deribit_roll_shock(double net_coin_delta, double years_to_expiry,
                                 double annualised_move_risk, double min_annualised_move) {
  const double move = std::fmax(min_annualised_move, annualised_move_risk * years_to_expiry);
  return std::fabs(net_coin_delta) * move;
}

/// Deribit publishes the delta-shock parameters (delta_total_liq_shock_threshold,
/// max_delta_shock), not the formula. The readings, with |Δ| the net coin delta, N = |Δ|·index,
/// T the threshold and m max_delta_shock (zero while N ≤ T):
///   ramp   |Δ| · m · min(1, (N − T) / T)   the default: continuous, reaches the full m at 2T
///   step   |Δ| · m                          the whole delta once above T (a cliff at T)
///   excess (|Δ| − T/index) · m              only the delta above the threshold
/// At 400 BTC and an index of 75,000 (N = 30M, T = 20M, m = 0.1): ramp 20 BTC, step 40 BTC,
/// excess 13.33 BTC (docs/margin.md argues the default).
enum class DeltaShockRule : std::uint8_t { ramp, step, excess };

inline double deribit_delta_shock(double total_coin_delta, double index_price, double threshold,
                                  double max_delta_shock, DeltaShockRule rule = DeltaShockRule::ramp) {
  const double delta = std::fabs(total_coin_delta);
  const double notional = delta * index_price;
  if (notional <= threshold || threshold <= 0) return 0.0;
  switch (rule) {
    case DeltaShockRule::step: return delta * max_delta_shock;
    case DeltaShockRule::excess: return (delta - threshold / index_price) * max_delta_shock;
    case DeltaShockRule::ramp: break;
  }
  const double ramp = std::fmin(1.0, (notional - threshold) / threshold);
  return delta * max_delta_shock * ramp;
}

}  // namespace marginet
