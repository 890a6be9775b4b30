#pragma once
// Default management as arithmetic (SPEC §10, docs/default-management.md): the default fund's
// configuration, its sizing from members' stress losses (EMIR art. 42(3), with the Cover-2 of
// art. 43(2) beside it), members' contributions, and the default waterfall in EMIR art. 45
// order. Stress losses and IM are risk figures (doubles, in the fund's currency); every amount
// that is applied, contributed or assessed is money: int64 minor units, checked, allocated
// pro rata to the unit by largest remainder.
//
//   DefaultFundConfig c = load_default_fund_config("examples/default_fund.json");
//   FundSizing f = size_default_fund(members, scenario_names, c);   // f.fund_minor, f.cover2, ...
//   WaterfallResult w = run_waterfall({loss, margin, contribution, sitg, survivors, cap});

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace marginet {

/// One default scenario: a stress of the liquidation horizon, historical (a replayed episode) or
/// hypothetical.
struct DefaultScenario {
  std::string name;
  std::string kind;  // "historical" | "hypothetical"
};

/// The default-fund configuration (JSON, docs/default-management.md):
///   {"currency": "USD", "scale": 2,
///    "groups": {"ALPHA": ["ALPHA", "ALPHA-ASIA"]},      affiliates counted together
///    "ccp": {"house_account": "CCP-HOUSE", "minimum_capital": "40000000.00",
///            "skin_in_the_game_share": 0.25, "liquid_resources": {"USD": "25000000.00"}},
///    "minimum_contribution": "50000.00", "assessment_cap": 1.0, "holding_period_days": 2,
///    "scenarios": [{"name": "BTC -50% vol x2", "kind": "hypothetical",
///                   "shocks": {"BTC": {"move": -0.5, "vol_shift": 1.0, "vol_kind": "relative"}}}]}
/// Scenario shocks are the stress-set format (models/scenario_set.hpp); a shock without "days"
/// lasts the holding period. Every key is checked: an unknown key is an input_error naming it.
struct DefaultFundConfig {
  std::string currency = "USD";
  int scale = 2;
  std::map<std::string, std::string> group_of;     // member -> group; a member not listed is its own group
  std::string house_account = "CCP-HOUSE";         // receives a defaulter's positions and collateral
  std::int64_t minimum_capital_minor = 0;
  double skin_in_the_game_share = 0.25;            // of the minimum capital
  std::map<std::string, std::string> liquid_resources;  // asset -> decimal amount
  std::int64_t minimum_contribution_minor = 0;
  std::int64_t assessment_cap_ppm = 1'000'000;     // assessments ≤ this multiple of the contribution, in millionths
  double holding_period_days = 2;
  std::vector<DefaultScenario> scenarios;
  std::string scenarios_json;                      // {"scenarios": [...]}: the stress set, days filled in
  std::string source = "built-in";

  /// The member's group (itself when not listed).
  const std::string& group(const std::string& member) const;
  /// The CCP's skin in the game: share × minimum capital, rounded down to the minor unit.
  std::int64_t skin_in_the_game_minor() const;
};

DefaultFundConfig parse_default_fund_config(const std::string& json_text, const std::string& source);
DefaultFundConfig load_default_fund_config(const std::string& path);
/// The configuration used when none is given: USD cents, skin in the game 25 % of 10,000,000.00,
/// cap 1×, two days, and six scenarios (two historical episodes, four hypothetical).
DefaultFundConfig builtin_default_fund_config();

// ---- sizing ------------------------------------------------------------------------------

/// One member's inputs: its IM and its stress loss in each default scenario (positive = loss),
/// in the fund's currency.
struct MemberStress {
  std::string member;
  double im = 0;
  std::vector<double> loss;
};

struct MemberContribution {
  std::string member, group;
  double im = 0;
  double exposure = 0;              // max over scenarios of max(0, L_m(s) − IM_m)
  std::int32_t exposure_scenario = -1;
  std::int64_t contribution_minor = 0;
};

struct GroupStressResult {
  std::string group;
  std::vector<std::string> members;
  double im = 0;
  std::vector<double> loss;         // L_g(s), per scenario
  std::vector<double> uncovered;    // U_g(s) = max(0, L_g(s) − IM_g)
  double worst_uncovered = 0;       // max_s U_g(s)
  std::int32_t worst_scenario = -1;
};

struct FundSizing {
  std::vector<std::string> scenarios;
  std::vector<GroupStressResult> groups;         // by group name
  std::vector<MemberContribution> members;       // by member name
  /// EMIR art. 42(3): max_s max(U₍₁₎(s), U₍₂₎(s) + U₍₃₎(s)), the scenario and the groups behind it.
  double art42 = 0;
  std::int32_t art42_scenario = -1;
  std::vector<std::string> art42_groups;
  /// Cover-2 (art. 43(2)): max_s U₍₁₎(s) + U₍₂₎(s).
  double cover2 = 0;
  std::int32_t cover2_scenario = -1;
  std::vector<std::string> cover2_groups;
  std::int64_t fund_minor = 0;                   // art42 rounded up to the minor unit
  std::int64_t contributions_minor = 0;          // Σ contributions (≥ fund: the minimum may add)
};

/// Sizes the fund (rules above). input_error for a loss or IM that is not finite, or a loss
/// vector whose length is not the number of scenarios.
FundSizing size_default_fund(const std::vector<MemberStress>& members, const std::vector<std::string>& scenarios,
                             const DefaultFundConfig& config);

/// `amount` split over `weights` (≥ 0) in proportion, to the unit: floor shares, then one unit
/// each to the largest remainders (ties to the lower index). Σ = amount. When every weight is 0
/// the amount must be 0. Exact in 128 bits.
std::vector<std::int64_t> allocate_pro_rata(std::int64_t amount, const std::vector<std::int64_t>& weights);

// ---- the waterfall ------------------------------------------------------------------------

enum class WaterfallLayer : std::uint8_t {
  defaulter_margin,        // the defaulter's collateral, valued after haircuts
  defaulter_contribution,  // its default-fund contribution
  skin_in_the_game,        // the CCP's own resources
  survivors_contributions, // the other members' contributions, pro rata
  assessments,             // further calls on the survivors, pro rata, each up to its cap
  uncovered,               // what no layer absorbed: the CCP's recovery plan
};
/// "defaulter_margin", "defaulter_contribution", "skin_in_the_game", "survivors_contributions",
/// "assessments", "uncovered".
const char* to_string(WaterfallLayer layer);

struct MemberAmount {
  std::string member;
  std::int64_t amount_minor = 0;
};

struct WaterfallInputs {
  std::int64_t loss_minor = 0;               // the close-out loss (≥ 0)
  std::int64_t margin_minor = 0;             // the defaulter's collateral value after haircuts
  std::int64_t contribution_minor = 0;       // the defaulter's default-fund balance
  std::int64_t skin_in_the_game_minor = 0;   // what is left of the CCP's layer
  std::vector<MemberAmount> survivors;       // their default-fund balances
  std::int64_t assessment_cap_ppm = 1'000'000;
};

/// One ledger step: a layer, or one member's share of a pro-rata layer.
struct WaterfallStep {
  WaterfallLayer layer = WaterfallLayer::defaulter_margin;
  std::string member;                        // "" for the defaulter's and the CCP's layers
  std::int64_t available_minor = 0;
  std::int64_t absorbed_minor = 0;
  std::int64_t remaining_after_minor = 0;    // loss still uncovered after this step
};

struct LayerTotal {
  WaterfallLayer layer = WaterfallLayer::defaulter_margin;
  std::int64_t available_minor = 0, absorbed_minor = 0;
};

struct WaterfallResult {
  std::vector<WaterfallStep> steps;          // in order; pro-rata layers one step per member
  std::vector<LayerTotal> layers;            // the six layers in order, uncovered last
  std::int64_t covered_minor = 0, uncovered_minor = 0;
  std::int64_t margin_surplus_minor = 0;     // margin beyond the loss: owed to the defaulter's estate
  /// Per survivor: contribution used and assessment due, by member name (what must be replenished).
  std::map<std::string, std::int64_t> contribution_used, assessed;
};

/// Runs the loss down the layers in EMIR art. 45 order (rules above). input_error when an
/// amount is negative.
WaterfallResult run_waterfall(const WaterfallInputs& in);

}  // namespace marginet
