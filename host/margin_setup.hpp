#pragma once
// The setup of a margin run, shared by the margin engine (host/margin_engine.cpp) and its
// reference path (host/margin_reference.cpp): the book's underlyings, the scenario set, and the
// valuation state of every instrument the run covers. Not a public API.

#include <cstdint>
#include <string>
#include <vector>

#include "host/margin_engine.hpp"

namespace marginet::margin_detail {

/// Everything about the book that does not depend on the backend.
///
/// A state index numbers the instruments the run covers, in order of first appearance: it
/// indexes `states`, `unit_risk` and `instrument_of`, and is the row of the risk-array matrix
/// R (states × scenarios). It is not the instrument's index in the InstrumentTable;
/// `state_of` and `instrument_of` translate between the two.
struct RunSetup {
  std::vector<std::string> underlyings;        // sorted; group index = position here
  ScenarioSet scenarios;
  PnlUnits units = PnlUnits::quote;
  bool joint = false;                          // one row per account (stress, hvar, mc-es)
  bool expiry_deltas = false;                  // deribit-pm: coin delta per expiry (roll shock)
  bool option_series = false;                  // span16: net quantity per option series (SOM)
  std::vector<std::int32_t> state_of;          // instrument index -> state index, or −1
  std::vector<std::size_t> instrument_of;      // per state index: instrument index
  std::vector<InstrumentState> states;         // per state index
  struct UnitRisk {                            // greeks per unit of quantity
    double delta = 0, gamma = 0, vega = 0, coin_delta = 0;
    bool option = false;
  };
  std::vector<UnitRisk> unit_risk;             // per state index
  std::vector<double> index_price;             // per group
};

/// The group (row of an account in the P&L matrix) that a position on underlying `group` goes
/// to: 0 for joint methodologies, the underlying's group otherwise.
inline std::int32_t row_group(const RunSetup& setup, std::int32_t group) { return setup.joint ? 0 : group; }

/// Builds a RunSetup from the instrument table, the market and the methodology.
class RunSetupBuilder {
 public:
  RunSetupBuilder(const InstrumentTable& instruments, const MarketSnapshot& market, const Methodology& m);
  /// Underlyings, scenario set and instrument states for the instruments in `positions` (and
  /// `also_cover`).
  RunSetup build(const std::vector<Position>& positions, const std::vector<std::size_t>& also_cover = {}) const;
  /// The state index of instrument `instrument`, adding its state to `setup` when the run does
  /// not cover it yet (what-if on an instrument outside the book).
  std::int32_t add_instrument(RunSetup& setup, std::size_t instrument) const;

 private:
  InstrumentState make_state(std::size_t instrument, std::int32_t group) const;
  /// The scenario group of an instrument's underlying; input_error when the set lacks it.
  int group_of(const RunSetup& setup, std::size_t instrument) const;
  RunSetup::UnitRisk make_unit_risk(std::size_t instrument, const InstrumentState& st) const;
  const InstrumentTable& instruments_;
  const MarketSnapshot& market_;
  const Methodology& methodology_;
};

}  // namespace marginet::margin_detail
