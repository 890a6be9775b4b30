#include "models/contagion.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <unordered_set>

#include "models/contagion_math.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/identifier.hpp"
#include "models/trade.hpp"

namespace marginet {

// ---------------------------------------------------------------------------------------------
// Network

bool Network::add_node(const std::string& id, double assets) {
  MARGINET_EXPECTS(ids.size() < static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
                   "node ids fit int32");
  if (!index_.emplace(id, static_cast<std::int32_t>(ids.size())).second) return false;
  ids.push_back(id);
  external_assets.push_back(assets);
  return true;
}

std::optional<std::int32_t> Network::find(std::string_view id) const {
  const auto it = index_.find(std::string(id));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// Strict JSON

namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxNodeIdBytes = 128;
constexpr std::size_t kMaxCurrencyBytes = 16;

/// Parses `text`, rejecting a key repeated inside one object (nlohmann would keep the last one
/// without a word, and a second "amount" is far more likely a mistake than an intent).
json parse_strict(const std::string& text, const std::string& source) {
  std::vector<std::set<std::string>> open_objects;
  std::string repeated;
  const json::parser_callback_t track_keys = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second && repeated.empty())
        repeated = parsed.get<std::string>();
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text, track_keys);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999 (overflow)
    throw input_error(source, 0, "", std::string("not valid JSON: ") + e.what());
  }
  if (!repeated.empty()) throw input_error(source, 0, repeated, "key appears twice in one object");
  return doc;
}

/// The JSON path of a member: "nodes[2]" + "id" -> "nodes[2].id".
std::string member_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

void require_object(const json& v, const std::string& source, const std::string& path) {
  if (!v.is_object()) throw input_error(source, 0, path, "must be a JSON object");
}

/// Every key of `obj` must be one of `allowed`; the first that is not is named in the error.
void reject_unknown_keys(const json& obj, std::initializer_list<const char*> allowed,
                         const std::string& source, const std::string& path) {
  for (const auto& [key, value] : obj.items()) {
    (void)value;
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      std::string expected;
      for (const char* a : allowed) expected += (expected.empty() ? "" : ", ") + std::string(a);
      throw input_error(source, 0, member_path(path, key), "unknown key (expected one of: " + expected + ")");
    }
  }
}

const json& required_member(const json& obj, const char* key, const std::string& source, const std::string& path) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw input_error(source, 0, member_path(path, key), "missing");
  return *it;
}

/// A finite number ≥ 0. JSON has no NaN or infinity, so those arrive as strings ("NaN") or as a
/// literal too large for a double (rejected by the parser): both are refused.
double non_negative_number(const json& v, const std::string& source, const std::string& path) {
  if (!v.is_number()) throw input_error(source, 0, path, "must be a finite number >= 0");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0) throw input_error(source, 0, path, "must be a finite number >= 0");
  return d;
}

std::string identifier(const json& v, std::size_t max_bytes, const std::string& source, const std::string& path) {
  if (!v.is_string()) throw input_error(source, 0, path, "must be a string");
  std::string s = v.get<std::string>();
  if (const auto problem = identifier_problem(s, max_bytes)) throw input_error(source, 0, path, *problem);
  return s;
}

const json& required_array(const json& obj, const char* key, const std::string& source) {
  const json& v = required_member(obj, key, source, "");
  if (!v.is_array()) throw input_error(source, 0, key, "must be a JSON array");
  return v;
}

}  // namespace

