#pragma once
// Default management over the clearing store (SPEC §10, docs/default-management.md), shared by
// the CLI (`marginet default-fund`, `marginet default declare`) and the service (a member whose
// margin-call pay-in the scheduler reports defaulted is declared in default).
//
//   DefaultInputs in{store, ref, "instruments.csv", method, fund, Backend::cpu};
//   FundSizingRun f = size_fund_from_store(in);          // art. 42(3), Cover-2, contributions
//   record_fund_sizing(in.store, f, "df-20261206");     // the contributions become the fund
//   DefaultReport r = declare_default(in, {"BETA", "missed its pay-in of cycle calls-eod-…"});
//
// A default: the member's positions (every account it owns) are closed out under the default
// scenarios over the holding period (the loss priced by the margin kernels: the largest loss
// over the scenarios); its collateral (valued after haircuts) and its default-fund contribution
// are applied, then the CCP's skin in the game, the survivors' contributions pro rata and
// assessments up to the cap (models/default_fund.hpp run_waterfall); the store records it all in
// one transaction, moving the positions and the collateral to the CCP's house account.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "host/default_stress.hpp"
#include "models/contagion.hpp"
#include "models/default_fund.hpp"
#include "models/methodology.hpp"
#include "models/reference_data.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/margin/protocol.hpp"

namespace marginet {

struct DefaultInputs {
  ClearingStore& store;
  const ReferenceData& ref;
  const std::string& instruments_source;  // names the instruments file in errors
  const Methodology& method;              // the clearing methodology: IM and collateral haircuts
  const DefaultFundConfig& fund;
  Backend backend = Backend::cpu;
};

/// Liquidity Cover-2 of one asset: the two largest groups' payment obligations under stress
/// against the CCP's liquid resources in that asset (units of the asset).
struct LiquidityCover {
  std::string asset;
  double need = 0;                       // the two largest obligations together
  std::vector<std::string> groups;       // the groups behind them, largest first
  double resources = 0;                  // configured liquid resources
  double shortfall = 0;                  // max(0, need − resources)
};

struct FundSizingRun {
  FundSizing sizing;
  std::vector<LiquidityCover> liquidity;
  std::size_t positions = 0, accounts = 0;
  double stress_seconds = 0, margin_seconds = 0, total_seconds = 0;
};

/// Sizes the fund for `book` (accounts as in Position::account; `member_of` maps an account to
/// its member, an account not in it is its own member). IM by `method` per account, summed per
/// member. `pay_ins`: per (member, asset), payments due in cycles not yet settled (units of the
/// asset), added to the liquidity obligations.
FundSizingRun size_fund(const InstrumentTable& instruments, const MarketSnapshot& market, const Methodology& method,
                        const DefaultFundConfig& fund, const std::vector<Position>& book,
                        const std::map<std::string, std::string>& member_of, Backend backend,
                        const std::map<std::pair<std::string, std::string>, double>& pay_ins = {});
/// The same over the store's kept positions, its members and its unsettled outbox cycles.
/// Members in default and the house account are left out.
FundSizingRun size_fund_from_store(const DefaultInputs& in);
/// Records the sizing in the store (its contributions become the fund's balances).
Outcome record_fund_sizing(ClearingStore& store, const FundSizingRun& run, const DefaultFundConfig& fund,
                           const std::string& sizing_id);

struct DefaultDeclaration {
  std::string member;
  std::string reason;
  std::string default_id;  // "" = "default-<member>-<UTC stamp>"
};

struct DefaultReport {
  Outcome outcome = Outcome::recorded;   // recorded; duplicate/conflict: the member was in default already
  std::string default_id, member, reason, declared_at, currency;
  int scale = 2;
  std::vector<std::string> accounts;
  std::size_t positions = 0;             // positions closed out (moved to the house account)
  std::string house_account;
  std::vector<std::string> scenarios;
  std::vector<double> scenario_losses;   // the close-out loss in each default scenario
  double close_out_loss = 0;             // the largest, ≥ 0
  std::string close_out_scenario;
  double margin_value = 0;               // the defaulter's collateral after haircuts
  WaterfallInputs inputs;                // the money the waterfall started from
  WaterfallResult waterfall;
};

/// Declares `d.member` in default and runs the procedure (above). input_error when the member is
/// unknown or is the house account. A member in default already: outcome duplicate (the
/// earlier default's id and steps) and nothing changes.
DefaultReport declare_default(const DefaultInputs& in, const DefaultDeclaration& d);

/// The clearing house as a contagion network under one default scenario (docs/contagion.md
/// "From the clearing store"): a node "CCP" and a node per member (members in default and the
/// house account left out). A member that loses in the scenario owes the CCP its loss, of which
/// its collateral (after haircuts) is margin; the CCP owes each member that gains its gain. The
/// CCP's external assets are what is left of its skin in the game plus the default fund's
/// balances; a member's are none (what it could pay beyond its collateral is not known here).
/// Amounts in the fund's currency.
struct StoreNetwork {
  Network network;
  std::string scenario;
  double losses = 0, gains = 0;  // Σ over members of the scenario's losses and gains
};
/// `scenario` "" = the default scenario with the largest total loss; an unknown name is an
/// input_error listing the names.
StoreNetwork store_network(const DefaultInputs& in, const std::string& scenario);

/// The report as JSON (what the store keeps and `--format json` prints): amounts as exact
/// decimals of the fund's currency, risk figures as numbers, units named.
std::string default_report_json(const DefaultReport& r);
std::string fund_sizing_json(const FundSizingRun& run, const DefaultFundConfig& fund);
/// The report as the service's default.declare reply (and the CLI's table through it).
protocol::DefaultResultText default_result_text(const DefaultReport& r);

}  // namespace marginet
