#include "models/scenario_set.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/errors.hpp"
#include "models/json_keys.hpp"

namespace marginet {

int ScenarioSet::underlying_index(const std::string& underlying) const {
  for (std::size_t u = 0; u < underlyings.size(); ++u)
    if (underlyings[u] == underlying) return static_cast<int>(u);
  return -1;
}

namespace {

ScenarioShock parse_shock(const nlohmann::json& obj, const std::string& source, const std::string& where) {
  if (!obj.is_object()) throw input_error(source, 0, where, "must be an object");
  check_json_keys(obj, {"move", "vol_shift", "vol_kind", "days"}, source, where);
  ScenarioShock s;
  auto number = [&](const char* key, double fallback) {
    if (!obj.contains(key)) return fallback;
    if (!obj[key].is_number()) throw input_error(source, 0, where + "." + key, "must be a number");
    const double v = obj[key].get<double>();
    if (!std::isfinite(v)) throw input_error(source, 0, where + "." + key, "must be finite");
    return v;
  };
  s.price_move = number("move", 0.0);
  if (s.price_move <= -1.0) throw input_error(source, 0, where + ".move", "must be > -1 (a price cannot fall below zero)");
  s.vol_shift = number("vol_shift", 0.0);
  s.days = number("days", 0.0);
  if (s.days < 0) throw input_error(source, 0, where + ".days", "must be >= 0");
  const std::string kind = obj.value("vol_kind", obj.contains("vol_shift") ? "absolute" : "none");
  if (kind == "none")
    s.vol_kind = VolShock::none;
  else if (kind == "absolute")
    s.vol_kind = VolShock::absolute;
  else if (kind == "relative")
    s.vol_kind = VolShock::relative;
  else
    throw input_error(source, 0, where + ".vol_kind", "must be none, absolute or relative (got '" + kind + "')");
  return s;
}

}  // namespace

ScenarioSet parse_stress_scenarios(const std::string& text, const std::string& source,
                                   const std::vector<std::string>& underlyings) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw input_error(source, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object() || !doc.contains("scenarios") || !doc["scenarios"].is_array() ||
      doc["scenarios"].empty())
    throw input_error(source, 0, "scenarios", "expected a non-empty array of scenarios");
  ScenarioSet set;
  set.name = "stress";
  set.underlyings = underlyings;
  set.vol_terms.resize(underlyings.size());
  const std::size_t U = underlyings.size();
  std::size_t index = 0;
  for (const auto& sc : doc["scenarios"]) {
    const std::string where = "scenarios[" + std::to_string(index) + "]";
    if (!sc.is_object() || !sc.contains("shocks") || !sc["shocks"].is_object())
      throw input_error(source, 0, where + ".shocks", "expected an object of per-underlying shocks");
    check_json_keys(sc, {"name", "weight", "shocks"}, source, where);
    // Every shock is checked, also of underlyings this run does not hold.
    for (const auto& [underlying, shock] : sc["shocks"].items()) {
      if (!shock.is_object()) throw input_error(source, 0, where + ".shocks." + underlying, "must be an object");
      check_json_keys(shock, {"move", "vol_shift", "vol_kind", "days"}, source, where + ".shocks." + underlying);
    }
    set.labels.push_back(sc.value("name", "scenario " + std::to_string(index + 1)));
    const double w = sc.value("weight", 1.0);
    if (!(w > 0)) throw input_error(source, 0, where + ".weight", "must be > 0");
    set.weights.push_back(w);
    const auto& shocks = sc["shocks"];
    for (std::size_t u = 0; u < U; ++u) {
      if (shocks.contains(underlyings[u]))
        set.shocks.push_back(parse_shock(shocks[underlyings[u]], source, where + ".shocks." + underlyings[u]));
      else if (shocks.contains("*"))
        set.shocks.push_back(parse_shock(shocks["*"], source, where + ".shocks.*"));
      else
        set.shocks.push_back(ScenarioShock{});
    }
    ++index;
  }
  set.count = index;
  return set;
}

ScenarioSet read_stress_scenarios(const std::string& path, const std::vector<std::string>& underlyings) {
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", "cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_stress_scenarios(ss.str(), path, underlyings);
}

}  // namespace marginet