Network parse_network_json(const std::string& text, const std::string& source) {
  const json doc = parse_strict(text, source);
  require_object(doc, source, "");
  reject_unknown_keys(doc, {"currency", "nodes", "liabilities"}, source, "");
  Network net;
  if (const auto it = doc.find("currency"); it != doc.end())
    net.currency = identifier(*it, kMaxCurrencyBytes, source, "currency");

  const json& nodes = required_array(doc, "nodes", source);
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    const std::string path = "nodes[" + std::to_string(k) + "]";
    const json& node = nodes[k];
    require_object(node, source, path);
    reject_unknown_keys(node, {"id", "external_assets"}, source, path);
    const std::string id = identifier(required_member(node, "id", source, path), kMaxNodeIdBytes, source, path + ".id");
    const double assets = non_negative_number(required_member(node, "external_assets", source, path), source,
                                              path + ".external_assets");
    if (!net.add_node(id, assets)) {
      const auto first = static_cast<std::size_t>(*net.find(id));
      throw input_error(source, 0, path + ".id",
                        "duplicate node id '" + id + "' (first at nodes[" + std::to_string(first) + "])");
    }
  }

  const json& links = required_array(doc, "liabilities", source);
  std::unordered_map<std::uint64_t, std::size_t> seen;  // (from, to) -> index of its first link
  seen.reserve(links.size());
  for (std::size_t k = 0; k < links.size(); ++k) {
    const std::string path = "liabilities[" + std::to_string(k) + "]";
    const json& link = links[k];
    require_object(link, source, path);
    reject_unknown_keys(link, {"from", "to", "amount", "margin"}, source, path);
    auto node_of = [&](const char* key) {
      const std::string field = path + "." + key;
      const std::string id = identifier(required_member(link, key, source, path), kMaxNodeIdBytes, source, field);
      const auto index = net.find(id);
      if (!index) throw input_error(source, 0, field, "unknown node '" + id + "' (not in nodes)");
      return *index;
    };
    NetworkLiability l;
    l.from = node_of("from");
    l.to = node_of("to");
    if (l.from == l.to) throw input_error(source, 0, path + ".to", "a node cannot owe itself ('" + net.ids[static_cast<std::size_t>(l.from)] + "')");
    l.amount = non_negative_number(required_member(link, "amount", source, path), source, path + ".amount");
    if (const auto it = link.find("margin"); it != link.end()) {
      l.margin = non_negative_number(*it, source, path + ".margin");
      if (l.margin > l.amount) throw input_error(source, 0, path + ".margin", "must not exceed the amount");
    }
    const std::uint64_t pair = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(l.from)) << 32) |
                               static_cast<std::uint32_t>(l.to);
    if (const auto [it, fresh] = seen.emplace(pair, k); !fresh)
      throw input_error(source, 0, path,
                        "a second liability from '" + net.ids[static_cast<std::size_t>(l.from)] + "' to '" +
                            net.ids[static_cast<std::size_t>(l.to)] + "' (first at liabilities[" +
                            std::to_string(it->second) + "]); give one liability per pair");
    net.liabilities.push_back(l);
  }
  return net;
}

Network read_network_json(const std::string& path) { return parse_network_json(read_file_text(path), path); }

Shock parse_shock_json(const std::string& text, const std::string& source) {
  const json doc = parse_strict(text, source);
  require_object(doc, source, "");
  reject_unknown_keys(doc, {"scale", "scale_nodes", "external_assets"}, source, "");
  Shock shock;
  shock.source = source;
  if (const auto it = doc.find("scale"); it != doc.end()) shock.scale = non_negative_number(*it, source, "scale");
  auto per_node = [&](const char* key, std::vector<std::pair<std::string, double>>& out) {
    const auto it = doc.find(key);
    if (it == doc.end()) return;
    require_object(*it, source, key);
    for (const auto& [id, value] : it->items())
      out.emplace_back(id, non_negative_number(value, source, member_path(key, id)));
  };
  per_node("scale_nodes", shock.scale_nodes);
  per_node("external_assets", shock.replacements);
  return shock;
}

Shock read_shock_json(const std::string& path) { return parse_shock_json(read_file_text(path), path); }

void apply_shock(Network& net, const Shock& shock) {
  auto node_of = [&](const std::string& id, const char* key) {
    const auto index = net.find(id);
    if (!index) throw input_error(shock.source, 0, member_path(key, id), "unknown node '" + id + "' (not in the network)");
    return static_cast<std::size_t>(*index);
  };
  // Resolve every id before changing anything: a bad shock leaves the network as it was.
  std::vector<std::pair<std::size_t, double>> replace, scale;
  for (const auto& [id, value] : shock.replacements) replace.emplace_back(node_of(id, "external_assets"), value);
  for (const auto& [id, factor] : shock.scale_nodes) scale.emplace_back(node_of(id, "scale_nodes"), factor);
  for (const auto& [i, value] : replace) net.external_assets[i] = value;
  for (const auto& [i, factor] : scale) net.external_assets[i] *= factor;
  for (double& e : net.external_assets) e *= shock.scale;
}

// ---------------------------------------------------------------------------------------------
// Clearing

void check_clearing_params(const ClearingParams& p) {
  if (!(p.alpha > 0 && p.alpha <= 1)) throw usage_error("alpha (recovery rate on external assets) must be in (0, 1]");
  if (!(p.beta > 0 && p.beta <= 1)) throw usage_error("beta (recovery rate on interbank claims) must be in (0, 1]");
  if (p.max_iterations < 0) throw usage_error("max_iterations must be >= 0");
  if (!(p.tolerance >= 0) || !std::isfinite(p.tolerance)) throw usage_error("tolerance must be a finite number >= 0");
}

