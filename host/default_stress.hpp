#pragma once
// The default scenarios on the margin kernels (SPEC §10): each member's P&L under every default
// scenario over the liquidation holding period, from the same risk arrays and portfolio P&L
// stages as the margin run (on the GPU when the backend is CUDA). What default-fund sizing and
// a default's close-out start from.
//
//   MemberStressRun r = run_member_stress(instruments, market, fund_config, method, book, backend);
//   FundSizing f = size_default_fund(r.members, r.scenarios, fund_config);

#include <string>
#include <vector>

#include "host/backend.hpp"
#include "host/margin_engine.hpp"
#include "models/default_fund.hpp"

namespace marginet {

/// The default scenarios as a stress methodology ("default-scenarios").
Methodology default_scenarios_methodology(const DefaultFundConfig& config);

struct MemberStressRun {
  std::vector<std::string> scenarios;   // names, in the config's order
  std::vector<MemberStress> members;    // by member name: IM and loss per scenario (fund currency)
  StageTimes stress_times;
};

/// `book`'s positions belong to the member named in Position::account (the caller maps accounts
/// to members); `im_by_member` is each member's IM under the clearing methodology (the sum of its
/// accounts' IM, the caller's margin run). Losses are −P&L. A member with IM and no position has
/// zero losses; one with positions and no IM entry has IM 0.
MemberStressRun run_member_stress(const InstrumentTable& instruments, const MarketSnapshot& market,
                                  const DefaultFundConfig& config, const std::vector<Position>& book,
                                  const std::map<std::string, double>& im_by_member, Backend backend);

}  // namespace marginet
