#include "models/default_fund.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "models/errors.hpp"
#include "models/identifier.hpp"
#include "models/json_keys.hpp"
#include "models/money.hpp"

namespace marginet {

namespace {

using json = nlohmann::json;

double number_field(const json& obj, const std::string& key, double fallback, const std::string& source,
                    const std::string& where) {
  if (!obj.contains(key)) return fallback;
  const json& v = obj[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    throw input_error(source, 0, where + key, "must be a finite number");
  return v.get<double>();
}

/// A money amount given as decimal text (exact) or, for convenience, as a JSON integer.
std::int64_t money_field(const json& obj, const std::string& key, std::int64_t fallback, int scale,
                         const std::string& source, const std::string& where) {
  if (!obj.contains(key)) return fallback;
  const json& v = obj[key];
  std::string text;
  if (v.is_string()) text = v.get<std::string>();
  else if (v.is_number_integer()) text = std::to_string(v.get<std::int64_t>());
  else throw input_error(source, 0, where + key, "must be a decimal amount as text (\"1000000.00\")");
  const std::int64_t minor = parse_money(text, scale, source, 0, where + key);
  if (minor < 0) throw input_error(source, 0, where + key, "must be ≥ 0");
  return minor;
}

std::string member_name(const json& v, const std::string& source, const std::string& where) {
  if (!v.is_string()) throw input_error(source, 0, where, "must be a member name (text)");
  const std::string name = v.get<std::string>();
  if (auto problem = identifier_problem(name, 256)) throw input_error(source, 0, where, *problem);
  return name;
}

}  // namespace

const std::string& DefaultFundConfig::group(const std::string& member) const {
  const auto it = group_of.find(member);
  return it == group_of.end() ? member : it->second;
}

std::int64_t DefaultFundConfig::skin_in_the_game_minor() const {
  return static_cast<std::int64_t>(std::floor(static_cast<double>(minimum_capital_minor) * skin_in_the_game_share));
}

DefaultFundConfig parse_default_fund_config(const std::string& text, const std::string& source) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw input_error(source, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) throw input_error(source, 0, "", "expected a JSON object");
  check_json_keys(doc,
             {"currency", "scale", "groups", "ccp", "minimum_contribution", "assessment_cap", "holding_period_days",
              "scenarios"},
             source, "");
  DefaultFundConfig c;
  c.source = source;
  if (doc.contains("currency")) {
    if (!doc["currency"].is_string()) throw input_error(source, 0, "currency", "must be an asset name");
    c.currency = doc["currency"].get<std::string>();
    if (auto problem = identifier_problem(c.currency, 64)) throw input_error(source, 0, "currency", *problem);
  }
  if (doc.contains("scale")) {
    if (!doc["scale"].is_number_integer() || doc["scale"].get<int>() < 0 || doc["scale"].get<int>() > 18)
      throw input_error(source, 0, "scale", "must be an integer 0..18 (decimals of the currency's minor unit)");
    c.scale = doc["scale"].get<int>();
  }
  if (doc.contains("groups")) {
    const json& groups = doc["groups"];
    if (!groups.is_object()) throw input_error(source, 0, "groups", "must be an object: group -> [members]");
    for (const auto& [group, members] : groups.items()) {
      const std::string where = "groups." + group;
      if (auto problem = identifier_problem(group, 256)) throw input_error(source, 0, where, *problem);
      if (!members.is_array() || members.empty())
        throw input_error(source, 0, where, "must be a non-empty array of member names");
      for (std::size_t i = 0; i < members.size(); ++i) {
        const std::string m = member_name(members[i], source, where + "[" + std::to_string(i) + "]");
        if (!c.group_of.emplace(m, group).second)
          throw input_error(source, 0, where + "[" + std::to_string(i) + "]",
                            "member '" + m + "' is already in group '" + c.group_of[m] + "'");
      }
    }
  }
  if (doc.contains("ccp")) {
    const json& ccp = doc["ccp"];
    if (!ccp.is_object()) throw input_error(source, 0, "ccp", "must be an object");
    check_json_keys(ccp, {"house_account", "minimum_capital", "skin_in_the_game_share", "liquid_resources"}, source, "ccp");
    if (ccp.contains("house_account")) c.house_account = member_name(ccp["house_account"], source, "ccp.house_account");
    c.minimum_capital_minor = money_field(ccp, "minimum_capital", 0, c.scale, source, "ccp.");
    c.skin_in_the_game_share = number_field(ccp, "skin_in_the_game_share", 0.25, source, "ccp.");
    if (c.skin_in_the_game_share < 0 || c.skin_in_the_game_share > 1)
      throw input_error(source, 0, "ccp.skin_in_the_game_share", "must be between 0 and 1");
    if (ccp.contains("liquid_resources")) {
      const json& lr = ccp["liquid_resources"];
      if (!lr.is_object()) throw input_error(source, 0, "ccp.liquid_resources", "must be an object: asset -> amount");
      for (const auto& [asset, amount] : lr.items()) {
        const std::string where = "ccp.liquid_resources." + asset;
        if (auto problem = identifier_problem(asset, 64)) throw input_error(source, 0, where, *problem);
        Decimal d;
        if (!amount.is_string() || parse_decimal(amount.get<std::string>(), d) != MoneyStatus::ok || d.mantissa < 0)
          throw input_error(source, 0, where, "must be a decimal amount ≥ 0 as text (\"25000000.00\")");
        c.liquid_resources[asset] = amount.get<std::string>();
      }
    }
  }
  c.minimum_contribution_minor = money_field(doc, "minimum_contribution", 0, c.scale, source, "");
  const double cap = number_field(doc, "assessment_cap", 1.0, source, "");
  if (cap < 0 || cap > 1000) throw input_error(source, 0, "assessment_cap", "must be a multiple of the contribution in 0..1000");
  c.assessment_cap_ppm = static_cast<std::int64_t>(std::llround(cap * 1e6));
  c.holding_period_days = number_field(doc, "holding_period_days", 2.0, source, "");
  if (c.holding_period_days < 0 || c.holding_period_days > 365)
    throw input_error(source, 0, "holding_period_days", "must be between 0 and 365");

