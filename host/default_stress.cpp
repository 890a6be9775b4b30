#include "host/default_stress.hpp"

#include <map>

#include "models/errors.hpp"

namespace marginet {

Methodology default_scenarios_methodology(const DefaultFundConfig& config) {
  Methodology m;
  m.name = "default-scenarios";
  m.kind = MethodologyKind::stress;
  m.stress_json = config.scenarios_json;
  m.settlement_asset = config.currency;
  m.settlement_scale = config.scale;
  m.source = config.source;
  return m;
}

MemberStressRun run_member_stress(const InstrumentTable& instruments, const MarketSnapshot& market,
                                  const DefaultFundConfig& config, const std::vector<Position>& book,
                                  const std::map<std::string, double>& im_by_member, Backend backend) {
  MemberStressRun out;
  for (const DefaultScenario& s : config.scenarios) out.scenarios.push_back(s.name);
  MarginEngine engine(instruments, market, default_scenarios_methodology(config), backend);
  const MarginRun run = engine.run(book);
  out.stress_times = run.times;
  const AccountPnlMatrix pnl = engine.account_pnl();
  MARGINET_EXPECTS(pnl.scenarios == out.scenarios.size(), "one P&L column per default scenario");
  std::map<std::string, std::size_t> row_of;
  for (std::size_t a = 0; a < pnl.accounts.size(); ++a) row_of[pnl.accounts[a]] = a;
  // Members with IM but no positions (or the reverse) still appear: with zero losses, or zero IM.
  std::map<std::string, MemberStress> members;
  for (const auto& [member, im] : im_by_member) members[member].im = im;
  for (const auto& [member, row] : row_of) (void)members[member];
  for (auto& [member, m] : members) {
    m.member = member;
    m.loss.assign(pnl.scenarios, 0.0);
    if (const auto r = row_of.find(member); r != row_of.end())
      for (std::size_t s = 0; s < pnl.scenarios; ++s) m.loss[s] = -pnl.row(r->second)[s];
    out.members.push_back(std::move(m));
  }
  return out;
}

}  // namespace marginet