double ClearingSystem::tolerance(const ClearingParams& params) const {
  if (params.tolerance > 0) return params.tolerance;
  double scale = 1.0;
  for (double l : total_liability) scale = std::max(scale, l);
  return 1e-12 * scale;
}

namespace {

/// Stable counting sort of `order` by key(link): O(links + nodes), no comparisons.
template <class Key>
std::vector<std::uint32_t> counting_sort(const std::vector<std::uint32_t>& order, std::size_t nodes, Key key) {
  std::vector<std::size_t> start(nodes + 1, 0);
  for (const std::uint32_t k : order) ++start[key(k) + 1];
  for (std::size_t i = 0; i < nodes; ++i) start[i + 1] += start[i];
  std::vector<std::uint32_t> sorted(order.size());
  for (const std::uint32_t k : order) sorted[start[key(k)]++] = k;
  return sorted;
}

/// Link indices ordered by (from, to): two stable counting sorts, by creditor then by debtor
/// (a comparison sort of a million links costs ten times more).
std::vector<std::uint32_t> links_by_debtor_then_creditor(const Network& net) {
  MARGINET_EXPECTS(net.liabilities.size() < std::numeric_limits<std::uint32_t>::max(), "link indices fit 32 bits");
  const std::size_t n = net.nodes();
  std::vector<std::uint32_t> order(net.liabilities.size());
  for (std::size_t k = 0; k < order.size(); ++k) {
    const NetworkLiability& l = net.liabilities[k];
    MARGINET_EXPECTS(l.from >= 0 && static_cast<std::size_t>(l.from) < n && l.to >= 0 &&
                         static_cast<std::size_t>(l.to) < n && l.from != l.to,
                     "liabilities link two different nodes of the network");
    order[k] = static_cast<std::uint32_t>(k);
  }
  order = counting_sort(order, n, [&](std::uint32_t k) { return static_cast<std::size_t>(net.liabilities[k].to); });
  return counting_sort(order, n, [&](std::uint32_t k) { return static_cast<std::size_t>(net.liabilities[k].from); });
}

}  // namespace

ClearingSystem build_clearing_system(const Network& net) {
  const std::size_t n = net.nodes();
  MARGINET_EXPECTS(net.external_assets.size() == n, "one external asset figure per node");
  ClearingSystem s;
  s.nodes = static_cast<std::int32_t>(n);
  s.external = net.external_assets;
  s.liability.assign(n, 0.0);
  s.total_liability.assign(n, 0.0);
  s.margin_posted.assign(n, 0.0);
  s.margin_received.assign(n, 0.0);

  // Sorted by (debtor, creditor): the per-node sums and the CSR rows then do not depend on the
  // order of the file, and each creditor's row lists its debtors in ascending order.
  const std::vector<std::uint32_t> order = links_by_debtor_then_creditor(net);
  std::vector<std::int64_t> in_count(n + 1, 0);
  for (std::size_t k = 0; k < order.size(); ++k) {
    const NetworkLiability& l = net.liabilities[order[k]];
    MARGINET_EXPECTS(std::isfinite(l.amount) && l.margin >= 0 && l.margin <= l.amount, "0 <= margin <= amount");
    if (k > 0) {
      const NetworkLiability& prev = net.liabilities[order[k - 1]];
      MARGINET_EXPECTS(prev.from != l.from || prev.to != l.to, "one liability per (from, to)");
    }
    const auto from = static_cast<std::size_t>(l.from), to = static_cast<std::size_t>(l.to);
    const double residual = l.amount - l.margin;
    s.total_liability[from] += l.amount;
    s.margin_posted[from] += l.margin;
    s.margin_received[to] += l.margin;
    s.liability[from] += residual;
    if (residual > 0) ++in_count[to + 1];
  }
  s.in_begin.assign(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) s.in_begin[i + 1] = s.in_begin[i] + in_count[i + 1];
  s.in_debtor.resize(static_cast<std::size_t>(s.in_begin[n]));
  s.in_amount.resize(s.in_debtor.size());
  std::vector<std::int64_t> next(s.in_begin.begin(), s.in_begin.end() - 1);
  for (const std::uint32_t k : order) {
    const NetworkLiability& l = net.liabilities[k];
    const double residual = l.amount - l.margin;
    if (!(residual > 0)) continue;
    const auto slot = static_cast<std::size_t>(next[static_cast<std::size_t>(l.to)]++);
    s.in_debtor[slot] = l.from;
    s.in_amount[slot] = residual;
  }
  return s;
}