  // Scenarios: the stress-set format, each with a kind; a shock without "days" lasts the
  // holding period.
  if (!doc.contains("scenarios") || !doc["scenarios"].is_array() || doc["scenarios"].empty())
    throw input_error(source, 0, "scenarios", "expected a non-empty array of default scenarios");
  json stress = json::array();
  std::set<std::string> names;
  for (std::size_t i = 0; i < doc["scenarios"].size(); ++i) {
    json sc = doc["scenarios"][i];
    const std::string where = "scenarios[" + std::to_string(i) + "]";
    if (!sc.is_object()) throw input_error(source, 0, where, "must be an object");
    check_json_keys(sc, {"name", "kind", "shocks"}, source, where);
    if (!sc.contains("name") || !sc["name"].is_string() || sc["name"].get<std::string>().empty())
      throw input_error(source, 0, where + ".name", "every default scenario needs a name");
    DefaultScenario d{sc["name"].get<std::string>(), sc.value("kind", std::string("hypothetical"))};
    if (!names.insert(d.name).second) throw input_error(source, 0, where + ".name", "'" + d.name + "' is used twice");
    if (d.kind != "historical" && d.kind != "hypothetical")
      throw input_error(source, 0, where + ".kind", "must be historical or hypothetical (got '" + d.kind + "')");
    if (!sc.contains("shocks") || !sc["shocks"].is_object() || sc["shocks"].empty())
      throw input_error(source, 0, where + ".shocks", "expected an object of per-underlying shocks");
    for (auto& [underlying, shock] : sc["shocks"].items()) {
      if (!shock.is_object()) throw input_error(source, 0, where + ".shocks." + underlying, "must be an object");
      check_json_keys(shock, {"move", "vol_shift", "vol_kind", "days"}, source, where + ".shocks." + underlying);
      if (!shock.contains("days")) shock["days"] = c.holding_period_days;
    }
    sc.erase("kind");
    c.scenarios.push_back(std::move(d));
    stress.push_back(std::move(sc));
  }
  c.scenarios_json = json{{"scenarios", stress}}.dump();
  return c;
}

DefaultFundConfig load_default_fund_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", "cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_default_fund_config(ss.str(), path);
}

