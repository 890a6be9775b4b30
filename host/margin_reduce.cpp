#include "host/margin_reduce.hpp"

#include <algorithm>

#include "models/scenario_math.hpp"

namespace marginet::margin_detail {

void RowInputs::add_option(std::int32_t state, double q) {
  const auto at = std::lower_bound(option_net.begin(), option_net.end(), state,
                                   [](const std::pair<std::int32_t, double>& e, std::int32_t s) { return e.first < s; });
  if (at != option_net.end() && at->first == state)
    at->second += q;
  else
    option_net.insert(at, {state, 0.0 + q});
}

void RowInputs::finish_bulk() {
  if (!option_net_pending) return;
  option_net_pending = false;
  std::stable_sort(option_net.begin(), option_net.end(),
                   [](const std::pair<std::int32_t, double>& a, const std::pair<std::int32_t, double>& b) {
                     return a.first < b.first;
                   });
  std::size_t out = 0;
  for (std::size_t i = 0; i < option_net.size(); ++i) {
    if (out > 0 && option_net[out - 1].first == option_net[i].first) {
      option_net[out - 1].second += option_net[i].second;
    } else {
      option_net[out] = {option_net[i].first, 0.0 + option_net[i].second};
      ++out;
    }
  }
  option_net.resize(out);
}

void add_position_inputs(const RunSetup& setup, const Position& pos, RowInputs& row, bool bulk) {
  const std::size_t state = static_cast<std::size_t>(setup.state_of[pos.instrument]);
  const RunSetup::UnitRisk& u = setup.unit_risk[state];
  const double q = pos.quantity;
  if (u.option) {
    row.gamma += q * u.gamma;
    row.vega += q * u.vega;
    if (setup.option_series) {
      if (bulk) {
        row.option_net.emplace_back(static_cast<std::int32_t>(state), q);
        row.option_net_pending = true;
      } else {
        row.add_option(static_cast<std::int32_t>(state), q);
      }
    }
  }
  row.delta += q * u.delta;
  row.coin_delta += q * u.coin_delta;
  if (setup.expiry_deltas) row.coin_delta_by_expiry[setup.states[state].years] += q * u.coin_delta;
  if (setup.joint) {
    RowInputs::Greeks& g = row.by_group[setup.states[state].group];
    g.delta += q * u.delta;
    if (u.option) {
      g.gamma += q * u.gamma;
      g.vega += q * u.vega;
    }
  }
}

std::size_t tail_k_base(const RunSetup& setup, const Methodology& m) {
  const double alpha = m.kind == MethodologyKind::hvar ? m.hvar.confidence : m.mc.confidence;
  const std::size_t n = setup.scenarios.stress_offset ? setup.scenarios.stress_offset : setup.scenarios.count;
  return tail_count(alpha, n);
}

std::size_t tail_k_stress(const RunSetup& setup, const Methodology& m) {
  if (!setup.scenarios.stress_offset) return 0;
  return tail_count(m.hvar.confidence, setup.scenarios.count - setup.scenarios.stress_offset);
}

RowReduction tail_reduction(const Methodology& m, const TailRisk& base, const TailRisk* stress,
                            std::size_t stress_offset) {
  RowReduction r;
  r.var = base.var;
  r.es = base.es;
  r.worst_scenario = base.worst_scenario;
  const bool use_es = m.kind == MethodologyKind::mc_es || m.hvar.expected_shortfall;
  r.worst_loss = use_es ? base.es : base.var;
  if (stress) {
    r.stressed_es = use_es ? stress->es : stress->var;
    // The stressed floor binds: the scenario that drives IM is the stressed period's worst.
    if (r.stressed_es > r.worst_loss && stress->worst_scenario >= 0)
      r.worst_scenario = static_cast<std::int32_t>(stress_offset) + stress->worst_scenario;
    r.worst_loss = std::max(r.worst_loss, r.stressed_es);
  }
  return r;
}

DeribitRowParams deribit_params(const RunSetup& setup, const Methodology& m, std::int32_t group) {
  const std::string& u = setup.underlyings[static_cast<std::size_t>(group)];
  const DeribitPairParams& pair = m.deribit.pair(u);
  const DeribitCurrencyParams& cur = m.deribit.currency(u);
  DeribitRowParams r;
  r.price_range = pair.price_range;
  r.extended_table_factor = pair.extended_table_factor;
  r.extended_dampener = cur.extended_dampener;
  r.index_price = setup.index_price[static_cast<std::size_t>(group)];
  r.pnl_offset = cur.pnl_offset;
  return r;
}

RowReduction reduce_row(const RunSetup& setup, const Methodology& m, std::int32_t group, const double* pnl) {
  const ScenarioSet& set = setup.scenarios;
  RowReduction r;
  if (m.kind == MethodologyKind::hvar || m.kind == MethodologyKind::mc_es) {
    const std::size_t base_n = set.stress_offset ? set.stress_offset : set.count;
    const std::size_t kb = tail_k_base(setup, m), ks = tail_k_stress(setup, m);
    std::vector<double> heap(std::max<std::size_t>(1, std::max(kb, ks)));
    const TailRisk base = tail_risk(pnl, base_n, kb, heap.data());
    if (set.stress_offset) {
      const TailRisk stress = tail_risk(pnl + base_n, set.count - base_n, ks, heap.data());
      return tail_reduction(m, base, &stress, set.stress_offset);
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
                                              deribit_params(setup, m, group));
    r.worst_loss = w.worst_case;
    r.worst_scenario = w.scenario;
  } else {
    const WorstLoss w = worst_weighted_loss(pnl, set.weights.data(), set.count);
    r.worst_loss = w.loss;
    r.worst_scenario = w.scenario;
  }
  return r;
}

namespace {

/// Adds an underlying's sensitivities, in its coin, to the account's USD figures.
void add_usd_sensitivities(AccountMargin& a, const UnderlyingMargin& u, double index_price) {
  a.delta_usd += u.delta * index_price;
  a.gamma_usd += u.gamma * index_price * index_price / 100.0;
  a.vega_usd += u.vega / 100.0;
}

}  // namespace

AccountMargin assemble_account(const RunSetup& setup, const Methodology& m, const std::string& account,
                               const std::vector<std::int32_t>& groups,
                               const std::vector<const double*>& pnl,
                               const std::vector<RowReduction>& reductions,
                               const std::vector<const RowInputs*>& inputs) {
  const ScenarioSet& set = setup.scenarios;
  AccountMargin a;
  a.account = account;
  a.model = m.name;
  // Account P&L per scenario in the quote currency, weighted.
  std::vector<double> total(set.count, 0.0);
  for (std::size_t k = 0; k < groups.size(); ++k) {
    const double to_quote = setup.units == PnlUnits::coin ? setup.index_price[static_cast<std::size_t>(groups[k])] : 1.0;
    for (std::size_t s = 0; s < set.count; ++s) total[s] += pnl[k][s] * to_quote;
  }
  for (std::size_t s = 0; s < set.count; ++s) total[s] *= set.weights[s];

  const bool joint = setup.joint;
  if (joint) {
    // One row: the account as a whole. Per underlying: greeks only (the margin is joint).
    for (std::size_t k = 0; k < inputs.size(); ++k)
      for (const auto& [g, gr] : inputs[k]->by_group) {
        UnderlyingMargin um;
        um.underlying = setup.underlyings[static_cast<std::size_t>(g)];
        um.units = "USD";
        um.delta = gr.delta;
        um.gamma = gr.gamma;
        um.vega = gr.vega;
        add_usd_sensitivities(a, um, setup.index_price[static_cast<std::size_t>(g)]);
        a.underlyings.push_back(um);
      }
    if (!reductions.empty()) {
      a.var = reductions[0].var;
      a.es = reductions[0].es;
      a.stressed_es = reductions[0].stressed_es;
    }
  } else {
    // Per underlying on its own (span16, deribit-pm): IM and MM from its row, summed over
    // underlyings in the quote currency.
    for (std::size_t k = 0; k < groups.size(); ++k) {
      const std::size_t g = static_cast<std::size_t>(groups[k]);
      const std::string& u = setup.underlyings[g];
      const RowInputs& in = *inputs[k];
      UnderlyingMargin um;
      um.underlying = u;
      um.units = setup.units == PnlUnits::coin ? u : "USD";
      um.delta = in.delta;
      um.gamma = in.gamma;
      um.vega = in.vega;
      if (m.kind == MethodologyKind::deribit_pm) um.coin_delta = in.coin_delta;
      um.worst_scenario = reductions[k].worst_scenario;
      const double scan = std::max(0.0, reductions[k].worst_loss);
      um.scan_risk = scan;
      if (m.kind == MethodologyKind::span16) {
        const Span16Params& sp = m.span.params(u);
        um.short_option_minimum = in.short_option_contracts() * sp.short_option_minimum;
        um.im = std::max(scan, um.short_option_minimum);
        um.mm = um.im / sp.init_to_maint;
      } else {  // deribit-pm
        const DeribitCurrencyParams& cur = m.deribit.currency(u);
        const DeribitPairParams& pair = m.deribit.pair(u);
        for (const auto& [years, d] : in.coin_delta_by_expiry)
          um.roll_shock += deribit_roll_shock(d, years, cur.annualised_move_risk, cur.min_annualised_move);
        um.delta_shock = deribit_delta_shock(in.coin_delta, setup.index_price[g],
                                             pair.delta_total_liq_shock_threshold, pair.max_delta_shock,
                                             m.deribit.general.delta_shock_rule);
        // Deribit's published totals are the worst case rounded to 9 decimals plus the add-ons.
        um.im = deribit_round_worst_case(scan) + um.roll_shock + um.delta_shock;
        um.mm = m.deribit.general.mm_factor * um.im;
      }
      const double to_quote = setup.units == PnlUnits::coin ? setup.index_price[g] : 1.0;
      a.im += um.im * to_quote;
      a.mm += um.mm * to_quote;
      add_usd_sensitivities(a, um, setup.index_price[g]);
      a.underlyings.push_back(um);
    }
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
    // The scenario that drives the reported IM: that of the underlying whose IM (in the quote
    // currency) is the largest; ties to the first underlying by name.
    double largest = -1;
    for (std::size_t g = 0; g < a.underlyings.size(); ++g) {
      const double to_quote = setup.units == PnlUnits::coin ? setup.index_price[static_cast<std::size_t>(groups[g])] : 1.0;
      if (a.underlyings[g].im * to_quote > largest) {
        largest = a.underlyings[g].im * to_quote;
        a.worst_scenario = a.underlyings[g].worst_scenario;
      }
    }
  }
  return a;
}

}  // namespace marginet::margin_detail
