#include "host/margin_rows.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "models/deribit_pm.hpp"
#include "models/errors.hpp"
#include "models/implied_vol.hpp"
#include "models/pricing.hpp"
#include "models/scenario_math.hpp"

namespace marginet::margin_detail {

Preparer::Preparer(const InstrumentTable& instruments, const MarketSnapshot& market, const Methodology& m)
    : instruments_(instruments), market_(market), methodology_(m) {}

InstrumentState Preparer::make_state(std::size_t index, std::int32_t group) const {
  const Instrument& inst = instruments_[index];
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

Prepared Preparer::prepare(const std::vector<Position>& positions, const std::vector<std::size_t>& extra) const {
  Prepared p;
  std::vector<std::uint8_t> held(instruments_.size(), 0);
  for (const Position& pos : positions) held[pos.instrument] = 1;
  for (std::size_t i : extra) held[i] = 1;
  std::set<std::string> unders;
  for (std::size_t i = 0; i < held.size(); ++i)
    if (held[i]) unders.insert(instruments_[i].underlying);
  p.underlyings.assign(unders.begin(), unders.end());
  p.units = methodology_.kind == MethodologyKind::deribit_pm ? PnlUnits::coin : PnlUnits::quote;
  p.joint = is_joint(methodology_.kind);
  p.expiry_deltas = methodology_.kind == MethodologyKind::deribit_pm;
  p.scenarios = make_scenarios(methodology_, p.underlyings);
  for (const std::string& u : p.underlyings) p.index_price.push_back(market_.underlying(u).index_price);
  p.state_of.assign(instruments_.size(), -1);
  for (const Position& pos : positions)
    if (p.state_of[pos.instrument] < 0) add_state(p, pos.instrument);
  for (std::size_t i : extra)
    if (p.state_of[i] < 0) add_state(p, i);
  return p;
}

std::int32_t Preparer::add_state(Prepared& p, std::size_t index) const {
  if (p.state_of.size() < instruments_.size()) p.state_of.resize(instruments_.size(), -1);
  if (p.state_of[index] >= 0) return p.state_of[index];
  const int group = p.scenarios.underlying_index(instruments_[index].underlying);
  if (group < 0)
    throw input_error("instrument '" + instruments_[index].id + "' is on underlying '" +
                      instruments_[index].underlying + "', which this book's scenario set does not cover");
  p.states.push_back(make_state(index, group));
  p.unit.push_back(unit_risk(index, p.states.back()));
  p.instrument_of.push_back(index);
  p.state_of[index] = static_cast<std::int32_t>(p.states.size() - 1);
  return p.state_of[index];
}

Prepared::UnitRisk Preparer::unit_risk(std::size_t index, const InstrumentState& st) const {
  Prepared::UnitRisk u;
  u.delta = u.coin_delta = st.contract_size;
  if (st.kind == InstrumentKind::option) {
    const Greeks g = black76_greeks(st.put_call, st.forward, st.strike, st.years, st.vol, st.rate);
    u.option = true;
    u.delta = st.contract_size * g.delta;
    u.gamma = st.contract_size * g.gamma;
    u.vega = st.contract_size * g.vega;
    // Deribit's coin delta of an inverse option: delta − price in coin.
    u.coin_delta = instruments_[index].settlement == Settlement::inverse
                       ? st.contract_size * (g.delta - g.price / st.forward)
                       : u.delta;
  }
  return u;
}

void Preparer::accumulate(const Prepared& p, const Position& pos, RowInputs& row) const {
  const std::size_t slot = static_cast<std::size_t>(p.state_of[pos.instrument]);
  const Prepared::UnitRisk& u = p.unit[slot];
  const double q = pos.quantity;
  if (u.option) {
    row.gamma += q * u.gamma;
    row.vega += q * u.vega;
    if (q < 0) row.short_option_contracts += -q;
  }
  row.delta += q * u.delta;
  row.coin_delta += q * u.coin_delta;
  if (p.expiry_deltas) row.coin_delta_by_expiry[p.states[slot].years] += q * u.coin_delta;
  if (p.joint) {
    RowInputs::Greeks& g = row.by_group[p.states[slot].group];
    g.delta += q * u.delta;
    if (u.option) {
      g.gamma += q * u.gamma;
      g.vega += q * u.vega;
    }
  }
}

std::size_t tail_k_base(const Prepared& p, const Methodology& m) {
  const double alpha = m.kind == MethodologyKind::hvar ? m.hvar.confidence : m.mc.confidence;
  const std::size_t n = p.scenarios.stress_offset ? p.scenarios.stress_offset : p.scenarios.count;
  return tail_count(alpha, n);
}

std::size_t tail_k_stress(const Prepared& p, const Methodology& m) {
  if (!p.scenarios.stress_offset) return 0;
  return tail_count(m.hvar.confidence, p.scenarios.count - p.scenarios.stress_offset);
}

RowReduction tail_reduction(const Methodology& m, const TailRisk& base, const TailRisk* stress) {
  RowReduction r;
  r.var = base.var;
  r.es = base.es;
  r.worst_scenario = base.worst_scenario;
  const bool use_es = m.kind == MethodologyKind::mc_es || m.hvar.expected_shortfall;
  r.worst_loss = use_es ? base.es : base.var;
  if (stress) {
    r.stressed_es = use_es ? stress->es : stress->var;
    r.worst_loss = std::max(r.worst_loss, r.stressed_es);
  }
  return r;
}

DeribitRowParams deribit_params(const Prepared& p, const Methodology& m, std::int32_t group) {
  const std::string& u = p.underlyings[static_cast<std::size_t>(group)];
  const DeribitPairParams& pair = m.deribit.pair(u);
  const DeribitCurrencyParams& cur = m.deribit.currency(u);
  DeribitRowParams r;
  r.price_range = pair.price_range;
  r.extended_table_factor = pair.extended_table_factor;
  r.extended_dampener = cur.extended_dampener;
  r.index_price = p.index_price[static_cast<std::size_t>(group)];
  r.pnl_offset = cur.pnl_offset;
  return r;
}

RowReduction reduce_row(const Prepared& p, const Methodology& m, std::int32_t group, const double* pnl) {
  const ScenarioSet& set = p.scenarios;
  RowReduction r;
  if (m.kind == MethodologyKind::hvar || m.kind == MethodologyKind::mc_es) {
    const std::size_t base_n = set.stress_offset ? set.stress_offset : set.count;
    const std::size_t kb = tail_k_base(p, m), ks = tail_k_stress(p, m);
    std::vector<double> heap(std::max<std::size_t>(1, std::max(kb, ks)));
    const TailRisk base = tail_risk(pnl, base_n, kb, heap.data());
    if (set.stress_offset) {
      const TailRisk stress = tail_risk(pnl + base_n, set.count - base_n, ks, heap.data());
      return tail_reduction(m, base, &stress);
    }
    return tail_reduction(m, base, nullptr);
  }
  if (m.kind == MethodologyKind::deribit_pm) {
    std::vector<double> moves(set.count);
    std::vector<std::uint8_t> extended(set.count);
    const std::size_t standard = deribit_standard_count(m.deribit);
    for (std::size_t s = 0; s < set.count; ++s) {
      moves[s] = set.shock(s, static_cast<std::size_t>(group)).price_move;
      extended[s] = s >= standard;
    }
    const DeribitWorst w = deribit_worst_case(pnl, moves.data(), extended.data(), set.count,
                                              deribit_params(p, m, group));
    r.worst_loss = w.worst_case;
    r.worst_scenario = w.scenario;
  } else {
    const WorstLoss w = worst_weighted_loss(pnl, set.weights.data(), set.count);
    r.worst_loss = w.loss;
    r.worst_scenario = w.scenario;
  }
  return r;
}

AccountMargin finish_account(const Prepared& p, const Methodology& m, const std::string& account,
                             const std::vector<std::int32_t>& groups,
                             const std::vector<const double*>& pnl,
                             const std::vector<RowReduction>& reductions,
                             const std::vector<RowInputs>& inputs) {
  const ScenarioSet& set = p.scenarios;
  AccountMargin a;
  a.account = account;
  a.model = m.name;
  // Account P&L per scenario in the quote currency, weighted.
  std::vector<double> total(set.count, 0.0);
  for (std::size_t k = 0; k < groups.size(); ++k) {
    const double to_quote = p.units == PnlUnits::coin ? p.index_price[static_cast<std::size_t>(groups[k])] : 1.0;
    for (std::size_t s = 0; s < set.count; ++s) total[s] += pnl[k][s] * to_quote;
  }
  for (std::size_t s = 0; s < set.count; ++s) total[s] *= set.weights[s];

  const bool joint = p.joint;
  if (joint) {
    // One row: the account as a whole. Per underlying: greeks only (the margin is joint).
    for (std::size_t k = 0; k < inputs.size(); ++k)
      for (const auto& [g, gr] : inputs[k].by_group) {
        UnderlyingMargin um;
        um.underlying = p.underlyings[static_cast<std::size_t>(g)];
        um.units = "USD";
        um.delta = gr.delta;
        um.gamma = gr.gamma;
        um.vega = gr.vega;
        a.delta += gr.delta;
        a.gamma += gr.gamma;
        a.vega += gr.vega;
        a.underlyings.push_back(um);
      }
    if (!reductions.empty()) {
      a.var = reductions[0].var;
      a.es = reductions[0].es;
      a.stressed_es = reductions[0].stressed_es;
    }
  }
  for (std::size_t k = 0; k < groups.size() && !joint; ++k) {
    const std::size_t g = static_cast<std::size_t>(groups[k]);
    const std::string& u = p.underlyings[g];
    const RowInputs& in = inputs[k];
    UnderlyingMargin um;
    um.underlying = u;
    um.units = p.units == PnlUnits::coin ? u : "USD";
    um.delta = in.delta;
    um.gamma = in.gamma;
    um.vega = in.vega;
    um.worst_scenario = reductions[k].worst_scenario;
    const double scan = std::max(0.0, reductions[k].worst_loss);
    um.scan_risk = scan;
    if (m.kind == MethodologyKind::span16) {
      const Span16Params& sp = m.span.params(u);
      um.short_option_minimum = in.short_option_contracts * sp.short_option_minimum;
      um.im = std::max(scan, um.short_option_minimum);
      um.mm = um.im / sp.init_to_maint;
    } else if (m.kind == MethodologyKind::deribit_pm) {
      const DeribitCurrencyParams& cur = m.deribit.currency(u);
      const DeribitPairParams& pair = m.deribit.pair(u);
      for (const auto& [years, d] : in.coin_delta_by_expiry)
        um.roll_shock += deribit_roll_shock(d, years, cur.annualised_move_risk, cur.min_annualised_move);
      um.delta_shock = deribit_delta_shock(in.coin_delta, p.index_price[g],
                                           pair.delta_total_liq_shock_threshold, pair.max_delta_shock);
      um.im = scan + um.roll_shock + um.delta_shock;
      um.mm = m.deribit.general.mm_factor * um.im;
    } else {
      um.im = scan;  // joint methodologies: this underlying on its own, for information
      um.mm = scan;
    }
    if (!joint) {
      const double to_quote = p.units == PnlUnits::coin ? p.index_price[g] : 1.0;
      a.im += um.im * to_quote;
      a.mm += um.mm * to_quote;
    }
    a.delta += um.delta;
    a.gamma += um.gamma;
    a.vega += um.vega;
    a.underlyings.push_back(um);
  }
  // Five worst account scenarios (ties: lower scenario first).
  std::vector<std::int32_t> order(set.count);
  for (std::size_t s = 0; s < set.count; ++s) order[s] = static_cast<std::int32_t>(s);
  const std::size_t k = std::min<std::size_t>(5, set.count);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::int32_t x, std::int32_t y) {
                      return total[x] != total[y] ? total[x] < total[y] : x < y;
                    });
  for (std::size_t i = 0; i < k; ++i) a.worst_scenarios.push_back({order[i], total[order[i]]});
  if (joint) {
    a.im = reductions.empty() ? 0.0 : std::max(0.0, reductions[0].worst_loss);
    a.mm = a.im;
    a.worst_scenario = reductions.empty() ? -1 : reductions[0].worst_scenario;
  } else {
    a.worst_scenario = k > 0 ? order[0] : -1;
  }
  return a;
}

}  // namespace marginet::margin_detail