DefaultFundConfig builtin_default_fund_config() {
  // Two replayed episodes (two-day moves, rounded) and four hypothetical stresses, over the
  // default two-day liquidation horizon.
  static const char* kBuiltIn = R"JSON({
    "currency": "USD", "scale": 2,
    "ccp": {"house_account": "CCP-HOUSE", "minimum_capital": "10000000.00", "skin_in_the_game_share": 0.25,
            "liquid_resources": {"USD": "20000000.00", "USDC": "5000000.000000", "BTC": "150.00000000",
                                 "ETH": "2000.000000000"}},
    "minimum_contribution": "10000.00", "assessment_cap": 1.0, "holding_period_days": 2,
    "scenarios": [
      {"name": "2020-03-12 covid crash", "kind": "historical",
       "shocks": {"BTC": {"move": -0.39, "vol_shift": 1.0, "vol_kind": "relative"},
                  "*": {"move": -0.43, "vol_shift": 1.0, "vol_kind": "relative"}}},
      {"name": "2022-11-08 FTX collapse", "kind": "historical",
       "shocks": {"BTC": {"move": -0.22, "vol_shift": 0.5, "vol_kind": "relative"},
                  "*": {"move": -0.26, "vol_shift": 0.6, "vol_kind": "relative"}}},
      {"name": "crash: BTC -50%, others -55%, vol x2", "kind": "hypothetical",
       "shocks": {"BTC": {"move": -0.5, "vol_shift": 1.0, "vol_kind": "relative"},
                  "*": {"move": -0.55, "vol_shift": 1.0, "vol_kind": "relative"}}},
      {"name": "squeeze: +100%, vol +50%", "kind": "hypothetical",
       "shocks": {"*": {"move": 1.0, "vol_shift": 0.5, "vol_kind": "relative"}}},
      {"name": "vol crush: prices flat, vol -50%", "kind": "hypothetical",
       "shocks": {"*": {"move": 0.0, "vol_shift": -0.5, "vol_kind": "relative"}}},
      {"name": "decoupling: BTC +30%, others -40%", "kind": "hypothetical",
       "shocks": {"BTC": {"move": 0.3, "vol_shift": 0.3, "vol_kind": "relative"},
                  "*": {"move": -0.4, "vol_shift": 0.6, "vol_kind": "relative"}}}
    ]})JSON";
  return parse_default_fund_config(kBuiltIn, "built-in");
}

// ---- sizing ------------------------------------------------------------------------------------

