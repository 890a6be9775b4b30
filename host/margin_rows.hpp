#pragma once
// Internals shared by the margin engine (host/margin_engine.cpp) and its reference path
// (host/margin_reference.cpp): preparing instrument states, the per-row add-on inputs, and
// turning reduced rows into account results. Not a public API.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/margin_engine.hpp"
#include "models/deribit_pm.hpp"
#include "models/tail_risk.hpp"

namespace marginet::margin_detail {

/// Everything about the book that does not depend on the backend.
struct Prepared {
  std::vector<std::string> underlyings;        // sorted; group index = position here
  ScenarioSet scenarios;
  PnlUnits units = PnlUnits::quote;
  bool joint = false;                          // one row per account (stress, hvar, mc-es)
  bool expiry_deltas = false;                  // deribit-pm: coin delta per expiry (roll shock)
  std::vector<std::int32_t> state_of;          // instrument index -> slot in `states`, or −1
  std::vector<std::size_t> instrument_of;      // slot -> instrument index
  std::vector<InstrumentState> states;         // slots
  struct UnitRisk {                            // per slot, per unit of quantity
    double delta = 0, gamma = 0, vega = 0, coin_delta = 0;
    bool option = false;
  };
  std::vector<UnitRisk> unit;                  // slots
  std::vector<double> index_price;             // per group
};

/// What a row's add-ons need, accumulated from its positions.
struct RowInputs {
  double short_option_contracts = 0;           // Σ |q| over short options (span16 SOM)
  std::map<double, double> coin_delta_by_expiry;  // expiry (years) -> net coin delta (deribit)
  double coin_delta = 0;
  double delta = 0, gamma = 0, vega = 0;
  struct Greeks { double delta = 0, gamma = 0, vega = 0; };
  std::map<std::int32_t, Greeks> by_group;     // joint rows: greeks per underlying
};

/// Rows of the P&L matrix: (account, group) pairs, sorted by account then group.
struct RowKey {
  std::string account;
  std::int32_t group;
  bool operator<(const RowKey& o) const {
    return account != o.account ? account < o.account : group < o.group;
  }
};

class Preparer {
 public:
  Preparer(const InstrumentTable& instruments, const MarketSnapshot& market, const Methodology& m);
  /// Underlyings, scenario set and states for the instruments in `positions` (and `extra`).
  Prepared prepare(const std::vector<Position>& positions, const std::vector<std::size_t>& extra = {}) const;
  /// Adds a slot for instrument `index` to `p` (what-if on an instrument outside the book).
  std::int32_t add_state(Prepared& p, std::size_t index) const;
  /// The add-on inputs of one position.
  void accumulate(const Prepared& p, const Position& pos, RowInputs& row) const;

 private:
  InstrumentState make_state(std::size_t index, std::int32_t group) const;
  Prepared::UnitRisk unit_risk(std::size_t index, const InstrumentState& st) const;
  const InstrumentTable& instruments_;
  const MarketSnapshot& market_;
  const Methodology& methodology_;
};

/// Per-row reduction result (stage 3 output).
struct RowReduction {
  double worst_loss = 0;        // span16: weighted worst loss; deribit: worst_case; VaR methods: the IM measure
  std::int32_t worst_scenario = -1;
  double var = 0, es = 0, stressed_es = 0;  // hvar / mc-es
};

/// The IM measure of hvar / mc-es from the tails of the base and stressed scenarios.
RowReduction tail_reduction(const Methodology& m, const TailRisk& base, const TailRisk* stress);
/// k of the base and stressed segments.
std::size_t tail_k_base(const Prepared& p, const Methodology& m);
std::size_t tail_k_stress(const Prepared& p, const Methodology& m);
/// The row a position of `group` goes to: 0 for joint methodologies.
inline std::int32_t row_group(const Prepared& p, std::int32_t group) { return p.joint ? 0 : group; }

/// Stage-3 reduction of one row on the host (used by the reference path and by what-if).
RowReduction reduce_row(const Prepared& p, const Methodology& m, std::int32_t group, const double* pnl);

/// Parameters of the deribit reduction for a group.
DeribitRowParams deribit_params(const Prepared& p, const Methodology& m, std::int32_t group);

/// Builds one account's result from its rows: `pnl` rows (one per group in `groups`, each
/// scenarios long), their reductions and inputs.
AccountMargin finish_account(const Prepared& p, const Methodology& m, const std::string& account,
                             const std::vector<std::int32_t>& groups,
                             const std::vector<const double*>& pnl,
                             const std::vector<RowReduction>& reductions,
                             const std::vector<RowInputs>& inputs);

}  // namespace marginet::margin_detail
