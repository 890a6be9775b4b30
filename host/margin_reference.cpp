// The reference path of the margin engine: one plain loop over accounts, underlyings,
// positions and scenarios, pricing every position from models/ in every scenario. Slow and
// obviously correct; the kernels are tested against it.

#include <algorithm>
#include <map>

#include "host/margin_engine.hpp"
#include "host/margin_reduce.hpp"
#include "host/margin_setup.hpp"
#include "models/errors.hpp"

namespace marginet {

using namespace margin_detail;

MarginRun reference_margin(const InstrumentTable& instruments, const MarketSnapshot& market,
                           const Methodology& methodology, const std::vector<Position>& positions,
                           const PublishedRiskArrays* published) {
  MarginRun out;
  RunSetup setup = RunSetupBuilder(instruments, market, methodology).build(positions);
  if (published) std::fill(setup.scenarios.weights.begin(), setup.scenarios.weights.end(), 1.0);
  const ScenarioSet& set = setup.scenarios;
  const std::size_t S = set.count;

  // account -> group -> positions
  std::map<std::string, std::map<std::int32_t, std::vector<const Position*>>> book;
  for (const Position& p : positions) {
    const auto& st = setup.states[static_cast<std::size_t>(setup.state_of[p.instrument])];
    book[p.account][row_group(setup, st.group)].push_back(&p);
  }
  for (const auto& [account, groups] : book) {
    std::vector<std::int32_t> gs;
    std::vector<std::vector<double>> rows;
    std::vector<RowReduction> reds;
    std::vector<RowInputs> ins;
    for (const auto& [g, list] : groups) {
      std::vector<double> row(S, 0.0);
      RowInputs in;
      for (const Position* p : list) {
        const InstrumentState& st = setup.states[static_cast<std::size_t>(setup.state_of[p->instrument])];
        for (std::size_t s = 0; s < S; ++s) {
          double r;
          if (published) {
            const auto it = published->find(instruments[p->instrument].id);
            if (it == published->end())
              throw input_error("risk arrays: no risk array for instrument '" + instruments[p->instrument].id + "'");
            r = -it->second[s];
          } else {
            const auto ug = static_cast<std::size_t>(st.group);  // the instrument's own underlying
            r = scenario_pnl(st, set.shock(s, ug), set.vol_terms[ug], setup.units);
          }
          row[s] += p->quantity * r;
        }
        add_position_inputs(setup, *p, in);
      }
      gs.push_back(g);
      reds.push_back(reduce_row(setup, methodology, g, row.data()));
      ins.push_back(in);
      rows.push_back(std::move(row));
    }
    std::vector<const double*> ptrs;
    for (const auto& r : rows) ptrs.push_back(r.data());
    std::vector<const RowInputs*> in_ptrs;
    for (const auto& in : ins) in_ptrs.push_back(&in);
    out.accounts.push_back(assemble_account(setup, methodology, account, gs, ptrs, reds, in_ptrs));
  }
  return out;
}

AccountPnlMatrix reference_account_pnl(const InstrumentTable& instruments, const MarketSnapshot& market,
                                       const Methodology& methodology, const std::vector<Position>& positions) {
  if (!is_joint(methodology.kind)) throw usage_error("account P&L rows need a joint methodology");
  const RunSetup setup = RunSetupBuilder(instruments, market, methodology).build(positions);
  const ScenarioSet& set = setup.scenarios;
  std::map<std::string, std::vector<double>> rows;
  for (const Position& p : positions) {
    const InstrumentState& st = setup.states[static_cast<std::size_t>(setup.state_of[p.instrument])];
    const auto ug = static_cast<std::size_t>(st.group);
    std::vector<double>& row = rows[p.account];
    row.resize(set.count, 0.0);
    for (std::size_t s = 0; s < set.count; ++s) row[s] += p.quantity * scenario_pnl(st, set.shock(s, ug), set.vol_terms[ug], setup.units);
  }
  AccountPnlMatrix m;
  m.scenarios = set.count;
  for (const auto& [account, row] : rows) {
    m.accounts.push_back(account);
    m.pnl.insert(m.pnl.end(), row.begin(), row.end());
  }
  return m;
}

}  // namespace marginet