namespace {

/// What node i receives when the others pay the shares `ratio` of their residual liabilities.
/// The one order of summation every path uses: margin first, then the row's links in order.
double inflow_of(const ClearingSystem& s, std::size_t i, const std::vector<double>& ratio) {
  double in = s.margin_received[i];
  const auto end = static_cast<std::size_t>(s.in_begin[i + 1]);
  for (auto k = static_cast<std::size_t>(s.in_begin[i]); k < end; ++k)
    in += s.in_amount[k] * ratio[static_cast<std::size_t>(s.in_debtor[k])];
  return in;
}

std::vector<double> ratios_of(const ClearingSystem& s, const std::vector<double>& payment) {
  std::vector<double> ratio(payment.size());
  for (std::size_t i = 0; i < payment.size(); ++i) ratio[i] = paid_ratio(payment[i], s.liability[i]);
  return ratio;
}

}  // namespace

std::vector<double> clearing_inflow(const ClearingSystem& s, const std::vector<double>& payment) {
  MARGINET_EXPECTS(payment.size() == static_cast<std::size_t>(s.nodes), "one payment per node");
  const std::vector<double> ratio = ratios_of(s, payment);
  std::vector<double> in(payment.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = inflow_of(s, i, ratio);
  return in;
}

PicardRun reference_picard(const ClearingSystem& s, const ClearingParams& params) {
  check_clearing_params(params);
  const auto n = static_cast<std::size_t>(s.nodes);
  const double tol = s.tolerance(params);
  PicardRun run;
  run.payment = s.liability;  // the top of the lattice: everyone pays in full
  std::vector<double> ratio = ratios_of(s, run.payment), next(n);
  while (run.iterations < params.max_iterations) {
    for (std::size_t i = 0; i < n; ++i)
      next[i] = clearing_payment(s.external[i], inflow_of(s, i, ratio), s.liability[i], params.alpha, params.beta);
    double change = 0;
    for (std::size_t i = 0; i < n; ++i) {
      change = std::max(change, std::fabs(next[i] - run.payment[i]));
      ratio[i] = paid_ratio(next[i], s.liability[i]);
    }
    run.payment.swap(next);
    ++run.iterations;
    run.last_change = change;
    if (change <= tol) {
      run.converged = true;
      break;
    }
  }
  return run;
}

FictitiousDefaultRun reference_fictitious_default(const ClearingSystem& s, const ClearingParams& params) {
  check_clearing_params(params);
  const auto n = static_cast<std::size_t>(s.nodes);
  const double tol = s.tolerance(params);
  FictitiousDefaultRun run;
  run.payment = s.liability;
  run.wave.assign(n, 0);
  std::vector<double> ratio = ratios_of(s, run.payment);
  std::vector<std::size_t> defaulted;  // ascending
  for (std::int32_t round = 1;; ++round) {
    // Who cannot pay in full, given what everyone pays now?
    bool declared = false;
    for (std::size_t i = 0; i < n; ++i)
      if (run.wave[i] == 0 && s.external[i] + inflow_of(s, i, ratio) < s.liability[i]) {
        run.wave[i] = round;
        declared = true;
      }
    if (!declared) break;
    run.waves = round;
    defaulted.clear();
    for (std::size_t i = 0; i < n; ++i)
      if (run.wave[i] > 0) defaulted.push_back(i);
    // p_D = α e_D + β (margin_D + inflow from D at p_D + inflow from the others at l): Gauss–
    // Seidel in place, from the current payments (above the solution, so decreasing to it).
    bool solved = false;
    for (std::int64_t sweep = 0; sweep < params.max_iterations && !solved; ++sweep) {
      double change = 0;
      for (const std::size_t i : defaulted) {
        const double p = defaulted_payment(s.external[i], inflow_of(s, i, ratio), s.liability[i], params.alpha, params.beta);
        change = std::max(change, std::fabs(p - run.payment[i]));
        run.payment[i] = p;
        ratio[i] = paid_ratio(p, s.liability[i]);
      }
      ++run.sweeps;
      solved = change <= tol;
    }
    if (!solved) run.converged = false;
  }
  return run;
}

NodeResults node_results(const ClearingSystem& s, const std::vector<double>& residual_payment,
                         const std::vector<std::int32_t>& wave) {
  const auto n = static_cast<std::size_t>(s.nodes);
  MARGINET_EXPECTS(residual_payment.size() == n, "one payment per node");
  MARGINET_EXPECTS(wave.empty() || wave.size() == n, "one wave per node (or none)");
  NodeResults r;
  r.inflow = clearing_inflow(s, residual_payment);
  r.total_liability = s.total_liability;
  r.margin_received = s.margin_received;
  r.margin_posted = s.margin_posted;
  r.wave = wave.empty() ? std::vector<std::int32_t>(n, 0) : wave;
  r.payment.resize(n);
  r.shortfall.resize(n);
  r.equity.resize(n);
  r.defaulted.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    r.defaulted[i] = residual_payment[i] < s.liability[i];
    // A node paying in full pays its total liability as given, not margin + residual re-added
    // (which may round one unit in the last place away from it).
    r.payment[i] = r.defaulted[i] ? s.margin_posted[i] + residual_payment[i] : s.total_liability[i];
    r.shortfall[i] = s.liability[i] - residual_payment[i];
    r.equity[i] = s.external[i] + s.margin_posted[i] + r.inflow[i] - s.total_liability[i];
    r.defaulted_count += r.defaulted[i];
    r.total_shortfall += r.shortfall[i];
    r.waves = std::max(r.waves, r.wave[i]);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Generated networks

namespace {

/// Uniform in [0, 1) from 53 random bits: the same on every platform, unlike the library's
/// distributions.
double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
double standard_normal(std::mt19937_64& rng) {  // Box–Muller
  const double u1 = 1.0 - unit(rng), u2 = unit(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace

Network generate_network(const NetworkGeneratorConfig& c) {
  MARGINET_EXPECTS(c.nodes >= 3, "a network of at least 3 nodes");
  const auto n = static_cast<std::size_t>(c.nodes);
  const std::size_t sinks = std::max<std::size_t>(1, static_cast<std::size_t>(c.sink_share * static_cast<double>(n)));
  MARGINET_EXPECTS(sinks + 2 <= n, "at least two nodes that owe");
  const std::size_t debtors = n - sinks;  // ids [0, debtors) owe; [debtors, n) are outside creditors
  MARGINET_EXPECTS(c.links <= debtors * (n - 1) / 2, "room for that many distinct links");
  std::mt19937_64 rng(c.seed);

  Network net;
  for (std::size_t i = 0; i < n; ++i)
    net.add_node((i < debtors ? "N" : "X") + std::to_string(i), 0.0);

  std::unordered_set<std::uint64_t> pairs;
  pairs.reserve(c.links * 2);
  net.liabilities.reserve(c.links);
  while (net.liabilities.size() < c.links) {
    const auto from = std::min(debtors - 1, static_cast<std::size_t>(static_cast<double>(debtors) *
                                                                      std::pow(unit(rng), c.degree_skew)));
    const bool to_sink = unit(rng) < c.sink_link_share;
    std::size_t to = to_sink ? debtors + static_cast<std::size_t>(unit(rng) * static_cast<double>(sinks))
                             : static_cast<std::size_t>(unit(rng) * static_cast<double>(debtors));
    to = std::min(to, n - 1);
    if (to == from || !pairs.insert((static_cast<std::uint64_t>(from) << 32) | to).second) continue;
    NetworkLiability l;
    l.from = static_cast<std::int32_t>(from);
    l.to = static_cast<std::int32_t>(to);
    l.amount = std::exp(0.5 + standard_normal(rng));  // lognormal, median e^0.5
    if (unit(rng) < c.margined_share) l.margin = l.amount * unit(rng);
    net.liabilities.push_back(l);
  }

  std::vector<double> owed(n, 0.0), receivable(n, 0.0);
  for (const NetworkLiability& l : net.liabilities) {
    owed[static_cast<std::size_t>(l.from)] += l.amount - l.margin;
    receivable[static_cast<std::size_t>(l.to)] += l.amount;
  }
  for (std::size_t i = 0; i < debtors; ++i) {
    const double buffer = unit(rng) < c.weak_share ? -c.weak_loss * unit(rng)
                                                   : -c.capital_mean * std::log(1.0 - unit(rng));
    net.external_assets[i] = std::max(0.0, owed[i] - receivable[i] + buffer * owed[i]);
  }
  return net;
}

std::string network_json(const Network& network) {
  nlohmann::ordered_json j;
  j["currency"] = network.currency;
  auto& nodes = j["nodes"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < network.nodes(); ++i)
    nodes.push_back({{"id", network.ids[i]}, {"external_assets", network.external_assets[i]}});
  auto& links = j["liabilities"] = nlohmann::ordered_json::array();
  for (const NetworkLiability& l : network.liabilities) {
    nlohmann::ordered_json x{{"from", network.ids[static_cast<std::size_t>(l.from)]},
                             {"to", network.ids[static_cast<std::size_t>(l.to)]},
                             {"amount", l.amount}};
    if (l.margin > 0) x["margin"] = l.margin;
    links.push_back(std::move(x));
  }
  return j.dump(2);
}

}  // namespace marginet
