#include "service/cli/margin_table.hpp"

#include <map>
#include <string>

namespace marginet::cli {

namespace {

using json = nlohmann::ordered_json;

double num(const json& j, const char* key) { return j.contains(key) ? j.at(key).get<double>() : 0.0; }

/// The scenario id, with its label on a terminal ("5 (down 1/3, vol up)").
Cell scenario_cell(const json& j, const char* id_key, const char* label_key, bool pretty) {
  const std::int64_t id = j.contains(id_key) ? j.at(id_key).get<std::int64_t>() : 0;
  if (!pretty) return id;
  if (id == 0) return std::string("-");
  const std::string label = j.contains(label_key) ? j.at(label_key).get<std::string>() : std::string();
  return label.empty() ? std::to_string(id) : std::to_string(id) + " (" + label + ")";
}

/// The coin delta of the account's underlying `currency` (deribit-pm in coin); empty for an
/// asset it holds as collateral only.
Cell coin_delta_of(const json& account, const std::string& currency, int decimals) {
  for (const json& u : account.at("underlyings"))
    if (u.at("underlying").get<std::string>() == currency && u.contains("coin_delta"))
      return Figure{u.at("coin_delta").get<double>(), decimals};
  return std::string();
}

/// The decimals of an exact amount's text ("1.324828464": 9): the currency's minor unit.
int decimals_of(const std::string& amount) {
  const std::size_t dot = amount.find('.');
  return dot == std::string::npos ? 0 : static_cast<int>(amount.size() - dot - 1);
}

}  // namespace

Table margin_table(const json& accounts, bool pretty) {
  bool coin = false;
  for (const json& a : accounts) coin = coin || a.contains("currencies");
  Table t;
  t.columns = {"account", "model", "currency", "im", "mm", "collateral_value", "call", "call_asset", "worst_scenario"};
  if (coin)
    t.columns.push_back("coin_delta");
  else
    t.columns.insert(t.columns.end(), {"delta_usd", "gamma_usd", "vega_usd"});
  for (const json& a : accounts) {
    const std::string account = a.at("account").get<std::string>();
    const std::string model = a.at("model").get<std::string>();
    if (coin) {
      if (!a.contains("currencies")) continue;  // no positions and no collateral: nothing to say
      for (const json& c : a.at("currencies")) {
        const std::string cur = c.at("currency").get<std::string>();
        const std::string call = c.at("call").get<std::string>();
        const int d = decimals_of(call);
        t.add_row({account, model, cur, Figure{num(c, "im"), d}, Figure{num(c, "mm"), d},
                   Figure{num(c, "collateral_value"), d}, call, cur,
                   scenario_cell(c, "worst_scenario", "worst_scenario_label", pretty), coin_delta_of(a, cur, d)});
      }
      continue;
    }
    const json& units = a.at("units");
    const std::string cur = units.at("im").get<std::string>();
    const std::string call = a.at("call").get<std::string>();
    const int d = decimals_of(call);
    t.add_row({account, model, cur, Figure{num(a, "im"), d}, Figure{num(a, "mm"), d},
               Figure{num(a, "collateral_value"), d}, call,
               units.at("call").get<std::string>(), scenario_cell(a, "worst_scenario", "worst_scenario_label", pretty),
               Figure{num(a, "delta_usd"), 2}, Figure{num(a, "gamma_usd"), 2}, Figure{num(a, "vega_usd"), 2}});
  }
  return t;
}

Table whatif_table(const json& account, const json& before, const json& after, bool pretty) {
  Table t;
  t.columns = {"account", "model", "currency", "im_before", "im_after", "im_change", "mm_before", "mm_after",
               "mm_change", "worst_scenario_before", "worst_scenario_after"};
  const std::string name = account.get<std::string>();
  const std::string model = after.at("model").get<std::string>();
  // deribit-pm in coin: each coin on its own (its underlying's row before and after).
  bool coin = false;
  for (const json& u : after.at("underlyings"))
    coin = coin || (u.contains("units") && u.at("units").contains("im") &&
                    u.at("units").at("im").get<std::string>() != "USD");
  if (coin) {
    std::map<std::string, std::pair<const json*, const json*>> rows;
    for (const json& u : before.at("underlyings")) rows[u.at("underlying").get<std::string>()].first = &u;
    for (const json& u : after.at("underlyings")) rows[u.at("underlying").get<std::string>()].second = &u;
    for (const auto& [cur, ba] : rows) {
      const int d = unit_decimals(cur);
      const json empty = json::object();
      const json& b = ba.first ? *ba.first : empty;
      const json& x = ba.second ? *ba.second : empty;
      t.add_row({name, model, cur, Figure{num(b, "im"), d}, Figure{num(x, "im"), d},
                 Figure{num(x, "im") - num(b, "im"), d}, Figure{num(b, "mm"), d}, Figure{num(x, "mm"), d},
                 Figure{num(x, "mm") - num(b, "mm"), d}, scenario_cell(b, "worst_scenario", "worst_scenario_label", pretty),
                 scenario_cell(x, "worst_scenario", "worst_scenario_label", pretty)});
    }
    return t;
  }
  const std::string cur = after.at("units").at("im").get<std::string>();
  const int d = unit_decimals(cur);
  t.add_row({name, model, cur, Figure{num(before, "im"), d}, Figure{num(after, "im"), d},
             Figure{num(after, "im") - num(before, "im"), d}, Figure{num(before, "mm"), d}, Figure{num(after, "mm"), d},
             Figure{num(after, "mm") - num(before, "mm"), d},
             scenario_cell(before, "worst_scenario", "worst_scenario_label", pretty),
             scenario_cell(after, "worst_scenario", "worst_scenario_label", pretty)});
  return t;
}

}  // namespace marginet::cli