std::vector<std::int64_t> allocate_pro_rata(std::int64_t amount, const std::vector<std::int64_t>& weights) {
  std::vector<std::int64_t> out(weights.size(), 0);
  if (amount < 0) throw input_error("a pro-rata amount must be ≥ 0");
  __int128 total = 0;
  for (std::int64_t w : weights) {
    if (w < 0) throw input_error("a pro-rata weight must be ≥ 0");
    total += w;
  }
  if (amount == 0) return out;
  if (total == 0) throw input_error("cannot share an amount over weights that are all zero");
  std::vector<std::pair<__int128, std::size_t>> remainders;  // (remainder, index)
  __int128 given = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const __int128 product = static_cast<__int128>(amount) * weights[i];
    out[i] = static_cast<std::int64_t>(product / total);
    given += out[i];
    remainders.emplace_back(product % total, i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  // Σ floor ≥ amount − (n − 1): fewer units left than weights.
  for (std::size_t k = 0; given < amount; ++k, ++given) ++out[remainders[k].second];
  return out;
}

FundSizing size_default_fund(const std::vector<MemberStress>& members, const std::vector<std::string>& scenarios,
                             const DefaultFundConfig& config) {
  FundSizing f;
  f.scenarios = scenarios;
  const std::size_t S = scenarios.size();
  std::map<std::string, GroupStressResult> groups;
  std::vector<MemberStress> sorted = members;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.member < b.member; });
  for (const MemberStress& m : sorted) {
    if (m.loss.size() != S)
      throw input_error("member '" + m.member + "': " + std::to_string(m.loss.size()) + " stress losses for " +
                        std::to_string(S) + " scenarios");
    if (!std::isfinite(m.im)) throw input_error("member '" + m.member + "': IM is not a finite number");
    MemberContribution mc{m.member, config.group(m.member), m.im, 0, -1, 0};
    for (std::size_t s = 0; s < S; ++s) {
      if (!std::isfinite(m.loss[s]))
        throw input_error("member '" + m.member + "': the stress loss in '" + scenarios[s] + "' is not a finite number");
      const double u = std::max(0.0, m.loss[s] - m.im);
      if (u > mc.exposure || mc.exposure_scenario < 0) mc.exposure = u, mc.exposure_scenario = static_cast<std::int32_t>(s);
    }
    GroupStressResult& g = groups[mc.group];
    if (g.loss.empty()) g.group = mc.group, g.loss.assign(S, 0.0);
    g.members.push_back(m.member);
    g.im += m.im;
    for (std::size_t s = 0; s < S; ++s) g.loss[s] += m.loss[s];
    f.members.push_back(std::move(mc));
  }
  for (auto& [name, g] : groups) {
    g.uncovered.resize(S);
    for (std::size_t s = 0; s < S; ++s) {
      g.uncovered[s] = std::max(0.0, g.loss[s] - g.im);
      if (g.uncovered[s] > g.worst_uncovered || g.worst_scenario < 0)
        g.worst_uncovered = g.uncovered[s], g.worst_scenario = static_cast<std::int32_t>(s);
    }
    f.groups.push_back(std::move(g));
  }

  // Per scenario, the groups by uncovered loss (largest first, ties by name).
  std::vector<std::size_t> order(f.groups.size());
  for (std::size_t s = 0; s < S; ++s) {
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return f.groups[a].uncovered[s] > f.groups[b].uncovered[s];
    });
    auto u = [&](std::size_t k) { return k < order.size() ? f.groups[order[k]].uncovered[s] : 0.0; };
    auto name = [&](std::size_t k) { return k < order.size() ? f.groups[order[k]].group : std::string(); };
    const double one = u(0), two_three = u(1) + u(2), cover2 = u(0) + u(1);
    const double art42 = std::max(one, two_three);
    if (f.art42_scenario < 0 || art42 > f.art42) {
      f.art42 = art42;
      f.art42_scenario = static_cast<std::int32_t>(s);
      f.art42_groups.clear();
      if (one >= two_three) f.art42_groups.push_back(name(0));
      else for (std::size_t k = 1; k < 3 && k < order.size(); ++k) f.art42_groups.push_back(name(k));
    }
    if (f.cover2_scenario < 0 || cover2 > f.cover2) {
      f.cover2 = cover2;
      f.cover2_scenario = static_cast<std::int32_t>(s);
      f.cover2_groups.clear();
      for (std::size_t k = 0; k < 2 && k < order.size(); ++k) f.cover2_groups.push_back(name(k));
    }
  }
  if (margin_call_minor_units(f.art42, config.scale, f.fund_minor) != MoneyStatus::ok)
    throw input_error("the default fund (" + std::to_string(f.art42) + " " + config.currency + ") does not fit int64 minor units");

  // Contributions: the fund pro rata to each member's stress exposure, at least the minimum.
  std::vector<std::int64_t> weights;
  for (const MemberContribution& m : f.members) {
    std::int64_t w = 0;
    if (margin_call_minor_units(m.exposure, config.scale, w) != MoneyStatus::ok)
      throw input_error("member '" + m.member + "': the stress exposure does not fit int64 minor units");
    weights.push_back(w);
  }
  const bool any_exposure = std::any_of(weights.begin(), weights.end(), [](std::int64_t w) { return w > 0; });
  const std::vector<std::int64_t> shares =
      any_exposure ? allocate_pro_rata(f.fund_minor, weights) : std::vector<std::int64_t>(weights.size(), 0);
  for (std::size_t i = 0; i < f.members.size(); ++i) {
    f.members[i].contribution_minor = std::max(shares[i], config.minimum_contribution_minor);
    if (!checked_add(f.contributions_minor, f.members[i].contribution_minor, f.contributions_minor))
      throw input_error("the contributions' total does not fit int64 minor units");
  }
  return f;
}

