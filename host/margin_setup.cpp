#include "host/margin_setup.hpp"

#include <exception>
#include <set>

#include "models/errors.hpp"
#include "models/implied_vol.hpp"
#include "models/pricing.hpp"
#include "models/scenario_math.hpp"

namespace marginet::margin_detail {

RunSetupBuilder::RunSetupBuilder(const InstrumentTable& instruments, const MarketSnapshot& market, const Methodology& m)
    : instruments_(instruments), market_(market), methodology_(m) {}

InstrumentState RunSetupBuilder::make_state(std::size_t instrument, std::int32_t group) const {
  const Instrument& inst = instruments_[instrument];
  const UnderlyingMarket& um = market_.underlying(inst.underlying);
  InstrumentState st;
  st.kind = inst.kind;
  st.put_call = inst.put_call;
  st.group = group;
  st.strike = inst.strike;
  st.contract_size = inst.contract_size;
  st.rate = um.rate;
  switch (inst.kind) {
    case InstrumentKind::option: {
      st.years = market_.time_to_expiry(inst.underlying, inst.expiry);
      st.forward = market_.forward(inst.underlying, inst.expiry);
      const Mark& mark = market_.mark(inst.id);
      if (mark.has_iv() && mark.mark_iv > 0) {
        st.vol = mark.mark_iv;
      } else if (mark.has_price()) {
        // Options are quoted in their settlement currency: coin for inverse.
        const double price_quote =
            inst.settlement == Settlement::inverse ? mark.mark_price * st.forward : mark.mark_price;
        st.vol = implied_vol_black76_or_throw(inst.put_call, price_quote / inst.contract_size, st.forward,
                                              inst.strike, st.years, um.rate);
      } else {
        throw input_error("marks: option '" + inst.id + "' has neither mark_iv nor mark_price");
      }
      break;
    }
    case InstrumentKind::future: {
      st.years = market_.time_to_expiry(inst.underlying, inst.expiry);
      const Mark* mark = market_.find_mark(inst.id);
      st.forward = mark && mark->has_price() ? mark->mark_price : market_.forward(inst.underlying, inst.expiry);
      break;
    }
    case InstrumentKind::perpetual: {
      const Mark* mark = market_.find_mark(inst.id);
      st.forward = mark && mark->has_price() ? mark->mark_price : um.index_price;
      break;
    }
    case InstrumentKind::spot:
      st.forward = um.index_price;
      break;
  }
  if (!(st.forward > 0))
    throw input_error("market: no positive price for instrument '" + inst.id + "'");
  st.base_value = value_quote(st, st.forward, st.vol, st.years);
  return st;
}

RunSetup RunSetupBuilder::build(const std::vector<Position>& positions,
                                const std::vector<std::size_t>& also_cover) const {
  RunSetup setup;
  std::vector<std::uint8_t> held(instruments_.size(), 0);
  for (const Position& pos : positions) held[pos.instrument] = 1;
  for (std::size_t i : also_cover) held[i] = 1;
  std::set<std::string> unders;
  for (std::size_t i = 0; i < held.size(); ++i)
    if (held[i]) unders.insert(instruments_[i].underlying);
  setup.underlyings.assign(unders.begin(), unders.end());
  setup.units = methodology_.kind == MethodologyKind::deribit_pm ? PnlUnits::coin : PnlUnits::quote;
  setup.joint = is_joint(methodology_.kind);
  setup.expiry_deltas = methodology_.kind == MethodologyKind::deribit_pm;
  setup.option_series = methodology_.kind == MethodologyKind::span16;
  // mc-es draws over every underlying of the reference data, so that an account's paths never
  // depend on which underlyings the rest of the book holds.
  std::vector<std::string> universe;
  if (methodology_.kind == MethodologyKind::mc_es) {
    std::set<std::string> all;
    for (const Instrument& inst : instruments_) all.insert(inst.underlying);
    universe.assign(all.begin(), all.end());
  }
  setup.scenarios = make_scenarios(methodology_, setup.underlyings, universe);
  for (const std::string& u : setup.underlyings) setup.index_price.push_back(market_.underlying(u).index_price);
  // State indices in order of first appearance (sequential, cheap), then the states themselves
  // on every thread: each is independent, and most of its cost is the market's lookups by name
  // (cache misses in the marks' hash table) and two Black-76 evaluations, which two cores halve.
  setup.state_of.assign(instruments_.size(), -1);
  auto number = [&setup](std::size_t i) {
    if (setup.state_of[i] >= 0) return;
    setup.state_of[i] = static_cast<std::int32_t>(setup.instrument_of.size());
    setup.instrument_of.push_back(i);
  };
  for (const Position& pos : positions) number(pos.instrument);
  for (std::size_t i : also_cover) number(i);
  const std::size_t n = setup.instrument_of.size();
  setup.states.resize(n);
  setup.unit_risk.resize(n);
  // The error of the first state (in state order) that fails: the same message on any thread count.
  std::size_t first_bad = n;
  std::exception_ptr error;
#pragma omp parallel for schedule(static)
  for (std::size_t k = 0; k < n; ++k) {
    try {
      const std::size_t i = setup.instrument_of[k];
      setup.states[k] = make_state(i, group_of(setup, i));
      setup.unit_risk[k] = make_unit_risk(i, setup.states[k]);
    } catch (...) {
#pragma omp critical(marginet_setup_error)
      if (k < first_bad) {
        first_bad = k;
        error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
  return setup;
}

int RunSetupBuilder::group_of(const RunSetup& setup, std::size_t instrument) const {
  const Instrument& inst = instruments_[instrument];
  const int group = setup.scenarios.underlying_index(inst.underlying);
  if (group < 0)
    throw input_error("instrument '" + inst.id + "' is on underlying '" + inst.underlying +
                      "', which this book's scenario set does not cover");
  return group;
}

std::int32_t RunSetupBuilder::add_instrument(RunSetup& setup, std::size_t instrument) const {
  if (setup.state_of.size() < instruments_.size()) setup.state_of.resize(instruments_.size(), -1);
  if (setup.state_of[instrument] >= 0) return setup.state_of[instrument];
  setup.states.push_back(make_state(instrument, group_of(setup, instrument)));
  setup.unit_risk.push_back(make_unit_risk(instrument, setup.states.back()));
  setup.instrument_of.push_back(instrument);
  setup.state_of[instrument] = static_cast<std::int32_t>(setup.states.size() - 1);
  return setup.state_of[instrument];
}

RunSetup::UnitRisk RunSetupBuilder::make_unit_risk(std::size_t instrument, const InstrumentState& st) const {
  RunSetup::UnitRisk u;
  u.delta = u.coin_delta = st.contract_size;
  if (st.kind == InstrumentKind::option) {
    const Greeks g = black76_greeks(st.put_call, st.forward, st.strike, st.years, st.vol, st.rate);
    u.option = true;
    u.delta = st.contract_size * g.delta;
    u.gamma = st.contract_size * g.gamma;
    u.vega = st.contract_size * g.vega;
    // Deribit's coin delta of an inverse option: delta − price in coin.
    u.coin_delta = instruments_[instrument].settlement == Settlement::inverse
                       ? st.contract_size * (g.delta - g.price / st.forward)
                       : u.delta;
  }
  return u;
}

}  // namespace marginet::margin_detail
