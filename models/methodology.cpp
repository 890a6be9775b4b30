#include "models/methodology.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/errors.hpp"
#include "models/json_keys.hpp"
#include "models/scenario_set.hpp"
#include "models/var_scenarios.hpp"

namespace marginet {

namespace {

using json = nlohmann::json;

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

/// "btc_usd" -> "BTC"; "btc" -> "BTC"; "default" -> "DEFAULT".
std::string underlying_of_key(const std::string& key) {
  const auto pos = key.find('_');
  return upper(pos == std::string::npos ? key : key.substr(0, pos));
}

double get_number(const json& obj, const char* key, double fallback, const std::string& source,
                  const std::string& where) {
  if (!obj.contains(key)) return fallback;
  const json& v = obj.at(key);
  if (!v.is_number()) throw input_error(source, 0, where + "." + key, "must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw input_error(source, 0, where + "." + key, "must be finite");
  return d;
}

void require_positive(double v, const std::string& source, const std::string& field) {
  if (!(v > 0)) throw input_error(source, 0, field, "must be > 0");
}

Span16Params parse_span_params(const json& obj, const Span16Params& base, const std::string& source,
                               const std::string& where) {
  if (!obj.is_object()) throw input_error(source, 0, where, "must be an object");
  check_json_keys(obj, {"price_scan_range", "volatility_scan_range", "short_option_minimum", "init_to_maint", "days"},
                  source, where);
  Span16Params p = base;
  p.price_scan_range = get_number(obj, "price_scan_range", p.price_scan_range, source, where);
  p.volatility_scan_range =
      get_number(obj, "volatility_scan_range", p.volatility_scan_range, source, where);
  p.short_option_minimum = get_number(obj, "short_option_minimum", p.short_option_minimum, source, where);
  p.init_to_maint = get_number(obj, "init_to_maint", p.init_to_maint, source, where);
  p.days = get_number(obj, "days", p.days, source, where);
  require_positive(p.price_scan_range, source, where + ".price_scan_range");
  require_positive(p.init_to_maint, source, where + ".init_to_maint");
  if (p.volatility_scan_range < 0 || p.short_option_minimum < 0 || p.days < 0)
    throw input_error(source, 0, where, "volatility_scan_range, short_option_minimum and days must be >= 0");
  return p;
}

DeribitPairParams parse_pair(const json& obj, DeribitPairParams p, const std::string& source,
                             const std::string& where) {
  if (!obj.is_object()) throw input_error(source, 0, where, "must be an object");
  check_json_keys(obj,
                  {"price_range", "volatility_range_up", "volatility_range_down", "short_term_vega_power",
                   "long_term_vega_power", "min_volatility_for_shock_up", "extended_table_factor", "max_delta_shock",
                   "delta_total_liq_shock_threshold"},
                  source, where);
  p.price_range = get_number(obj, "price_range", p.price_range, source, where);
  p.volatility_range_up = get_number(obj, "volatility_range_up", p.volatility_range_up, source, where);
  p.volatility_range_down = get_number(obj, "volatility_range_down", p.volatility_range_down, source, where);
  p.short_term_vega_power = get_number(obj, "short_term_vega_power", p.short_term_vega_power, source, where);
  p.long_term_vega_power = get_number(obj, "long_term_vega_power", p.long_term_vega_power, source, where);
  p.min_volatility_for_shock_up =
      get_number(obj, "min_volatility_for_shock_up", p.min_volatility_for_shock_up, source, where);
  p.extended_table_factor = get_number(obj, "extended_table_factor", p.extended_table_factor, source, where);
  p.max_delta_shock = get_number(obj, "max_delta_shock", p.max_delta_shock, source, where);
  p.delta_total_liq_shock_threshold = get_number(obj, "delta_total_liq_shock_threshold",
                                                 p.delta_total_liq_shock_threshold, source, where);
  require_positive(p.price_range, source, where + ".price_range");
  if (p.price_range >= 1) throw input_error(source, 0, where + ".price_range", "must be < 1");
  return p;
}

DeribitCurrencyParams parse_currency(const json& obj, DeribitCurrencyParams p, const std::string& source,
                                     const std::string& where) {
  if (!obj.is_object()) throw input_error(source, 0, where, "must be an object");
  check_json_keys(obj, {"annualised_move_risk", "min_annualised_move", "pnl_offset", "extended_dampener", "scale"},
                  source, where);
  p.annualised_move_risk = get_number(obj, "annualised_move_risk", p.annualised_move_risk, source, where);
  p.min_annualised_move = get_number(obj, "min_annualised_move", p.min_annualised_move, source, where);
  p.pnl_offset = get_number(obj, "pnl_offset", p.pnl_offset, source, where);
  p.extended_dampener = get_number(obj, "extended_dampener", p.extended_dampener, source, where);
  const double scale = get_number(obj, "scale", p.scale, source, where);
  if (!(scale >= 0 && scale <= 18) || scale != std::floor(scale))
    throw input_error(source, 0, where + ".scale", "must be a whole number of decimals within 0..18");
  p.scale = static_cast<int>(scale);
  if (p.pnl_offset < 0 || p.pnl_offset > 1)
    throw input_error(source, 0, where + ".pnl_offset", "must be within [0, 1]");
  return p;
}

}  // namespace

double McEsConfig::vol(const std::string& underlying) const {
  const auto it = vols.find(underlying);
  return it == vols.end() ? default_vol : it->second;
}

double McEsConfig::correlation(const std::string& a, const std::string& b) const {
  auto it = correlations.find(a + "/" + b);
  if (it == correlations.end()) it = correlations.find(b + "/" + a);
  return it == correlations.end() ? default_correlation : it->second;
}

const Span16Params& Span16Config::params(const std::string& underlying) const {
  const auto it = underlyings.find(underlying);
  return it == underlyings.end() ? defaults : it->second;
}

const DeribitPairParams& DeribitPmConfig::pair(const std::string& underlying) const {
  auto it = pairs.find(upper(underlying));
  if (it == pairs.end()) it = pairs.find("DEFAULT");
  if (it == pairs.end())
    throw input_error("deribit-pm: no currency_pair parameters for underlying '" + underlying + "'");
  return it->second;
}

const DeribitCurrencyParams& DeribitPmConfig::currency(const std::string& underlying) const {
  auto it = currencies.find(upper(underlying));
  if (it == currencies.end()) it = currencies.find("DEFAULT");
  if (it == currencies.end())
    throw input_error("deribit-pm: no currency parameters for underlying '" + underlying + "'");
  return it->second;
}

DeribitPmConfig deribit_pm_defaults() {
  DeribitPmConfig c;
  // BTC: Deribit private/pme/simulate model_params (API docs example, 2024-06-17).
  DeribitPairParams btc_pair;  // the struct defaults are BTC's published values
  DeribitCurrencyParams btc;   // likewise: annualised_move_risk 0.075, min 0.01, offset 0, dampener 100000
  // ETH: Deribit model_params as returned for an ETH account (2026-02-15).
  DeribitPairParams eth_pair;
  eth_pair.price_range = 0.18;
  eth_pair.volatility_range_up = 0.4;
  eth_pair.volatility_range_down = 0.25;
  DeribitCurrencyParams eth;
  eth.annualised_move_risk = 0.05;
  eth.min_annualised_move = 0.005;
  eth.pnl_offset = 0.6;
  eth.extended_dampener = 200'000;
  eth.scale = 9;
  c.pairs = {{"BTC", btc_pair}, {"ETH", eth_pair}, {"DEFAULT", btc_pair}};
  c.currencies = {{"BTC", btc}, {"ETH", eth}, {"DEFAULT", btc}};
  return c;
}

std::size_t deribit_standard_count(const DeribitPmConfig& c) {
  return static_cast<std::size_t>(2 * c.general.buckets_count + 1) * 3;
}

Methodology parse_methodology(const std::string& text, const std::string& source) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw input_error(source, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object() || !doc.contains("model") || !doc["model"].is_string())
    throw input_error(source, 0, "model", "missing: expected \"span16\", \"deribit-pm\", \"hvar\", \"mc-es\" or \"stress\"");
  const std::string model = doc["model"].get<std::string>();
  // The keys each model reads, besides the common ones: any other key is a mistake.
  std::vector<std::string> known{"model", "name", "haircuts", "default_haircut", "settlement_asset", "settlement_scale"};
  const std::vector<std::string> own =
      model == "span16"       ? std::vector<std::string>{"extreme_move_multiplier", "extreme_cover_fraction", "default",
                                                         "underlyings"}
      : model == "deribit-pm" ? std::vector<std::string>{"general", "currency_pair", "currency"}
      : model == "hvar"       ? std::vector<std::string>{"confidence", "holding_days", "ewma_lambda", "measure", "returns",
                                                         "stress_returns"}
      : model == "mc-es"      ? std::vector<std::string>{"paths", "confidence", "holding_days", "seed", "default_vol",
                                                         "vols", "default_correlation", "correlations"}
      : model == "stress"     ? std::vector<std::string>{"scenarios"}
                              : std::vector<std::string>{};
  if (own.empty())
    throw input_error(source, 0, "model",
                      "unknown methodology '" + model + "' (span16, deribit-pm, hvar, mc-es or stress)");
  known.insert(known.end(), own.begin(), own.end());
  check_json_keys(doc, known, source, "");
  Methodology m;
  m.source = source;
  m.name = doc.value("name", model);
  if (doc.contains("haircuts")) {
    if (!doc["haircuts"].is_object()) throw input_error(source, 0, "haircuts", "must be an object");
    for (const auto& [asset, v] : doc["haircuts"].items()) {
      const double h = get_number(doc["haircuts"], asset.c_str(), 0, source, "haircuts");
      if (h < 0 || h >= 1) throw input_error(source, 0, "haircuts." + asset, "must be within [0, 1)");
      m.haircuts[asset] = h;
    }
  }
  m.default_haircut = get_number(doc, "default_haircut", m.default_haircut, source, "");
  m.settlement_asset = doc.value("settlement_asset", m.settlement_asset);
  m.settlement_scale = static_cast<int>(get_number(doc, "settlement_scale", m.settlement_scale, source, ""));
  if (m.settlement_scale < 0 || m.settlement_scale > 18)
    throw input_error(source, 0, "settlement_scale", "must be within 0..18");
  if (model == "span16") {
    m.kind = MethodologyKind::span16;
    m.span.extreme_move_multiplier =
        get_number(doc, "extreme_move_multiplier", m.span.extreme_move_multiplier, source, "");
    m.span.extreme_cover_fraction =
        get_number(doc, "extreme_cover_fraction", m.span.extreme_cover_fraction, source, "");
    if (doc.contains("default"))
      m.span.defaults = parse_span_params(doc["default"], m.span.defaults, source, "default");
    if (doc.contains("underlyings")) {
      if (!doc["underlyings"].is_object()) throw input_error(source, 0, "underlyings", "must be an object");
      for (const auto& [key, val] : doc["underlyings"].items())
        m.span.underlyings[key] = parse_span_params(val, m.span.defaults, source, "underlyings." + key);
    }
  } else if (model == "deribit-pm") {
    m.kind = MethodologyKind::deribit_pm;
    m.deribit = deribit_pm_defaults();
    if (doc.contains("general")) {
      const json& g = doc["general"];
      if (!g.is_object()) throw input_error(source, 0, "general", "must be an object");
      check_json_keys(g, {"mm_factor", "buckets_count", "vol_scenarios_count", "delta_shock_rule", "margin_currency"},
                      source, "general");
      if (g.contains("margin_currency")) {
        const json& c = g["margin_currency"];
        const std::string cur = c.is_string() ? c.get<std::string>() : "";
        if (cur == "coin") m.deribit.general.margin_currency = MarginCurrency::coin;
        else if (cur == "usd") m.deribit.general.margin_currency = MarginCurrency::usd;
        else throw input_error(source, 0, "general.margin_currency", "must be \"coin\" or \"usd\"");
      }
      if (g.contains("delta_shock_rule")) {
        const json& r = g["delta_shock_rule"];
        const std::string rule = r.is_string() ? r.get<std::string>() : "";
        if (rule == "ramp") m.deribit.general.delta_shock_rule = DeltaShockRule::ramp;
        else if (rule == "step") m.deribit.general.delta_shock_rule = DeltaShockRule::step;
        else if (rule == "excess") m.deribit.general.delta_shock_rule = DeltaShockRule::excess;
        else throw input_error(source, 0, "general.delta_shock_rule", "must be \"ramp\", \"step\" or \"excess\"");
      }
      m.deribit.general.mm_factor = get_number(g, "mm_factor", m.deribit.general.mm_factor, source, "general");
      m.deribit.general.buckets_count = static_cast<int>(
          get_number(g, "buckets_count", m.deribit.general.buckets_count, source, "general"));
      m.deribit.general.vol_scenarios_count = static_cast<int>(
          get_number(g, "vol_scenarios_count", 3, source, "general"));
      if (m.deribit.general.buckets_count < 1 || m.deribit.general.buckets_count > 100)
        throw input_error(source, 0, "general.buckets_count", "must be within 1..100");
      if (m.deribit.general.vol_scenarios_count != 3)
        throw input_error(source, 0, "general.vol_scenarios_count", "only 3 (up, unchanged, down) is supported");
    }
    if (doc.contains("currency_pair")) {
      for (const auto& [key, val] : doc["currency_pair"].items()) {
        const std::string u = underlying_of_key(key);
        const auto base = m.deribit.pairs.count(u) ? m.deribit.pairs[u] : m.deribit.pairs["DEFAULT"];
        m.deribit.pairs[u] = parse_pair(val, base, source, "currency_pair." + key);
      }
    }
    if (doc.contains("currency")) {
      for (const auto& [key, val] : doc["currency"].items()) {
        const std::string u = underlying_of_key(key);
        const auto base =
            m.deribit.currencies.count(u) ? m.deribit.currencies[u] : m.deribit.currencies["DEFAULT"];
        m.deribit.currencies[u] = parse_currency(val, base, source, "currency." + key);
      }
    }
  } else if (model == "hvar") {
    m.kind = MethodologyKind::hvar;
    HvarConfig& h = m.hvar;
    h.confidence = get_number(doc, "confidence", h.confidence, source, "");
    h.holding_days = static_cast<int>(get_number(doc, "holding_days", h.holding_days, source, ""));
    h.ewma_lambda = get_number(doc, "ewma_lambda", h.ewma_lambda, source, "");
    const std::string measure = doc.value("measure", "es");
    if (measure != "es" && measure != "var") throw input_error(source, 0, "measure", "must be \"es\" or \"var\"");
    h.expected_shortfall = measure == "es";
    h.returns = doc.value("returns", "");
    h.stress_returns = doc.value("stress_returns", "");
    if (!(h.confidence > 0 && h.confidence < 1)) throw input_error(source, 0, "confidence", "must be within (0, 1)");
    if (h.holding_days < 1) throw input_error(source, 0, "holding_days", "must be >= 1");
    if (h.ewma_lambda < 0 || h.ewma_lambda >= 1) throw input_error(source, 0, "ewma_lambda", "must be within [0, 1)");
  } else if (model == "mc-es") {
    m.kind = MethodologyKind::mc_es;
    McEsConfig& c = m.mc;
    c.paths = static_cast<std::size_t>(get_number(doc, "paths", static_cast<double>(c.paths), source, ""));
    c.confidence = get_number(doc, "confidence", c.confidence, source, "");
    c.holding_days = static_cast<int>(get_number(doc, "holding_days", c.holding_days, source, ""));
    c.seed = static_cast<std::uint64_t>(get_number(doc, "seed", static_cast<double>(c.seed), source, ""));
    c.default_vol = get_number(doc, "default_vol", c.default_vol, source, "");
    c.default_correlation = get_number(doc, "default_correlation", c.default_correlation, source, "");
    if (doc.contains("vols"))
      for (const auto& [k, v] : doc["vols"].items()) c.vols[k] = get_number(doc["vols"], k.c_str(), 0, source, "vols");
    if (doc.contains("correlations"))
      for (const auto& [k, v] : doc["correlations"].items()) {
        const double rho = get_number(doc["correlations"], k.c_str(), 0, source, "correlations");
        if (rho < -1 || rho > 1) throw input_error(source, 0, "correlations." + k, "must be within [-1, 1]");
        c.correlations[k] = rho;
      }
    if (c.paths < 1) throw input_error(source, 0, "paths", "must be >= 1");
    if (!(c.confidence > 0 && c.confidence < 1)) throw input_error(source, 0, "confidence", "must be within (0, 1)");
  } else if (model == "stress") {
    m.kind = MethodologyKind::stress;
    m.stress_json = doc.dump();
    parse_stress_scenarios(m.stress_json, source, {});  // its errors now, not at the first run
  } else {
    throw input_error(source, 0, "model", "unknown methodology '" + model + "'");
  }
  return m;
}

Methodology load_methodology(const std::string& name_or_path) {
  if (name_or_path == "span16") {
    Methodology m;
    m.name = "span16";
    m.kind = MethodologyKind::span16;
    m.source = "built-in";
    return m;
  }
  if (name_or_path == "deribit-pm") {
    Methodology m;
    m.name = "deribit-pm";
    m.kind = MethodologyKind::deribit_pm;
    m.deribit = deribit_pm_defaults();
    m.source = "built-in";
    return m;
  }
  if (name_or_path == "hvar" || name_or_path == "mc-es") {
    Methodology m;
    m.name = name_or_path;
    m.kind = name_or_path == "hvar" ? MethodologyKind::hvar : MethodologyKind::mc_es;
    m.source = "built-in";
    return m;
  }
  std::ifstream in(name_or_path);
  if (!in)
    throw input_error(name_or_path, 0, "",
                      "not a built-in methodology (span16, deribit-pm, hvar, mc-es) and cannot open as a file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_methodology(ss.str(), name_or_path);
}

ScenarioSet make_scenarios(const Methodology& m, const std::vector<std::string>& underlyings,
                           const std::vector<std::string>& universe) {
  ScenarioSet set;
  set.name = m.name;
  set.underlyings = underlyings;
  const std::size_t U = underlyings.size();
  set.vol_terms.resize(U);

  if (m.kind == MethodologyKind::hvar) return historical_scenarios(m.hvar, underlyings, m.name);
  if (m.kind == MethodologyKind::mc_es) return monte_carlo_scenarios(m.mc, underlyings, m.name, universe);
  if (m.kind == MethodologyKind::stress) {
    ScenarioSet s = parse_stress_scenarios(m.stress_json, m.source, underlyings);
    s.name = m.name;
    return s;
  }

  if (m.kind == MethodologyKind::span16) {
    // (price fraction of PSR, vol direction) in CME order; 14, 15 are the extreme moves.
    struct Row { double move; int vol; const char* label; };
    static const Row rows[16] = {
        {0, +1, "unchanged, vol up"},  {0, -1, "unchanged, vol down"},
        {1.0 / 3, +1, "up 1/3, vol up"},   {1.0 / 3, -1, "up 1/3, vol down"},
        {-1.0 / 3, +1, "down 1/3, vol up"}, {-1.0 / 3, -1, "down 1/3, vol down"},
        {2.0 / 3, +1, "up 2/3, vol up"},   {2.0 / 3, -1, "up 2/3, vol down"},
        {-2.0 / 3, +1, "down 2/3, vol up"}, {-2.0 / 3, -1, "down 2/3, vol down"},
        {1, +1, "up 3/3, vol up"},         {1, -1, "up 3/3, vol down"},
        {-1, +1, "down 3/3, vol up"},      {-1, -1, "down 3/3, vol down"},
        {0, 0, "up extreme"},              {0, 0, "down extreme"}};
    set.count = 16;
    set.shocks.resize(16 * U);
    for (std::size_t s = 0; s < 16; ++s) {
      set.labels.push_back(rows[s].label);
      set.weights.push_back(s < 14 ? 1.0 : m.span.extreme_cover_fraction);
      for (std::size_t u = 0; u < U; ++u) {
        const Span16Params& p = m.span.params(underlyings[u]);
        ScenarioShock& sh = set.shocks[s * U + u];
        sh.days = p.days;
        if (s < 14) {
          sh.price_move = rows[s].move * p.price_scan_range;
          sh.vol_kind = VolShock::absolute;
          sh.vol_shift = rows[s].vol * p.volatility_scan_range;
        } else {
          const double sign = s == 14 ? 1.0 : -1.0;
          sh.price_move = sign * m.span.extreme_move_multiplier * p.price_scan_range;
          sh.vol_kind = VolShock::none;
        }
      }
    }
    return set;
  }

  // deribit-pm
  const DeribitPmConfig& c = m.deribit;
  const int B = c.general.buckets_count;
  const std::size_t standard = deribit_standard_count(c);
  const auto& ext = deribit_extended_moves();
  set.count = standard + ext.size();
  set.shocks.resize(set.count * U);
  for (std::size_t u = 0; u < U; ++u) {
    const DeribitPairParams& p = c.pair(underlyings[u]);
    set.vol_terms[u] = VolTermParams{p.volatility_range_up, p.volatility_range_down,
                                     p.short_term_vega_power, p.long_term_vega_power,
                                     p.min_volatility_for_shock_up};
  }
  static const VolShock vols[3] = {VolShock::deribit_up, VolShock::none, VolShock::deribit_down};
  static const char* vol_names[3] = {"vol up", "vol unchanged", "vol down"};
  std::size_t s = 0;
  for (int k = -B; k <= B; ++k) {
    for (int v = 0; v < 3; ++v, ++s) {
      char label[64];
      std::snprintf(label, sizeof label, "move %+d/%d of range, %s", k, B, vol_names[v]);
      set.labels.push_back(label);
      set.weights.push_back(1.0);
      for (std::size_t u = 0; u < U; ++u) {
        ScenarioShock& sh = set.shocks[s * U + u];
        sh.price_move = c.pair(underlyings[u]).price_range * k / B;
        sh.vol_kind = vols[v];
      }
    }
  }
  for (double move : ext) {
    char label[64];
    std::snprintf(label, sizeof label, "extended %+.0f%%, vol up", move * 100);
    set.labels.push_back(label);
    set.weights.push_back(1.0);
    for (std::size_t u = 0; u < U; ++u) {
      ScenarioShock& sh = set.shocks[s * U + u];
      sh.price_move = move;
      sh.vol_kind = VolShock::deribit_up;
    }
    ++s;
  }
  return set;
}

}  // namespace marginet