// ---- the waterfall --------------------------------------------------------------------------

const char* to_string(WaterfallLayer layer) {
  switch (layer) {
    case WaterfallLayer::defaulter_margin: return "defaulter_margin";
    case WaterfallLayer::defaulter_contribution: return "defaulter_contribution";
    case WaterfallLayer::skin_in_the_game: return "skin_in_the_game";
    case WaterfallLayer::survivors_contributions: return "survivors_contributions";
    case WaterfallLayer::assessments: return "assessments";
    case WaterfallLayer::uncovered: return "uncovered";
  }
  return "?";
}

WaterfallResult run_waterfall(const WaterfallInputs& in) {
  for (std::int64_t v : {in.loss_minor, in.margin_minor, in.contribution_minor, in.skin_in_the_game_minor,
                         in.assessment_cap_ppm})
    if (v < 0) throw input_error("waterfall amounts must be ≥ 0");
  for (const MemberAmount& s : in.survivors)
    if (s.amount_minor < 0) throw input_error("survivor '" + s.member + "': a contribution must be ≥ 0");

  WaterfallResult r;
  std::int64_t remaining = in.loss_minor;
  auto single = [&](WaterfallLayer layer, std::int64_t available) {
    const std::int64_t absorbed = std::min(available, remaining);
    remaining -= absorbed;
    r.steps.push_back({layer, "", available, absorbed, remaining});
    r.layers.push_back({layer, available, absorbed});
  };
  single(WaterfallLayer::defaulter_margin, in.margin_minor);
  r.margin_surplus_minor = in.margin_minor - r.layers.back().absorbed_minor;
  single(WaterfallLayer::defaulter_contribution, in.contribution_minor);
  single(WaterfallLayer::skin_in_the_game, in.skin_in_the_game_minor);

  // A pro-rata layer: `available[i]` from each survivor, the loss shared in proportion to it.
  auto pro_rata = [&](WaterfallLayer layer, const std::vector<std::int64_t>& available,
                      std::map<std::string, std::int64_t>& used) {
    std::int64_t total = 0;
    for (std::int64_t a : available)
      if (!checked_add(total, a, total)) throw input_error("the survivors' amounts do not fit int64 minor units");
    const std::int64_t absorbed = std::min(total, remaining);
    r.layers.push_back({layer, total, absorbed});
    if (absorbed == 0) return;
    // Shares ≤ availability: floor(x·a_i/Σa) ≤ a_i, and a remainder unit goes only where the
    // floor is below the exact share.
    const std::vector<std::int64_t> shares = allocate_pro_rata(absorbed, available);
    for (std::size_t i = 0; i < shares.size(); ++i) {
      if (available[i] == 0) continue;
      remaining -= shares[i];
      used[in.survivors[i].member] = shares[i];
      r.steps.push_back({layer, in.survivors[i].member, available[i], shares[i], remaining});
    }
  };
  std::vector<std::int64_t> contributions, caps;
  for (const MemberAmount& s : in.survivors) {
    contributions.push_back(s.amount_minor);
    caps.push_back(static_cast<std::int64_t>(static_cast<__int128>(s.amount_minor) * in.assessment_cap_ppm / 1'000'000));
  }
  pro_rata(WaterfallLayer::survivors_contributions, contributions, r.contribution_used);
  pro_rata(WaterfallLayer::assessments, caps, r.assessed);

  r.uncovered_minor = remaining;
  r.covered_minor = in.loss_minor - remaining;
  r.layers.push_back({WaterfallLayer::uncovered, 0, remaining});
  if (remaining > 0) r.steps.push_back({WaterfallLayer::uncovered, "", 0, remaining, remaining});
  return r;
}

}  // namespace marginet
