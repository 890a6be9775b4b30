#pragma once
// Rows of the P&L matrix and what becomes of them, shared by the margin engine
// (host/margin_engine.cpp) and its reference path (host/margin_reference.cpp): the add-on inputs
// of a row, the stage-3 reduction of a row over its scenarios, and the account result built from
// an account's reduced rows. Not a public API.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/margin_engine.hpp"
#include "models/errors.hpp"
#include "host/margin_setup.hpp"
#include "models/deribit_pm.hpp"
#include "models/tail_risk.hpp"

namespace marginet::margin_detail {

/// Rows of the P&L matrix: (account, group) pairs, sorted by account then group.
struct RowKey {
  std::string account;
  std::int32_t group;
  bool operator<(const RowKey& o) const {
    return account != o.account ? account < o.account : group < o.group;
  }
};

/// What a row's add-ons need, accumulated from its positions.
struct RowInputs {
  /// Net quantity per option series (state), sorted by state, span16 only: its short option
  /// minimum counts the net short of each series (a long and a short of the same option
  /// offset). A flat vector, not a tree: a row of 10^4 positions costs no node allocations.
  std::vector<std::pair<std::int32_t, double>> option_net;
  bool option_net_pending = false;  // appended in bulk, not yet sorted and merged (finish_bulk)
  /// Σ over option series of max(0, −net quantity).
  double short_option_contracts() const {
    MARGINET_EXPECTS(!option_net_pending, "finish_bulk() before reading the option series");
    double n = 0;
    for (const auto& [state, q] : option_net) n += q < 0 ? -q : 0.0;
    return n;
  }
  /// Adds q to a series, keeping the order (what-if and the reference path: a few at a time).
  void add_option(std::int32_t state, double q);
  /// Sorts the series appended in bulk by state and merges each series' quantities in the
  /// order they were appended (book order): the sums of add_option's, bit for bit.
  void finish_bulk();
  std::map<double, double> coin_delta_by_expiry;  // expiry (years) -> net coin delta (deribit)
  double coin_delta = 0;
  double delta = 0, gamma = 0, vega = 0;
  struct Greeks { double delta = 0, gamma = 0, vega = 0; };
  std::map<std::int32_t, Greeks> by_group;     // joint rows: greeks per underlying
};

/// Adds one position of the row to the row's add-on inputs. `bulk`: the row's option series
/// are appended and finish_bulk() is due once the row's positions are in (the EOD run).
void add_position_inputs(const RunSetup& setup, const Position& pos, RowInputs& row, bool bulk = false);

/// Per-row reduction result (stage 3 output).
struct RowReduction {
  double worst_loss = 0;        // span16: weighted worst loss; deribit: worst_case; VaR methods: the IM measure
  std::int32_t worst_scenario = -1;
  double var = 0, es = 0, stressed_es = 0;  // hvar / mc-es
};

/// The IM measure of hvar / mc-es from the tails of the base and stressed scenarios.
RowReduction tail_reduction(const Methodology& m, const TailRisk& base, const TailRisk* stress,
                            std::size_t stress_offset = 0);
/// k of the base and stressed segments.
std::size_t tail_k_base(const RunSetup& setup, const Methodology& m);
std::size_t tail_k_stress(const RunSetup& setup, const Methodology& m);

/// Stage-3 reduction of one row on the host (used by the reference path and by what-if).
RowReduction reduce_row(const RunSetup& setup, const Methodology& m, std::int32_t group, const double* pnl);

/// Parameters of the deribit reduction for a group.
DeribitRowParams deribit_params(const RunSetup& setup, const Methodology& m, std::int32_t group);

/// Builds one account's result from its rows: `pnl` rows (one per group in `groups`, each
/// scenarios long), their reductions and inputs.
AccountMargin assemble_account(const RunSetup& setup, const Methodology& m, const std::string& account,
                               const std::vector<std::int32_t>& groups,
                               const std::vector<const double*>& pnl,
                               const std::vector<RowReduction>& reductions,
                               const std::vector<const RowInputs*>& inputs);

}  // namespace marginet::margin_detail
